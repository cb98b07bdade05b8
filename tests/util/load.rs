//! An HTTP/1.1 load generator for the zero-downtime tests and the benchmark.
//!
//! Worker threads send `GET` requests to TCP and Unix sockets until stopped,
//! and record one [`Sample`] per request. Whether a request failed is decided
//! the way a careful HTTP/1.1 client (RFC 9112) would decide it, because that
//! is what a restart must not break:
//!
//! - a response is OK only when its status line, its headers and exactly
//!   `Content-Length` body bytes arrived, with status 200; a response without
//!   `Content-Length` (chunked, or delimited by the close) is not accepted;
//! - `Connection: close` from the server is honoured, and a connection that
//!   is done is read to its end before it is dropped, so the server closes
//!   first and TCP's `TIME_WAIT` does not eat this side's ephemeral ports;
//! - the one retry a client may make without knowing whether the server acted
//!   (RFC 9112 §9.3.1, as nginx and curl do): a request sent on a reused idle
//!   keep-alive connection that was closed or reset before any byte of the
//!   response arrived is sent once more on a fresh connection. It counts as
//!   one request and shows in [`LoadReport::retried`]. Everything else (a
//!   refused connect, any failure on a fresh connection, a failure after some
//!   response bytes) is a failure.
//!
//! Every request, retry included, must end within [`LoadSpec::timeout`] of its
//! start, and every socket operation waits at most for what is left of it.
//! `std` has no connect timeout for Unix sockets, and Linux blocks such a
//! connect while the listener's backlog is full. The backlog can only fill
//! with connections nobody accepts, and a worker leaves one behind only when
//! its request times out; until then at most one per worker is pending. So
//! while no request has timed out and there are at most
//! [`DIRECT_UNIX_CONNECT_WORKERS`] workers (far below usual listen
//! backlogs; systemd's default is `SOMAXCONN`), Unix connects are made
//! directly. After that they run on a
//! helper thread per worker that the worker waits for with the timeout; the
//! hand-over costs tens of microseconds per connect, which is why it is not
//! the rule.
//!
//! Failure texts start with a kind: `refused`, `connect`, `reset`, `closed`
//! (no response byte before the end of the stream), `truncated`, `status`,
//! `malformed`, `timeout` or `io`.
//!
//! It does not pipeline, follow redirects or speak TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Where a worker sends its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) => write!(f, "tcp {addr}"),
            Target::Unix(path) => write!(f, "unix {}", path.display()),
        }
    }
}

/// What load to generate.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Worker `i` sends to `targets[i % targets.len()]`.
    pub targets: Vec<Target>,
    /// How many threads send requests, one at a time each.
    pub workers: usize,
    /// Request paths, taken in turn across all workers.
    pub paths: Vec<String>,
    /// The fraction of workers (the first ones) that keep connections alive;
    /// the others send `Connection: close` and connect for every request.
    pub keep_alive_share: f64,
    /// How long one request may take, from the start of its connect (or its
    /// write, on a kept-alive connection) to the last byte of its response.
    pub timeout: Duration,
}

/// One request, as seen by the client.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the first attempt started.
    pub at: Instant,
    /// From [`Sample::at`] to the end of the response or of the failure.
    pub latency: Duration,
    /// A complete 200 response arrived.
    pub ok: bool,
    /// The `x-standin-pid` header of the response, when there was one.
    pub pid: Option<u32>,
    /// What went wrong, starting with its kind (see the module doc).
    pub error: Option<String>,
    /// The index of the target in [`LoadSpec::targets`].
    pub target: usize,
    /// The request path.
    pub path: String,
}

/// A running load; [`Load::stop`] ends it. Dropping it stops the workers too.
pub struct Load {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<Vec<Sample>>>,
    targets: Vec<Target>,
    started: Instant,
}

/// What the workers and the test share while the load runs.
struct Shared {
    stop: AtomicBool,
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    /// Unix connects go through a helper thread, because there are many
    /// workers or some request timed out (module doc).
    guard_unix_connects: AtomicBool,
    next_path: AtomicUsize,
    marks: Mutex<Vec<(Instant, String)>>,
}

