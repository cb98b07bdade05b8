//! Turning binds into listening sockets, the way MAS does it once its start-up
//! work is done.
//!
//! - `fd`: taken with the `listenfd` crate by position (`sd_listen_fds(3)`
//!   numbering, index 0 is fd 3); `LISTEN_FDNAMES` is ignored. listenfd checks
//!   that the fd is a stream socket of the right family, not that it listens.
//!   A wrong kind or a missing index is an error.
//! - host + port: resolve, then bind the first address that works; without a
//!   host, `[::]:port` then `0.0.0.0:port`.
//! - address: parsed as a socket address literal, then bound.
//! - socket: bound at `<path>.<pid>.tmp`, given `mode`, renamed onto `path`
//!   (replacing a stale file). Never unlinked on exit, as MAS never does.
//!
//! Any error here stops the start-up before `READY=1`.

use std::ffi::OsString;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use listenfd::ListenFd;

use crate::config::{BindForm, FdKind, Listener};

/// `sd_listen_fds(3)`: the first passed fd.
const SD_LISTEN_FDS_START: usize = 3;

/// A listening socket, ready for the runtime.
pub(crate) enum Socket {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// A socket together with what its listener serves.
pub(crate) struct Opened {
    pub(crate) label: String,
    pub(crate) socket: Socket,
    pub(crate) resources: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) proxy_protocol: bool,
}

/// Takes the inherited fds and binds the other sockets of every listener, in
/// config order, logging each one.
///
/// Must run inside the tokio runtime. Reads (and, through listenfd, unsets)
/// `LISTEN_FDS` and `LISTEN_PID`; fds are taken only when `LISTEN_PID` is
/// unset, empty, or this process's pid.
///
/// # Errors
///
/// The first bind that fails, named by its config key.
pub(crate) fn open_all(listeners: &[Listener]) -> anyhow::Result<Vec<Opened>> {
    let mut inherited = ListenFd::from_env();
    let mut opened = Vec::new();
    for listener in listeners {
        for bind in &listener.binds {
            let (socket, how) = open(&bind.form, &mut inherited)
                .with_context(|| format!("{} (listener {})", bind.key, listener.label))?;
            log!("listener {}: {how}", listener.label);
            opened.push(Opened {
                label: listener.label.clone(),
                socket,
                resources: listener.resources.clone(),
                prefix: listener.prefix.clone(),
                proxy_protocol: listener.proxy_protocol,
            });
        }
    }
    Ok(opened)
}

/// Opens one bind; also returns a description for the log.
fn open(form: &BindForm, inherited: &mut ListenFd) -> anyhow::Result<(Socket, String)> {
    match form {
        BindForm::HostPort { host, port } => {
            let addrs: Vec<SocketAddr> = match host {
                Some(host) => (host.as_str(), *port)
                    .to_socket_addrs()
                    .with_context(|| format!("cannot resolve host {host:?}; fix `host`"))?
                    .collect(),
                None => vec![
                    (Ipv6Addr::UNSPECIFIED, *port).into(),
                    (Ipv4Addr::UNSPECIFIED, *port).into(),
                ],
            };
            let shown: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
            let listener = std::net::TcpListener::bind(&addrs[..])
                .with_context(|| format!("cannot bind any of {}", shown.join(", ")))?;
            tcp(listener, "bound")
        }
        BindForm::Address { address } => {
            let addr: SocketAddr = address.parse().map_err(|_| {
                anyhow!("address {address:?} is not a socket address; write it like \"[::]:8080\"")
            })?;
            let listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("cannot bind {addr}"))?;
            tcp(listener, "bound")
        }
        BindForm::Socket { socket, mode } => bind_unix(socket, mode.as_deref()),
        BindForm::Fd { fd: index, kind } => {
            let fd = SD_LISTEN_FDS_START + index;
            let missing = || {
                anyhow!(
                    "no socket at LISTEN_FDS index {index} (fd {fd}); pass {} fd(s) or fix `fd`",
                    index + 1
                )
            };
            let kind_name = match kind {
                FdKind::Tcp => "tcp",
                FdKind::Unix => "unix",
            };
            let how = format!("took fd {fd} (LISTEN_FDS index {index}, {kind_name})");
            match kind {
                FdKind::Tcp => {
                    let listener = inherited
                        .take_tcp_listener(*index)
                        .with_context(|| format!("fd {fd} is not usable as `kind: tcp`"))?
                        .ok_or_else(missing)?;
                    tcp(listener, &how)
                }
                FdKind::Unix => {
                    let listener = inherited
                        .take_unix_listener(*index)
                        .with_context(|| format!("fd {fd} is not usable as `kind: unix`"))?
                        .ok_or_else(missing)?;
                    let shown = unix_name(&listener);
                    Ok((unix(listener)?, format!("{how} at {shown}")))
                }
            }
        }
    }
}

/// Wraps a bound or taken TCP listener for the runtime.
fn tcp(listener: std::net::TcpListener, how: &str) -> anyhow::Result<(Socket, String)> {
    let addr = listener
        .local_addr()
        .context("getsockname on a tcp listener")?;
    listener
        .set_nonblocking(true)
        .context("making a tcp listener non-blocking")?;
    let listener =
        tokio::net::TcpListener::from_std(listener).context("registering a tcp listener")?;
    Ok((Socket::Tcp(listener), format!("{how} {addr}")))
}

/// Wraps a bound or taken Unix listener for the runtime.
fn unix(listener: std::os::unix::net::UnixListener) -> anyhow::Result<Socket> {
    listener
        .set_nonblocking(true)
        .context("making a unix listener non-blocking")?;
    let listener =
        tokio::net::UnixListener::from_std(listener).context("registering a unix listener")?;
    Ok(Socket::Unix(listener))
}

/// The path a Unix listener is bound to, for the log.
fn unix_name(listener: &std::os::unix::net::UnixListener) -> String {
    match listener.local_addr() {
        Ok(addr) => match addr.as_pathname() {
            Some(path) => path.display().to_string(),
            None => "an unnamed or abstract address".to_owned(),
        },
        Err(err) => format!("an unknown address ({err})"),
    }
}

/// Binds a Unix socket at a temporary name, applies `mode`, then renames it
/// onto `path`, as MAS does.
fn bind_unix(path: &Path, mode: Option<&str>) -> anyhow::Result<(Socket, String)> {
    let permissions = mode
        .map(|mode| {
            u32::from_str_radix(mode, 8)
                .map(fs::Permissions::from_mode)
                .map_err(|_| anyhow!("mode {mode:?} is not an octal number; write it like \"660\""))
        })
        .transpose()?;
    let mut tmp = OsString::from(path.as_os_str());
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind unix socket {}", tmp.display()))?;
    let placed = permissions
        .map_or(Ok(()), |permissions| {
            fs::set_permissions(&tmp, permissions)
                .with_context(|| format!("cannot chmod {}", tmp.display()))
        })
        .and_then(|()| {
            fs::rename(&tmp, path)
                .with_context(|| format!("cannot rename {} onto {}", tmp.display(), path.display()))
        });
    if let Err(err) = placed {
        // Best effort, as MAS: the temporary name is ours and useless now.
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    let how = match mode {
        Some(mode) => format!("bound unix socket {} (mode {mode})", path.display()),
        None => format!("bound unix socket {}", path.display()),
    };
    Ok((unix(listener)?, how))
}
