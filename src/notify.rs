//! The `sd_notify(3)` protocol, in both directions.
//!
//! A notification is one datagram of `KEY=VALUE` lines sent to the Unix socket
//! named by `NOTIFY_SOCKET`. [`NotifyState`] models one line with systemd's
//! names. [`NotifyReceiver`] is our private socket that the child (MAS) sends to,
//! with the sender's pid taken from `SCM_CREDENTIALS`. [`SystemdNotifier`] sends
//! our own notifications to systemd.
//!
//! Deciding what to relay (never the child's `MAINPID=`, `RELOADING=1` with
//! `MONOTONIC_USEC=`, ...) is the supervisor's job, not this module's.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::io::Interest;

use crate::sys;

/// The variable naming systemd's notify socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The largest datagram systemd reads (its `NOTIFY_BUFFER_MAX`, `PIPE_BUF`);
/// we read no more either, and report longer ones as truncated.
pub const MAX_DATAGRAM: usize = 4096;

/// One line of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyState {
    /// `READY=1`: start-up (or a reload) is complete.
    Ready,
    /// `RELOADING=1`: a reload began; `READY=1` must follow.
    Reloading,
    /// `STOPPING=1`: shutdown began.
    Stopping,
    /// `STATUS=...`: free text for `systemctl status`.
    Status(String),
    /// `MAINPID=...`: the service's main process.
    MainPid(u32),
    /// `EXTEND_TIMEOUT_USEC=...`: ask for more time for the current step.
    ExtendTimeoutUsec(u64),
    /// `MONOTONIC_USEC=...`: `CLOCK_MONOTONIC` when a reload began.
    MonotonicUsec(u64),
    /// `WATCHDOG=1`: keep-alive.
    Watchdog,
    /// `WATCHDOG=trigger`: fail the watchdog now.
    WatchdogTrigger,
    /// `WATCHDOG_USEC=...`: change the watchdog period.
    WatchdogUsec(u64),
    /// `ERRNO=...`: why the service failed.
    Errno(i32),
    /// Any other line, kept as sent.
    Other(String),
}

impl NotifyState {
    /// Parses one line; a line we do not model (or a malformed value of one we
    /// do) becomes [`NotifyState::Other`], so nothing is dropped.
    pub fn parse_line(line: &str) -> Self {
        let Some((key, value)) = line.split_once('=') else {
            return NotifyState::Other(line.to_owned());
        };
        let parsed = match key {
            "READY" if value == "1" => Some(NotifyState::Ready),
            "RELOADING" if value == "1" => Some(NotifyState::Reloading),
            "STOPPING" if value == "1" => Some(NotifyState::Stopping),
            "WATCHDOG" if value == "1" => Some(NotifyState::Watchdog),
            "WATCHDOG" if value == "trigger" => Some(NotifyState::WatchdogTrigger),
            "STATUS" => Some(NotifyState::Status(value.to_owned())),
            "MAINPID" => parse_number(value).map(NotifyState::MainPid),
            "EXTEND_TIMEOUT_USEC" => parse_number(value).map(NotifyState::ExtendTimeoutUsec),
            "MONOTONIC_USEC" => parse_number(value).map(NotifyState::MonotonicUsec),
            "WATCHDOG_USEC" => parse_number(value).map(NotifyState::WatchdogUsec),
            "ERRNO" => parse_number(value).map(NotifyState::Errno),
            _ => None,
        };
        parsed.unwrap_or_else(|| NotifyState::Other(line.to_owned()))
    }
}

/// Digits only, so that a value round-trips through `Display` unchanged.
fn parse_number<T: FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

impl FromStr for NotifyState {
    type Err = std::convert::Infallible;

    /// Never fails: see [`NotifyState::parse_line`].
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        Ok(NotifyState::parse_line(line))
    }
}

