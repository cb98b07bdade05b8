//! The `.socket` unit of one bind (systemd.socket(5)): its `ListenStream=`
//! lines, the fd's name, the Unix socket's owner and mode, and a TCP
//! socket's `DeferAcceptSec=` (and `FreeBind=` for `localhost`).
//!
//! Also what a `ListenStream=` line does to the text it is given: how an
//! address and a path are written there, and which paths cannot reach
//! systemd as they are. The label that names the unit comes from `naming`;
//! the escapes every kind of unit line shares are in `escape`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use super::escape::{escape_specifiers, one_line};
use super::{UnitOptions, UnitsError};
use crate::config::{BindSpec, Endpoint};

/// The socket unit of one bind: `label` is its `FileDescriptorName=`, and
/// `service` the unit it activates.
pub(super) fn socket_unit(
    header: &str,
    service: &str,
    label: &str,
    listener: String,
    bind: &crate::config::Bind,
    opts: &UnitOptions,
) -> Result<String, UnitsError> {
    let mut out = String::from(header);
    let description = one_line(&format!(
        "MAS listener {listener}, bind {}: {}",
        bind.index, bind.spec
    ));
    let _ = write!(
        out,
        "\n[Unit]\nDescription={}\nDocumentation=man:mas-sockets(1)\n\n[Socket]\n",
        escape_specifiers(&description)
    );
    match &bind.spec {
        BindSpec::Fd { .. } => {
            return Err(UnitsError::FdBind {
                location: bind.location.clone(),
            })
        }
        BindSpec::Unix { path, mode } => {
            if !path.is_absolute() {
                return Err(UnitsError::RelativeSocket {
                    location: bind.location.clone(),
                    path: path.display().to_string(),
                });
            }
            if let Some(why) = unwritable(path) {
                return Err(UnitsError::UnwritablePath {
                    location: bind.location.clone(),
                    path: path.display().to_string(),
                    why,
                });
            }
            let group = opts.socket_group.as_deref().unwrap_or(&opts.group);
            let _ = writeln!(out, "ListenStream={}", escape_path(path));
            let _ = writeln!(out, "FileDescriptorName={label}");
            // Without a mode MAS leaves the socket to the umask; never more open
            // than owner and group, whatever systemd's 0666 default would be.
            let _ = writeln!(out, "SocketMode={:04o}", mode.unwrap_or(0o660));
            let _ = writeln!(out, "SocketUser={}", opts.user);
            let _ = writeln!(out, "SocketGroup={group}");
            let _ = writeln!(out, "RemoveOnStop=yes");
        }
        BindSpec::HostPort { .. } | BindSpec::Address(_) => {
            for endpoint in &bind.endpoints {
                match endpoint {
                    Endpoint::Tcp(addr) => {
                        let _ = writeln!(out, "ListenStream={}", listen_address(addr));
                    }
                    // A bare port is systemd's dual-stack socket, as MAS's `[::]`.
                    Endpoint::AnyTcp(port) => {
                        let _ = writeln!(out, "ListenStream={port}");
                    }
                    Endpoint::Unix(_) => unreachable!("a TCP bind has TCP endpoints"),
                }
            }
            let _ = writeln!(out, "FileDescriptorName={label}");
            // See `assign::DEFER_ACCEPT_SECS`: a restart must not close
            // connections the old MAS accepted before their request came.
            let _ = writeln!(out, "DeferAcceptSec={}s", crate::assign::DEFER_ACCEPT_SECS);
            // `localhost` stands for both loopback addresses; on a host without
            // IPv6 on loopback the socket for [::1] must not fail the unit.
            let is_localhost = matches!(&bind.spec, BindSpec::HostPort { host: Some(h), .. }
                if h.eq_ignore_ascii_case("localhost") || h.eq_ignore_ascii_case("localhost."));
            if is_localhost {
                let _ = writeln!(out, "FreeBind=yes");
            }
        }
    }
    let _ = write!(
        out,
        "Service={service}\n\n[Install]\nWantedBy=sockets.target\n"
    );
    Ok(out)
}

/// Why a socket path would not reach systemd as written, if it would not:
/// `ListenStream=` takes the rest of the line, trims it, continues it after a
/// trailing backslash, and refuses paths that are not normalized.
fn unwritable(path: &Path) -> Option<&'static str> {
    let text = path.to_string_lossy();
    if text.chars().any(char::is_control) {
        return Some("it holds control characters");
    }
    if text.contains('\\') {
        return Some("it holds a backslash");
    }
    if text.trim() != text {
        return Some("it starts or ends with white space");
    }
    let normal = text
        .split('/')
        .skip(1)
        .all(|part| !part.is_empty() && part != "." && part != "..");
    if !normal {
        return Some("it is not normalized (`//`, `.` or `..`, or a trailing `/`)");
    }
    None
}

/// A socket address as `ListenStream=` takes it: systemd reads an IPv6
/// scope after the port (`[fe80::1]:8080%2`), not inside the brackets as
/// Rust writes it, and `%` is a specifier to it.
fn listen_address(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            format!("[{}]:{}%%{}", v6.ip(), v6.port(), v6.scope_id())
        }
        _ => addr.to_string(),
    }
}

/// A path in a `ListenStream=` line: specifiers escaped, no quoting there.
fn escape_path(path: &Path) -> String {
    escape_specifiers(&one_line(&path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use crate::units::tests::{opts, units};

    /// systemd.socket(5) takes an IPv6 scope after the port; inside the
    /// brackets, as Rust writes it, systemd refuses the whole socket unit.
    #[test]
    fn a_scoped_ipv6_address_has_its_scope_after_the_port() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{address: \"[fe80::1%1]:8080\"}, {address: \"[fe80::2]:8080\"}]\n",
            &opts(),
        )
        .unwrap();
        assert!(
            files[0]
                .contents
                .contains("ListenStream=[fe80::1]:8080%%1\nFileDescriptorName=web-0\n"),
            "{}",
            files[0].contents
        );
        assert!(files
            .iter()
            .any(|f| f.contents.contains("ListenStream=[fe80::2]:8080\n")));
    }

    #[test]
    fn localhost_becomes_both_loopback_addresses() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{host: localhost, port: 8080}]\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(files[0].name, "mas-web.socket");
        assert!(files[0].contents.contains(
            "ListenStream=127.0.0.1:8080\nListenStream=[::1]:8080\nFileDescriptorName=web\n"
        ));
        assert_eq!(files[1].name, "mas.service");
        assert!(files[1].contents.contains("\nSockets=mas-web.socket\n"));
    }

    #[test]
    fn unix_socket_is_never_more_open_than_owner_and_group() {
        let mut o = opts();
        o.socket_group = Some("www-data".into());
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{socket: /run/mas/web.sock}, {socket: /run/mas/b.sock, mode: '600'}]\n",
            &o,
        )
        .unwrap();
        assert_eq!(files[0].name, "mas-web-0.socket");
        assert!(files[0]
            .contents
            .contains("SocketMode=0660\nSocketUser=mas\nSocketGroup=www-data\nRemoveOnStop=yes\n"));
        assert!(files[1].contents.contains("SocketMode=0600\n"));
    }

    #[test]
    fn fd_binds_are_refused_with_the_way_forward() {
        let err = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{fd: 0}]\n",
            &opts(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "c.yaml:5:15: http.listeners[0].binds[0]: an `fd:` bind names no address"
            ),
            "{err}"
        );
    }
}
