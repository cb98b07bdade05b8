//! The sockets a bind stands for ([`Endpoint`]), and when two of them
//! clash: one address and port (a wildcard address takes the port on every
//! address of its family, and `[::]` on both), or two paths that name one
//! file once the kernel has resolved their directories.
//!
//! Which bind an endpoint belongs to, and whether the config may write it,
//! is for the checks that build the plan; nothing here opens a socket.
//! Comparing two paths reads the filesystem (a directory such as `/var/run`
//! is often a symlink); nothing else here touches the system.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The longest Unix socket path: `sun_path` holds 108 bytes, one of them the NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// One socket a bind stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// A TCP socket on a literal address.
    Tcp(SocketAddr),
    /// A TCP socket on every address: `[::]:port` dual stack, or `0.0.0.0:port`
    /// where IPv6 is off. This is what a bind with no host means to MAS.
    AnyTcp(u16),
    /// A Unix stream socket at a path.
    Unix(PathBuf),
}

impl Endpoint {
    /// Whether two endpoints cannot both be bound on one host.
    pub(super) fn overlaps(&self, other: &Endpoint) -> bool {
        use Endpoint::*;
        match (self, other) {
            (Unix(a), Unix(b)) => same_path(a, b),
            (AnyTcp(a), AnyTcp(b)) => a == b,
            (AnyTcp(p), Tcp(addr)) | (Tcp(addr), AnyTcp(p)) => addr.port() == *p,
            (Tcp(a), Tcp(b)) => {
                // An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) takes the
                // port of the IPv4 address itself.
                let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
                a.port() == b.port() && (x == y || is_wildcard_for(x, y) || is_wildcard_for(y, x))
            }
            _ => false,
        }
    }
}

/// Whether two socket paths name the same file: equal as written, or equal
/// once their directories are resolved as the kernel resolves them
/// (`/var/run` is often `/run`; `/run/mas/../mas` is `/run/mas`).
pub fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    if a == b {
        return true;
    }
    let resolve = |p: &std::path::Path| -> Option<PathBuf> {
        let p = std::path::absolute(p).ok()?;
        Some(resolve_dir(p.parent()?).join(p.file_name()?))
    };
    matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

/// An absolute directory as the kernel walks it: each component that
/// exists with its symlinks resolved, and `..` the parent of what it
/// reached; from the first one that does not exist here (a socket
/// directory made only at boot, say), the rest is taken as written, with
/// `..` and `.` applied to it and `//` read as `/`.
fn resolve_dir(dir: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    let mut exists = true;
    for component in dir.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if exists {
                    match out.canonicalize() {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

/// Whether binding `wild` makes `other` (on the same port) unavailable.
fn is_wildcard_for(wild: IpAddr, other: IpAddr) -> bool {
    match wild {
        // `[::]` is dual stack unless the host turned that off; assume the default.
        IpAddr::V6(v6) if v6.is_unspecified() => true,
        IpAddr::V4(v4) if v4.is_unspecified() => other.is_ipv4(),
        _ => false,
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp {addr}"),
            Endpoint::AnyTcp(port) => write!(f, "tcp [::]:{port} (or 0.0.0.0:{port})"),
            Endpoint::Unix(path) => write!(f, "unix {}", path.display()),
        }
    }
}
