//! Matching listening sockets to the configured binds.
//!
//! systemd keeps the order of fds only within one socket unit, and the order
//! across units has changed between boots (pitfalls.md), so sockets are matched
//! by what they are: family, type, listening state and bound address or path.
//! `LISTEN_FDNAMES` only labels them in messages. The one exception is an
//! explicit `fd: N` bind, which by MAS's definition means "position N".
//!
//! Every mismatch is reported, each once, and nothing is started: a socket that
//! no bind uses would be held open for nobody, and a bind without its socket
//! would leave MAS unreachable where the operator expects it.

use std::fmt;
use std::os::fd::{AsFd as _, AsRawFd, OwnedFd, RawFd};

use serde_norway::Value;

use crate::activation::{Family, FdKind as Fd, InheritedFd, LocalAddr, SockType, SocketInfo};
use crate::config::plan::fd_bind_value;
use crate::config::plan::same_path;
use crate::config::{Bind, BindSpec, Endpoint, FdKind, Plan};

/// Where the sockets come from, which decides what is checked of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Passed by systemd (`LISTEN_FDS`): made by a socket unit, so its Unix
    /// sockets' permissions are checked against the config.
    Inherited,
    /// Bound by mas-sockets itself, exactly as MAS would bind them.
    SelfBound,
}

/// A listening socket on its way to the child, in the child's order.
#[derive(Debug)]
pub struct ChildSocket {
    pub fd: OwnedFd,
    /// The fd number it had when it reached us (for messages).
    pub number: RawFd,
    /// Its name in the child's `LISTEN_FDNAMES`.
    pub name: String,
    pub kind: FdKind,
    /// What it is, for logs (`tcp 127.0.0.1:8080`).
    pub description: String,
}

/// The sockets for the child and, per listener, the `fd:` binds that find them.
#[derive(Debug)]
pub struct Assignment {
    pub sockets: Vec<ChildSocket>,
    pub binds: Vec<Vec<Value>>,
}

/// One reason the sockets do not fit the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How an fd is named in messages: `fd 3 "web" (tcp 127.0.0.1:8080)`.
fn describe_fd(fd: &InheritedFd) -> String {
    let name = fd
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    format!("fd {}{name} ({})", fd.number, describe_kind(&fd.socket))
}

fn describe_kind(kind: &Fd) -> String {
    match kind {
        Fd::Socket(info) => info.to_string(),
        Fd::NotSocket { file_type } => format!("a {file_type}"),
        Fd::Closed => "not open".to_owned(),
    }
}

/// How a bind is named in messages: `bind 0 of listener web (host localhost port 8080) at c.yaml:5:11`.
fn describe_bind(plan: &Plan, bind: &Bind) -> String {
    let listener = plan.listeners[bind.listener].label();
    format!(
        "bind {} of listener {listener} ({}) at {}",
        bind.index, bind.spec, bind.location
    )
}

/// Whether an fd can serve any bind: a listening stream socket of a family MAS speaks.
fn usable(kind: &Fd) -> Result<(&SocketInfo, FdKind), String> {
    let Fd::Socket(info) = kind else {
        return Err("it is not a socket; only listening stream sockets can be passed".into());
    };
    if info.sock_type != SockType::Stream {
        return Err("it is not a stream socket; use ListenStream= in the socket unit, not ListenDatagram= or ListenSequentialPacket=".into());
    }
    let kind = match info.family {
        Family::Inet | Family::Inet6 => FdKind::Tcp,
        Family::Unix => FdKind::Unix,
        Family::Other(_) => {
            return Err("its address family is neither IP nor Unix, which MAS cannot serve".into())
        }
    };
    if !info.listening {
        return Err(
            "it is not listening; pass a listening socket (systemd's ListenStream= with Accept=no)"
                .into(),
        );
    }
    Ok((info, kind))
}

/// Whether socket address `local` satisfies `endpoint`.
fn satisfies(local: &LocalAddr, endpoint: &Endpoint) -> bool {
    match (local, endpoint) {
        (LocalAddr::Inet(addr), Endpoint::Tcp(want)) => addr == want,
        (LocalAddr::Inet(addr), Endpoint::AnyTcp(port)) => {
            addr.port() == *port && addr.ip().is_unspecified()
        }
        (LocalAddr::Unix(path), Endpoint::Unix(want)) => same_path(path, want),
        _ => false,
    }
}

