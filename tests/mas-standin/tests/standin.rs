//! The stand-in behaves as MAS does where mas-sockets depends on it: socket
//! taking and binding, notify messages and their order, and signals.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::time::{clock_gettime, ClockId};

use util::*;

/// A window in which something must *not* happen.
const QUIET: Duration = Duration::from_millis(300);

fn monotonic_usec() -> i128 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    i128::from(now.tv_sec()) * 1_000_000 + i128::from(now.tv_nsec()) / 1_000
}

/// A host + port bind is served; `MAINPID=` comes first, then `READY=1`, and
/// SIGTERM ends with `STOPPING=1` and exit status 0.
#[test]
fn host_port_bind_serves_health_between_ready_and_stopping() {
    let scratch = Scratch::new("health");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("internal", &tcp_bind(port))]);
    let mut standin = launch_with(&config, &notify).spawn(&scratch);

    notify.expect_ready(&standin);
    let response = standin.get(localhost(port), "/health");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
    assert_eq!(response.header("x-standin-listener"), Some("internal"));
    assert_eq!(
        response.header("x-standin-pid"),
        Some(standin.pid().to_string().as_str())
    );
    standin.wait_for_log(&format!("listener internal: bound 127.0.0.1:{port}"));

    standin.signal(Signal::SIGTERM);
    notify.expect(&standin, "STOPPING=1\n");
    assert_eq!(standin.wait_exit(), 0);
    standin.wait_for_log("exit 0");
}

