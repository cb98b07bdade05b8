//! Helpers shared by the integration tests: temp dirs, the built binaries,
//! commands that explain themselves when they fail, a tiny HTTP client, and
//! waiting for events with a deadline instead of sleeping.

#![allow(dead_code)]

pub mod container;
pub mod deploy;
pub mod load;
pub mod nginx;
pub mod packages;
pub mod systemd;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The built `mas-sockets` binary.
pub fn mas_sockets() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mas-sockets"))
}

/// The MAS stand-in, built next to `mas-sockets` by `cargo build --workspace`.
pub fn standin() -> PathBuf {
    let path = mas_sockets().with_file_name("mas-standin");
    assert!(
        path.exists(),
        "{} is missing; build it first with `cargo build --workspace` (scripts/test does)",
        path.display()
    );
    path
}

/// A running homeserver stand-in on 127.0.0.1; killed on drop.
pub struct Homeserver {
    child: std::process::Child,
    pub port: u16,
}

impl Homeserver {
    /// Starts `homeserver-standin` (built next to the MAS stand-in) on a free
    /// port and waits until it accepts connections.
    pub fn start() -> Homeserver {
        let binary = standin().with_file_name("homeserver-standin");
        let port = free_port();
        // SIGTERM when the thread that starts it ends, also when the test
        // process is killed and no Drop runs (setpriv execs it).
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--"])
            .arg(&binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let hs = Homeserver { child, port };
        wait_until(
            "the homeserver stand-in to listen",
            Duration::from_secs(20),
            || TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_ok(),
        );
        hs
    }
}

impl Homeserver {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Homeserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory removed on drop, world-traversable so that services running
/// as another user can read the configs placed in it.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mas-sockets-test.{}.{n}.{label}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes a file (mode 0644) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).expect("write temp file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MAS_SOCKETS_KEEP_TMP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// Describes a finished command for assertion messages.
pub fn explain(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command to completion and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed\n{}",
        explain(cmd, &out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (and, in practice, on ::1).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        if TcpListener::bind(("::1", port)).is_ok()
            || TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes; the poll is on an
/// observable condition, not a guess at how long something takes.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The stand-in's pid, from its `x-standin-pid` header.
    pub fn pid(&self) -> u32 {
        self.header("x-standin-pid")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no x-standin-pid in {self:?}"))
    }
}

pub fn exchange(mut stream: impl Read + Write, path: &str) -> std::io::Result<Response> {
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no header end in {text:?}"),
        )
    })?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, head.to_owned()))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// `GET path` over TCP, with a generous timeout.
pub fn get_tcp(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    exchange(stream, path)
}

/// `GET path` over a Unix socket.
pub fn get_unix(path: &Path, url: &str) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    exchange(stream, url)
}

/// A notify socket a test listens on, standing in for systemd's.
pub struct NotifyListener {
    pub path: PathBuf,
    socket: UnixDatagram,
}

impl NotifyListener {
    pub fn bind(path: PathBuf) -> NotifyListener {
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        NotifyListener { path, socket }
    }

    /// The next datagram, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("timeout");
        let mut buf = vec![0u8; 4096];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => return Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("recv on the test's notify socket: {e}"),
            }
        }
    }

    /// Receives until a datagram contains `line`; returns everything received.
    #[track_caller]
    pub fn expect_line(&self, line: &str, timeout: Duration) -> Vec<String> {
        expect_line(line, timeout, |left| self.recv(left))
    }
}

/// The longest queue of a Unix datagram socket (`net.unix.max_dgram_qlen`);
/// a sender that finds it full waits, or gets `EAGAIN` when it does not block.
pub fn max_dgram_qlen() -> u64 {
    fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .expect("read net.unix.max_dgram_qlen")
        .trim()
        .parse()
        .expect("a number")
}

/// A thread that loops until it is dropped: `turn` runs while the flag is
/// unset, and returns so often (its socket's timeout) that a drop is quick.
struct Looping {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Looping {
    fn spawn(mut turn: impl FnMut() -> std::ops::ControlFlow<()> + Send + 'static) -> Looping {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) && turn().is_continue() {}
            }
        });
        Looping {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Looping {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A socket call that ran out of its timeout (or met a signal): try again.
fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Another service talking to the same notify socket: sends one line over
/// and over in blocking `send_to(2)` calls, as `sd_notify(3)` does, so that
/// the queue is full whenever the reader has taken a datagram. Stops on drop.
pub struct Flooder {
    sent: Arc<AtomicU64>,
    _thread: Looping,
}

impl Flooder {
    pub fn start(path: &Path, line: &'static str) -> Flooder {
        let sent = Arc::new(AtomicU64::new(0));
        let socket = UnixDatagram::unbound().expect("flooder socket");
        // Blocking, but it looks at the stop flag now and then while the
        // queue is full.
        socket
            .set_write_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let path = path.to_owned();
        let thread = Looping::spawn({
            let sent = sent.clone();
            move || {
                match socket.send_to(line.as_bytes(), &path) {
                    Ok(_) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if timed_out(&e) => {}
                    Err(e) => panic!("flooding {}: {e}", path.display()),
                }
                std::ops::ControlFlow::Continue(())
            }
        });
        Flooder {
            sent,
            _thread: thread,
        }
    }

    /// How many datagrams went out so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// A busy systemd: takes one datagram off a [`NotifyListener`]'s queue every
/// `every`, and hands on those that are not `skip` (the flood). Stops on drop.
pub struct SlowReader {
    datagrams: std::sync::mpsc::Receiver<String>,
    _thread: Looping,
}

impl NotifyListener {
    pub fn read_slowly(&self, every: Duration, skip: &'static str) -> SlowReader {
        let socket = self.socket.try_clone().expect("clone the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let (tx, datagrams) = std::sync::mpsc::channel();
        let mut buf = vec![0u8; 4096];
        let thread = Looping::spawn(move || {
            // The pace of the reader, not a wait for an event.
            std::thread::sleep(every);
            match socket.recv(&mut buf) {
                Ok(n) => {
                    let d = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if d != skip && tx.send(d).is_err() {
                        return std::ops::ControlFlow::Break(());
                    }
                }
                Err(e) if timed_out(&e) => {}
                Err(e) => panic!("recv on the test's notify socket: {e}"),
            }
            std::ops::ControlFlow::Continue(())
        });
        SlowReader {
            datagrams,
            _thread: thread,
        }
    }
}

impl SlowReader {
    /// Receives until a datagram contains `line`; returns everything received.
    #[track_caller]
    pub fn expect_line(&self, line: &str, timeout: Duration) -> Vec<String> {
        expect_line(line, timeout, |left| self.datagrams.recv_timeout(left).ok())
    }
}

/// Takes datagrams from `next` (given the time left; `None` when it ran
/// out) until one has `line`; returns all it took.
#[track_caller]
fn expect_line(
    line: &str,
    timeout: Duration,
    mut next: impl FnMut(Duration) -> Option<String>,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no `{line}` within {timeout:?}; got {seen:?}"
        );
        if let Some(d) = next(left) {
            let hit = d.lines().any(|l| l == line);
            seen.push(d);
            if hit {
                return seen;
            }
        }
    }
}
