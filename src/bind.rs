//! Binding the configured addresses ourselves, when no fds were passed (run by
//! hand, or a service without socket units), so that everything downstream
//! works the same way on sockets we made.
//!
//! The sockets are made as MAS would make them: a bind with no host is `[::]`
//! dual stack, else `0.0.0.0`; a Unix socket is bound at a temporary name
//! beside its path, given its `mode`, then renamed over the path, so a stale
//! socket file from a crash never blocks a start. Unlike MAS, nothing but a
//! stale socket is ever replaced: a regular file, a directory or any other
//! kind of file at the path (or at the temporary name) is refused and left
//! alone, as is a socket a process listens on. Unlike MAS too, the Unix
//! sockets we bound are removed when we stop ([`BoundPaths`]); sockets that
//! systemd passed are never touched.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::activation::{self, FdKind, InheritedFd, LocalAddr};
use crate::config::{BindSpec, Endpoint, Plan};

/// Backlog of the sockets we bind; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Unix socket files we created, removed on drop, each only while the path
/// still names the socket we made (same device and inode): a path that another
/// process has since taken over is left alone.
#[derive(Debug, Default)]
pub struct BoundPaths(Vec<(PathBuf, u64, u64)>);

impl BoundPaths {
    fn push(&mut self, path: &Path) {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            self.0.push((path.to_owned(), meta.dev(), meta.ino()));
        }
    }
}

impl Drop for BoundPaths {
    fn drop(&mut self) {
        for (path, dev, ino) in &self.0 {
            let still_ours =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino);
            if still_ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Why a configured address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {what} for {bind}: {error}; {fix}")]
pub struct BindError {
    what: String,
    bind: String,
    error: io::Error,
    fix: &'static str,
}

/// Binds every bind of `plan` and returns the sockets as if they had been passed.
///
/// # Errors
///
/// The first bind that cannot be bound; sockets bound before it are closed.
pub fn bind_all(plan: &Plan) -> Result<(Vec<InheritedFd>, BoundPaths), BindError> {
    let mut fds = Vec::new();
    let mut paths = BoundPaths::default();
    for listener in &plan.listeners {
        for bind in &listener.binds {
            let label = format!(
                "bind {} of listener {} at {}",
                bind.index,
                listener.label(),
                bind.location
            );
            let fail = |what: String, error: io::Error, fix: &'static str| BindError {
                what,
                bind: label.clone(),
                error,
                fix,
            };
            let sockets: Vec<OwnedFd> = match &bind.spec {
                BindSpec::Fd { index, .. } => {
                    return Err(fail(
                        format!("fd index {index}"),
                        io::Error::from(io::ErrorKind::NotFound),
                        "no fds were passed (LISTEN_FDS is unset); run under the socket unit, or use a host/port, address or socket bind",
                    ))
                }
                BindSpec::Unix { path, mode } => {
                    let fd = bind_unix(path, *mode)
                        .map_err(|e| fail(format!("unix {}", path.display()), e.error, e.fix))?;
                    paths.push(path);
                    vec![fd]
                }
                BindSpec::HostPort { .. } | BindSpec::Address(_) => {
                    let mut bound = Vec::new();
                    let mut last_err = None;
                    for endpoint in &bind.endpoints {
                        match bind_endpoint(endpoint) {
                            Ok(fd) => bound.push(fd),
                            // An address family or address this host lacks (no IPv6,
                            // ::1 missing) is fine while another endpoint binds.
                            Err(e) if is_unavailable(&e) => last_err = Some((endpoint, e)),
                            Err(e) => {
                                return Err(fail(endpoint.to_string(), e, "another process may hold it (ss -ltnp), or it needs privileges"))
                            }
                        }
                    }
                    if bound.is_empty() {
                        let (endpoint, e) = last_err.expect("a TCP bind has endpoints");
                        return Err(fail(endpoint.to_string(), e, "this host has no such address"));
                    }
                    bound
                }
            };
            for fd in sockets {
                let mut socket = activation::inspect(std::os::fd::AsFd::as_fd(&fd))
                    .map_err(|e| fail("the new socket".into(), e, "this is a bug"))?;
                // The kernel keeps the name a Unix socket was bound at, which is
                // the temporary one; it is reachable at the configured path now.
                if let (FdKind::Socket(info), BindSpec::Unix { path, .. }) =
                    (&mut socket, &bind.spec)
                {
                    info.local = LocalAddr::Unix(path.clone());
                }
                fds.push(InheritedFd {
                    number: fd.as_raw_fd(),
                    name: listener.name.clone(),
                    fd,
                    socket,
                });
            }
        }
    }
    Ok((fds, paths))
}

fn is_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT)
    )
}