/// During the start-up delay nothing is taken or bound: a connection to an
/// inherited socket waits in the backlog and is answered after `READY=1`,
/// while a host + port bind is not even listening yet.
#[test]
fn startup_delay_holds_ready_and_queues_connections() {
    const DELAY: Duration = Duration::from_millis(1500);
    let scratch = Scratch::new("delay");
    let notify = NotifySocket::bind(&scratch);
    let (inherited, late) = (free_port(), free_port());
    let config = scratch.config(&[("web", "[{fd: 0}]"), ("late", &tcp_bind(late))]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_STARTUP_DELAY_MS", DELAY.as_millis())
        .activate_on(localhost(inherited))
        .spawn(&scratch);

    // This connection makes the activator exec the stand-in.
    let mut client = standin.connect(localhost(inherited));
    let connected_at = Instant::now();
    send_get(&mut client, "/health");
    notify.expect_mainpid(&standin);

    match TcpStream::connect(localhost(late)) {
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {}
        other => standin.fail(&format!(
            "port {late} must not listen during the delay: {other:?}"
        )),
    }
    client.set_read_timeout(Some(QUIET)).expect("set timeout");
    let mut byte = [0u8; 1];
    match client.read(&mut byte) {
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => standin.fail(&format!("answered during the start-up delay: {other:?}")),
    }

    notify.expect(&standin, "READY=1\n");
    let waited = connected_at.elapsed();
    assert!(
        waited >= DELAY,
        "READY=1 after {waited:?}, before the {DELAY:?} delay"
    );
    client
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("set timeout");
    let response = read_response(&mut client).expect("response after READY=1");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
    assert_eq!(response.header("x-standin-listener"), Some("web"));

    standin.signal(Signal::SIGTERM);
    assert_eq!(standin.wait_exit(), 0);
}

/// `fd:` binds pick inherited sockets by position in `LISTEN_FDS`, whatever
/// the listener order.
#[test]
fn fd_binds_take_sockets_by_position() {
    let scratch = Scratch::new("by-position");
    let notify = NotifySocket::bind(&scratch);
    let (fd3, fd4) = (free_port(), free_port());
    let config = scratch.config(&[("first", "[{fd: 1}]"), ("second", "[{}]")]);
    let mut standin = launch_with(&config, &notify)
        .activate_on(localhost(fd3))
        .activate_on(localhost(fd4))
        .spawn(&scratch);

    let on_fd3 = standin.get(localhost(fd3), "/which");
    notify.expect_ready(&standin);
    let on_fd4 = standin.get(localhost(fd4), "/which");
    assert_eq!(on_fd3.header("x-standin-listener"), Some("second"));
    assert_eq!(on_fd4.header("x-standin-listener"), Some("first"));
    let pid = standin.pid();
    assert_eq!(
        on_fd4.body,
        format!("pid={pid} listener=first path=/which\n")
    );
    standin.wait_for_log("listener first: took fd 4 (LISTEN_FDS index 1, tcp)");

    standin.signal(Signal::SIGINT);
    notify.expect(&standin, "STOPPING=1\n");
    assert_eq!(standin.wait_exit(), 0);
}

/// A wrong kind or a missing index stops the start-up with status 1, after
/// `MAINPID=` and before `READY=1`, with one error line naming the bind.
#[test]
fn unusable_fd_bind_fails_before_ready() {
    for (binds, error) in [
        (
            "[{fd: 0, kind: unix}]",
            "fd 3 is not usable as `kind: unix`",
        ),
        ("[{fd: 1}]", "no socket at LISTEN_FDS index 1 (fd 4)"),
    ] {
        let scratch = Scratch::new("bad-fd");
        let notify = NotifySocket::bind(&scratch);
        let port = free_port();
        let config = scratch.config(&[("web", binds)]);
        let mut standin = launch_with(&config, &notify)
            .activate_on(localhost(port))
            .spawn(&scratch);
        let _client = standin.connect(localhost(port));

        notify.expect_mainpid(&standin);
        assert_eq!(standin.wait_exit(), 1);
        if let Some(got) = notify.recv(QUIET) {
            standin.fail(&format!("nothing may follow MAINPID=, got {got:?}"));
        }
        let line = standin.wait_for_log("error: ");
        assert!(
            line.contains("http.listeners[0].binds[0] (listener web): "),
            "{line}"
        );
        assert!(line.contains(error), "{line}");
    }
}

/// Inherited fds are not ours when `LISTEN_PID` names another process.
#[test]
fn listen_pid_of_another_process_gives_no_fds() {
    let scratch = Scratch::new("foreign-pid");
    let config = scratch.config(&[("web", "[{fd: 0}]")]);
    let mut standin = launch()
        .config(&config)
        .env("LISTEN_FDS", 1)
        .env("LISTEN_PID", 1)
        .spawn(&scratch);
    assert_eq!(standin.wait_exit(), 1);
    standin.wait_for_log("no socket at LISTEN_FDS index 0 (fd 3)");
}

/// SIGTERM lets a request in flight finish, then the process exits 0.
#[test]
fn sigterm_lets_in_flight_request_finish() {
    let scratch = Scratch::new("soft-stop");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &format!("[{{address: '127.0.0.1:{port}'}}]"))]);
    let mut standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let mut client = standin.hold_request(localhost(port), 300);
    standin.signal(Signal::SIGTERM);
    notify.expect(&standin, "STOPPING=1\n");

    let response = read_response(&mut client).expect("the in-flight request gets its answer");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        format!("pid={} listener=web path=/slow/300\n", standin.pid())
    );
    assert_eq!(standin.wait_exit(), 0);
    standin.wait_for_log("drained");
}

/// As MAS's hyper does, SIGTERM closes a connection that was accepted but
/// has sent nothing yet: it is not in flight, and gets no answer.
#[test]
fn sigterm_closes_an_accepted_connection_that_sent_nothing() {
    let scratch = Scratch::new("unread");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &tcp_bind(port))]);
    let mut standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let mut client = standin.connect(localhost(port));
    // Accepted once it has left the listening socket's accept queue.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while accept_queue(port) != 0 {
        assert!(Instant::now() < deadline, "the stand-in does not accept");
        std::thread::sleep(Duration::from_millis(5));
    }
    standin.signal(Signal::SIGTERM);
    notify.expect(&standin, "STOPPING=1\n");
    assert_eq!(standin.wait_exit(), 0);
    client
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("set timeout");
    let mut raw = Vec::new();
    let _ = client.read_to_end(&mut raw);
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
}