impl fmt::Display for NotifyState {
    /// The line as sent. A newline inside `STATUS=` or `Other` would start a new
    /// line of the protocol, so it is written as a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyState::Ready => f.write_str("READY=1"),
            NotifyState::Reloading => f.write_str("RELOADING=1"),
            NotifyState::Stopping => f.write_str("STOPPING=1"),
            NotifyState::Status(text) => write!(f, "STATUS={}", text.replace('\n', " ")),
            NotifyState::MainPid(pid) => write!(f, "MAINPID={pid}"),
            NotifyState::ExtendTimeoutUsec(usec) => write!(f, "EXTEND_TIMEOUT_USEC={usec}"),
            NotifyState::MonotonicUsec(usec) => write!(f, "MONOTONIC_USEC={usec}"),
            NotifyState::Watchdog => f.write_str("WATCHDOG=1"),
            NotifyState::WatchdogTrigger => f.write_str("WATCHDOG=trigger"),
            NotifyState::WatchdogUsec(usec) => write!(f, "WATCHDOG_USEC={usec}"),
            NotifyState::Errno(errno) => write!(f, "ERRNO={errno}"),
            NotifyState::Other(line) => f.write_str(&line.replace('\n', " ")),
        }
    }
}

/// Splits a datagram into its lines. Empty lines are skipped; a line that is
/// not UTF-8 is kept as [`NotifyState::Other`] with the bad bytes replaced.
pub fn parse_datagram(bytes: &[u8]) -> Vec<NotifyState> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| NotifyState::parse_line(&String::from_utf8_lossy(line)))
        .collect()
}

/// One datagram from [`NotifyReceiver::recv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The sender's pid, from `SCM_CREDENTIALS` (the kernel fills it in, the
    /// sender cannot forge it without privileges); `None` when missing.
    pub sender_pid: Option<u32>,
    pub states: Vec<NotifyState>,
    /// Fds that came with the datagram (`SCM_RIGHTS`); they are closed already.
    pub closed_fds: usize,
    /// The datagram was longer than [`MAX_DATAGRAM`]; its tail was dropped.
    pub truncated: bool,
}

/// Our private notify socket for the child: a Unix datagram socket bound at a
/// filesystem path, with `SO_PASSCRED` on and close-on-exec.
///
/// A path rather than an abstract name because MAS's sd-notify 0.5 connects to
/// `NOTIFY_SOCKET` as a path. The socket file is removed on drop.
#[derive(Debug)]
pub struct NotifyReceiver {
    socket: tokio::net::UnixDatagram,
    path: PathBuf,
}

impl NotifyReceiver {
    /// Binds a new socket at `path`.
    ///
    /// Anyone who can write to the socket file can send to it, and its mode
    /// follows the umask; so make it inside a directory only we can enter
    /// (mode 0700), and check `sender_pid` of what arrives.
    ///
    /// # Errors
    ///
    /// `AddrInUse` when `path` exists (it is never replaced); other errors of
    /// `socket(2)`, `bind(2)` and `setsockopt(2)`, without the path, which the
    /// caller names.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<Self> {
        // std creates the socket with SOCK_CLOEXEC.
        let socket = UnixDatagram::bind(path)?;
        let receiver = (|| {
            socket2::SockRef::from(&socket).set_passcred(true)?;
            socket.set_nonblocking(true)?;
            tokio::net::UnixDatagram::from_std(socket)
        })();
        match receiver {
            Ok(socket) => Ok(NotifyReceiver {
                socket,
                path: path.to_path_buf(),
            }),
            Err(err) => {
                let _ = std::fs::remove_file(path);
                Err(err)
            }
        }
    }

    /// The path to put in the child's `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next datagram.
    ///
    /// Cancel-safe: a datagram is either returned or left queued.
    ///
    /// # Errors
    ///
    /// The errno of `recvmsg(2)`.
    pub async fn recv(&self) -> io::Result<Datagram> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let info = self
            .socket
            .async_io(Interest::READABLE, || {
                sys::recv_with_credentials(self.socket.as_fd(), &mut buf)
            })
            .await?;
        Ok(Datagram {
            sender_pid: info.sender_pid,
            states: parse_datagram(&buf[..info.len]),
            closed_fds: info.closed_fds,
            truncated: info.truncated,
        })
    }
}

impl Drop for NotifyReceiver {
    fn drop(&mut self) {
        // We bound it, so we remove it; a missing file is fine.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why `NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The value is not an address we can send to.
    #[error(
        "NOTIFY_SOCKET={value:?} is {reason}; systemd sets it to an absolute path or an @abstract \
         name, so unset it if something else set it"
    )]
    BadAddress { value: String, reason: &'static str },
    /// The sending socket could not be made.
    #[error("cannot create a socket to send to NOTIFY_SOCKET={value:?}: {error}")]
    Socket { value: String, error: io::Error },
}