impl Load {
    /// Starts the workers; they send requests until [`Load::stop`].
    ///
    /// # Panics
    ///
    /// No targets, no paths, no workers, a zero timeout, or a thread that
    /// cannot be spawned.
    pub fn start(spec: LoadSpec) -> Load {
        assert!(!spec.targets.is_empty(), "LoadSpec.targets is empty");
        assert!(!spec.paths.is_empty(), "LoadSpec.paths is empty");
        assert!(spec.workers > 0, "LoadSpec.workers is 0");
        assert!(!spec.timeout.is_zero(), "LoadSpec.timeout is 0");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            guard_unix_connects: AtomicBool::new(spec.workers > DIRECT_UNIX_CONNECT_WORKERS),
            next_path: AtomicUsize::new(0),
            marks: Mutex::new(Vec::new()),
        });
        let share = if spec.keep_alive_share.is_nan() {
            0.0
        } else {
            spec.keep_alive_share.clamp(0.0, 1.0)
        };
        // Rounded, so that a share of 0.5 with 3 workers keeps 2 alive.
        let keep_alive_workers = (share * spec.workers as f64).round() as usize;
        let paths: Arc<[String]> = spec.paths.clone().into();
        let started = Instant::now();
        let workers = (0..spec.workers)
            .map(|index| {
                let target_index = index % spec.targets.len();
                let worker = Worker {
                    shared: Arc::clone(&shared),
                    paths: Arc::clone(&paths),
                    target_index,
                    connector: Connector::new(spec.targets[target_index].clone()),
                    keep_alive: index < keep_alive_workers,
                    timeout: spec.timeout,
                    connection: None,
                };
                thread::Builder::new()
                    .name(format!("load-{index}"))
                    .spawn(move || worker.run())
                    .expect("spawn a load worker thread")
            })
            .collect();
        Load {
            shared,
            workers,
            targets: spec.targets,
            started,
        }
    }

    /// Stops every worker once its request in flight has ended (each is
    /// bounded by the timeout), and returns all samples in start order.
    pub fn stop(mut self) -> LoadReport {
        let samples = self.join();
        let marks = std::mem::take(
            &mut *self
                .shared
                .marks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        LoadReport {
            samples,
            marks,
            retried: self.shared.retried.load(Ordering::Relaxed),
            started: self.started,
            stopped: Instant::now(),
            targets: std::mem::take(&mut self.targets),
        }
    }

    /// How many requests have succeeded so far.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }

    /// How many requests have failed so far.
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Records a labelled instant, for cutting the samples into windows.
    pub fn mark(&self, label: &str) {
        let now = Instant::now();
        self.shared
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((now, label.to_owned()));
    }

    /// Tells the workers to stop and waits for them; a worker's panic is
    /// passed on.
    fn join(&mut self) -> Vec<Sample> {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for handle in self.workers.drain(..) {
            match handle.join() {
                Ok(mine) => samples.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        samples.sort_by_key(|sample| sample.at);
        samples
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.shared.stop.store(true, Ordering::Relaxed);
            for handle in self.workers.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

/// Everything recorded between [`Load::start`] and [`Load::stop`].
#[derive(Debug)]
pub struct LoadReport {
    /// One per request, in start order.
    pub samples: Vec<Sample>,
    /// The marks, in the order they were made.
    pub marks: Vec<(Instant, String)>,
    /// Requests sent a second time after a stale keep-alive connection.
    pub retried: u64,
    pub started: Instant,
    pub stopped: Instant,
    pub targets: Vec<Target>,
}

impl LoadReport {
    /// The failed requests: refused, reset, truncated, non-200, timed out.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|sample| !sample.ok).collect()
    }

    /// The failures split in two: those on a Unix target that were reset or
    /// closed without an answer, and all the others.
    ///
    /// The first kind is MAS's own gap on a Unix socket: its graceful shutdown
    /// (hyper's) closes, unanswered, a connection it has accepted but not yet
    /// read from, and during a restart the old MAS may accept a connection
    /// just before its SIGTERM and before the client has written. On TCP,
    /// `TCP_DEFER_ACCEPT` keeps such a connection from the old MAS; a Unix
    /// socket has no such option, so a test can only bound these.
    pub fn failures_split_unix_unread_close(&self) -> (Vec<&Sample>, Vec<&Sample>) {
        self.failures().into_iter().partition(|sample| {
            let unix = matches!(self.targets.get(sample.target), Some(Target::Unix(_)));
            let kind = sample.error.as_deref().unwrap_or("");
            unix && (kind.starts_with("reset") || kind.starts_with("closed"))
        })
    }

    /// How many requests succeeded.
    pub fn ok(&self) -> usize {
        self.samples.iter().filter(|sample| sample.ok).count()
    }

    /// Failure counts by kind, the first word of [`Sample::error`].
    pub fn failure_kinds(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for sample in self.failures() {
            let error = sample.error.as_deref().unwrap_or("unknown");
            let kind = error.split(':').next().unwrap_or(error);
            *kinds.entry(kind.to_owned()).or_insert(0) += 1;
        }
        kinds
    }

    /// The pids that answered, from the `x-standin-pid` header.
    pub fn pids(&self) -> BTreeSet<u32> {
        self.samples
            .iter()
            .filter_map(|sample| sample.pid)
            .collect()
    }

    /// The indices of the targets that answered at least once.
    pub fn targets_served(&self) -> BTreeSet<usize> {
        self.samples
            .iter()
            .filter(|sample| sample.ok)
            .map(|sample| sample.target)
            .collect()
    }

    /// When the first mark with this label was made.
    pub fn mark_at(&self, label: &str) -> Option<Instant> {
        self.marks
            .iter()
            .find(|(_, name)| name == label)
            .map(|(at, _)| *at)
    }

    /// p50, p99 and max latency of the successful requests that started in
    /// `from..to`; all zero when there are none. Failures are counted by
    /// [`LoadReport::failures`] instead, so a refused connect cannot make a
    /// window look fast.
    pub fn latency_percentiles(
        &self,
        from: Instant,
        to: Instant,
    ) -> (Duration, Duration, Duration) {
        let mut latencies: Vec<Duration> = self
            .samples
            .iter()
            .filter(|sample| sample.ok && sample.at >= from && sample.at < to)
            .map(|sample| sample.latency)
            .collect();
        latencies.sort_unstable();
        let Some(&max) = latencies.last() else {
            return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        };
        // Nearest rank: the smallest latency at or above the share asked for.
        let rank = |percent: usize| latencies[(latencies.len() * percent).div_ceil(100).max(1) - 1];
        (rank(50), rank(99), max)
    }

    /// A summary of the failures and the first `max` of them, each placed
    /// after the latest mark, for assertion messages.
    pub fn describe_failures(&self, max: usize) -> String {
        let failures = self.failures();
        let mut text = format!(
            "{} of {} requests failed over {:.3?}",
            failures.len(),
            self.samples.len(),
            self.stopped.duration_since(self.started)
        );
        if failures.is_empty() {
            return text;
        }
        let kinds: Vec<String> = self
            .failure_kinds()
            .into_iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        let _ = write!(text, " ({}); {} retried", kinds.join(", "), self.retried);
        for sample in failures.iter().take(max) {
            let since = self
                .marks
                .iter()
                .rev()
                .find(|(at, _)| *at <= sample.at)
                .map_or_else(
                    || format!("start +{:.3?}", sample.at.duration_since(self.started)),
                    |(at, label)| format!("{label:?} +{:.3?}", sample.at.duration_since(*at)),
                );
            let target = self
                .targets
                .get(sample.target)
                .map_or_else(|| format!("target {}", sample.target), Target::to_string);
            let _ = write!(
                text,
                "\n  at {since}: GET {} on {target} after {:.3?}: {}",
                sample.path,
                sample.latency,
                sample.error.as_deref().unwrap_or("unknown")
            );
        }
        if failures.len() > max {
            let _ = write!(text, "\n  ... and {} more", failures.len() - max);
        }
        text
    }
}

/// The most workers that may connect to Unix sockets without a helper thread;
/// see the module doc.
const DIRECT_UNIX_CONNECT_WORKERS: usize = 64;

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How long a done connection is read for the server's close before it is
/// dropped anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// One worker thread's state.
struct Worker {
    shared: Arc<Shared>,
    paths: Arc<[String]>,
    target_index: usize,
    connector: Connector,
    keep_alive: bool,
    timeout: Duration,
    /// The idle kept-alive connection, if any.
    connection: Option<Connection>,
}

impl Worker {
    /// Sends requests until told to stop; returns the samples.
    fn run(mut self) -> Vec<Sample> {
        let mut samples = Vec::new();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let turn = self.shared.next_path.fetch_add(1, Ordering::Relaxed);
            let path = self.paths[turn % self.paths.len()].clone();
            let sample = self.request(path);
            let counter = if sample.ok {
                &self.shared.completed
            } else {
                &self.shared.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            samples.push(sample);
        }
        samples
    }

    /// One request, retried once if a reused connection turns out stale.
    fn request(&mut self, path: String) -> Sample {
        let at = Instant::now();
        let deadline = at + self.timeout;
        let mut outcome = self.attempt(&path, deadline);
        if let Err(failure) = &outcome {
            if failure.stale {
                self.shared.retried.fetch_add(1, Ordering::Relaxed);
                outcome = self.attempt(&path, deadline).map_err(|failure| Failure {
                    detail: format!("on retry after a stale connection: {}", failure.detail),
                    ..failure
                });
            }
        }
        let latency = at.elapsed();
        match outcome {
            Ok(pid) => Sample {
                at,
                latency,
                ok: true,
                pid,
                error: None,
                target: self.target_index,
                path,
            },
            Err(failure) => {
                if failure.kind == Kind::Timeout {
                    // It may leave an unaccepted connection behind.
                    self.shared
                        .guard_unix_connects
                        .store(true, Ordering::Relaxed);
                }
                Sample {
                    at,
                    latency,
                    ok: false,
                    pid: failure.pid,
                    error: Some(failure.to_string()),
                    target: self.target_index,
                    path,
                }
            }
        }
    }

    /// One attempt on the idle connection, or on a fresh one; returns the
    /// `x-standin-pid` of a complete 200 response. The time to wait for the
    /// server's close of a done connection is not part of the latency, but
    /// happens before the next request.
    fn attempt(&mut self, path: &str, deadline: Instant) -> Result<Option<u32>, Failure> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => Connection {
                stream: self.connector.connect(
                    deadline,
                    !self.shared.guard_unix_connects.load(Ordering::Relaxed),
                )?,
                reused: false,
            },
        };
        let reused = connection.reused;
        let result = connection.exchange(path, self.keep_alive, deadline);
        match result {
            Ok(response) if response.status == 200 => {
                if self.keep_alive && !response.close {
                    connection.reused = true;
                    self.connection = Some(connection);
                } else {
                    connection.await_close();
                }
                Ok(response.pid)
            }
            Ok(response) => Err(Failure {
                kind: Kind::Status,
                detail: response.status_line,
                pid: response.pid,
                stale: false,
            }),
            Err(failure) => {
                // The one retry: the server closed an idle connection as our
                // request crossed it, so it cannot have acted on the request.
                let stale = reused
                    && failure.before_response
                    && matches!(failure.kind, Kind::Closed | Kind::Reset);
                Err(Failure {
                    stale,
                    ..failure.into()
                })
            }
        }
    }
}

/// Why a request failed.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    detail: String,
    pid: Option<u32>,
    /// Sent on a reused connection that ended before any response byte.
    stale: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

/// Failure kinds; their names start [`Sample::error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Refused,
    Connect,
    Reset,
    Closed,
    Truncated,
    Status,
    Malformed,
    Timeout,
    Io,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Refused => "refused",
            Kind::Connect => "connect",
            Kind::Reset => "reset",
            Kind::Closed => "closed",
            Kind::Truncated => "truncated",
            Kind::Status => "status",
            Kind::Malformed => "malformed",
            Kind::Timeout => "timeout",
            Kind::Io => "io",
        }
    }

    /// The kind of an I/O error on an established connection.
    fn of_io(err: &io::Error) -> Kind {
        match err.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Kind::Reset
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Kind::Timeout,
            _ => Kind::Io,
        }
    }
}