/// Why a wildcard IPv6 socket would not serve its bind as MAS's own would:
/// MAS's `[::]` socket takes the kernel's default for IPv6-only
/// (`net.ipv6.bindv6only`, normally off, so IPv4 clients reach it too).
fn dual_stack_problem(fd: &InheritedFd, endpoint: &Endpoint) -> Option<String> {
    let Fd::Socket(info) = &fd.socket else {
        return None;
    };
    let LocalAddr::Inet(addr) = &info.local else {
        return None;
    };
    if !(addr.is_ipv6() && addr.ip().is_unspecified()) {
        return None;
    }
    let literal = matches!(endpoint, Endpoint::Tcp(want) if want.ip().is_unspecified());
    if !literal && !matches!(endpoint, Endpoint::AnyTcp(_)) {
        return None;
    }
    let only_v6 = socket2::SockRef::from(&fd.fd).only_v6().ok()?;
    let default_only_v6 =
        std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "1");
    match (only_v6, default_only_v6) {
        (true, false) => Some("it is IPv6-only (IPV6_V6ONLY), so IPv4 clients cannot reach it as they reach MAS's own [::] socket; set BindIPv6Only=both in the socket unit".into()),
        (false, true) => Some("it also takes IPv4, unlike MAS's own [::] socket on this host (net.ipv6.bindv6only=1); set BindIPv6Only=ipv6-only in the socket unit".into()),
        _ => None,
    }
}

/// Why a passed Unix socket is more open than its bind allows.
///
/// connect(2) on a Unix socket needs write permission on its file, so the
/// write bits say who may connect. A bind with `mode:` allows exactly the
/// classes its mode lets write; one without allows owner and group, as the
/// generated units make it (`SocketMode=0660`; MAS itself would follow the
/// service's `UMask=0077`). A socket file that cannot be examined is left to
/// the clients that fail to reach it.
fn unix_mode_problem(info: &SocketInfo, spec: &BindSpec) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let (LocalAddr::Unix(path), BindSpec::Unix { mode, .. }) = (&info.local, spec) else {
        return None;
    };
    let actual = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    let allowed = mode.unwrap_or(0o660);
    let extra = actual & 0o222 & !(allowed & 0o222);
    if extra == 0 {
        return None;
    }
    let who: Vec<&str> = [
        (0o200, "its owner"),
        (0o020, "its group"),
        (0o002, "any user"),
    ]
    .into_iter()
    .filter(|(bit, _)| extra & bit != 0)
    .map(|(_, who)| who)
    .collect();
    let fix = match mode {
        Some(mode) => format!("set SocketMode={mode:04o} in the socket unit, as generate-units writes it, or change the bind's `mode:`"),
        None => "set SocketMode=0660 in the socket unit, as generate-units writes it, or give the bind the `mode:` you mean".to_owned(),
    };
    Some(format!(
        "its file has mode {actual:04o}, which lets {} connect, more than the bind's {allowed:04o} allows; {fix}",
        who.join(" and ")
    ))
}

/// Pairs (later, first) of fds that are one socket: the same inode of the
/// socket file system (fstat(2)'s device and inode).
fn duplicates(fds: &[InheritedFd]) -> Vec<(usize, usize)> {
    let ids: Vec<Option<(u64, u64)>> = fds
        .iter()
        .map(|f| match f.socket {
            Fd::Socket(_) => nix::sys::stat::fstat(f.fd.as_fd())
                .ok()
                .map(|st| (st.st_dev, st.st_ino)),
            _ => None,
        })
        .collect();
    (0..fds.len())
        .filter_map(|later| {
            let id = ids[later]?;
            let first = ids[..later].iter().position(|other| *other == Some(id))?;
            Some((later, first))
        })
        .collect()
}

