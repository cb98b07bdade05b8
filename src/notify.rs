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

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::Interest;

use tracing::{info, warn};

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

/// `MONOTONIC_USEC=` for now: `CLOCK_MONOTONIC` in microseconds, as systemd
/// 253+ wants it beside `RELOADING=1`; `None`, with a warning, if the clock
/// cannot be read.
pub fn monotonic_usec_now() -> Option<NotifyState> {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(sd_notify::NotifyState::MonotonicUsec(usec)) => {
            Some(NotifyState::MonotonicUsec(u64::try_from(usec).unwrap_or(0)))
        }
        Ok(other) => {
            tracing::warn!("reading CLOCK_MONOTONIC gave {other:?}, not a time");
            None
        }
        Err(e) => {
            tracing::warn!("cannot read CLOCK_MONOTONIC: {e}");
            None
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

/// How long the sender waits on systemd, and how it reports that.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// One `sendto(2)` waits this long for room in a full queue before the
    /// sender says that systemd is not reading, and then waits on.
    stall: Duration,
    /// A socket that is missing or refuses (systemd re-executing, say) is
    /// tried again this long before a datagram is given up.
    retry_for: Duration,
    /// The pause between those tries.
    retry_every: Duration,
    /// At the end, what still waits gets this long to go.
    finish_within: Duration,
}

impl Limits {
    /// PID 1 reads its notify socket in its event loop, a datagram per turn,
    /// so even a burst from many services goes through in well under a
    /// second; five seconds without room means systemd is stalled (a hung
    /// job, a long `daemon-reload`). Only at the end does waiting stop, so
    /// that a stop is bounded, well within `TimeoutStopSec=`.
    const SYSTEMD: Limits = Limits {
        stall: Duration::from_secs(5),
        retry_for: Duration::from_secs(5),
        retry_every: Duration::from_millis(100),
        finish_within: Duration::from_secs(5),
    };
}

/// At most this many datagrams wait; beyond, the oldest is dropped. Only a
/// child that floods us while systemd is stalled gets there: replaced
/// kinds keep one each, and a state repeated back to back is kept once.
const MAX_WAITING: usize = 64;

/// Sends our notifications to systemd; does nothing when `NOTIFY_SOCKET` was unset.
///
/// Our own sender rather than the sd-notify crate, because sd-notify 0.5 connects
/// by path only and systemd may hand out an abstract `@name`. The kernel adds our
/// credentials to every datagram (systemd's socket has `SO_PASSCRED`): the pid
/// of the process, whichever of its threads sent it, which is how systemd
/// knows it came from the main process.
///
/// systemd's notify socket is shared by every service and its queue is short
/// (`net.unix.max_dgram_qlen`), so a datagram may find it full. A thread of
/// its own sends them, in order, in blocking `sendto(2)` calls: the kernel
/// queues blocked senders and wakes them one at a time, first come first
/// served, as systemd reads, so ours gets its turn however busy other
/// services keep the queue. A datagram waits as long as systemd does not
/// read: a `READY=1` given up would leave the unit starting until its
/// timeout. [`SystemdNotifier::send`] never blocks the caller: it puts the
/// datagram behind those still waiting.
#[derive(Debug)]
pub struct SystemdNotifier {
    sender: Option<Sender>,
}

/// The outbox and the thread that empties it.
#[derive(Debug)]
struct Sender {
    outbox: Arc<Outbox>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Datagrams waiting for the sending thread.
#[derive(Debug, Default)]
struct Outbox {
    queue: Mutex<Queue>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    /// Dropped for [`MAX_WAITING`] since the last report.
    dropped: usize,
    /// No more datagrams come: what waits may go until then, and the
    /// thread ends once nothing waits.
    closing: Option<Instant>,
}

/// A datagram for systemd.
#[derive(Debug)]
struct Pending {
    message: String,
    kind: Kind,
}

/// What decides which waiting datagram a newer one replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Only the newest matters: `STATUS=`, `WATCHDOG=1`, or
    /// `EXTEND_TIMEOUT_USEC=` (which counts from when systemd reads it).
    /// A newer one replaces the waiting one, wherever it is, and goes last.
    Replaceable(&'static str),
    /// A change of state (`READY=1`, `RELOADING=1`, `STOPPING=1`, ...),
    /// named by its first line. It replaces only the same state waiting with
    /// no other state behind it, which says nothing systemd needs.
    State(String),
}

impl Kind {
    fn of(states: &[NotifyState]) -> Self {
        match states {
            [NotifyState::Status(_)] => Kind::Replaceable("STATUS"),
            [NotifyState::Watchdog] => Kind::Replaceable("WATCHDOG"),
            [NotifyState::ExtendTimeoutUsec(_)] => Kind::Replaceable("EXTEND_TIMEOUT_USEC"),
            _ => Kind::State(states.first().map(ToString::to_string).unwrap_or_default()),
        }
    }
}

impl Queue {
    /// Puts `pending` last, in place of the waiting datagram it replaces
    /// (see [`Kind`]); drops the oldest when more than [`MAX_WAITING`] wait.
    fn push(&mut self, pending: Pending) {
        let replaced = match &pending.kind {
            Kind::Replaceable(_) => self.waiting.iter().rposition(|p| p.kind == pending.kind),
            Kind::State(_) => self
                .waiting
                .iter()
                .rposition(|p| matches!(p.kind, Kind::State(_)))
                .filter(|&i| self.waiting[i].kind == pending.kind),
        };
        if let Some(i) = replaced {
            self.waiting.remove(i);
        }
        self.waiting.push_back(pending);
        if self.waiting.len() > MAX_WAITING {
            self.waiting.pop_front();
            self.dropped += 1;
        }
    }
}

/// What the sending thread has to say; logged by [`SystemdNotifier`].
#[derive(Debug)]
pub enum Event {
    /// A datagram found no room for `Limits::stall`; it goes on waiting.
    Stalled { waited: Duration, message: String },
    /// systemd read again after a stall, or its socket works again after
    /// errors; `given_up` and `dropped` count what it did not get meanwhile.
    Resumed {
        waited: Duration,
        given_up: usize,
        dropped: usize,
    },
    /// A datagram met an error for `Limits::retry_for` (the errno of
    /// `sendto(2)`, such as `NotFound` or `ConnectionRefused` when systemd's
    /// socket is gone): it and the datagrams after it are given up until a
    /// send works again.
    Failing {
        message: String,
        error: io::Error,
        /// `NOTIFY_SOCKET` as given.
        socket: String,
    },
    /// At the end, what waited longer than `Limits::finish_within`.
    GaveUp { count: usize, first: String },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |m: &str| m.replace('\n', " ");
        match self {
            Event::Stalled { waited, message } => write!(
                f,
                "systemd has not read its notify socket for {waited:?}; `{}` and what follows wait for it",
                shown(message)
            ),
            Event::Resumed {
                waited,
                given_up,
                dropped,
            } => {
                write!(f, "systemd takes notifications again, after {waited:?}")?;
                if *given_up > 0 {
                    write!(f, "; {given_up} were given up meanwhile")?;
                }
                if *dropped > 0 {
                    write!(
                        f,
                        "; {dropped} were dropped as more than {MAX_WAITING} waited"
                    )?;
                }
                Ok(())
            }
            Event::Failing {
                message,
                error,
                socket,
            } => write!(
                f,
                "cannot notify systemd at NOTIFY_SOCKET={socket} of `{}`: {error}; notifications are given up until that works again. systemd sets NOTIFY_SOCKET for a Type=notify service; run by hand, leave it unset",
                shown(message)
            ),
            Event::GaveUp { count, first } => write!(
                f,
                "gave up {count} notification(s) to systemd at exit, from `{}` on: its notify socket stayed full",
                shown(first)
            ),
        }
    }
}

/// What the sending thread does with an [`Event`].
type Report = Box<dyn FnMut(Event) + Send>;

/// Logs an event: a warning, except the news that systemd reads again.
fn log_event(event: Event) {
    match event {
        Event::Resumed {
            given_up: 0,
            dropped: 0,
            ..
        } => info!("{event}"),
        _ => warn!("{event}"),
    }
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

    /// Builds a notifier for a `NOTIFY_SOCKET` value; `None` or empty disables
    /// it. What it has to say about systemd (see [`Event`]) is logged.
    ///
    /// # Errors
    ///
    /// [`NotifyError::BadAddress`] for a relative path, a `vsock:` address, or a
    /// path or name too long for `sun_path`; [`NotifyError::Socket`] when the
    /// socket or its thread cannot be made.
    pub fn from_value(value: Option<&OsStr>) -> Result<Self, NotifyError> {
        Self::reporting(value, Limits::SYSTEMD, Box::new(log_event))
    }

    fn reporting(
        value: Option<&OsStr>,
        limits: Limits,
        report: Report,
    ) -> Result<Self, NotifyError> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(SystemdNotifier { sender: None });
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
        let socket_error = |error| NotifyError::Socket {
            value: shown(),
            error,
        };
        // Blocking, with a send timeout; std makes it with SOCK_CLOEXEC.
        let socket = UnixDatagram::unbound().map_err(socket_error)?;
        let outbox = Arc::new(Outbox::default());
        let mut thread = SendingThread {
            outbox: outbox.clone(),
            socket,
            shown: crate::config::plan::escape_controls(&shown()),
            addr,
            limits,
            report,
            trouble: None,
        };
        let thread = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || thread.run())
            .map_err(socket_error)?;
        Ok(SystemdNotifier {
            sender: Some(Sender {
                outbox,
                thread: Some(thread),
            }),
        })
    }

    /// Whether `NOTIFY_SOCKET` was set.
    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Sends `states` as one datagram, lines joined by `\n`, after those still
    /// waiting for room in systemd's queue; never blocks. A waiting datagram
    /// that says nothing more than this one is replaced (see `Kind`).
    /// Does nothing when disabled or when `states` is empty.
    pub fn send(&self, states: &[NotifyState]) {
        let Some(sender) = &self.sender else {
            return;
        };
        if states.is_empty() {
            return;
        }
        let message = states
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        let pending = Pending {
            message,
            kind: Kind::of(states),
        };
        sender.outbox.lock().push(pending);
        sender.outbox.changed.notify_one();
    }

    /// Waits until everything sent so far has gone, or for 5 s while
    /// systemd does not read; then gives up what still waits. For the end:
    /// nothing can be sent afterwards.
    pub async fn finish(&mut self) {
        if let Some(thread) = self.close() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// [`SystemdNotifier::finish`] outside an event loop.
    pub fn finish_blocking(&mut self) {
        if let Some(thread) = self.close() {
            let _ = thread.join();
        }
    }

    /// Lets the thread end once its outbox is empty, or at the deadline.
    fn close(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let sender = self.sender.as_mut()?;
        let thread = sender.thread.take()?;
        // The thread holds the limits; it sets the deadline when it sees this.
        sender.outbox.lock().closing = Some(Instant::now());
        sender.outbox.changed.notify_one();
        Some(thread)
    }
}