/// How many connections wait in the accept queue of the TCP socket that
/// listens on `port` (`ss`'s Recv-Q of a listening socket).
fn accept_queue(port: u16) -> usize {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no socket listens on port {port}: {text:?}"))
}

/// A second SIGTERM ends the wait for in-flight requests at once.
#[test]
fn second_sigterm_forces_exit() {
    let scratch = Scratch::new("hard-stop");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &format!("[{{port: {port}}}]"))]);
    let mut standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let _client = standin.hold_request(localhost(port), 60000);
    standin.signal(Signal::SIGTERM);
    notify.expect(&standin, "STOPPING=1\n");
    standin.signal(Signal::SIGTERM);
    assert_eq!(standin.wait_exit(), 0);
    standin.wait_for_log("second SIGTERM received: hard shutdown");
}

/// The grace period bounds the wait for in-flight requests.
#[test]
fn grace_period_bounds_the_drain() {
    let scratch = Scratch::new("grace");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &format!("[{{port: {port}}}]"))]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_GRACE_MS", 200)
        .spawn(&scratch);
    notify.expect_ready(&standin);
    let _client = standin.hold_request(localhost(port), 60000);
    standin.signal(Signal::SIGTERM);
    assert_eq!(standin.wait_exit(), 0);
    standin.wait_for_log("grace period over: hard shutdown");
}

/// SIGHUP: `RELOADING=1` with the current `MONOTONIC_USEC` in one datagram,
/// then `READY=1`.
#[test]
fn sighup_reloads_with_monotonic_usec_then_ready() {
    let scratch = Scratch::new("reload");
    let notify = NotifySocket::bind(&scratch);
    let config = scratch.config(&[("web", "[{port: 0}]")]);
    let standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let before = monotonic_usec();
    standin.signal(Signal::SIGHUP);
    let datagram = notify
        .recv(EVENT_TIMEOUT)
        .unwrap_or_else(|| standin.fail("no datagram after SIGHUP"));
    let after = monotonic_usec();
    let usec = datagram
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|usec| usec.parse::<i128>().ok())
        .unwrap_or_else(|| {
            standin.fail(&format!("not RELOADING=1 + MONOTONIC_USEC: {datagram:?}"))
        });
    assert!(
        (before..=after).contains(&usec),
        "{before} <= {usec} <= {after}"
    );
    notify.expect(&standin, "READY=1\n");
}

/// With `WATCHDOG_USEC` for this pid, `WATCHDOG=1` comes every half period
/// until SIGUSR1 silences it (the `watchdog_stop_on_sigusr1` switch).
#[test]
fn watchdog_pings_until_sigusr1() {
    let scratch = Scratch::new("watchdog");
    let notify = NotifySocket::bind(&scratch);
    let config = scratch.config(&[("web", "[{port: 0}]")]);
    let standin = launch_with(&config, &notify)
        .env("WATCHDOG_USEC", 200_000)
        .env("MAS_STANDIN_WATCHDOG_STOP_ON_SIGUSR1", 1)
        .spawn(&scratch);
    notify.expect_ready(&standin);
    for _ in 0..3 {
        notify.expect(&standin, "WATCHDOG=1\n");
    }
    standin.signal(Signal::SIGUSR1);
    standin.wait_for_log("watchdog: pings stopped");
    // Pings sent before the stop may still be queued; after it, none may come.
    while let Some(got) = notify.recv(Duration::from_millis(1)) {
        if got != "WATCHDOG=1\n" {
            standin.fail(&format!("unexpected datagram {got:?}"));
        }
    }
    if let Some(got) = notify.recv(QUIET) {
        standin.fail(&format!("{got:?} after the stop switch"));
    }
}

