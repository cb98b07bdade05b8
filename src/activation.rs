//! Taking and inspecting the listening fds systemd passes, as `sd_listen_fds(3)`
//! describes.
//!
//! systemd puts the sockets of the `.socket` units at fds 3.. and describes them
//! in `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. [`take_inherited`] reads
//! those once, removes them from our environment, and returns every fd as an
//! `OwnedFd` with what it is ([`SocketInfo`]). [`inspect`] does the same for any
//! fd, including sockets we bound ourselves.
//!
//! The order of fds is only kept within one `.socket` unit and names may repeat,
//! so sockets are identified by what they are (family, type, address), with the
//! name as a hint. Matching them to the configured binds is left to
//! [`crate::assign`]; this module only reports facts.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use crate::sys;

/// The first fd systemd passes.
pub const SD_LISTEN_FDS_START: RawFd = 3;
/// The pid the passed fds are meant for.
pub const LISTEN_PID: &str = "LISTEN_PID";
/// How many fds are passed, starting at [`SD_LISTEN_FDS_START`].
pub const LISTEN_FDS: &str = "LISTEN_FDS";
/// Colon-separated names of the passed fds (`FileDescriptorName=`).
pub const LISTEN_FDNAMES: &str = "LISTEN_FDNAMES";

/// Why the passed fds could not be taken, or why one of them is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_PID` names another process.
    #[error(
        "LISTEN_PID is {listen_pid} but our pid is {our_pid}: the passed fds are meant for another \
         process, so none were taken; this usually means a wrapper forks between systemd and \
         mas-sockets, so exec mas-sockets directly from ExecStart="
    )]
    PidMismatch { listen_pid: u32, our_pid: u32 },
    /// A variable does not hold what systemd writes there.
    #[error("{var}={value:?} is invalid: {reason}")]
    BadVar {
        var: &'static str,
        value: String,
        reason: String,
    },
    /// An fd in the passed range is not open.
    #[error(
        "LISTEN_FDS covers fd {fd} but it is not open: something closed it before mas-sockets \
         started; check what ExecStart= runs before mas-sockets"
    )]
    FdNotOpen { fd: RawFd },
    /// The fds were taken once already in this process.
    #[error("the passed fds were already taken once by this process; take them only at start-up")]
    AlreadyTaken,
    /// A passed fd could not be inspected.
    #[error("cannot inspect passed fd {fd}: {error}")]
    Inspect { fd: RawFd, error: std::io::Error },
}

/// An address family, as `SO_DOMAIN` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
    Unix,
    Other(i32),
}

impl Family {
    fn from_raw(raw: libc::c_int) -> Self {
        match raw {
            libc::AF_INET => Family::Inet,
            libc::AF_INET6 => Family::Inet6,
            libc::AF_UNIX => Family::Unix,
            other => Family::Other(other),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Family::Inet => f.write_str("inet"),
            Family::Inet6 => f.write_str("inet6"),
            Family::Unix => f.write_str("unix"),
            Family::Other(raw) => write!(f, "family {raw}"),
        }
    }
}

/// A socket type, as `SO_TYPE` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    Stream,
    Datagram,
    SeqPacket,
    Other(i32),
}

impl SockType {
    fn from_raw(raw: libc::c_int) -> Self {
        match raw {
            libc::SOCK_STREAM => SockType::Stream,
            libc::SOCK_DGRAM => SockType::Datagram,
            libc::SOCK_SEQPACKET => SockType::SeqPacket,
            other => SockType::Other(other),
        }
    }

    /// Whether this type accepts connections, so "not listening" means something.
    fn is_connection_oriented(self) -> bool {
        matches!(self, SockType::Stream | SockType::SeqPacket)
    }
}

impl fmt::Display for SockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockType::Stream => f.write_str("stream"),
            SockType::Datagram => f.write_str("datagram"),
            SockType::SeqPacket => f.write_str("seqpacket"),
            SockType::Other(raw) => write!(f, "type {raw}"),
        }
    }
}