/// Sends our notifications to systemd; does nothing when `NOTIFY_SOCKET` was unset.
///
/// Our own sender rather than the sd-notify crate, because sd-notify 0.5 connects
/// by path only and systemd may hand out an abstract `@name`. The kernel adds our
/// credentials to every datagram (systemd's socket has `SO_PASSCRED`), which is
/// how systemd knows it came from the main process.
#[derive(Debug)]
pub struct SystemdNotifier {
    target: Option<Target>,
}

#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    socket: UnixDatagram,
}

impl SystemdNotifier {
    /// Reads `NOTIFY_SOCKET` (it is left set; the caller removes it from the
    /// child's environment).
    ///
    /// # Errors
    ///
    /// See [`SystemdNotifier::from_value`].
    pub fn from_env() -> Result<Self, NotifyError> {
        Self::from_value(std::env::var_os(NOTIFY_SOCKET).as_deref())
    }

    /// Builds a notifier for a `NOTIFY_SOCKET` value; `None` or empty disables it.
    ///
    /// # Errors
    ///
    /// [`NotifyError::BadAddress`] for a relative path, a `vsock:` address, or a
    /// path or name too long for `sun_path`; [`NotifyError::Socket`] when the
    /// socket cannot be created.
    pub fn from_value(value: Option<&OsStr>) -> Result<Self, NotifyError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(SystemdNotifier { target: None });
        };
        let shown = || value.to_string_lossy().into_owned();
        let bytes = value.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(value),
            _ => {
                let reason = if bytes.starts_with(b"vsock:") {
                    "a vsock address, which is not supported"
                } else {
                    "neither an absolute path nor an @abstract name"
                };
                return Err(NotifyError::BadAddress {
                    value: shown(),
                    reason,
                });
            }
        }
        .map_err(|_| NotifyError::BadAddress {
            value: shown(),
            reason: "too long for a unix socket address (at most 107 bytes)",
        })?;
        let socket = UnixDatagram::unbound()
            .and_then(|socket| {
                // Never block the supervisor on a busy systemd: a full queue
                // gives WouldBlock to the caller instead.
                socket.set_nonblocking(true)?;
                Ok(socket)
            })
            .map_err(|source| NotifyError::Socket {
                value: shown(),
                error: source,
            })?;
        Ok(SystemdNotifier {
            target: Some(Target { addr, socket }),
        })
    }

    /// Whether `NOTIFY_SOCKET` was set.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `states` as one datagram, lines joined by `\n`. Does nothing when
    /// disabled or when `states` is empty.
    ///
    /// # Errors
    ///
    /// The errno of `sendto(2)`: e.g. `NotFound`/`ConnectionRefused` when
    /// systemd's socket is gone, `WouldBlock` when its queue is full.
    pub fn send(&self, states: &[NotifyState]) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        if states.is_empty() {
            return Ok(());
        }
        let message = states
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        target
            .socket
            .send_to_addr(message.as_bytes(), &target.addr)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lines_round_trip() {
        let cases = [
            ("READY=1", NotifyState::Ready),
            ("RELOADING=1", NotifyState::Reloading),
            ("STOPPING=1", NotifyState::Stopping),
            (
                "STATUS=migrating: 3/7",
                NotifyState::Status("migrating: 3/7".into()),
            ),
            ("STATUS=", NotifyState::Status(String::new())),
            ("MAINPID=123", NotifyState::MainPid(123)),
            (
                "EXTEND_TIMEOUT_USEC=5000000",
                NotifyState::ExtendTimeoutUsec(5_000_000),
            ),
            (
                "MONOTONIC_USEC=18446744073709551615",
                NotifyState::MonotonicUsec(u64::MAX),
            ),
            ("WATCHDOG=1", NotifyState::Watchdog),
            ("WATCHDOG=trigger", NotifyState::WatchdogTrigger),
            (
                "WATCHDOG_USEC=30000000",
                NotifyState::WatchdogUsec(30_000_000),
            ),
            ("ERRNO=2", NotifyState::Errno(2)),
        ];
        for (line, state) in cases {
            assert_eq!(line.parse::<NotifyState>(), Ok(state.clone()), "{line}");
            assert_eq!(state.to_string(), line);
        }
    }

    #[test]
    fn unknown_and_malformed_lines_are_kept_as_other() {
        for line in [
            "FDSTORE=1",
            "BUSERROR=org.example.Failed",
            "READY=0",
            "READY",
            "MAINPID=abc",
            "MAINPID=+5",
            "MAINPID=-1",
            "MAINPID=",
            "MAINPID=99999999999",
            "ERRNO=-2",
            "WATCHDOG=2",
            "ready=1",
            "=",
        ] {
            let state: NotifyState = line.parse().unwrap();
            assert_eq!(state, NotifyState::Other(line.to_owned()));
            assert_eq!(state.to_string(), line);
        }
    }

    #[test]
    fn newlines_cannot_inject_lines() {
        let state = NotifyState::Status("a\nREADY=1".into());
        assert_eq!(state.to_string(), "STATUS=a READY=1");
        assert_eq!(NotifyState::Other("X=1\nY=2".into()).to_string(), "X=1 Y=2");
    }

    #[test]
    fn datagram_lines_are_split_and_empty_lines_skipped() {
        assert_eq!(
            parse_datagram(b"READY=1\nSTATUS=up\n\nMAINPID=7\n"),
            vec![
                NotifyState::Ready,
                NotifyState::Status("up".into()),
                NotifyState::MainPid(7)
            ]
        );
        assert!(parse_datagram(b"").is_empty());
        assert!(parse_datagram(b"\n\n").is_empty());
    }

    #[test]
    fn datagram_with_invalid_utf8_keeps_the_line() {
        assert_eq!(
            parse_datagram(b"STATUS=caf\xe9\nREADY=1\n\xff"),
            vec![
                NotifyState::Status("caf\u{fffd}".into()),
                NotifyState::Ready,
                NotifyState::Other("\u{fffd}".into())
            ]
        );
        // A NUL byte is just a character of the line.
        assert_eq!(
            parse_datagram(b"READY=1\0"),
            vec![NotifyState::Other("READY=1\0".into())]
        );
    }

    #[test]
    fn notifier_is_disabled_without_notify_socket() {
        let notifier = SystemdNotifier::from_value(None).unwrap();
        assert!(!notifier.is_enabled());
        notifier.send(&[NotifyState::Ready]).unwrap();
        assert!(!SystemdNotifier::from_value(Some(OsStr::new("")))
            .unwrap()
            .is_enabled());
    }

    #[test]
    fn notifier_rejects_addresses_it_cannot_use() {
        for (value, reason) in [
            ("run/notify", "neither an absolute path"),
            ("vsock:2:1234", "vsock"),
            (&format!("/{}", "x".repeat(200)), "too long"),
        ] {
            let err = SystemdNotifier::from_value(Some(OsStr::new(value))).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("NOTIFY_SOCKET=\""), "{text}");
            assert!(text.contains(reason), "{value}: {text}");
        }
    }

    #[test]
    fn notifier_sends_to_a_path() {
        let dir = crate::activation::tests::TempDir::new("notify-path");
        let path = dir.0.join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let notifier = SystemdNotifier::from_value(Some(path.as_os_str())).unwrap();
        assert!(notifier.is_enabled());
        notifier
            .send(&[NotifyState::Ready, NotifyState::Status("up".into())])
            .unwrap();
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
    }

    #[test]
    fn notifier_sends_to_an_abstract_name() {
        let name = format!("mas-sockets-test-notify-{}", std::process::id());
        let systemd =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = SystemdNotifier::from_value(Some(OsStr::new(&format!("@{name}")))).unwrap();
        notifier.send(&[NotifyState::Stopping]).unwrap();
        let mut buf = [0u8; 64];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    /// Sends `READY=1` and a status to `$NOTIFY_SOCKET`, as MAS would.
    #[test]
    #[ignore = "entry point for a re-run of this binary"]
    fn sender_entry() {
        if !crate::child::tests::entry_selected("notify_sender") {
            return;
        }
        let notifier = SystemdNotifier::from_env().expect("NOTIFY_SOCKET");
        assert!(notifier.is_enabled());
        notifier
            .send(&[
                NotifyState::Ready,
                NotifyState::Status("sent by child".into()),
            ])
            .expect("send");
    }

    async fn recv_within(receiver: &NotifyReceiver) -> Datagram {
        tokio::time::timeout(std::time::Duration::from_secs(10), receiver.recv())
            .await
            .expect("a datagram within 10 s")
            .expect("recv")
    }

    #[tokio::test]
    async fn receiver_names_the_sending_process() {
        let dir = crate::activation::tests::TempDir::new("notify-recv");
        let receiver = NotifyReceiver::bind(&dir.0.join("notify")).unwrap();
        let mut child =
            crate::child::tests::self_command("notify::tests::sender_entry", "notify_sender")
                .env(NOTIFY_SOCKET, receiver.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn the sender");
        let datagram = recv_within(&receiver).await;
        assert!(child.wait().expect("wait").success());
        assert_eq!(
            datagram,
            Datagram {
                sender_pid: Some(child.id()),
                states: vec![
                    NotifyState::Ready,
                    NotifyState::Status("sent by child".into())
                ],
                closed_fds: 0,
                truncated: false,
            }
        );
    }

    #[tokio::test]
    async fn receiver_closes_fds_that_come_with_a_datagram() {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
        use std::io::Read;
        use std::os::fd::AsRawFd;

        let dir = crate::activation::tests::TempDir::new("notify-fds");
        let receiver = NotifyReceiver::bind(&dir.0.join("notify")).unwrap();
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let fds = [write.as_raw_fd()];
        sendmsg(
            sender.as_raw_fd(),
            &[std::io::IoSlice::new(b"FDSTORE=1")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&UnixAddr::new(receiver.path()).unwrap()),
        )
        .expect("sendmsg with SCM_RIGHTS");

        let datagram = recv_within(&receiver).await;
        assert_eq!(datagram.closed_fds, 1);
        assert_eq!(datagram.sender_pid, Some(std::process::id()));
        assert_eq!(
            datagram.states,
            vec![NotifyState::Other("FDSTORE=1".into())]
        );

        // With our copy closed too, no write end is left: the read end sees EOF.
        // Had the receiver kept its copy, the read would block.
        drop(write);
        let mut pipe = std::fs::File::from(read);
        let mut byte = [0u8; 1];
        assert_eq!(pipe.read(&mut byte).expect("EOF, not WouldBlock"), 0);
    }

    #[tokio::test]
    async fn receiver_marks_long_datagrams_truncated() {
        let dir = crate::activation::tests::TempDir::new("notify-long");
        let receiver = NotifyReceiver::bind(&dir.0.join("notify")).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        let long = format!("STATUS={}", "x".repeat(MAX_DATAGRAM));
        sender.send_to(long.as_bytes(), receiver.path()).unwrap();
        sender.send_to(b"READY=1", receiver.path()).unwrap();

        let datagram = recv_within(&receiver).await;
        assert!(datagram.truncated);
        assert_eq!(
            datagram.states,
            vec![NotifyState::Status(
                "x".repeat(MAX_DATAGRAM - "STATUS=".len())
            )]
        );
        let next = recv_within(&receiver).await;
        assert!(!next.truncated);
        assert_eq!(next.states, vec![NotifyState::Ready]);
    }

    #[tokio::test]
    async fn receiver_never_replaces_a_file_and_removes_its_own() {
        let dir = crate::activation::tests::TempDir::new("notify-exists");
        let path = dir.0.join("notify");
        std::fs::write(&path, "").unwrap();
        let err = NotifyReceiver::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(path.exists(), "the existing file is left alone");

        std::fs::remove_file(&path).unwrap();
        let receiver = NotifyReceiver::bind(&path).unwrap();
        assert!(crate::sys::is_cloexec(receiver.socket.as_fd()).unwrap());
        drop(receiver);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    #[test]
    fn notifier_reports_a_missing_socket() {
        let notifier =
            SystemdNotifier::from_value(Some(OsStr::new("/nonexistent/mas-sockets/notify")))
                .unwrap();
        let err = notifier.send(&[NotifyState::Ready]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