/// A watchdog meant for another pid (`WATCHDOG_PID`) is not this process's.
#[test]
fn watchdog_for_another_pid_sends_nothing() {
    let scratch = Scratch::new("watchdog-pid");
    let notify = NotifySocket::bind(&scratch);
    let config = scratch.config(&[("web", "[{port: 0}]")]);
    let standin = launch_with(&config, &notify)
        .env("WATCHDOG_USEC", 100_000)
        .env("WATCHDOG_PID", 1)
        .spawn(&scratch);
    notify.expect_ready(&standin);
    if let Some(got) = notify.recv(QUIET) {
        standin.fail(&format!("expected no watchdog ping, got {got:?}"));
    }
}

/// A Unix socket bind gets its mode before it appears at its path, and the
/// path is left in place at exit.
#[test]
fn unix_socket_bind_applies_mode_and_stays_after_exit() {
    let scratch = Scratch::new("unix");
    let notify = NotifySocket::bind(&scratch);
    let socket = scratch.path("mas.sock");
    // A stale file from an earlier run must not block the start.
    scratch.write("mas.sock", "stale");
    let config = scratch.config(&[(
        "web",
        &format!("[{{socket: {}, mode: '600'}}]", socket.display()),
    )]);
    let mut standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let meta = std::fs::metadata(&socket).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let mut client = UnixStream::connect(&socket).expect("connect to the unix socket");
    send_get(&mut client, "/health");
    let response = read_response(&mut client).expect("response over the unix socket");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));

    standin.signal(Signal::SIGTERM);
    assert_eq!(standin.wait_exit(), 0);
    assert!(socket.exists(), "MAS never unlinks its socket");
    let tmp = scratch.path(&format!("mas.sock.{}.tmp", standin.pid()));
    assert!(!tmp.exists(), "the temporary name must be gone");
}

/// Several config files are merged with *admerge*: a second file's listeners
/// are added to the first's, and `MAS_CONFIG` is split on `:`.
#[test]
fn config_files_are_merged_and_listeners_concatenated() {
    let scratch = Scratch::new("merge");
    let notify = NotifySocket::bind(&scratch);
    let (a, b) = (free_port(), free_port());
    let first = scratch.write("a.yaml", &config_yaml(&[("a", &tcp_bind(a))]));
    let second = scratch.write(
        "b.yaml",
        &format!(
            "http:\n  listeners:\n    - resources: [{{name: health}}]\n      binds: [{{port: {b}}}]\n\
             standin: {{request_delay_ms: 1}}\n"
        ),
    );
    let standin = launch()
        .notify(&notify)
        .env(
            "MAS_CONFIG",
            format!("{}:{}", first.display(), second.display()),
        )
        .spawn(&scratch);
    notify.expect_ready(&standin);
    assert_eq!(
        standin
            .get(localhost(a), "/which")
            .header("x-standin-listener"),
        Some("a")
    );
    assert_eq!(
        standin
            .get(localhost(b), "/which")
            .header("x-standin-listener"),
        Some("1")
    );
}

/// The report records what the process inherited.
#[test]
fn report_records_inherited_environment_and_fds() {
    let scratch = Scratch::new("report");
    let notify = NotifySocket::bind(&scratch);
    let report = scratch.path("report.txt");
    let port = free_port();
    let config = scratch.config(&[("web", "[{fd: 0}]")]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_REPORT", report.display())
        .activate_on(localhost(port))
        .spawn(&scratch);
    let _client = standin.connect(localhost(port));
    notify.expect_mainpid(&standin);
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| standin.fail("no report"));
    let pid = standin.pid();
    let want = format!(
        "pid={pid} config={} listen_fds=1 listen_pid={pid} notify_socket={} listen_fdnames=<unset> watchdog_usec=<unset> watchdog_pid=<unset> mas_sockets_stop_timeout=<unset> fds=",
        config.display(),
        scratch.path("notify.sock").display()
    );
    assert!(
        text.starts_with(&want),
        "{text:?} should start with {want:?}"
    );
    let fds: Vec<&str> = text
        .trim_end()
        .rsplit_once("fds=")
        .map_or("", |(_, f)| f)
        .split(' ')
        .collect();
    assert!(fds.starts_with(&["0", "1", "2", "3"]), "{fds:?}");
    assert_eq!(text.lines().count(), 1);
    standin.signal(Signal::SIGTERM);
    assert_eq!(standin.wait_exit(), 0);
}