/// The local address of a socket (`getsockname(2)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// An IPv4 or IPv6 address and port.
    Inet(SocketAddr),
    /// A Unix socket bound at a filesystem path.
    Unix(PathBuf),
    /// A Unix socket in the abstract namespace; the name without its leading NUL.
    UnixAbstract(Vec<u8>),
    /// A Unix socket that is not bound.
    UnixUnnamed,
    /// Any other family.
    Unknown,
}

impl fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalAddr::Inet(addr) => write!(f, "{addr}"),
            LocalAddr::Unix(path) => write!(f, "{}", path.display()),
            // `@name` is how systemd and ss(8) write abstract names.
            LocalAddr::UnixAbstract(name) => write!(f, "@{}", name.escape_ascii()),
            LocalAddr::UnixUnnamed => f.write_str("(unnamed)"),
            LocalAddr::Unknown => f.write_str("(unknown address)"),
        }
    }
}

/// What a socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketInfo {
    pub family: Family,
    pub sock_type: SockType,
    /// `listen(2)` was called on it (`SO_ACCEPTCONN`).
    pub listening: bool,
    pub local: LocalAddr,
}

impl fmt::Display for SocketInfo {
    /// Short and familiar: `tcp 127.0.0.1:8080`, `tcp [::]:8080`,
    /// `unix /run/mas.sock`, `udp 127.0.0.1:53`,
    /// `unix stream (not listening) /run/mas.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not_listening = self.sock_type.is_connection_oriented() && !self.listening;
        match (self.family, self.sock_type) {
            (Family::Inet | Family::Inet6, SockType::Stream) => f.write_str("tcp")?,
            (Family::Inet | Family::Inet6, SockType::Datagram) => f.write_str("udp")?,
            (Family::Unix, SockType::Stream) if !not_listening => f.write_str("unix")?,
            (family, sock_type) => write!(f, "{family} {sock_type}")?,
        }
        if not_listening {
            f.write_str(" (not listening)")?;
        }
        write!(f, " {}", self.local)
    }
}

/// What an fd refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdKind {
    Socket(SocketInfo),
    /// Not a socket; `file_type` reads like "regular file", "pipe", ...
    NotSocket {
        file_type: &'static str,
    },
    /// The fd is not open (`EBADF`).
    Closed,
}

/// Inspects any fd: whether it is a socket and, if so, its family, type,
/// listening state and local address.
///
/// # Errors
///
/// The errno of `fstat(2)`, `getsockopt(2)` or `getsockname(2)` other than
/// `EBADF`, which gives `Ok(FdKind::Closed)`.
pub fn inspect(fd: BorrowedFd<'_>) -> std::io::Result<FdKind> {
    let file_type = match sys::file_type(fd) {
        Ok(file_type) => file_type,
        Err(err) if err.raw_os_error() == Some(libc::EBADF) => return Ok(FdKind::Closed),
        Err(err) => return Err(err),
    };
    let name = match file_type {
        libc::S_IFSOCK => {
            return Ok(FdKind::Socket(SocketInfo {
                family: Family::from_raw(sys::socket_domain(fd)?),
                sock_type: SockType::from_raw(sys::socket_type(fd)?),
                listening: sys::socket_is_listening(fd)?,
                local: sys::socket_local_addr(fd)?,
            }))
        }
        libc::S_IFREG => "regular file",
        libc::S_IFIFO => "pipe",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symbolic link",
        0 => "anonymous inode (eventfd, epoll, ...)",
        _ => "file of unknown type",
    };
    Ok(FdKind::NotSocket { file_type: name })
}

/// The soft limit on open fds (`RLIMIT_NOFILE`), or a generous bound when unknown.
fn fd_limit() -> u32 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| u32::try_from(soft).unwrap_or(u32::MAX))
        .unwrap_or(1 << 20)
}

/// The three variables, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenEnv {
    /// How many fds were passed, at `SD_LISTEN_FDS_START..`.
    pub count: usize,
    /// One entry per fd: its `LISTEN_FDNAMES` entry, or `None` when there is none
    /// (variable unset, list too short, or an empty entry).
    pub names: Vec<Option<String>>,
    /// Set when the names do not line up with the fds. Names are hints only, so
    /// this is a warning to log, not an error.
    pub names_warning: Option<String>,
}