impl Drop for SystemdNotifier {
    /// What waits still goes, from the thread, while the process lives.
    fn drop(&mut self) {
        drop(self.close());
    }
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a queue that is still whole.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The thread that empties the outbox.
struct SendingThread {
    outbox: Arc<Outbox>,
    socket: UnixDatagram,
    /// `NOTIFY_SOCKET` as given, for messages.
    shown: String,
    addr: SocketAddr,
    limits: Limits,
    report: Report,
    /// Since when systemd has not taken a datagram, when that lasted long
    /// enough to be said.
    trouble: Option<Trouble>,
}

/// A stall or a run of errors, said once when it began and once when it ends.
struct Trouble {
    since: Instant,
    given_up: usize,
    /// Sends fail (rather than wait): each datagram gets one try.
    failing: bool,
}

/// Why one datagram did not go.
enum Missed {
    /// The end came first.
    Deadline,
    /// Errors other than a full queue, for `Limits::retry_for`.
    Failed(io::Error),
}

impl SendingThread {
    /// The datagrams, in order, until the outbox is closed and empty.
    fn run(&mut self) {
        while let Some((pending, deadline)) = self.next() {
            match self.send(&pending, deadline) {
                Ok(()) => self.resumed(),
                Err(Missed::Deadline) => {
                    let rest = {
                        let mut queue = self.outbox.lock();
                        let rest = queue.waiting.len() + queue.dropped;
                        queue.waiting.clear();
                        rest
                    };
                    (self.report)(Event::GaveUp {
                        count: 1 + rest,
                        first: pending.message,
                    });
                    return;
                }
                Err(Missed::Failed(error)) => {
                    let trouble = self.trouble.get_or_insert(Trouble {
                        since: Instant::now(),
                        given_up: 0,
                        failing: true,
                    });
                    trouble.failing = true;
                    trouble.given_up += 1;
                    if trouble.given_up == 1 {
                        (self.report)(Event::Failing {
                            message: pending.message,
                            error,
                            socket: self.shown.clone(),
                        });
                    }
                }
            }
        }
    }