/// `exit_at_start` exits 1 right after `MAINPID=`.
#[test]
fn exit_at_start_exits_1_after_mainpid() {
    let scratch = Scratch::new("exit-at-start");
    let notify = NotifySocket::bind(&scratch);
    let config = scratch.write("config.yaml", "standin: {exit_at_start: true}\n");
    let mut standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_mainpid(&standin);
    assert_eq!(standin.wait_exit(), 1);
    assert_eq!(notify.recv(QUIET), None);
}

/// `crash_after_ms` exits 1 that long after `READY=1`, without `STOPPING=1`
/// and without answering the request in flight.
#[test]
fn crash_after_exits_1_after_ready_without_drain() {
    const AFTER: Duration = Duration::from_millis(400);
    let scratch = Scratch::new("crash-after");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &tcp_bind(port))]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_CRASH_AFTER_MS", AFTER.as_millis())
        .spawn(&scratch);
    notify.expect_ready(&standin);
    let ready_at = Instant::now();

    let mut client = standin.hold_request(localhost(port), 60000);
    client
        .set_read_timeout(Some(EVENT_TIMEOUT))
        .expect("set timeout");

    assert_eq!(standin.wait_exit(), 1);
    let lived = ready_at.elapsed();
    assert!(
        lived >= AFTER,
        "exited {lived:?} after READY=1, before {AFTER:?}"
    );
    standin.wait_for_log("crash_after_ms: exiting with status 1");
    assert_eq!(notify.recv(QUIET), None, "no STOPPING=1 after a crash");
    if let Ok(response) = read_response(&mut client) {
        standin.fail(&format!("the request in flight was answered: {response:?}"));
    }
    if standin.stderr().contains("STOPPING") || standin.stderr().contains("drained") {
        standin.fail("a crash must not stop gracefully");
    }
}

/// `never_ready` takes no socket, never sends `READY=1`, and still stops on
/// SIGTERM; `ignore_sigterm` makes it deaf to SIGTERM.
#[test]
fn never_ready_and_ignore_sigterm() {
    let scratch = Scratch::new("never-ready");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.config(&[("web", &tcp_bind(port))]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_NEVER_READY", "true")
        .spawn(&scratch);
    notify.expect_mainpid(&standin);
    standin.wait_for_log("never_ready is set");
    assert!(
        TcpStream::connect(localhost(port)).is_err(),
        "nothing may be bound"
    );
    standin.signal(Signal::SIGTERM);
    notify.expect(&standin, "STOPPING=1\n");
    assert_eq!(standin.wait_exit(), 0);

    let scratch = Scratch::new("ignore-sigterm");
    let notify = NotifySocket::bind(&scratch);
    let config = scratch.config(&[("web", &format!("[{{port: {port}}}]"))]);
    let mut standin = launch_with(&config, &notify)
        .env("MAS_STANDIN_IGNORE_SIGTERM", 1)
        .spawn(&scratch);
    notify.expect_ready(&standin);
    standin.signal(Signal::SIGTERM);
    standin.wait_for_log("SIGTERM received: ignored");
    assert_eq!(standin.get(localhost(port), "/health").status, 200);
    assert_eq!(notify.recv(QUIET), None, "no STOPPING=1");
    assert!(standin.try_wait_exit(Duration::ZERO).is_none());
}

/// A listener with `proxy_protocol: true` takes the client's address from
/// the PROXY v1 header and closes a connection that does not start with one.
#[test]
fn proxy_protocol_listener_learns_the_client_address_and_requires_the_header() {
    let scratch = Scratch::new("proxy");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.write(
        "config.yaml",
        &format!("http:\n  public_base: https://a/\n  listeners:\n    - name: pp\n      proxy_protocol: true\n      resources: [{{name: health}}]\n      binds: [{{host: 127.0.0.1, port: {port}}}]\n"),
    );
    let standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);

    let mut client = standin.connect(localhost(port));
    client
        .write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n")
        .unwrap();
    send_get(&mut client, "/health");
    let response = read_response(&mut client).unwrap();
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
    assert_eq!(response.header("x-standin-client"), Some("203.0.113.7"));
    assert_eq!(response.header("x-standin-proxy"), Some("203.0.113.7:5555"));
    assert!(response
        .header("x-standin-peer")
        .unwrap()
        .starts_with("127.0.0.1:"));

    // Without the header: no response, the connection is closed.
    let mut client = standin.connect(localhost(port));
    send_get(&mut client, "/health");
    let mut raw = Vec::new();
    let _ = client.read_to_end(&mut raw);
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    standin.wait_for_log(
        "listener pp: PROXY protocol handshake failed, closing the connection: no `PROXY` preamble",
    );
}