/// A failure on an established connection, before the retry is decided.
struct ExchangeFailure {
    kind: Kind,
    detail: String,
    /// No byte of the response had arrived.
    before_response: bool,
}

impl From<ExchangeFailure> for Failure {
    fn from(failure: ExchangeFailure) -> Self {
        Failure {
            kind: failure.kind,
            detail: failure.detail,
            pid: None,
            stale: false,
        }
    }
}

/// Opens connections to one target, within a deadline.
enum Connector {
    Tcp(SocketAddr),
    Unix {
        path: PathBuf,
        /// Connects on its own thread; replaced when it overran a deadline.
        helper: Option<UnixHelper>,
    },
}

/// A thread that connects to a Unix socket whenever asked.
struct UnixHelper {
    ask: mpsc::Sender<()>,
    answer: mpsc::Receiver<io::Result<UnixStream>>,
}

impl UnixHelper {
    /// Starts the thread; it ends when this is dropped and its connect
    /// in progress, if any, has returned.
    fn spawn(path: PathBuf) -> io::Result<Self> {
        let (ask, asked) = mpsc::channel::<()>();
        let (answer_tx, answer) = mpsc::channel();
        thread::Builder::new()
            .name("load-unix-connect".to_owned())
            .spawn(move || {
                for () in asked {
                    if answer_tx.send(UnixStream::connect(&path)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self { ask, answer })
    }
}

impl Connector {
    fn new(target: Target) -> Self {
        match target {
            Target::Tcp(addr) => Connector::Tcp(addr),
            Target::Unix(path) => Connector::Unix { path, helper: None },
        }
    }

    /// A fresh connection, or a failure of kind `refused`, `connect` or
    /// `timeout`. `direct` says a Unix connect cannot block (module doc).
    fn connect(&mut self, deadline: Instant, direct: bool) -> Result<Stream, Failure> {
        let failure = |kind: Kind, detail: String| Failure {
            kind,
            detail,
            pid: None,
            stale: false,
        };
        let connect_error = |err: io::Error| {
            let kind = match err.kind() {
                ErrorKind::ConnectionRefused => Kind::Refused,
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Kind::Timeout,
                _ => Kind::Connect,
            };
            failure(kind, format!("connect: {err}"))
        };
        let left = remaining(deadline)
            .ok_or_else(|| failure(Kind::Timeout, "no time left to connect".to_owned()))?;
        match self {
            Connector::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, left).map_err(connect_error)?;
                // Requests are small and sent whole; do not hold them back.
                stream
                    .set_nodelay(true)
                    .map_err(|err| failure(Kind::Io, format!("set TCP_NODELAY: {err}")))?;
                Ok(Stream::Tcp(stream))
            }
            Connector::Unix { path, .. } if direct => UnixStream::connect(path)
                .map(Stream::Unix)
                .map_err(connect_error),
            Connector::Unix { path, helper } => {
                if helper.is_none() {
                    *helper = Some(UnixHelper::spawn(path.clone()).map_err(|err| {
                        failure(Kind::Io, format!("spawn a connect thread: {err}"))
                    })?);
                }
                let asked = helper.as_ref().map(|h| h.ask.send(()));
                let answer = match (asked, helper.as_ref()) {
                    (Some(Ok(())), Some(h)) => h.answer.recv_timeout(left),
                    _ => Err(RecvTimeoutError::Disconnected),
                };
                match answer {
                    Ok(result) => result.map(Stream::Unix).map_err(connect_error),
                    Err(RecvTimeoutError::Timeout) => {
                        // Its connect may return any time later; a new
                        // helper serves the next request.
                        *helper = None;
                        Err(failure(
                            Kind::Timeout,
                            format!("connect: no answer from {} in {left:?}", path.display()),
                        ))
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        *helper = None;
                        Err(failure(Kind::Io, "the connect thread is gone".to_owned()))
                    }
                }
            }
        }
    }
}

/// A connected socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_write_timeout(Some(timeout)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            Stream::Unix(s) => s.write_all(buf),
        }
    }
}