/// Checks `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (each as given, `None`
/// when unset) for the process `our_pid`.
///
/// - `LISTEN_FDS` unset: nothing was passed (`count` 0).
/// - `LISTEN_PID` unset or empty: accepted without a pid check, as the listenfd
///   crate (and so MAS) does; some launchers set only `LISTEN_FDS`.
/// - `LISTEN_FDS=0`: nothing was passed.
/// - More or fewer names than fds: the extra names are dropped, missing ones are
///   `None`, and `names_warning` says so. Names may repeat.
///
/// # Errors
///
/// [`ActivationError::PidMismatch`] when `LISTEN_PID` names another process,
/// [`ActivationError::BadVar`] when `LISTEN_PID` or `LISTEN_FDS` is not a
/// decimal number or the count does not fit in the fd range.
pub fn parse_listen_env(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Result<ListenEnv, ActivationError> {
    let empty = ListenEnv {
        count: 0,
        names: Vec::new(),
        names_warning: None,
    };
    let Some(fds) = fds else {
        return Ok(empty);
    };
    if let Some(pid) = pid.filter(|pid| !pid.is_empty()) {
        let listen_pid = parse_decimal(pid).ok_or_else(|| ActivationError::BadVar {
            var: LISTEN_PID,
            value: pid.to_owned(),
            reason: "expected a decimal pid as systemd writes it; unset it if a launcher \
                     other than systemd set it"
                .to_owned(),
        })?;
        if listen_pid != our_pid {
            return Err(ActivationError::PidMismatch {
                listen_pid,
                our_pid,
            });
        }
    }
    // No process can hold more fds than its limit allows; a larger count is
    // garbage, and must be refused before anything is sized by it.
    let max = fd_limit().min((RawFd::MAX - SD_LISTEN_FDS_START) as u32);
    let count = parse_decimal(fds)
        .filter(|&count| count <= max)
        .ok_or_else(|| ActivationError::BadVar {
            var: LISTEN_FDS,
            value: fds.to_owned(),
            reason: format!(
                "expected the number of passed fds as a decimal number of at most {max} \
                 (this process's fd limit); unset it if a launcher other than systemd set it"
            ),
        })? as usize;
    if count == 0 {
        return Ok(empty);
    }

    let given: Vec<&str> = names.map(|n| n.split(':').collect()).unwrap_or_default();
    let names_warning = match names {
        Some(names) if given.len() != count => Some(format!(
            "{LISTEN_FDNAMES}={names:?} has {} names for {count} fds; names are hints only, so \
             the {}",
            given.len(),
            if given.len() > count {
                "extra names are ignored"
            } else {
                "fds without a name are matched by address alone"
            }
        )),
        _ => None,
    };
    // systemd never writes an empty name, so an empty entry carries no hint.
    let names = (0..count)
        .map(|i| {
            given
                .get(i)
                .filter(|name| !name.is_empty())
                .map(|name| (*name).to_owned())
        })
        .collect();
    Ok(ListenEnv {
        count,
        names,
        names_warning,
    })
}

/// Parses digits only: no sign, no spaces, which `str::parse` would accept in part.
fn parse_decimal(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// One fd systemd passed.
#[derive(Debug)]
pub struct InheritedFd {
    /// The number it had when we started (3, 4, ...); `fd` still has it.
    pub number: RawFd,
    /// Its `LISTEN_FDNAMES` entry, a hint only.
    pub name: Option<String>,
    /// The fd, close-on-exec.
    pub fd: OwnedFd,
    /// What it is; anything but a socket is the caller's to report.
    pub socket: FdKind,
}

/// What [`take_inherited`] took.
#[derive(Debug)]
pub struct Inherited {
    /// The passed fds, in order; empty when nothing was passed.
    pub fds: Vec<InheritedFd>,
    /// Set when `LISTEN_FDNAMES` does not line up with the fds: a warning for
    /// the caller to log once it has a logger.
    pub names_warning: Option<String>,
}

/// Takes the fds systemd passed to this process.
///
/// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` once and removes them
/// from the environment whatever the outcome, so no later child sees them.
/// Removing variables is only sound while the process has one thread: call this
/// at start-up, before the tokio runtime or any other thread exists.
///
/// Call it before anything opens a file, the logger included: the journal's
/// socket, say, would take the lowest free number, which is that of a passed
/// fd that something closed, and be taken for that fd. So nothing here logs;
/// a names mismatch comes back in [`Inherited::names_warning`].
///
/// For each fd in `3..3 + LISTEN_FDS` it sets `FD_CLOEXEC`, wraps it in an
/// `OwnedFd` at once, and inspects it; an fd that is not a socket is still
/// returned (and closed when dropped), described in `socket`.
///
/// # Errors
///
/// Returns no fds when nothing was passed. On these errors no fd is taken
/// and every fd stays open as it was: [`ActivationError::PidMismatch`],
/// [`ActivationError::BadVar`], [`ActivationError::FdNotOpen`] (the first fd of
/// the range that is not open), [`ActivationError::AlreadyTaken`]. If querying
/// a taken fd fails ([`ActivationError::Inspect`], not expected for an open fd),
/// all taken fds are closed.
pub fn take_inherited() -> Result<Inherited, ActivationError> {
    let read = |var: &'static str| -> Result<Option<String>, ActivationError> {
        match std::env::var_os(var) {
            None => Ok(None),
            Some(value) => value
                .into_string()
                .map(Some)
                .map_err(|value| ActivationError::BadVar {
                    var,
                    value: value.to_string_lossy().into_owned(),
                    reason: "not valid UTF-8; systemd writes ASCII there".to_owned(),
                }),
        }
    };
    let values = [read(LISTEN_PID), read(LISTEN_FDS), read(LISTEN_FDNAMES)];
    for var in [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES] {
        // Sound only before other threads exist (see the doc comment): another
        // thread reading the environment at the same time could see freed memory.
        std::env::remove_var(var);
    }
    let [pid, fds, names] = values;
    let env = parse_listen_env(
        pid?.as_deref(),
        fds?.as_deref(),
        names?.as_deref(),
        std::process::id(),
    )?;
    let names_warning = env.names_warning;
    if env.count == 0 {
        return Ok(Inherited {
            fds: Vec::new(),
            names_warning,
        });
    }

    let owned =
        sys::claim_inherited_fds(SD_LISTEN_FDS_START, env.count).map_err(|err| match err {
            sys::ClaimError::AlreadyClaimed => ActivationError::AlreadyTaken,
            sys::ClaimError::Fd { fd, source } if source.raw_os_error() == Some(libc::EBADF) => {
                ActivationError::FdNotOpen { fd }
            }
            sys::ClaimError::Fd { fd, source } => ActivationError::Inspect { fd, error: source },
        })?;
    let fds = owned
        .into_iter()
        .zip(env.names)
        .map(|(fd, name)| {
            let number = fd.as_raw_fd();
            let socket = inspect(fd.as_fd()).map_err(|source| ActivationError::Inspect {
                fd: number,
                error: source,
            })?;
            Ok(InheritedFd {
                number,
                name,
                fd,
                socket,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Inherited { fds, names_warning })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::unix::net::{UnixDatagram, UnixListener};

    fn parse(
        pid: Option<&str>,
        fds: Option<&str>,
        names: Option<&str>,
    ) -> Result<ListenEnv, ActivationError> {
        parse_listen_env(pid, fds, names, 4242)
    }

    #[test]
    fn nothing_passed_when_listen_fds_unset() {
        let env = parse(Some("4242"), None, Some("web")).unwrap();
        assert_eq!(env.count, 0);
        assert!(env.names.is_empty());
        assert_eq!(env.names_warning, None);
    }

    #[test]
    fn listen_fds_zero_is_empty() {
        let env = parse(Some("4242"), Some("0"), None).unwrap();
        assert_eq!(env.count, 0);
        assert!(env.names.is_empty());
    }

    #[test]
    fn matching_pid_with_names() {
        let env = parse(Some("4242"), Some("2"), Some("web:admin")).unwrap();
        assert_eq!(env.count, 2);
        assert_eq!(
            env.names,
            vec![Some("web".to_owned()), Some("admin".to_owned())]
        );
        assert_eq!(env.names_warning, None);
    }

    #[test]
    fn other_pid_takes_nothing_and_names_both_pids() {
        let err = parse(Some("17"), Some("2"), None).unwrap_err();
        assert!(matches!(
            err,
            ActivationError::PidMismatch {
                listen_pid: 17,
                our_pid: 4242
            }
        ));
        let text = err.to_string();
        assert!(text.contains("17") && text.contains("4242"), "{text}");
        assert!(text.contains("wrapper"), "{text}");
    }

    #[test]
    fn pid_unset_or_empty_is_accepted() {
        assert_eq!(parse(None, Some("1"), None).unwrap().count, 1);
        assert_eq!(parse(Some(""), Some("1"), None).unwrap().count, 1);
    }

    #[test]
    fn bad_pid_is_rejected_with_its_value() {
        for value in ["abc", "-1", "+4242", " 4242", "4242 ", "99999999999"] {
            match parse(Some(value), Some("1"), None) {
                Err(ActivationError::BadVar { var, value: v, .. }) => {
                    assert_eq!(var, LISTEN_PID);
                    assert_eq!(v, value);
                }
                other => panic!("{value:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_fd_count_is_rejected_with_its_value() {
        for value in ["", "x", "-1", "+2", "2 ", "2147483647"] {
            match parse(Some("4242"), Some(value), None) {
                Err(err @ ActivationError::BadVar { .. }) => {
                    let text = err.to_string();
                    assert!(text.starts_with("LISTEN_FDS="), "{text}");
                    assert!(text.contains(&format!("{value:?}")), "{text}");
                }
                other => panic!("{value:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn fewer_names_than_fds_leave_none_and_warn() {
        let env = parse(None, Some("3"), Some("web")).unwrap();
        assert_eq!(env.names, vec![Some("web".to_owned()), None, None]);
        let warning = env.names_warning.expect("a warning");
        assert!(warning.contains("1 names for 3 fds"), "{warning}");
    }

    #[test]
    fn more_names_than_fds_are_dropped_with_a_warning() {
        let env = parse(None, Some("1"), Some("web:admin")).unwrap();
        assert_eq!(env.names, vec![Some("web".to_owned())]);
        assert!(env.names_warning.expect("a warning").contains("ignored"));
    }

    #[test]
    fn repeated_and_empty_names() {
        let env = parse(None, Some("3"), Some("http:http:")).unwrap();
        assert_eq!(
            env.names,
            vec![Some("http".to_owned()), Some("http".to_owned()), None]
        );
        assert_eq!(env.names_warning, None);
    }

    fn socket_info(fd: BorrowedFd<'_>) -> SocketInfo {
        match inspect(fd).expect("inspect") {
            FdKind::Socket(info) => info,
            other => panic!("expected a socket, got {other:?}"),
        }
    }

    #[test]
    fn inspects_tcp_listener_v4() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let info = socket_info(listener.as_fd());
        assert_eq!(info.family, Family::Inet);
        assert_eq!(info.sock_type, SockType::Stream);
        assert!(info.listening);
        assert_eq!(info.local, LocalAddr::Inet(addr));
        assert_eq!(info.to_string(), format!("tcp 127.0.0.1:{}", addr.port()));
    }

    #[test]
    fn inspects_tcp_listener_v6() {
        let listener = TcpListener::bind("[::1]:0").unwrap();
        let info = socket_info(listener.as_fd());
        assert_eq!(info.family, Family::Inet6);
        assert!(info.listening);
        assert_eq!(
            info.to_string(),
            format!("tcp [::1]:{}", listener.local_addr().unwrap().port())
        );
    }

    #[test]
    fn inspects_tcp_socket_that_does_not_listen() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let info = socket_info(stream.as_fd());
        assert_eq!(info.sock_type, SockType::Stream);
        assert!(!info.listening);
        assert_eq!(
            info.to_string(),
            format!("tcp (not listening) {}", stream.local_addr().unwrap())
        );
    }

    #[test]
    fn inspects_udp_socket() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let info = socket_info(socket.as_fd());
        assert_eq!(info.family, Family::Inet);
        assert_eq!(info.sock_type, SockType::Datagram);
        assert!(!info.listening);
        assert_eq!(
            info.to_string(),
            format!("udp {}", socket.local_addr().unwrap())
        );
    }

    #[test]
    fn inspects_unix_listener_at_a_path() {
        let dir = TempDir::new("unix-path");
        let path = dir.0.join("mas.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let info = socket_info(listener.as_fd());
        assert_eq!(info.family, Family::Unix);
        assert_eq!(info.sock_type, SockType::Stream);
        assert!(info.listening);
        assert_eq!(info.local, LocalAddr::Unix(path.clone()));
        assert_eq!(info.to_string(), format!("unix {}", path.display()));
    }

    #[test]
    fn inspects_unix_socket_that_does_not_listen() {
        let dir = TempDir::new("unix-unbound");
        let path = dir.0.join("s");
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&socket2::SockAddr::unix(&path).unwrap())
            .unwrap();
        assert_eq!(
            socket_info(socket.as_fd()).to_string(),
            format!("unix stream (not listening) {}", path.display())
        );
    }

    #[test]
    fn inspects_abstract_and_unnamed_unix_sockets() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("mas-sockets-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let info = socket_info(listener.as_fd());
        assert_eq!(
            info.local,
            LocalAddr::UnixAbstract(name.clone().into_bytes())
        );
        assert_eq!(info.to_string(), format!("unix @{name}"));

        let unnamed = UnixDatagram::unbound().unwrap();
        let info = socket_info(unnamed.as_fd());
        assert_eq!(info.sock_type, SockType::Datagram);
        assert_eq!(info.local, LocalAddr::UnixUnnamed);
        assert_eq!(info.to_string(), "unix datagram (unnamed)");
    }

    #[test]
    fn inspects_pipe_and_regular_file() {
        let (read, _write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        assert_eq!(
            inspect(read.as_fd()).unwrap(),
            FdKind::NotSocket { file_type: "pipe" }
        );
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert_eq!(
            inspect(file.as_fd()).unwrap(),
            FdKind::NotSocket {
                file_type: "regular file"
            }
        );
    }

    #[test]
    fn abstract_names_are_escaped_for_display() {
        assert_eq!(
            LocalAddr::UnixAbstract(b"a\0b\n".to_vec()).to_string(),
            "@a\\x00b\\n"
        );
    }

    /// Runs [`take_inherited`] and writes what it got, and the `LISTEN_*`
    /// variables left afterwards, to `$MAS_SOCKETS_TEST_OUT`.
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn take_inherited_entry() {
        use std::fmt::Write as _;
        if !crate::child::tests::entry_selected("take_inherited") {
            return;
        }
        let mut report = String::new();
        match take_inherited() {
            Ok(Inherited { fds, .. }) => {
                writeln!(report, "TAKEN_COUNT {}", fds.len()).unwrap();
                for fd in &fds {
                    let what = match &fd.socket {
                        FdKind::Socket(info) => info.to_string(),
                        other => format!("{other:?}"),
                    };
                    writeln!(
                        report,
                        "TAKEN {} {} cloexec={} {what}",
                        fd.number,
                        fd.name.as_deref().unwrap_or("-"),
                        sys::is_cloexec(fd.fd.as_fd()).unwrap()
                    )
                    .unwrap();
                }
            }
            Err(err) => writeln!(report, "ERROR {err}").unwrap(),
        }
        for var in [LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES] {
            writeln!(report, "ENV {var}={:?}", std::env::var_os(var)).unwrap();
        }
        writeln!(report, "AGAIN {:?}", take_inherited().err()).unwrap();
        // A second take with fds announced again must not wrap any number twice.
        std::env::set_var(LISTEN_FDS, "1");
        writeln!(report, "TWICE {:?}", take_inherited().err()).unwrap();
        let out = std::env::var_os(crate::child::tests::OUT_VAR).expect("out path");
        std::fs::write(out, report).expect("write report");
    }

    /// Runs [`take_inherited_entry`] in a fresh process with `env` and returns
    /// its report.
    fn take_in_subprocess(env: &[(&str, &str)]) -> (u32, String) {
        let dir = TempDir::new("take");
        let out = dir.0.join("report");
        let mut command = crate::child::tests::self_command(
            "activation::tests::take_inherited_entry",
            "take_inherited",
        );
        command
            .env_remove(LISTEN_PID)
            .env_remove(LISTEN_FDS)
            .env_remove(LISTEN_FDNAMES)
            .env(crate::child::tests::OUT_VAR, &out)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null());
        let mut child = command.spawn().expect("spawn");
        assert!(child.wait().expect("wait").success());
        let report = std::fs::read_to_string(&out).expect("read report");
        println!("report:\n{report}");
        (child.id(), report)
    }

    const ENV_GONE: &str = "ENV LISTEN_PID=None\nENV LISTEN_FDS=None\nENV LISTEN_FDNAMES=None\n";

    #[test]
    fn take_inherited_with_nothing_passed_is_empty() {
        let (_, report) = take_in_subprocess(&[]);
        assert!(report.starts_with("TAKEN_COUNT 0\n"), "{report}");
    }

    #[test]
    fn take_inherited_refuses_fds_for_another_pid_and_unsets_the_variables() {
        let (pid, report) = take_in_subprocess(&[(LISTEN_PID, "1"), (LISTEN_FDS, "1")]);
        assert!(
            report.starts_with(&format!("ERROR LISTEN_PID is 1 but our pid is {pid}: ")),
            "{report}"
        );
        assert!(report.contains(ENV_GONE), "{report}");
    }

    #[test]
    fn take_inherited_reports_an_fd_that_is_not_open() {
        // A fresh process has nowhere near 50 fds open.
        let (_, report) = take_in_subprocess(&[(LISTEN_FDS, "50")]);
        let fd: RawFd = report
            .strip_prefix("ERROR LISTEN_FDS covers fd ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(fd, _)| fd.parse().ok())
            .unwrap_or_else(|| panic!("no FdNotOpen error in {report}"));
        assert!((3..53).contains(&fd), "{report}");
    }

    /// The whole path: the supervisor spawns a child through the helper, and
    /// the child takes its fds with `LISTEN_PID` equal to its own pid.
    #[tokio::test]
    async fn take_inherited_gets_what_spawn_passed() {
        use crate::child::tests::{self_args, write_helper, HelperMode, OUT_VAR};
        let dir = TempDir::new("take-spawn");
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let unix_path = dir.0.join("mas.sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        let (pipe, _write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let out = dir.0.join("report");

        let mut cmd = crate::child::ChildCommand::new(std::env::current_exe().unwrap());
        cmd.args = self_args("activation::tests::take_inherited_entry");
        cmd.fds = vec![tcp.as_fd(), unix.as_fd(), pipe.as_fd()];
        cmd.fd_names = vec!["web".into(), "web".into(), "misc".into()];
        cmd.env = vec![
            ("MAS_SOCKETS_TEST_ENTRY".into(), "take_inherited".into()),
            (OUT_VAR.into(), out.clone().into()),
        ];
        cmd.helper = write_helper(&dir.0, HelperMode::ExecChild);
        let mut child = crate::child::spawn(&cmd).expect("spawn");
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
            .await
            .expect("child exits within 30 s")
            .expect("wait");
        assert!(status.success(), "{status}");

        let report = std::fs::read_to_string(&out).expect("read report");
        println!("report:\n{report}");
        let expected = format!(
            "TAKEN_COUNT 3\n\
             TAKEN 3 web cloexec=true tcp {}\n\
             TAKEN 4 web cloexec=true unix {}\n\
             TAKEN 5 misc cloexec=true NotSocket {{ file_type: \"pipe\" }}\n\
             {ENV_GONE}\
             AGAIN None\n\
             TWICE Some(AlreadyTaken)\n",
            tcp.local_addr().unwrap(),
            unix_path.display()
        );
        assert_eq!(report, expected);
    }

    /// A directory removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(label: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "mas-sockets-{label}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&path).expect("create temp dir");
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