/// Each resource's paths are answered under the prefix, and only on a
/// listener that has the resource, as MAS does; `X-Forwarded-For` from a
/// trusted peer names the client.
#[test]
fn resource_paths_follow_the_listener_and_its_prefix() {
    let scratch = Scratch::new("resources");
    let notify = NotifySocket::bind(&scratch);
    let port = free_port();
    let config = scratch.write(
        "config.yaml",
        &format!("http:\n  public_base: https://a/\n  listeners:\n    - name: web\n      prefix: /auth/\n      resources: [{{name: compat}}, {{name: discovery}}]\n      binds: [{{host: 127.0.0.1, port: {port}}}]\n"),
    );
    let standin = launch_with(&config, &notify).spawn(&scratch);
    notify.expect_ready(&standin);
    let login = standin.get(localhost(port), "/auth/_matrix/client/v3/login");
    assert_eq!(login.status, 200);
    assert_eq!(login.header("x-standin-resource"), Some("compat"));
    assert_eq!(login.header("x-standin-name"), Some("mas"));
    let discovery = standin.get(localhost(port), "/auth/.well-known/openid-configuration");
    assert_eq!(discovery.header("x-standin-resource"), Some("discovery"));
    for (path, why) in [
        ("/_matrix/client/v3/login", "outside the prefix"),
        ("/auth/login", "human is not served here"),
    ] {
        let r = standin.get(localhost(port), path);
        assert_eq!(
            (r.status, r.header("x-standin-resource")),
            (404, None),
            "{path}: {why}"
        );
    }
    let mut client = standin.connect(localhost(port));
    client
        .write_all(b"GET /auth/x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut client).unwrap();
    assert_eq!(r.header("x-standin-client"), Some("198.51.100.4"));
    assert_eq!(r.header("x-standin-proxy"), None);
}

/// The homeserver stand-in answers the Matrix paths and names itself.
#[test]
fn homeserver_standin_answers_matrix_paths() {
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_homeserver-standin"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start homeserver-standin");
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let mut stream = loop {
        match TcpStream::connect(localhost(port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                panic!("homeserver-standin does not listen: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    send_get(&mut stream, "/_matrix/client/v3/sync");
    let r = read_response(&mut stream).unwrap();
    assert_eq!(
        (r.status, r.header("x-standin-name")),
        (200, Some("homeserver"))
    );
    assert_eq!(r.body, "homeserver path=/_matrix/client/v3/sync\n");
    let mut stream = TcpStream::connect(localhost(port)).unwrap();
    send_get(&mut stream, "/login");
    assert_eq!(read_response(&mut stream).unwrap().status, 404);
    let _ = child.kill();
    let _ = child.wait();
}
