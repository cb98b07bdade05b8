//! Helpers for running the built `mas-standin` and watching what it does.
//!
//! Every wait has a timeout and waits for an observable event (a datagram, a
//! log line, an exit, a connect). On failure, helpers panic with the command,
//! its exit status and its whole stderr.

#![allow(dead_code)] // Each helper is used by some tests, not all.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long any single awaited event may take before a test fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often polled conditions (log lines, exits, connects) are checked.
const POLL: Duration = Duration::from_millis(10);

/// A private directory for one test, removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mas-standin-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a file into the scratch dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).expect("write scratch file");
        path
    }

    /// Writes `config.yaml` with one listener per `(name, binds)` pair (see
    /// [`config_yaml`]) and returns its path.
    pub fn config(&self, listeners: &[(&str, &str)]) -> PathBuf {
        self.write("config.yaml", &config_yaml(listeners))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A localhost port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// `127.0.0.1:port`.
pub fn localhost(port: u16) -> SocketAddr {
    (Ipv4Addr::LOCALHOST, port).into()
}

/// The binds `[{host: 127.0.0.1, port: PORT}]`.
pub fn tcp_bind(port: u16) -> String {
    format!("[{{host: 127.0.0.1, port: {port}}}]")
}

/// A YAML config with one listener per `(name, binds)` pair; `binds` is a
/// YAML flow sequence such as `[{fd: 0}]`.
pub fn config_yaml(listeners: &[(&str, &str)]) -> String {
    let mut yaml = String::from("http:\n  public_base: https://auth.example.com/\n  listeners:\n");
    for (name, binds) in listeners {
        let _ = write!(
            yaml,
            "    - name: {name}\n      resources: [{{name: health}}]\n      binds: {binds}\n"
        );
    }
    yaml
}

/// How to start the stand-in.
pub struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// When non-empty, start it through `systemd-socket-activate -l ADDR...`,
    /// which execs it (same pid) on the first connection.
    activate: Vec<SocketAddr>,
}

/// Variables of the test's own environment that must not reach the stand-in.
const SCRUBBED: &[&str] = &[
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "MAS_CONFIG",
    "MAS_STANDIN_REPORT",
];

pub fn launch() -> Launch {
    Launch {
        args: vec!["server".to_owned()],
        env: Vec::new(),
        activate: Vec::new(),
    }
}

/// `mas-cli server --config CONFIG`, reporting to `notify`.
pub fn launch_with(config: &Path, notify: &NotifySocket) -> Launch {
    launch().config(config).notify(notify)
}

impl Launch {
    pub fn config(mut self, path: &Path) -> Self {
        self.args.push("--config".to_owned());
        self.args.push(path.display().to_string());
        self
    }

    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn notify(self, notify: &NotifySocket) -> Self {
        self.env("NOTIFY_SOCKET", notify.path.display())
    }

    pub fn activate_on(mut self, addr: SocketAddr) -> Self {
        self.activate.push(addr);
        self
    }