    /// The next datagram, and the deadline once the outbox is closing;
    /// `None` when it is closed and empty.
    fn next(&mut self) -> Option<(Pending, Option<Instant>)> {
        let mut queue = self.outbox.lock();
        loop {
            let deadline = queue.closing.map(|at| at + self.limits.finish_within);
            if let Some(pending) = queue.waiting.pop_front() {
                return Some((pending, deadline));
            }
            if queue.closing.is_some() {
                return None;
            }
            queue = self
                .outbox
                .changed
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocking `sendto(2)` calls until the datagram goes. A full queue is
    /// waited out, with a word when it lasts; other errors are tried again
    /// for a while.
    fn send(&mut self, pending: &Pending, mut deadline: Option<Instant>) -> Result<(), Missed> {
        let began = Instant::now();
        let mut stalled = false;
        // During a run of errors, a datagram gets one try.
        let one_try = self.trouble.as_ref().is_some_and(|t| t.failing);
        let mut failing_since = None;
        loop {
            let mut wait = self.limits.stall;
            if let Some(at) = deadline {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            // A zero timeout would mean "block forever".
            if wait.is_zero() {
                return Err(Missed::Deadline);
            }
            let sent = self.socket.set_write_timeout(Some(wait)).and_then(|()| {
                self.socket
                    .send_to_addr(pending.message.as_bytes(), &self.addr)
            });
            let error = match sent {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match error.kind() {
                // A signal handled on this thread; a send timeout makes the
                // call fail with EINTR even under SA_RESTART.
                io::ErrorKind::Interrupted => {}
                // The send timeout: still no room.
                io::ErrorKind::WouldBlock => {
                    if !stalled && deadline.is_none() {
                        stalled = true;
                        self.trouble.get_or_insert(Trouble {
                            since: began,
                            given_up: 0,
                            failing: false,
                        });
                        (self.report)(Event::Stalled {
                            waited: began.elapsed(),
                            message: pending.message.clone(),
                        });
                    }
                }
                _ => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if one_try || since.elapsed() >= self.limits.retry_for {
                        return Err(Missed::Failed(error));
                    }
                    std::thread::sleep(self.limits.retry_every);
                }
            }
            // The end may have come meanwhile.
            if deadline.is_none() {
                deadline = self
                    .outbox
                    .lock()
                    .closing
                    .map(|at| at + self.limits.finish_within);
            }
        }
    }

    /// A datagram went: the end of a stall or of a run of errors.
    fn resumed(&mut self) {
        if let Some(trouble) = self.trouble.take() {
            let dropped = std::mem::take(&mut self.outbox.lock().dropped);
            (self.report)(Event::Resumed {
                waited: trouble.since.elapsed(),
                given_up: trouble.given_up,
                dropped,
            });
        }
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
        notifier.send(&[NotifyState::Ready]);
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
        notifier.send(&[NotifyState::Ready, NotifyState::Status("up".into())]);
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
        notifier.send(&[NotifyState::Stopping]);
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
        let mut notifier = SystemdNotifier::from_env().expect("NOTIFY_SOCKET");
        assert!(notifier.is_enabled());
        notifier.send(&[
            NotifyState::Ready,
            NotifyState::Status("sent by child".into()),
        ]);
        notifier.finish_blocking();
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

    /// Limits short enough for a test, with the reporter's events coming
    /// out of the returned channel.
    fn reporting(
        value: &OsStr,
        limits: Limits,
    ) -> (SystemdNotifier, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let report = Box::new(move |event| {
            let _ = tx.send(event);
        });
        let notifier = SystemdNotifier::reporting(Some(value), limits, report).unwrap();
        (notifier, rx)
    }

    const QUICK: Limits = Limits {
        stall: Duration::from_millis(100),
        retry_for: Duration::from_millis(100),
        retry_every: Duration::from_millis(10),
        finish_within: Duration::from_millis(200),
    };

    const LONG: Duration = Duration::from_secs(20);

    fn recv_all(systemd: &UnixDatagram) -> Vec<String> {
        systemd.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        while let Ok(n) = systemd.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        systemd.set_nonblocking(false).unwrap();
        got
    }

    /// Fills `path`'s queue; returns how many datagrams it took.
    fn fill(path: &Path) -> usize {
        let filler = UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut filled = 0;
        while filler.send_to(b"X=1", path).is_ok() {
            filled += 1;
        }
        assert!(filled > 0, "the queue took nothing");
        filled
    }

    #[test]
    fn a_missing_socket_is_tried_again_then_given_up_until_it_works() {
        let dir = crate::activation::tests::TempDir::new("notify-missing");
        let path = dir.0.join("notify");
        let (mut notifier, events) = reporting(path.as_os_str(), QUICK);
        notifier.send(&[NotifyState::Ready]);
        match events.recv_timeout(LONG).expect("an event") {
            event @ Event::Failing { .. } => {
                let said = event.to_string();
                let Event::Failing {
                    message,
                    error,
                    socket,
                } = event
                else {
                    unreachable!()
                };
                assert_eq!(message, "READY=1");
                assert_eq!(error.kind(), io::ErrorKind::NotFound);
                assert_eq!(socket, path.display().to_string());
                assert!(
                    said.contains(&format!("at NOTIFY_SOCKET={}", path.display())),
                    "{said}"
                );
            }
            other => panic!("{other:?}"),
        }
        let systemd = UnixDatagram::bind(&path).unwrap();
        notifier.send(&[NotifyState::Stopping]);
        notifier.finish_blocking();
        let got = recv_all(&systemd);
        assert_eq!(
            got.last().map(String::as_str),
            Some("STOPPING=1"),
            "{got:?}"
        );
        let said: Vec<String> = events.try_iter().map(|e| e.to_string()).collect();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("systemd takes notifications again, after "),
            "{said:?}"
        );
        assert!(said[0].ends_with("; 1 were given up meanwhile"), "{said:?}");
    }

    #[test]
    fn a_socket_that_comes_back_in_time_gets_the_datagram() {
        let dir = crate::activation::tests::TempDir::new("notify-back");
        let path = dir.0.join("notify");
        let limits = Limits {
            retry_for: LONG,
            ..QUICK
        };
        let (mut notifier, events) = reporting(path.as_os_str(), limits);
        notifier.send(&[NotifyState::Ready]);
        // Bound only now: the datagram arrives on a later try.
        let systemd = UnixDatagram::bind(&path).unwrap();
        systemd.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = [0u8; 64];
        let n = systemd
            .recv(&mut buf)
            .expect("READY=1 once the socket is there");
        assert_eq!(&buf[..n], b"READY=1");
        notifier.finish_blocking();
        assert!(events.try_recv().is_err(), "nothing to say");
    }

    /// systemd stalled: the datagrams wait, in order, however long, with
    /// one word when the stall begins and one when it ends.
    #[test]
    fn a_full_queue_is_waited_out_and_said_once() {
        let dir = crate::activation::tests::TempDir::new("notify-full");
        let path = dir.0.join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        let filled = fill(&path);
        let (mut notifier, events) = reporting(path.as_os_str(), QUICK);
        notifier.send(&[NotifyState::Ready]);
        notifier.send(&[NotifyState::Reloading, NotifyState::MonotonicUsec(1)]);
        notifier.send(&[NotifyState::Ready]);
        match events.recv_timeout(LONG).expect("the stall is said") {
            Event::Stalled { message, .. } => assert_eq!(message, "READY=1"),
            other => panic!("{other:?}"),
        }
        // Several stall periods pass (the condition under test, not a wait
        // for an event): nothing is given up while we run.
        std::thread::sleep(QUICK.stall * 5);
        let mut seen = Vec::new();
        while seen.len() < filled + 3 {
            let mut buf = [0u8; 256];
            systemd.set_read_timeout(Some(LONG)).unwrap();
            let n = systemd.recv(&mut buf).expect("the datagrams in time");
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            &seen[filled..],
            ["READY=1", "RELOADING=1\nMONOTONIC_USEC=1", "READY=1"]
        );
        match events
            .recv_timeout(LONG)
            .expect("the end of the stall is said")
        {
            e @ Event::Resumed {
                given_up: 0,
                dropped: 0,
                ..
            } => assert!(e
                .to_string()
                .starts_with("systemd takes notifications again")),
            other => panic!("{other:?}"),
        }
        notifier.finish_blocking();
        assert!(events.try_recv().is_err(), "said only once");
    }

    #[test]
    fn at_the_end_what_cannot_go_is_given_up_in_one_line() {
        let dir = crate::activation::tests::TempDir::new("notify-end");
        let path = dir.0.join("notify");
        let systemd = UnixDatagram::bind(&path).unwrap();
        fill(&path);
        let (mut notifier, events) = reporting(path.as_os_str(), QUICK);
        notifier.send(&[NotifyState::Stopping]);
        notifier.send(&[NotifyState::Status("stopped".into())]);
        notifier.finish_blocking();
        let said: Vec<String> = events.try_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            said.last().map(String::as_str),
            Some("gave up 2 notification(s) to systemd at exit, from `STOPPING=1` on: its notify socket stayed full"),
            "{said:?}"
        );
        drop(systemd);
    }

    fn pending(states: &[NotifyState]) -> Pending {
        Pending {
            message: states
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
            kind: Kind::of(states),
        }
    }

    #[test]
    fn a_waiting_datagram_is_replaced_only_by_one_that_says_as_much() {
        let mut queue = Queue::default();
        for states in [
            &[NotifyState::Status("a".into())][..],
            &[NotifyState::Ready],
            &[NotifyState::Status("b".into())],
            &[NotifyState::ExtendTimeoutUsec(1)],
            &[NotifyState::Watchdog],
            &[NotifyState::Ready, NotifyState::Status("c".into())],
            &[NotifyState::Watchdog],
            &[NotifyState::ExtendTimeoutUsec(2)],
            &[NotifyState::Reloading, NotifyState::MonotonicUsec(5)],
            &[NotifyState::Ready, NotifyState::Status("d".into())],
            &[NotifyState::Stopping],
            &[NotifyState::Stopping],
        ] {
            queue.push(pending(states));
        }
        let messages: Vec<&str> = queue.waiting.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                // READY=1 then READY=1 with a status, back to back as states.
                "STATUS=b",
                "READY=1\nSTATUS=c",
                "WATCHDOG=1",
                "EXTEND_TIMEOUT_USEC=2",
                // A state between keeps both READY=1.
                "RELOADING=1\nMONOTONIC_USEC=5",
                "READY=1\nSTATUS=d",
                "STOPPING=1",
            ]
        );
        assert_eq!(queue.dropped, 0);
    }

    #[test]
    fn a_flood_of_changing_states_keeps_the_newest() {
        let mut queue = Queue::default();
        for i in 0..MAX_WAITING * 3 {
            queue.push(pending(&[NotifyState::Reloading]));
            queue.push(pending(&[
                NotifyState::Ready,
                NotifyState::Status(i.to_string()),
            ]));
            queue.push(pending(&[NotifyState::Status(format!("s{i}"))]));
        }
        assert_eq!(queue.waiting.len(), MAX_WAITING);
        assert_eq!(queue.dropped, MAX_WAITING * 6 + 1 - MAX_WAITING);
        let last = queue.waiting.back().unwrap();
        assert_eq!(last.message, format!("STATUS=s{}", MAX_WAITING * 3 - 1));
    }
}