/// Matches `fds` to the binds of `plan`.
///
/// On success every fd serves exactly one bind and every bind has at least one
/// fd. Fds are consumed either way; on failure they are closed when dropped.
/// Sockets from systemd ([`Origin::Inherited`]) must also be no more open
/// than their binds allow.
///
/// # Errors
///
/// Every mismatch found, one line each, naming the bind and the fd.
pub fn assign(
    plan: &Plan,
    fds: Vec<InheritedFd>,
    origin: Origin,
) -> Result<Assignment, Vec<Mismatch>> {
    let mut problems = Vec::new();
    // For each fd: which bind took it.
    let mut owner: Vec<Option<(usize, usize)>> = vec![None; fds.len()];
    // One socket passed twice (two fds of one open file) would reach MAS
    // twice; said once, and the second fd is taken by no bind.
    for (later, first) in duplicates(&fds) {
        problems.push(Mismatch(format!(
            "{} is the same socket as fd {}, passed twice; pass each socket once",
            describe_fd(&fds[later]),
            fds[first].number
        )));
        owner[later] = Some((usize::MAX, usize::MAX));
    }
    let usable_kinds: Vec<Result<(&SocketInfo, FdKind), String>> =
        fds.iter().map(|f| usable(&f.socket)).collect();

    // Explicit `fd: N` binds take position N.
    for bind in plan.binds() {
        let BindSpec::Fd { index, kind } = bind.spec else {
            continue;
        };
        let Some(fd) = fds.get(index) else {
            problems.push(Mismatch(format!(
                "{} wants fd index {index} (fd {}), but only {} fd(s) were passed; add the socket to the unit's Sockets= or fix the index",
                describe_bind(plan, bind),
                3 + index,
                fds.len()
            )));
            continue;
        };
        match &usable_kinds[index] {
            Err(why) => problems.push(Mismatch(format!(
                "{} cannot use {}: {why}",
                describe_bind(plan, bind),
                describe_fd(fd)
            ))),
            Ok((_, actual)) if *actual != kind => problems.push(Mismatch(format!(
                "{} wants a {kind} socket, but {} is {actual}; fix `kind:` or pass the right socket at that position",
                describe_bind(plan, bind),
                describe_fd(fd)
            ))),
            Ok(_) => {}
        }
        owner[index] = Some((bind.listener, bind.index));
    }

    // Every other bind takes the fds whose address satisfies it.
    for bind in plan.binds() {
        if matches!(bind.spec, BindSpec::Fd { .. }) {
            continue;
        }
        let mut found = false;
        let mut unusable_match = false;
        for (i, fd) in fds.iter().enumerate() {
            if owner[i].is_some() {
                continue;
            }
            let Fd::Socket(info) = &fd.socket else {
                continue;
            };
            let Some(endpoint) = bind.endpoints.iter().find(|e| satisfies(&info.local, e)) else {
                continue;
            };
            let problem = || {
                dual_stack_problem(fd, endpoint).or_else(|| match origin {
                    Origin::Inherited => unix_mode_problem(info, &bind.spec),
                    Origin::SelfBound => None,
                })
            };
            let usable = match &usable_kinds[i] {
                Ok(_) => problem().map_or(Ok(()), Err),
                Err(why) => Err(why.clone()),
            };
            match &usable {
                Ok(()) => {
                    owner[i] = Some((bind.listener, bind.index));
                    found = true;
                }
                Err(why) => {
                    problems.push(Mismatch(format!(
                        "{} cannot serve {}: {why}",
                        describe_fd(fd),
                        describe_bind(plan, bind)
                    )));
                    owner[i] = Some((bind.listener, bind.index));
                    unusable_match = true;
                }
            }
        }
        if !found && !unusable_match {
            let wanted: Vec<String> = bind.endpoints.iter().map(ToString::to_string).collect();
            let leftovers: Vec<String> = fds
                .iter()
                .enumerate()
                .filter(|(i, _)| owner[*i].is_none())
                .map(|(_, f)| describe_fd(f))
                .collect();
            let passed = if leftovers.is_empty() {
                "no unmatched socket was passed".to_owned()
            } else {
                format!("unmatched: {}", leftovers.join(", "))
            };
            problems.push(Mismatch(format!(
                "{} has no socket: it wants {}, and {passed}; make the socket unit listen there or fix the bind",
                describe_bind(plan, bind),
                wanted.join(" or ")
            )));
        }
    }

    // Whatever is left serves nothing.
    for (i, fd) in fds.iter().enumerate() {
        if owner[i].is_some() {
            continue;
        }
        let why = match &usable_kinds[i] {
            Err(why) => format!(": {why}"),
            Ok(_) => String::new(),
        };
        problems.push(Mismatch(format!(
            "{} matches no configured bind{why}; remove it from the socket units or add a bind for it",
            describe_fd(fd)
        )));
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Child order: listeners, then binds, then fds in the order they came.
    let mut slots: Vec<Option<InheritedFd>> = fds.into_iter().map(Some).collect();
    let mut sockets = Vec::new();
    let mut binds = Vec::new();
    for listener in &plan.listeners {
        let mut values = Vec::new();
        for bind in &listener.binds {
            for i in 0..slots.len() {
                if owner[i] != Some((listener.index, bind.index)) {
                    continue;
                }
                let fd = slots[i].take().expect("each fd is taken once");
                let kind = match &fd.socket {
                    Fd::Socket(info) if info.family == Family::Unix => FdKind::Unix,
                    _ => FdKind::Tcp,
                };
                values.push(fd_bind_value(sockets.len(), kind));
                let name = fd
                    .name
                    .clone()
                    .unwrap_or_else(|| listener.label())
                    .replace(':', "_");
                sockets.push(ChildSocket {
                    number: fd.number,
                    description: describe_kind(&fd.socket),
                    fd: fd.fd,
                    name,
                    kind,
                });
            }
        }
        binds.push(values);
    }
    Ok(Assignment { sockets, binds })
}

impl ChildSocket {
    /// The raw fd, for placing it in the child.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The `TCP_DEFER_ACCEPT` (`DeferAcceptSec=`) of every TCP socket MAS serves
/// on, in seconds.
///
/// MAS's graceful shutdown (hyper's) closes, unanswered, every connection it
/// has accepted but not yet read a byte from. During a restart the old MAS
/// and the new one accept from the same socket until the old one gets its
/// SIGTERM, so without this each restart under load would close the
/// connections the old MAS had just accepted before their request arrived.
/// With it, the kernel hands a connection to `accept(2)` only once its first
/// bytes are there, and MAS reads them at once. Every client of MAS speaks
/// first (HTTP, TLS, the PROXY header); one that stays silent is accepted
/// anyway after about this long. Unix sockets have no such option.
pub const DEFER_ACCEPT_SECS: i32 = 5;

/// Warns of each passed Unix socket whose path leads to no socket any more
/// (removed, or replaced by a file of another type), as when someone
/// deleted the file under a running socket unit: MAS still serves on it,
/// but no client can reach it there. A path that leads to a socket is taken
/// to be this one; telling two sockets at one path apart needs
/// sock_diag(7), which this does not use.
pub fn warn_of_lost_unix_paths(sockets: &[ChildSocket]) {
    use std::os::unix::fs::FileTypeExt as _;
    for socket in sockets.iter().filter(|s| s.kind == FdKind::Unix) {
        let Ok(LocalAddr::Unix(path)) = crate::sys::socket_local_addr(socket.fd.as_fd()) else {
            continue;
        };
        let what = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => continue,
            Ok(_) => "is no socket now, but another kind of file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "is gone",
            // Not ours to judge (a directory this user may not search).
            Err(_) => continue,
        };
        tracing::warn!(
            "fd {} ({}): its path {} {what}, so clients that connect there cannot reach MAS, which serves on the socket all the same; restart its socket unit (`systemctl restart` the .socket, with the service), which binds the path anew",
            socket.number,
            socket.description,
            path.display()
        );
    }
}

/// Sets [`DEFER_ACCEPT_SECS`] on the TCP sockets that have no
/// `TCP_DEFER_ACCEPT` yet; a value set by the socket unit is kept. A socket
/// that refuses is left as it is, with a warning: it still works.
pub fn defer_accept(sockets: &[ChildSocket]) {
    for socket in sockets.iter().filter(|s| s.kind == FdKind::Tcp) {
        let fd = socket.fd.as_fd();
        let result = match crate::sys::tcp_defer_accept(fd) {
            Ok(0) => crate::sys::set_tcp_defer_accept(fd, DEFER_ACCEPT_SECS),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(
                "fd {} ({}): cannot set TCP_DEFER_ACCEPT: {e}; a restart under load may close connections MAS has accepted but not yet read; add DeferAcceptSec={DEFER_ACCEPT_SECS}s to its socket unit",
                socket.number,
                socket.description
            );
        }
    }
}