/// The time left before `deadline`, if any.
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// An established connection.
struct Connection {
    stream: Stream,
    /// A response has already been read on it. Nothing is ever left unread
    /// after a response: extra bytes make it malformed.
    reused: bool,
}

/// The parts of a response the load generator looks at.
struct Response {
    status: u16,
    status_line: String,
    pid: Option<u32>,
    /// The server will close the connection after this response.
    close: bool,
}

impl Connection {
    /// Sends one `GET` and reads its whole response.
    fn exchange(
        &mut self,
        path: &str,
        keep_alive: bool,
        deadline: Instant,
    ) -> Result<Response, ExchangeFailure> {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: load\r\nConnection: {connection}\r\n\r\n");
        let left = remaining(deadline).ok_or_else(|| ExchangeFailure {
            kind: Kind::Timeout,
            detail: "no time left to send the request".to_owned(),
            before_response: true,
        })?;
        self.stream
            .set_write_timeout(left)
            .and_then(|()| self.stream.write_all(request.as_bytes()))
            .map_err(|err| ExchangeFailure {
                kind: Kind::of_io(&err),
                detail: format!("sending the request: {err}"),
                before_response: true,
            })?;

        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = find_head_end(&buf) {
                break at;
            }
            if buf.len() > MAX_HEAD {
                return Err(malformed(format!("no end of head in {MAX_HEAD} bytes")));
            }
            if self.fill(&mut buf, deadline, "the response head")? == 0 {
                return Err(end_of_stream(&buf, "the response head"));
            }
        };
        let head = parse_head(&buf[..head_end])?;
        if head.response.status != 200 {
            // Not read further: the connection is dropped with the failure.
            return Ok(head.response);
        }
        let length = head.content_length;
        let body_start = head_end + 4;
        while buf.len() - body_start < length {
            if self.fill(&mut buf, deadline, "the response body")? == 0 {
                let got = buf.len() - body_start;
                return Err(ExchangeFailure {
                    kind: Kind::Truncated,
                    detail: format!("the stream ended after {got} of {length} body bytes"),
                    before_response: false,
                });
            }
        }
        let extra = buf.len() - body_start - length;
        if extra > 0 {
            return Err(malformed(format!(
                "{extra} bytes beyond Content-Length {length}"
            )));
        }
        Ok(head.response)
    }

    /// Reads more bytes onto `buf`; 0 means the stream ended.
    fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Instant,
        what: &str,
    ) -> Result<usize, ExchangeFailure> {
        let before_response = buf.is_empty();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = remaining(deadline).ok_or_else(|| ExchangeFailure {
                kind: Kind::Timeout,
                detail: format!("waiting for {what} ({} bytes so far)", buf.len()),
                before_response,
            })?;
            let read = self
                .stream
                .set_read_timeout(left)
                .and_then(|()| self.stream.read(&mut chunk));
            match read {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    return Err(ExchangeFailure {
                        kind: Kind::of_io(&err),
                        detail: format!("reading {what} ({} bytes so far): {err}", buf.len()),
                        before_response,
                    })
                }
            }
        }
    }

    /// Lets the server close first, so the `TIME_WAIT` is on its side; gives
    /// up after [`CLOSE_WAIT`], as the response is complete either way.
    fn await_close(mut self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut sink = Vec::new();
        while let Ok(n) = self.fill(&mut sink, deadline, "the close") {
            if n == 0 {
                break;
            }
            sink.clear();
        }
    }
}