    /// Starts the process, stderr going to a file in `scratch`.
    pub fn spawn(self, scratch: &Scratch) -> Standin {
        let binary = env!("CARGO_BIN_EXE_mas-standin");
        let mut command = if self.activate.is_empty() {
            let mut command = Command::new(binary);
            for name in SCRUBBED {
                command.env_remove(name);
            }
            command
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .args(&self.args);
            command
        } else {
            // systemd-socket-activate passes on only the variables named with -E.
            let mut command = Command::new("systemd-socket-activate");
            for addr in &self.activate {
                command.arg("-l").arg(addr.to_string());
            }
            for (name, value) in &self.env {
                command.arg("-E").arg(format!("{name}={value}"));
            }
            command.arg(binary).args(&self.args);
            command
        };
        let stderr_path = scratch.path("stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("create stderr log");
        command
            .current_dir(&scratch.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let shown = format!("{command:?}");
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
        Standin {
            child,
            stderr_path,
            shown,
            exit: None,
        }
    }
}

/// A running (or exited) stand-in; killed with SIGKILL when dropped.
pub struct Standin {
    child: Child,
    stderr_path: PathBuf,
    shown: String,
    exit: Option<ExitStatus>,
}

impl Standin {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Panics with everything known about the process.
    #[track_caller]
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\ncommand: {}\nexit: {:?}\nstderr:\n{}",
            self.shown,
            self.exit,
            self.stderr()
        );
    }

    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.pid()).expect("pid fits in i32");
        if let Err(err) = kill(Pid::from_raw(pid), signal) {
            self.fail(&format!("cannot send {signal}: {err}"));
        }
    }

    /// Polls for exit; `None` if still running after `timeout`.
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for the exit and returns its code.
    #[track_caller]
    pub fn wait_exit(&mut self) -> i32 {
        match self.try_wait_exit(EVENT_TIMEOUT) {
            Some(status) => match status.code() {
                Some(code) => code,
                None => self.fail(&format!("killed by a signal: {status}")),
            },
            None => self.fail("did not exit in time"),
        }
    }

    /// Waits until stderr has a line containing `needle`, and returns it.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            if let Some(line) = self.stderr().lines().find(|line| line.contains(needle)) {
                return line.to_owned();
            }
            if Instant::now() >= deadline {
                self.fail(&format!("no log line containing {needle:?}"));
            }
            thread::sleep(POLL);
        }
    }

    /// Connects to `addr`, retrying while it is refused (the activator not yet
    /// listening).
    #[track_caller]
    pub fn connect(&self, addr: SocketAddr) -> TcpStream {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            match TcpStream::connect(addr) {
                Ok(stream) => return stream,
                Err(err) if Instant::now() >= deadline => {
                    self.fail(&format!("cannot connect to {addr}: {err}"))
                }
                Err(_) => thread::sleep(POLL),
            }
        }
    }

    /// `GET path` on `addr`, retried until the socket accepts connections.
    #[track_caller]
    pub fn get(&self, addr: SocketAddr, path: &str) -> HttpResponse {
        let mut stream = self.connect(addr);
        send_get(&mut stream, path);
        read_response(&mut stream)
            .unwrap_or_else(|err| self.fail(&format!("GET {path} on {addr}: {err}")))
    }

    /// Sends `GET /slow/MS` on a new connection and returns that connection
    /// once the stand-in says it holds the request.
    pub fn hold_request(&self, addr: SocketAddr, ms: u64) -> TcpStream {
        let mut client = self.connect(addr);
        send_get(&mut client, &format!("/slow/{ms}"));
        self.wait_for_log(&format!("holding /slow/{ms}"));
        client
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The notify socket a test listens on, like a service manager's.
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    pub fn bind(scratch: &Scratch) -> Self {
        let path = scratch.path("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self { socket, path }
    }

    /// The next datagram, or `None` if none comes within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set timeout");
        let mut buf = [0u8; 4096];
        let received = loop {
            match self.socket.recv(&mut buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match received {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(err) => panic!("recv on notify socket: {err}"),
        }
    }

    /// The next datagram, which must be `want` exactly.
    #[track_caller]
    pub fn expect(&self, standin: &Standin, want: &str) {
        match self.recv(EVENT_TIMEOUT) {
            Some(got) if got == want => {}
            Some(got) => standin.fail(&format!("notify: expected {want:?}, got {got:?}")),
            None => standin.fail(&format!("notify: expected {want:?}, got nothing")),
        }
    }

    /// The next datagram, which must be `MAINPID=` with the stand-in's pid.
    #[track_caller]
    pub fn expect_mainpid(&self, standin: &Standin) {
        self.expect(standin, &format!("MAINPID={}\n", standin.pid()));
    }

    /// The start-up of a stand-in that comes up: `MAINPID=`, then `READY=1`.
    #[track_caller]
    pub fn expect_ready(&self, standin: &Standin) {
        self.expect_mainpid(standin);
        self.expect(standin, "READY=1\n");
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a `GET` that asks the server to close the connection afterwards.
pub fn send_get(stream: &mut impl Write, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: standin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write request");
}

/// Reads a whole response up to the server's close.
pub fn read_response(stream: &mut impl Read) -> io::Result<HttpResponse> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other(format!("incomplete response: {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}
