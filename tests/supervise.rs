//! `mas-sockets supervise` with the MAS stand-in, on real sockets passed by
//! `systemd-socket-activate` (or, for sockets it cannot make, by the test itself).

use std::fs;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::util::{
    free_port, get_tcp, get_unix, mas_sockets, max_dgram_qlen, standin, wait_until, Flooder,
    NotifyListener, TempDir,
};

pub(crate) const LONG: Duration = Duration::from_secs(20);

/// One supervise run: its scratch dir, log, notify socket and report file.
pub(crate) struct Run {
    pub(crate) dir: TempDir,
    pub(crate) child: Child,
    pub(crate) notify: NotifyListener,
}

impl Run {
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    #[track_caller]
    pub(crate) fn wait_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + LONG;
        while !self.log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{needle}` in the log within {LONG:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The stand-in's report lines (one per start).
    pub(crate) fn reports(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("report"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A field of the first report line.
    #[track_caller]
    pub(crate) fn report_field(&self, field: &str) -> String {
        let line = self
            .reports()
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("the stand-in wrote no report; log:\n{}", self.log()));
        let line = format!(" {line}");
        let rest = line
            .split_once(&format!(" {field}="))
            .unwrap_or_else(|| panic!("no {field} in {line}"))
            .1;
        if field == "fds" {
            return rest.to_owned();
        }
        rest.split(' ').next().unwrap_or_default().to_owned()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the supervisor to exit.
    #[track_caller]
    pub(crate) fn wait(&mut self) -> ExitStatus {
        let deadline = std::time::Instant::now() + LONG;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "supervise did not exit within {LONG:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to start: config text, how the sockets arrive, and extra environment.
pub(crate) struct Setup<'a> {
    pub(crate) config: &'a str,
    /// `-l` arguments for systemd-socket-activate; empty: run supervise directly.
    pub(crate) listen: Vec<String>,
    pub(crate) fdnames: Option<&'a str>,
    pub(crate) datagram: bool,
    pub(crate) env: Vec<(&'a str, String)>,
    /// Variables removed from supervise's environment.
    pub(crate) env_remove: Vec<&'a str>,
    pub(crate) args: Vec<&'a str>,
    /// A command that runs supervise (which follows it), such as `unshare`;
    /// empty: supervise runs directly. Only without `listen`.
    pub(crate) wrapper: Vec<String>,
}

impl<'a> Setup<'a> {
    pub(crate) fn new(config: &'a str) -> Self {
        Setup {
            config,
            listen: Vec::new(),
            fdnames: None,
            datagram: false,
            env: Vec::new(),
            env_remove: Vec::new(),
            args: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    pub(crate) fn listen(mut self, addr: impl ToString) -> Self {
        self.listen.push(addr.to_string());
        self
    }

    pub(crate) fn env(mut self, key: &'a str, value: impl ToString) -> Self {
        self.env.push((key, value.to_string()));
        self
    }

    pub(crate) fn env_remove(mut self, key: &'a str) -> Self {
        self.env_remove.push(key);
        self
    }

    pub(crate) fn wrapper<S: ToString>(mut self, words: impl IntoIterator<Item = S>) -> Self {
        self.wrapper = words.into_iter().map(|w| w.to_string()).collect();
        self
    }

    pub(crate) fn start(self, label: &str) -> Run {
        self.spawn(label, false)
    }

    /// As [`Setup::start`], with the supervisor leading a process group of its
    /// own, as a shell's foreground job does.
    pub(crate) fn start_in_own_group(self, label: &str) -> Run {
        self.spawn(label, true)
    }

    pub(crate) fn spawn(self, label: &str, own_group: bool) -> Run {
        let dir = TempDir::new(label);
        let config = dir.write("config.yaml", self.config);
        let notify = NotifyListener::bind(dir.join("systemd-notify.sock"));
        let log = fs::File::create(dir.join("log")).unwrap();
        let mut env = vec![
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            (
                "MAS_STANDIN_REPORT",
                dir.join("report").display().to_string(),
            ),
            ("MAS_SOCKETS_LOG_TARGET", "stderr".to_owned()),
            ("MAS_SOCKETS_RUNTIME_DIR", {
                let rt = dir.join("rt");
                fs::create_dir(&rt).unwrap();
                fs::set_permissions(&rt, fs::Permissions::from_mode(0o700)).unwrap();
                rt.display().to_string()
            }),
        ];
        // A later setting of the same variable wins.
        env.retain(|(k, _)| !self.env.iter().any(|(o, _)| o == k));
        env.extend(self.env.iter().map(|(k, v)| (*k, v.clone())));
        let mut cmd;
        env.retain(|(k, _)| !self.env_remove.contains(k));
        if self.listen.is_empty() {
            match self.wrapper.split_first() {
                Some((program, args)) => {
                    cmd = Command::new(program);
                    cmd.args(args).arg(mas_sockets());
                }
                None => cmd = Command::new(mas_sockets()),
            }
            cmd.env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
            for k in &self.env_remove {
                cmd.env_remove(k);
            }
            cmd.envs(env.iter().map(|(k, v)| (*k, v)));
        } else {
            assert!(self.wrapper.is_empty(), "a wrapper runs supervise directly");
            cmd = Command::new("systemd-socket-activate");
            for l in &self.listen {
                cmd.arg("-l").arg(l);
            }
            if let Some(names) = self.fdnames {
                cmd.arg(format!("--fdname={names}"));
            }
            if self.datagram {
                cmd.arg("--datagram");
            }
            // systemd-socket-activate passes only a few variables on.
            for (k, v) in &env {
                cmd.arg("-E").arg(format!("{k}={v}"));
            }
            cmd.arg(mas_sockets());
        }
        cmd.arg("supervise").arg("--config").arg(&config);
        cmd.args(&self.args);
        cmd.arg("--").arg(standin()).arg("server");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().expect("spawn supervise");
        Run { dir, child, notify }
    }
}

pub(crate) fn web_listener(binds: &str, extra: &str) -> String {
    format!(
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds:\n{binds}secrets:\n  encryption: s3cr3t-value\n{extra}"
    )
}

pub(crate) fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn loopback6(port: u16) -> SocketAddr {
    format!("[::1]:{port}").parse().unwrap()
}

/// Wakes systemd-socket-activate, which starts its command on the first
/// connection, once it listens.
pub(crate) fn knock(addr: SocketAddr) {
    wait_until("systemd-socket-activate to listen", LONG, || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok()
    });
}

/// A request on each bind, TCP (both loopback addresses of `localhost`) and
/// Unix, reaches the stand-in, which got exactly those sockets, its own
/// LISTEN_PID and a private notify socket; readiness is relayed once the
/// stand-in is ready, MAINPID is not, and SIGTERM stops it cleanly.
fn serve_every_bind(order_reversed: bool) {
    let port = free_port();
    let scratch = TempDir::new("sock");
    let sock = scratch.join("web.sock");
    let config = web_listener(
        &format!(
            "        - host: localhost\n          port: {port}\n        - socket: {}\n",
            sock.display()
        ),
        "standin:\n  startup_delay_ms: 300\n",
    );
    let mut setup = Setup::new(&config);
    let mut listens = vec![
        localhost(port).to_string(),
        loopback6(port).to_string(),
        sock.display().to_string(),
    ];
    let mut names = ["web", "web", "web-sock"];
    if order_reversed {
        listens.reverse();
        names.reverse();
    }
    let names = names.join(":");
    for l in listens {
        setup = setup.listen(l);
    }
    setup.fdnames = Some(&names);
    setup = setup.env("MAS_SOCKETS_STOP_TIMEOUT", "30s");
    let mut run = setup.start(if order_reversed { "reversed" } else { "order" });

    // The first request wakes systemd-socket-activate and waits in the backlog
    // through the stand-in's start-up delay.
    knock(localhost(port));
    let response = get_tcp(localhost(port), "/first").expect("request over 127.0.0.1");
    assert_eq!(response.status, 200, "{response:?}");
    let child_pid = response.pid();
    assert_ne!(
        child_pid as i32,
        run.pid(),
        "the response must come from the child"
    );
    assert!(
        response.body.contains("listener=web path=/first"),
        "{response:?}"
    );
    let response = get_tcp(loopback6(port), "/v6").expect("request over ::1");
    assert_eq!(response.pid(), child_pid);
    let response = get_unix(&sock, "/unix").expect("request over the unix socket");
    assert_eq!(response.pid(), child_pid);

    let seen = run.notify.expect_line("READY=1", LONG);
    assert!(
        seen.iter().all(|d| !d.contains("MAINPID")),
        "MAINPID must never be relayed: {seen:?}"
    );
    assert!(
        run.log().find("mas-standin").is_some()
            && run.log().find("ready (READY=1)") < run.log().find("MAS (pid"),
        "READY before the stand-in was ready:\n{}",
        run.log()
    );

    // What the child inherited.
    assert_eq!(run.report_field("pid"), child_pid.to_string());
    assert_eq!(run.report_field("listen_pid"), child_pid.to_string());
    assert_eq!(run.report_field("listen_fds"), "3");
    assert_eq!(
        run.report_field("fds"),
        "0 1 2 3 4 5",
        "no other fd may leak"
    );
    assert_eq!(run.report_field("mas_sockets_stop_timeout"), "<unset>");
    let private_notify = run.report_field("notify_socket");
    assert_ne!(private_notify, run.notify.path.display().to_string());
    let config_path = PathBuf::from(run.report_field("config"));
    assert!(
        config_path.starts_with(run.dir.join("rt")),
        "{}",
        config_path.display()
    );
    assert!(
        !config_path.exists(),
        "the rewritten config must be gone once MAS is ready"
    );

    let status = run.stop();
    assert!(status.success(), "exit {status:?}; log:\n{}", run.log());
    run.notify.expect_line("STOPPING=1", LONG);
    assert!(run.log().contains("drained"), "{}", run.log());
    assert!(!Path::new(&format!("/proc/{child_pid}")).exists() || is_zombie(child_pid));
    let leftovers: Vec<_> = fs::read_dir(run.dir.join("rt")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "files left in the runtime dir: {leftovers:?}"
    );
}

pub(crate) fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn requests_on_every_bind_reach_the_child() {
    serve_every_bind(false);
}

#[test]
fn fds_in_the_other_order_are_matched_by_address() {
    serve_every_bind(true);
}

/// The rewritten config is private while it exists and carries fd binds.
#[test]
fn rewritten_config_is_private_and_uses_fd_binds() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  startup_delay_ms: 1500\nweird:\n  big: 123456789012345678901234567890\n  neg: -9223372036854775809\n",
    );
    let run = Setup::new(&config).listen(localhost(port)).start("private");
    knock(localhost(port));
    run.wait_log("start-up delay");
    let path = PathBuf::from(run.report_field("config"));
    let meta = fs::metadata(&path).expect("config present during start-up");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("binds:\n    - fd: 0\n      kind: tcp\n"),
        "{text}"
    );
    assert!(text.contains("s3cr3t-value"), "other sections stay: {text}");
    // Integers beyond 64 bits stay plain integers, which figment reads back
    // as the same 128-bit numbers.
    assert!(
        text.contains(
            "weird:\n  big: 123456789012345678901234567890\n  neg: -9223372036854775809\n"
        ),
        "{text}"
    );
    run.notify.expect_line("READY=1", LONG);
    assert!(!path.exists());
}

/// A socket file that nobody listens on, as a process that stopped without
/// removing its socket leaves it.
pub(crate) fn stale_socket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind a socket to leave behind"));
    assert!(
        fs::symlink_metadata(path).unwrap().file_type().is_socket(),
        "{} is not a socket file",
        path.display()
    );
}

/// With no fds passed, supervise binds the configured addresses itself
/// (replacing a stale socket file), and removes the Unix socket it made when
/// it stops.
#[test]
fn without_passed_fds_it_binds_the_addresses_itself() {
    let port = free_port();
    let scratch = TempDir::new("selfbind");
    let sock = scratch.join("own.sock");
    stale_socket(&sock);
    let config = web_listener(
        &format!(
            "        - host: 127.0.0.1\n          port: {port}\n        - socket: {}\n          mode: \"600\"\n",
            sock.display()
        ),
        "",
    );
    let mut run = Setup::new(&config).start("selfbind");
    run.wait_log("is ready");
    run.notify.expect_line("READY=1", LONG);
    let r = get_tcp(localhost(port), "/own").expect("tcp");
    assert_eq!(r.status, 200);
    let r = get_unix(&sock, "/own").expect("unix, despite the stale socket file");
    assert_eq!(r.status, 200);
    assert_eq!(
        fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(run.stop().success(), "{}", run.log());
    assert!(!sock.exists(), "a socket we bound is removed on stop");
}

/// The entries of `dir`, sorted, for a before/after comparison.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Anything at a Unix socket path that is not a socket (a file with data in
/// it, a directory, a named pipe, a symbolic link) is refused with one line
/// that names the path, what is there and the fix, and is left exactly as
/// it was; MAS is not started.
#[test]
fn a_unix_socket_path_that_holds_no_socket_is_refused_and_kept() {
    type Make = fn(&Path);
    let cases: [(&str, &str, Make); 4] = [
        ("file", "a regular file", |p| {
            fs::write(p, "data\n").unwrap()
        }),
        ("dir", "a directory", |p| {
            fs::create_dir(p).unwrap();
            fs::write(p.join("inside"), "data\n").unwrap();
        }),
        ("fifo", "a named pipe (FIFO)", |p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
        }),
        ("link", "a symbolic link", |p| {
            fs::write(p.with_extension("target"), "data\n").unwrap();
            std::os::unix::fs::symlink(p.with_extension("target"), p).unwrap();
        }),
    ];
    for (label, kind, make) in cases {
        let scratch = TempDir::new(&format!("not-a-socket-{label}"));
        let sock = scratch.join("web.sock");
        make(&sock);
        let before = listing(scratch.path());
        let config = web_listener(&format!("        - socket: {}\n", sock.display()), "");
        let mut run = Setup::new(&config).start(&format!("not-a-socket-{label}"));
        let want = format!(
            "cannot bind unix {} for bind 0 of listener web at ",
            sock.display()
        );
        let fix = format!(
            ": it is {kind}, not a socket, and only a stale socket is ever replaced; move that file away, or choose another socket path in the config"
        );
        assert_refused(&mut run, &[&want, &fix]);
        let log = run.log();
        let line = log
            .lines()
            .find(|l| l.contains(&want))
            .expect("checked above");
        assert!(
            line.starts_with("mas-sockets: ") && line.ends_with(&fix),
            "{log}"
        );
        assert_eq!(
            listing(scratch.path()),
            before,
            "{label}: the directory changed"
        );
        let meta = fs::symlink_metadata(&sock).unwrap();
        match label {
            "file" => assert_eq!(fs::read_to_string(&sock).unwrap(), "data\n"),
            "dir" => assert_eq!(fs::read_to_string(sock.join("inside")).unwrap(), "data\n"),
            "fifo" => assert!(meta.file_type().is_fifo()),
            _ => {
                assert!(meta.file_type().is_symlink());
                assert_eq!(fs::read_to_string(&sock).unwrap(), "data\n");
            }
        }
    }
}

/// The temporary name a Unix socket is first bound at (`.mas<pid>` beside
/// it) gets the same care: a file there is refused and kept, a stale socket
/// there is replaced. A shell moves the file into place under its own pid,
/// which supervise keeps when the shell executes it.
#[test]
fn the_temporary_path_of_a_unix_socket_holds_only_a_stale_socket() {
    let move_to_tmp = |from: &Path| {
        [
            "sh".to_owned(),
            "-c".to_owned(),
            r#"mv -- "$0" "$1/.mas$$" && shift && exec "$@""#.to_owned(),
            from.display().to_string(),
            from.parent().unwrap().display().to_string(),
        ]
    };

    let scratch = TempDir::new("tmp-file");
    let sock = scratch.join("web.sock");
    let data = scratch.join("data");
    fs::write(&data, "data\n").unwrap();
    let config = web_listener(&format!("        - socket: {}\n", sock.display()), "");
    let mut run = Setup::new(&config)
        .wrapper(move_to_tmp(&data))
        .start("tmp-file");
    let tmp = scratch.join(&format!(".mas{}", run.pid()));
    let config_path = run.dir.join("config.yaml");
    assert_refused(
        &mut run,
        &[&format!(
            "cannot bind unix {} for bind 0 of listener web at {}",
            sock.display(),
            config_path.display()
        ),
        &format!(": its temporary path {} is a regular file, not a socket, and only a stale socket is ever replaced; move that file away, or choose another socket path", tmp.display())],
    );
    assert_eq!(fs::read_to_string(&tmp).unwrap(), "data\n");
    assert_eq!(listing(scratch.path()), [format!(".mas{}", run.pid())]);

    let scratch = TempDir::new("tmp-stale");
    let sock = scratch.join("web.sock");
    let stale = scratch.join("stale");
    stale_socket(&stale);
    let config = web_listener(&format!("        - socket: {}\n", sock.display()), "");
    let mut run = Setup::new(&config)
        .wrapper(move_to_tmp(&stale))
        .start("tmp-stale");
    run.notify.expect_line("READY=1", LONG);
    assert_eq!(get_unix(&sock, "/").expect("served").status, 200);
    assert_eq!(listing(scratch.path()), ["web.sock"]);
    assert!(run.stop().success(), "{}", run.log());
}

/// Each mismatch between passed sockets and binds gives its error, exit 2,
/// and no child is started.
#[track_caller]
fn assert_refused(run: &mut Run, needles: &[&str]) {
    let status = run.wait();
    let log = run.log();
    assert_eq!(status.code(), Some(2), "log:\n{log}");
    for needle in needles {
        assert!(log.contains(needle), "no `{needle}` in:\n{log}");
    }
    assert!(run.reports().is_empty(), "a child was started:\n{log}");
}

#[test]
fn socket_on_another_port_is_refused() {
    let (want, got) = (free_port(), free_port());
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {want}\n"),
        "",
    );
    let mut run = Setup::new(&config)
        .listen(localhost(got))
        .start("wrongport");
    knock(localhost(got));
    assert_refused(
        &mut run,
        &[
            &format!("bind 0 of listener web (host 127.0.0.1 port {want}) at "),
            &format!("has no socket: it wants tcp 127.0.0.1:{want}, and unmatched: fd 3 (tcp 127.0.0.1:{got})"),
            &format!("fd 3 (tcp 127.0.0.1:{got}) matches no configured bind"),
        ],
    );
}

#[test]
fn extra_socket_is_refused() {
    let (port, extra) = (free_port(), free_port());
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut setup = Setup::new(&config)
        .listen(localhost(port))
        .listen(localhost(extra));
    setup.fdnames = Some("web:stray");
    let mut run = setup.start("extra");
    knock(localhost(port));
    assert_refused(
        &mut run,
        &[&format!(
            "fd 4 \"stray\" (tcp 127.0.0.1:{extra}) matches no configured bind"
        )],
    );
}

#[test]
fn udp_socket_is_refused() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut setup = Setup::new(&config).listen(localhost(port));
    setup.datagram = true;
    let mut run = setup.start("udp");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Keep knocking: systemd-socket-activate starts on the first datagram.
    wait_until("supervise to exit", LONG, || {
        let _ = udp.send_to(b"x", localhost(port));
        run.child.try_wait().unwrap().is_some() || run.log().contains("mas-sockets:")
    });
    assert_refused(
        &mut run,
        &[
            "(udp 127.0.0.1:",
            "it is not a stream socket; use ListenStream=",
        ],
    );
}

#[test]
fn unix_socket_where_tcp_is_configured_is_refused() {
    let port = free_port();
    let scratch = TempDir::new("kind");
    let sock = scratch.join("x.sock");
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = Setup::new(&config)
        .listen(sock.display())
        .start("unix-for-tcp");
    wait_until("systemd-socket-activate to listen", LONG, || {
        UnixStream::connect(&sock).is_ok()
    });
    assert_refused(
        &mut run,
        &[
            &format!("has no socket: it wants tcp 127.0.0.1:{port}, and unmatched: fd 3"),
            &format!("(unix {}) matches no configured bind", sock.display()),
        ],
    );
}

#[test]
fn fd_bind_of_the_wrong_kind_is_refused() {
    let port = free_port();
    let config = web_listener("        - fd: 0\n          kind: unix\n", "");
    let mut run = Setup::new(&config).listen(localhost(port)).start("fdkind");
    knock(localhost(port));
    assert_refused(
        &mut run,
        &[
            "bind 0 of listener web (fd 0 (unix)) at ",
            &format!("wants a unix socket, but fd 3 (tcp 127.0.0.1:{port}) is tcp"),
        ],
    );
}

/// Starts supervise with `fds` placed at 3.. by the test itself, and
/// `LISTEN_FDS` set; `LISTEN_PID` as given (None: unset).
fn start_with_fds(label: &str, config: &str, fds: Vec<OwnedFd>, listen_pid: Option<&str>) -> Run {
    let dir = TempDir::new(label);
    let config_path = dir.write("config.yaml", config);
    let notify = NotifyListener::bind(dir.join("systemd-notify.sock"));
    let log = fs::File::create(dir.join("log")).unwrap();
    let mut cmd = Command::new(mas_sockets());
    cmd.arg("supervise").arg("--config").arg(&config_path);
    cmd.arg("--").arg(standin()).arg("server");
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("MAS_STANDIN_REPORT", dir.join("report"))
        .env("MAS_SOCKETS_LOG_TARGET", "stderr")
        .env("LISTEN_FDS", fds.len().to_string())
        .env_remove("LISTEN_FDNAMES");
    match listen_pid {
        Some(pid) => cmd.env("LISTEN_PID", pid),
        None => cmd.env_remove("LISTEN_PID"),
    };
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // Park the fds far above 3.. first, so moving them cannot clobber each other.
    let parked: Vec<i32> = fds
        .iter()
        .enumerate()
        .map(|(i, fd)| {
            // SAFETY: F_DUPFD_CLOEXEC on an fd we own returns a new fd or -1.
            let high =
                unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 200 + i as i32) };
            assert!(high >= 0, "fcntl");
            high
        })
        .collect();
    let targets = parked.clone();
    // SAFETY: the closure only calls dup2(2), which is async-signal-safe, on
    // fds that exist in the child (copies of the parent's).
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in targets.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn supervise");
    for fd in parked {
        // SAFETY: closing the parked copies we made above.
        unsafe { libc::close(fd) };
    }
    drop(fds);
    Run { dir, child, notify }
}

/// A passed Unix socket whose file was removed (by hand, under a running
/// socket unit) still serves MAS, but no client finds it: a warning names
/// the fd, the path and the fix, and MAS starts all the same.
#[test]
fn a_passed_unix_socket_whose_file_is_gone_is_warned_about() {
    let dir = TempDir::new("gone-sock");
    let path = dir.join("web.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    fs::remove_file(&path).unwrap();
    let config = web_listener(&format!("        - socket: {}\n", path.display()), "");
    let mut run = start_with_fds("gone-sock", &config, vec![listener.into()], None);
    run.notify.expect_line("READY=1", LONG);
    run.wait_log(&format!(
        "fd 3 (unix {path}): its path {path} is gone, so clients that connect there cannot reach MAS, which serves on the socket all the same; restart its socket unit",
        path = path.display()
    ));
    run.stop();
}

/// Two fds of one socket (a dup, as a hand-made launcher may pass) would
/// reach MAS twice: refused, naming both fds.
#[test]
fn one_socket_passed_twice_is_refused() {
    let port = free_port();
    let listener = std::net::TcpListener::bind(localhost(port)).unwrap();
    let dup = listener.try_clone().unwrap();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = start_with_fds("dup", &config, vec![listener.into(), dup.into()], None);
    assert_refused(
        &mut run,
        &[&format!(
            "fd 4 (tcp 127.0.0.1:{port}) is the same socket as fd 3, passed twice; pass each socket once"
        )],
    );
    assert!(
        !run.log().contains("matches no configured bind"),
        "{}",
        run.log()
    );
}

#[test]
fn socket_that_does_not_listen_is_refused() {
    let port = free_port();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&localhost(port).into()).unwrap();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = start_with_fds("nolisten", &config, vec![socket.into()], None);
    assert_refused(
        &mut run,
        &[
            &format!(
                "fd 3 (tcp (not listening) 127.0.0.1:{port}) cannot serve bind 0 of listener web"
            ),
            "it is not listening",
        ],
    );
}

/// A passed Unix socket that lets more users connect than its bind allows
/// (a hand-written or stale socket unit with systemd's default 0666) is
/// refused; the same socket with a bind whose `mode:` allows it serves.
#[test]
fn unix_socket_more_open_than_its_bind_is_refused() {
    let scratch = TempDir::new("open-sock");
    let sock = scratch.join("web.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let config = web_listener(&format!("        - socket: {}\n", sock.display()), "");
    let fd = OwnedFd::from(listener.try_clone().unwrap());
    let mut run = start_with_fds("open-sock", &config, vec![fd], None);
    assert_refused(
        &mut run,
        &[
            &format!("fd 3 (unix {}) cannot serve bind 0 of listener web", sock.display()),
            "its file has mode 0666, which lets any user connect, more than the bind's 0660 allows; set SocketMode=0660 in the socket unit",
        ],
    );

    let config = web_listener(
        &format!(
            "        - socket: {}\n          mode: \"666\"\n",
            sock.display()
        ),
        "",
    );
    let fd = OwnedFd::from(listener.try_clone().unwrap());
    let run = start_with_fds("open-sock-ok", &config, vec![fd], None);
    run.notify.expect_line("READY=1", LONG);
}

#[test]
fn fd_that_is_not_a_socket_is_refused() {
    let port = free_port();
    let file: OwnedFd = fs::File::open("/etc/hostname")
        .or_else(|_| fs::File::open("/dev/null"))
        .unwrap()
        .into();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = start_with_fds("notsock", &config, vec![file], None);
    assert_refused(
        &mut run,
        &["fd 3 (a ", "matches no configured bind: it is not a socket"],
    );
}

#[test]
fn listen_pid_of_another_process_is_refused_naming_both_pids() {
    let port = free_port();
    let listener = std::net::TcpListener::bind(localhost(port)).unwrap();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = start_with_fds("listenpid", &config, vec![listener.into()], Some("1"));
    let status = run.wait();
    assert_eq!(status.code(), Some(2), "{}", run.log());
    let log = run.log();
    assert!(
        log.contains(&format!("LISTEN_PID is 1 but our pid is {}", run.pid())),
        "{log}"
    );
    assert!(run.reports().is_empty());
}

/// A MAS command that cannot be run is refused before anything starts,
/// with exit status 2 (which the generated unit does not restart on): a
/// missing path, a directory, a file that is not executable, a name that
/// no directory of PATH holds.
#[test]
fn a_mas_command_that_cannot_run_is_refused_at_once() {
    let dir = TempDir::new("bad-command");
    let config = dir.write(
        "config.yaml",
        &web_listener("        - host: 127.0.0.1\n          port: 1\n", ""),
    );
    let plain = dir.write("mas-cli", "#!/bin/sh\n");
    let missing = dir.join("nowhere/mas-cli");
    for (program, path, why) in [
        (
            missing.display().to_string(),
            None,
            "No such file or directory".to_owned(),
        ),
        (
            dir.path().display().to_string(),
            None,
            "it is a directory".to_owned(),
        ),
        (
            plain.display().to_string(),
            None,
            format!("may not execute it (mode 0644); let the service's user execute it (e.g. `chmod 755 {}`)", plain.display()),
        ),
        (
            "mas-cli".to_owned(),
            Some(dir.path().display().to_string()),
            format!(
                "no directory of PATH ({}) holds it as an executable file",
                dir.path().display()
            ),
        ),
    ] {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("supervise")
            .arg("--config")
            .arg(&config)
            .arg("--runtime-dir")
            .arg(dir.join("rt"))
            .args(["--", &program, "server"])
            .env_remove("LISTEN_FDS");
        if let Some(path) = &path {
            cmd.env("PATH", path);
        }
        let out = crate::util::run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{program}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "mas-sockets: cannot execute the MAS command {program:?}: "
            )) && stderr.contains(&why),
            "{program}: {stderr}"
        );
    }
}

/// A child that exits on its own makes supervise exit non-zero.
#[test]
fn child_exiting_on_its_own_fails_the_supervisor() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  exit_at_start: true\n",
    );
    let mut run = Setup::new(&config).listen(localhost(port)).start("exit");
    knock(localhost(port));
    let status = run.wait();
    assert_eq!(status.code(), Some(1), "{}", run.log());
    assert!(run.log().contains("exited on its own"), "{}", run.log());
    let leftovers: Vec<_> = fs::read_dir(run.dir.join("rt")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A child that ignores SIGTERM is killed after the stop timeout.
#[test]
fn child_ignoring_sigterm_is_killed_after_the_stop_timeout() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  ignore_sigterm: true\n",
    );
    let mut run = Setup::new(&config)
        .listen(localhost(port))
        .env("MAS_SOCKETS_STOP_TIMEOUT", "300ms")
        .start("ignoreterm");
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    let status = run.stop();
    assert_eq!(status.code(), Some(128 + 9), "{}", run.log());
    assert!(
        run.log().contains("did not stop within 300ms; killing it"),
        "{}",
        run.log()
    );
}

/// Killing the supervisor with SIGKILL takes the child with it.
#[test]
fn child_dies_with_a_killed_supervisor() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = Setup::new(&config).listen(localhost(port)).start("orphan");
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    let child: u32 = run.report_field("pid").parse().unwrap();
    run.signal(libc::SIGKILL);
    assert_eq!(run.wait().signal(), Some(libc::SIGKILL));
    wait_until("the child to die with its supervisor", LONG, || {
        is_zombie(child)
    });
}

/// Notifications on the private socket from anyone but the child are ignored.
#[test]
fn notifications_from_other_processes_are_ignored() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  never_ready: true\n",
    );
    let mut run = Setup::new(&config).listen(localhost(port)).start("forged");
    knock(localhost(port));
    run.wait_log("never_ready is set");
    let private = run.report_field("notify_socket");
    let forger = std::os::unix::net::UnixDatagram::unbound().unwrap();
    forger
        .send_to(b"READY=1\nSTATUS=forged\n", &private)
        .unwrap();
    run.wait_log(&format!(
        "ignored a notification from pid {}",
        std::process::id()
    ));
    // A relay would have happened in the same step that logged the warning.
    while let Some(d) = run.notify.recv(Duration::from_millis(50)) {
        assert!(
            !d.contains("READY=1") && !d.contains("forged"),
            "relayed a forged datagram: {d}"
        );
    }
    run.stop();
}

/// systemd's notify socket is shared by every service, and its queue is
/// short: while other services keep it full, the supervisor's `READY=1`,
/// `RELOADING=1` and `STOPPING=1` wait for room rather than being dropped,
/// and arrive in the order they were sent.
#[test]
fn state_notifications_wait_out_a_full_notify_queue() {
    const FLOOD: &str = "STATUS=another service";
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let dir = TempDir::new("full-notify-queue");
    let systemd = NotifyListener::bind(dir.join("notify"));
    let flooder = Flooder::start(&systemd.path, FLOOD);
    // Nothing reads yet: the flooder stops at a full queue.
    let full = max_dgram_qlen();
    wait_until("the flooder to fill the queue", LONG, || {
        flooder.sent() >= full
    });
    let reader = systemd.read_slowly(Duration::from_millis(10), FLOOD);
    let mut run = Setup::new(&config)
        .env("NOTIFY_SOCKET", systemd.path.display())
        .start("full-notify-queue");

    let mut seen = reader.expect_line("READY=1", LONG);
    run.signal(libc::SIGHUP);
    seen.extend(reader.expect_line("RELOADING=1", LONG));
    seen.extend(reader.expect_line("READY=1", LONG));
    run.signal(libc::SIGTERM);
    seen.extend(reader.expect_line("STOPPING=1", LONG));
    assert!(run.wait().success(), "{}", run.log());
    drop(flooder);

    let states: Vec<&str> = seen
        .iter()
        .flat_map(|d| d.lines())
        .filter(|l| ["READY=1", "RELOADING=1", "STOPPING=1"].contains(l))
        .collect();
    assert_eq!(
        states,
        ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
        "{seen:?}"
    );
    let reloading = seen.iter().find(|d| d.contains("RELOADING=1")).unwrap();
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let log = run.log();
    assert!(
        !log.contains("cannot notify") && !log.contains("gave up on"),
        "{log}"
    );
}

/// systemd's notify socket may be an abstract name.
#[test]
fn abstract_notify_socket_receives_readiness() {
    let port = free_port();
    let name = format!("mas-sockets-test-{}-{port}", std::process::id());
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap();
    let listener = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
    listener.set_read_timeout(Some(LONG)).unwrap();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut run = Setup::new(&config)
        .listen(localhost(port))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .start("abstract");
    knock(localhost(port));
    let mut buf = [0u8; 4096];
    let mut got = String::new();
    while !got.lines().any(|l| l == "READY=1") {
        let n = listener
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no READY on @{name}: {e}\n{}", run.log()));
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(run.stop().success());
}

/// A `--log` filter with a bare word that is not a level (EnvFilter would
/// take it as a target name and log nothing of ours) is refused, from the
/// option and from the environment; levels and `target=level` pass.
#[test]
fn a_log_filter_with_a_word_that_is_not_a_level_is_refused() {
    let dir = TempDir::new("log-filter");
    // No config file: the filter is checked before the config is read, and
    // a run that passes the filter stops at the config, and never serves.
    let missing = dir.join("missing.yaml");
    let supervise = |log: Option<&str>, env: Option<&str>| {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("supervise").arg("--config").arg(&missing);
        if let Some(log) = log {
            cmd.arg(format!("--log={log}"));
        }
        cmd.arg("--").arg(standin()).arg("server");
        cmd.env("MAS_SOCKETS_LOG_TARGET", "stderr")
            .env_remove("MAS_SOCKETS_LOG");
        if let Some(value) = env {
            cmd.env("MAS_SOCKETS_LOG", value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{log:?} {env:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for (log, env, word) in [
        (Some("degub"), None, "degub"),
        (Some("banana"), None, "banana"),
        (Some("info,banana"), None, "banana"),
        (None, Some("banana"), "banana"),
    ] {
        let value = log.or(env).unwrap();
        assert_eq!(
            supervise(log, env),
            format!("mas-sockets: invalid log filter `{value}` (--log or MAS_SOCKETS_LOG): `{word}` is not a level (off, error, warn, info, debug, trace), and a target needs one after `=`; write e.g. `info`, `debug` or `mas_sockets=debug`\n")
        );
    }
    for (log, env) in [
        (Some("debug"), None),
        (Some("mas_sockets=trace"), None),
        (None, Some("WARN")),
    ] {
        let stderr = supervise(log, env);
        assert!(
            stderr.contains("cannot read the config file")
                && !stderr.contains("invalid log filter"),
            "{log:?} {env:?}: {stderr}"
        );
    }
}

/// A MAS command that carries its own --config would ignore the rewritten one.
#[test]
fn mas_command_with_its_own_config_is_refused() {
    let out = Command::new(mas_sockets())
        .args([
            "supervise",
            "--config",
            "x.yaml",
            "--",
            "mas-cli",
            "server",
            "--config",
            "y.yaml",
        ])
        .env("MAS_SOCKETS_LOG_TARGET", "stderr")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the MAS command has its own `--config`"),
        "{stderr}"
    );
}

/// A Ctrl-C in a terminal signals the whole foreground process group; MAS
/// must not take it as a first signal and then the supervisor's SIGTERM as a
/// second one, which would cut in-flight requests.
#[test]
fn sigint_to_the_process_group_drains_in_flight_requests() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let mut setup = Setup::new(&config);
    setup.args.push("--stop-timeout=20s");
    let mut run = setup.start_in_own_group("ctrl-c");
    run.notify.expect_line("READY=1", LONG);
    let slow = std::thread::spawn(move || get_tcp(localhost(port), "/slow/700"));
    run.wait_log("holding /slow/700");
    // SAFETY: kill(2) on the process group the test made for this run.
    assert_eq!(unsafe { libc::kill(-run.pid(), libc::SIGINT) }, 0);
    let response = slow
        .join()
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status, 200);
    assert!(run.wait().success(), "{}", run.log());
    assert!(!run.log().contains("hard shutdown"), "{}", run.log());
}

/// With systemd's watchdog on, MAS gets its own WATCHDOG_USEC and
/// WATCHDOG_PID, and its pings reach systemd.
#[test]
fn watchdog_pings_of_the_child_are_passed_on() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let run = Setup::new(&config)
        .listen(localhost(port))
        .env("WATCHDOG_USEC", "400000")
        .start("watchdog");
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    run.notify.expect_line("WATCHDOG=1", LONG);
    let child = run.report_field("pid");
    assert_eq!(run.report_field("watchdog_pid"), child);
    assert_eq!(run.report_field("watchdog_usec"), "400000");
}

/// A SIGHUP that arrives before MAS is ready is not passed on: MAS may not
/// handle it yet, and would die of it.
#[test]
fn sighup_before_ready_does_not_kill_the_child() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  startup_delay_ms: 1000\n",
    );
    let mut run = Setup::new(&config)
        .listen(localhost(port))
        .start("early-hup");
    knock(localhost(port));
    run.wait_log("start-up delay");
    run.signal(libc::SIGHUP);
    run.wait_log("SIGHUP ignored");
    run.notify.expect_line("READY=1", LONG);
    assert!(run.stop().success(), "{}", run.log());
}

/// Configs and environments that would make MAS read something else than
/// what mas-sockets checked are refused before anything starts.
#[test]
fn inputs_that_would_mislead_mas_are_refused() {
    let dir = TempDir::new("mislead");
    let config = dir.write(
        "c.yaml",
        &web_listener("        - host: 127.0.0.1\n          port: 18999\n", ""),
    );
    let colon = dir.join("a:b");
    fs::create_dir(&colon).unwrap();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("MAS_SOCKETS_RUNTIME_DIR", colon.display().to_string())],
            "contains `:`, which MAS would take as a separator",
        ),
        (
            vec![("MAS_HTTP_LISTENERS", "[]".into())],
            "MAS_HTTP_LISTENERS is set: MAS would take listeners from it",
        ),
        (vec![("LISTEN_FDS", "2147483644".into())], "LISTEN_FDS"),
        (
            vec![("MAS_SOCKETS_STOP_TIMEOUT", "10000000000000000000s".into())],
            "longer than the 24h",
        ),
    ];
    for (env, want) in cases {
        let mut cmd = Command::new(mas_sockets());
        cmd.arg("supervise")
            .arg("--config")
            .arg(&config)
            .arg("--")
            .arg(standin())
            .arg("server");
        cmd.env("MAS_SOCKETS_LOG_TARGET", "stderr")
            .env("MAS_STANDIN_REPORT", dir.join("report"));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(want), "{env:?}: no `{want}` in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!dir.join("report").exists(), "{env:?} started MAS");
    }
}

/// A Unix socket another process serves on is not taken over.
#[test]
fn a_live_unix_socket_of_another_process_is_left_alone() {
    let dir = TempDir::new("live");
    let sock = dir.join("live.sock");
    let other = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let config = web_listener(&format!("        - socket: {}\n", sock.display()), "");
    let mut run = Setup::new(&config).start("live");
    let status = run.wait();
    assert_eq!(status.code(), Some(2), "{}", run.log());
    assert!(
        run.log().contains("a process is listening on it already"),
        "{}",
        run.log()
    );
    assert!(
        UnixStream::connect(&sock).is_ok(),
        "the other process lost its socket"
    );
    drop(other);
}

/// A port-only bind means MAS's dual-stack `[::]` socket; an IPv6-only one
/// would shut out IPv4 clients.
#[test]
fn ipv6_only_socket_for_a_dual_stack_bind_is_refused() {
    let port = free_port();
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
    socket.set_only_v6(true).unwrap();
    socket
        .bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())
        .unwrap();
    socket.listen(16).unwrap();
    let config = web_listener(&format!("        - port: {port}\n"), "");
    let mut run = start_with_fds("v6only", &config, vec![socket.into()], None);
    assert_refused(
        &mut run,
        &["it is IPv6-only (IPV6_V6ONLY)", "BindIPv6Only=both"],
    );
}

/// A notification longer than systemd reads is ignored whole, as systemd
/// ignores it: the part that fits must not count, or a `READY=1` at its start
/// would report a MAS ready that is not, and a value cut off at the end would
/// be relayed as another.
#[test]
fn an_oversized_notification_is_ignored_whole() {
    let port = free_port();
    let padding = "x".repeat(5000);
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        &format!(
            "standin:\n  never_ready: true\n  notify_at_start: \"READY=1\\nSTATUS={padding}\"\n"
        ),
    );
    let mut run = Setup::new(&config)
        .listen(localhost(port))
        .start("oversized");
    knock(localhost(port));
    run.wait_log("never_ready is set");
    let child = run.report_field("pid");
    run.wait_log(&format!(
        "ignored a notification of more than 4096 bytes from MAS (pid {child})"
    ));
    // A relay would have happened in the same step that logged the warning.
    while let Some(d) = run.notify.recv(Duration::from_millis(50)) {
        assert!(
            !d.lines()
                .any(|l| l == "READY=1" || l.starts_with("STATUS=xxx")),
            "relayed part of an oversized datagram: {d}"
        );
    }
    run.stop();
}

/// A MAS that says `RELOADING=1` before it is ready has nothing to reload:
/// systemd is still waiting for the start, and a reload state then (with no
/// `MONOTONIC_USEC=`, as here) would only confuse it. It is logged and not
/// relayed; the start ends with `READY=1` as usual.
#[test]
fn reloading_before_ready_is_not_relayed() {
    let port = free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  startup_delay_ms: 300\n  notify_at_start: \"RELOADING=1\"\n",
    );
    let mut run = Setup::new(&config)
        .listen(localhost(port))
        .start("reloading-early");
    knock(localhost(port));
    let seen = run.notify.expect_line("READY=1", LONG);
    let child = run.report_field("pid");
    assert!(
        !seen.iter().any(|d| d.lines().any(|l| l == "RELOADING=1")),
        "relayed RELOADING=1 before READY=1: {seen:?}"
    );
    run.wait_log(&format!(
        "MAS (pid {child}) sent RELOADING=1 before it was ready; not relayed"
    ));
    run.stop();
}

/// A runtime directory whose path leaves no room for the socket names in it
/// (a socket address holds 107 bytes) is refused up front, once, with the fix.
#[test]
fn a_runtime_directory_too_long_for_its_sockets_is_refused() {
    let dir = TempDir::new("long-rt");
    let config = dir.write(
        "c.yaml",
        &web_listener("        - host: 127.0.0.1\n          port: 18998\n", ""),
    );
    let long = dir.join(&"d".repeat(120 - dir.path().as_os_str().len().min(100)));
    fs::create_dir(&long).unwrap();
    let out = Command::new(mas_sockets())
        .arg("supervise")
        .arg("--config")
        .arg(&config)
        .arg("--runtime-dir")
        .arg(&long)
        .arg("--")
        .arg(standin())
        .arg("server")
        .env("MAS_SOCKETS_LOG_TARGET", "stderr")
        .env("MAS_STANDIN_REPORT", dir.join("report"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "mas-sockets: the runtime directory {} is ",
            long.display()
        )) && stderr.contains("give a shorter one with --runtime-dir"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches(&*long.to_string_lossy()).count(),
        1,
        "{stderr}"
    );
    assert!(!dir.join("report").exists(), "MAS was started");
}

/// A bad value from an option's environment variable (a drop-in's
/// `Environment=`) is one line that names the variable, not only the option.
#[test]
fn a_bad_option_variable_is_named() {
    let mut cmd = Command::new(mas_sockets());
    cmd.args(["supervise", "--", "true"])
        .env("MAS_SOCKETS_STOP_TIMEOUT", "banana");
    let out = cmd.output().expect("run mas-sockets");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mas-sockets: MAS_SOCKETS_STOP_TIMEOUT=\"banana\": invalid value 'banana' for '--stop-timeout <DURATION>'"),
        "{stderr}"
    );
}