/// The end of the stream while reading the head.
fn end_of_stream(buf: &[u8], what: &str) -> ExchangeFailure {
    if buf.is_empty() {
        ExchangeFailure {
            kind: Kind::Closed,
            detail: "the stream ended before any response byte".to_owned(),
            before_response: true,
        }
    } else {
        ExchangeFailure {
            kind: Kind::Truncated,
            detail: format!("the stream ended in {what} after {} bytes", buf.len()),
            before_response: false,
        }
    }
}

fn malformed(detail: String) -> ExchangeFailure {
    ExchangeFailure {
        kind: Kind::Malformed,
        detail,
        before_response: false,
    }
}

/// Where the blank line that ends the head starts.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// A parsed head, and the body length it announces.
struct Head {
    response: Response,
    content_length: usize,
}

/// Parses the status line and the headers this client relies on. A 200
/// response needs a single `Content-Length` and no `Transfer-Encoding`.
fn parse_head(head: &[u8]) -> Result<Head, ExchangeFailure> {
    let text = std::str::from_utf8(head).map_err(|_| malformed("head is not UTF-8".to_owned()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|code| code.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(malformed(format!("bad status line {status_line:?}")));
    };
    // HTTP/1.0 closes unless it says otherwise; HTTP/1.1 keeps alive unless
    // it says otherwise (RFC 9112 §9.3).
    let mut close = version == "HTTP/1.0";
    let mut pid = None;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed(format!("bad header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse()
                .map_err(|_| malformed(format!("bad Content-Length {value:?}")))?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(malformed("conflicting Content-Length headers".to_owned()));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("x-standin-pid") {
            pid = value.parse().ok();
        }
    }
    let response = Response {
        status,
        status_line,
        pid,
        close,
    };
    if status != 200 {
        return Ok(Head {
            response,
            content_length: 0,
        });
    }
    match (content_length, chunked) {
        (Some(content_length), false) => Ok(Head {
            response,
            content_length,
        }),
        (_, true) => Err(malformed(
            "Transfer-Encoding is not supported; answer with Content-Length".to_owned(),
        )),
        (None, false) => Err(malformed(
            "a 200 response without Content-Length".to_owned(),
        )),
    }
}