fn bind_endpoint(endpoint: &Endpoint) -> io::Result<OwnedFd> {
    match endpoint {
        Endpoint::Tcp(addr) => bind_tcp(*addr, None),
        Endpoint::AnyTcp(port) => {
            match bind_tcp(
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), *port),
                Some(false),
            ) {
                Err(e) if is_unavailable(&e) => {
                    bind_tcp(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), *port), None)
                }
                other => other,
            }
        }
        Endpoint::Unix(path) => bind_unix(path, None).map_err(|e| e.error),
    }
}

fn bind_tcp(addr: SocketAddr, only_v6: Option<bool>) -> io::Result<OwnedFd> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(only) = only_v6 {
        socket.set_only_v6(only)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Why a Unix socket could not be placed at its path, with the fix.
#[derive(Debug)]
struct UnixBindError {
    error: io::Error,
    fix: &'static str,
}

impl From<io::Error> for UnixBindError {
    fn from(error: io::Error) -> Self {
        UnixBindError {
            error,
            fix: "check that the directory exists and is writable",
        }
    }
}

/// What a Unix socket path holds before we bind there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occupant {
    Nothing,
    /// A socket file nobody listens on (connect(2) is refused): left by a
    /// process that stopped without removing it, and safe to replace.
    StaleSocket,
    /// A socket a process accepts connections on.
    LiveSocket,
    /// Anything else, named as [`describe_file_type`] names it.
    Other(&'static str),
}

/// Looks at `path` without following a symbolic link.
fn occupant(path: &Path) -> io::Result<Occupant> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Occupant::Nothing),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Ok(Occupant::Other(describe_file_type(meta.file_type())));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(Occupant::LiveSocket),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(Occupant::StaleSocket),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Occupant::Nothing),
        // Not knowing whether a process listens there (EACCES, say) is no
        // licence to replace its socket.
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether a process listens on the socket there: {e}"),
        )),
    }
}

/// A file type in words, for messages: "a regular file", "a directory", ...
pub(crate) fn describe_file_type(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a file of unknown type"
    }
}

/// Which of the two paths of a Unix socket bind is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathRole {
    /// The path in the config.
    Configured,
    /// The temporary name beside it, where the socket is bound first.
    Temporary,
}

/// Refuses `path` unless it is free or holds a stale socket.
fn check_occupant(path: &Path, role: PathRole) -> Result<Occupant, UnixBindError> {
    let subject = match role {
        PathRole::Configured => "it is".to_owned(),
        PathRole::Temporary => format!("its temporary path {} is", path.display()),
    };
    match occupant(path)? {
        occupant @ (Occupant::Nothing | Occupant::StaleSocket) => Ok(occupant),
        Occupant::LiveSocket => Err(UnixBindError {
            error: io::Error::new(
                io::ErrorKind::AddrInUse,
                match role {
                    PathRole::Configured => "a process is listening on it already".to_owned(),
                    PathRole::Temporary => format!("{subject} a socket a process listens on"),
                },
            ),
            fix: "stop the process that serves there, or choose another path",
        }),
        Occupant::Other(kind) => Err(UnixBindError {
            error: io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{subject} {kind}, not a socket, and only a stale socket is ever replaced"),
            ),
            fix: match role {
                PathRole::Configured => {
                    "move that file away, or choose another socket path in the config"
                }
                PathRole::Temporary => "move that file away, or choose another socket path",
            },
        }),
    }
}

/// Binds at a temporary name beside `path`, applies `mode`, and renames over
/// `path`. Only a stale socket file is replaced, at `path` or at the
/// temporary name; anything else there is refused and left as it is.
fn bind_unix(path: &Path, mode: Option<u32>) -> Result<OwnedFd, UnixBindError> {
    // Checked before anything is made, so a refused path sees no trace of us.
    check_occupant(path, PathRole::Configured)?;
    // A short temporary name, so that a path close to the 107-byte limit
    // still fits while it is being made.
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".mas{}", std::process::id()));
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let address = SockAddr::unix(&tmp)?;
    // bind(2) never replaces a file (EADDRINUSE), so what is there is looked
    // at, and only a stale socket is removed before the second try.
    if let Err(e) = socket.bind(&address) {
        if e.raw_os_error() != Some(libc::EADDRINUSE) {
            return Err(e.into());
        }
        if check_occupant(&tmp, PathRole::Temporary)? == Occupant::StaleSocket {
            std::fs::remove_file(&tmp)?;
        }
        socket.bind(&address)?;
    }
    let placed = (|| -> Result<(), UnixBindError> {
        if let Some(mode) = mode {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        }
        socket.listen(BACKLOG)?;
        // Once more right before the rename, which would replace whatever is
        // there: what came since the first look is refused too. A file put
        // there between this look and the rename would still be replaced;
        // only a process with write access to the directory can do that,
        // and it could remove the file as well.
        check_occupant(path, PathRole::Configured)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(socket.into())
}
