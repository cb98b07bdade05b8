//! Zero-downtime restarts, rollback, crash recovery and the control socket,
//! with supervise under `systemd-socket-activate` and the MAS stand-in.

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::supervise::{knock, localhost, web_listener, Run, Setup, LONG};
use crate::util::{get_tcp, mas_sockets, wait_until};

/// `mas-sockets reload` (or `status`) against a run's runtime directory.
fn control(run: &Run, args: &[&str]) -> Output {
    Command::new(mas_sockets())
        .args(args)
        .arg("--runtime-dir")
        .arg(run.dir.join("rt"))
        .output()
        .expect("run mas-sockets")
}

/// `mas-sockets reload` against a run's runtime directory, on a thread of
/// its own, for a test that acts while the restart runs.
fn reload_in_background(run: &Run) -> std::thread::JoinHandle<Output> {
    let dir = run.dir.join("rt");
    std::thread::spawn(move || {
        Command::new(mas_sockets())
            .args(["reload", "--runtime-dir"])
            .arg(dir)
            .output()
            .expect("run mas-sockets reload")
    })
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A run serving on 127.0.0.1:port, ready, with its first MAS's pid.
fn serving(label: &str, extra: &str, args: &[&'static str]) -> (Run, u16, u32) {
    let port = crate::util::free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        extra,
    );
    let mut setup = Setup::new(&config).listen(localhost(port));
    setup.args.extend(args);
    let run = setup.start(label);
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    let pid = get_tcp(localhost(port), "/").expect("first request").pid();
    (run, port, pid)
}

fn config_path(run: &Run) -> std::path::PathBuf {
    run.dir.join("config.yaml")
}

/// Rewrites the run's config (what the next MAS reads): its one bind on
/// 127.0.0.1:`port`, and `extra` (the `standin:` switches, say).
fn rewrite_config(run: &Run, port: u16, extra: &str) {
    fs::write(
        config_path(run),
        web_listener(
            &format!("        - host: 127.0.0.1\n          port: {port}\n"),
            extra,
        ),
    )
    .unwrap();
}

fn pid_alive(pid: u32) -> bool {
    !crate::supervise::is_zombie(pid)
}

/// `mas-sockets reload` returns once the new MAS serves; systemd hears
/// RELOADING=1 with MONOTONIC_USEC first and READY=1 with a STATUS after.
#[test]
fn reload_replaces_mas_and_answers_once_the_new_one_serves() {
    let (run, port, old) = serving("reload", "standin:\n  startup_delay_ms: 300\n", &[]);
    let out = control(&run, &["reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out), run.log());
    let new = get_tcp(localhost(port), "/").unwrap().pid();
    assert_ne!(new, old, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("MAS (pid {new}) serves after a restart")),
        "{}",
        text(&out)
    );
    wait_until("the old MAS to exit", LONG, || !pid_alive(old));
    let seen = run.notify.expect_line("READY=1", LONG);
    let all = seen.join("");
    let reloading = all.find("RELOADING=1").expect("RELOADING=1 was sent");
    assert!(all[reloading..].contains("MONOTONIC_USEC="), "{all}");
    assert!(
        all.contains(&format!("STATUS=MAS (pid {new}) is serving")),
        "{all}"
    );
}

/// How many connections wait in the accept queue of the TCP socket
/// listening on 127.0.0.1:`port` (`ss`'s Recv-Q of a listening socket).
fn accept_queue(port: u16) -> usize {
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on port {port} in ss's {text:?}"))
}

/// MAS's graceful shutdown closes, unanswered, a connection it has accepted
/// but not read from. A client that connected before a restart and sends
/// its request only after it is still answered, by the new MAS: supervise
/// sets TCP_DEFER_ACCEPT, so the old MAS never accepted the silent
/// connection. Without it, the old MAS takes the connection from the accept
/// queue at once and closes it when it stops.
#[test]
fn a_connection_silent_across_a_restart_is_answered_by_the_new_mas() {
    let (run, port, old) = serving("silent", "", &[]);
    let mut silent = std::net::TcpStream::connect(localhost(port)).unwrap();
    wait_until("no connection in the accept queue", LONG, || {
        accept_queue(port) == 0
    });
    let out = control(&run, &["reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out), run.log());
    wait_until("the old MAS to exit", LONG, || !pid_alive(old));

    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let response = crate::util::exchange(&mut silent, "/")
        .unwrap_or_else(|e| panic!("the silent connection was not answered: {e}\n{}", run.log()));
    assert_eq!(response.status, 200);
    assert_ne!(response.pid(), old, "the old MAS is gone");
}

/// SIGHUP to the supervisor restarts MAS too.
#[test]
fn sighup_restarts_mas() {
    let (run, port, old) = serving("hup", "", &[]);
    run.signal(libc::SIGHUP);
    wait_until("a new MAS to answer", LONG, || {
        get_tcp(localhost(port), "/").is_ok_and(|r| r.pid() != old)
    });
    wait_until("the old MAS to exit", LONG, || !pid_alive(old));
}

/// `status` shows generation, child, state, last restart and listeners.
#[test]
fn status_describes_the_supervisor() {
    let (run, _port, pid) = serving("status", "", &[]);
    let out = control(&run, &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for want in [
        "generation: 1\n".to_owned(),
        format!("child: {pid}\n"),
        "state: serving\n".to_owned(),
        "last restart: none\n".to_owned(),
        "listener web: 1 socket(s)\n".to_owned(),
    ] {
        assert!(s.contains(&want), "no {want:?} in:\n{s}");
    }
    assert!(control(&run, &["reload"]).status.success());
    let s = String::from_utf8_lossy(&control(&run, &["status"]).stdout).into_owned();
    assert!(
        s.contains("generation: 2\n") && s.contains("last restart: ok"),
        "{s}"
    );
}

/// Each kind of failed restart leaves the old MAS serving, makes `reload`
/// exit 1 with the reason, and tells systemd READY=1 with the failure.
#[test]
fn failed_restarts_roll_back_to_the_old_mas() {
    let (run, port, old) = serving("rollback", "", &["--ready-timeout=1s"]);
    let cases = [
        ("standin:\n  never_ready: true\n", "was not ready within 1s"),
        (
            "standin:\n  exit_at_start: true\n",
            "exited before it was ready",
        ),
        ("standin: [unclosed\n", "the config is invalid"),
    ];
    for (extra, why) in cases {
        rewrite_config(&run, port, extra);
        let out = control(&run, &["reload"]);
        assert_eq!(out.status.code(), Some(1), "{extra}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("reload failed: ") && stderr.contains(why),
            "{extra}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("MAS (pid {old}) is serving")),
            "{stderr}"
        );
        assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old, "{extra}");
        let seen = run.notify.expect_line("READY=1", LONG).join("");
        assert!(seen.contains("STATUS=restart failed: "), "{seen}");
    }
    // A changed bind is refused by name, without starting anything.
    let other = crate::util::free_port();
    rewrite_config(&run, other, "");
    let out = control(&run, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("bind 0 of listener web at {}:7:11: http.listeners[0].binds[0] changed from host 127.0.0.1 port {port} to host 127.0.0.1 port {other}", config_path(&run).display()))
            && stderr.contains("the sockets belong to the socket units, and a restart keeps them: to change binds, regenerate the units and restart them (systemctl restart on the .socket units and the service)"),
        "{stderr}"
    );
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
    assert!(
        run.log().matches("started ").count() == 3,
        "exactly three attempts started a MAS:\n{}",
        run.log()
    );
}

/// Run by hand, supervise binds the sockets itself: a reload that changes a
/// bind is refused with the fix that applies then (restart supervise), not
/// the socket units' one.
#[test]
fn a_changed_bind_of_sockets_bound_by_supervise_says_to_restart_it() {
    let port = crate::util::free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let run = Setup::new(&config).start("selfbound-rebind");
    run.notify.expect_line("READY=1", LONG);
    let old = get_tcp(localhost(port), "/").expect("served").pid();
    let other = crate::util::free_port();
    rewrite_config(&run, other, "");
    let out = control(&run, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("changed from host 127.0.0.1 port {port} to host 127.0.0.1 port {other}; mas-sockets bound the sockets itself, and a restart keeps them: to change binds, restart supervise (stop it, then start it again); MAS (pid {old}) is serving"))
            && !stderr.contains("socket units"),
        "{stderr}"
    );
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
}

/// An old MAS that ignores SIGTERM is killed after the drain timeout.
#[test]
fn old_mas_ignoring_sigterm_is_killed_after_the_drain_timeout() {
    let (run, port, old) = serving(
        "drain",
        "standin:\n  ignore_sigterm: true\n",
        &["--drain-timeout=500ms"],
    );
    rewrite_config(&run, port, "");
    let begun = Instant::now();
    let out = control(&run, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        begun.elapsed() >= Duration::from_millis(500),
        "the reload waited for the drain"
    );
    assert!(!pid_alive(old));
    assert!(
        run.log().contains(&format!(
            "the old MAS (pid {old}) did not finish within 500ms; killing it"
        )),
        "{}",
        run.log()
    );
}

/// Requests during a restart are coalesced into one more restart.
#[test]
fn concurrent_reloads_are_coalesced() {
    let (run, _port, _) = serving("coalesce", "standin:\n  startup_delay_ms: 500\n", &[]);
    let handles: Vec<_> = (0..4).map(|_| reload_in_background(&run)).collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let generations = run.log().matches("started ").count() - 1;
    assert!(
        (1..=2).contains(&generations),
        "4 requests made {generations} restarts:\n{}",
        run.log()
    );
}

/// A serving MAS killed with SIGKILL is started again on the same sockets;
/// a request made meanwhile waits in the backlog instead of being refused.
#[test]
fn a_crashed_mas_is_started_again() {
    let (run, port, old) = serving(
        "crash",
        "standin:\n  startup_delay_ms: 300\n",
        &["--backoff=200ms"],
    );
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    let r =
        get_tcp(localhost(port), "/during-the-gap").expect("the request waits, it is not refused");
    assert_ne!(r.pid(), old);
    assert!(
        run.log().contains("starting it again in 200ms"),
        "{}",
        run.log()
    );
}

/// Too many crashes within the window, and the supervisor gives up.
#[test]
fn a_crash_loop_makes_the_supervisor_give_up() {
    let (mut run, _port, _) = serving(
        "crashloop",
        "standin:\n  crash_after_ms: 100\n",
        &["--crash-limit=3", "--backoff=50ms"],
    );
    let status = run.wait();
    // The stand-in's crash is an exit with 1, which the supervisor passes on.
    assert_eq!(status.code(), Some(1), "{}", run.log());
    assert!(
        run.log().contains("that is 3 crashes within"),
        "{}",
        run.log()
    );
}

/// A MAS started again after a crash gets the ready timeout too (no systemd
/// start timeout covers it): one that never becomes ready is killed, which
/// counts as a crash, and the crash limit ends it; a reload meanwhile says
/// what is going on. Its config file, with the secrets, goes with it.
#[test]
fn a_mas_started_again_after_a_crash_that_is_never_ready_counts_as_a_crash() {
    let (mut run, port, old) = serving(
        "respawn-unready",
        "",
        &["--crash-limit=3", "--backoff=50ms", "--ready-timeout=1s"],
    );
    rewrite_config(&run, port, "standin:\n  never_ready: true\n");
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    run.wait_log("generation 2)");
    let out = control(&run, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is starting again after a crash"),
        "{}",
        text(&out)
    );
    run.wait_log("started again after a crash, was not ready within 1s; killing it");
    let status = run.wait();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGKILL),
        "{status}\n{}",
        run.log()
    );
    assert!(
        run.log().contains("that is 3 crashes within"),
        "{}",
        run.log()
    );
    let left: Vec<_> = fs::read_dir(run.dir.join("rt"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left
            .iter()
            .any(|f| f.to_string_lossy().starts_with("config.")),
        "{left:?}"
    );
}

/// Restarts do not leak fds or memory in the supervisor, and leave no zombie.
#[test]
fn many_restarts_leak_nothing() {
    let (run, _port, _) = serving("leak", "", &[]);
    let sv = run.child.id();
    let fds = || fs::read_dir(format!("/proc/{sv}/fd")).unwrap().count();
    let rss = || {
        let status = fs::read_to_string(format!("/proc/{sv}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    // Warm up, then measure across 200 restarts.
    for _ in 0..10 {
        assert!(control(&run, &["reload"]).status.success());
    }
    let (fds0, rss0) = (fds(), rss());
    for i in 0..200 {
        let out = control(&run, &["reload"]);
        assert!(out.status.success(), "restart {i}: {}", text(&out));
    }
    let (fds1, rss1) = (fds(), rss());
    assert_eq!(fds1, fds0, "open fds grew");
    assert!(rss1 <= rss0 + 512, "RSS grew from {rss0} kB to {rss1} kB");
    let children = fs::read_to_string(format!("/proc/{sv}/task/{sv}/children")).unwrap();
    let kids: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(kids.len(), 1, "one MAS, no zombies: {kids:?}");
    assert!(!crate::supervise::is_zombie(kids[0].parse().unwrap()));
}

/// A run with systemd's watchdog on (0.4 s) whose first MAS stops pinging
/// 300 ms after it is ready; the config then has no switches, so the MAS
/// that replaces it reads `next` instead.
fn serving_with_a_hanging_watchdog(
    label: &str,
    next: &str,
    args: &[&'static str],
) -> (Run, u16, u32) {
    let port = crate::util::free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "standin:\n  watchdog_stop_on_sigusr1: true\n",
    );
    let mut setup = Setup::new(&config)
        .listen(localhost(port))
        .env("WATCHDOG_USEC", "400000");
    setup.args.extend(args);
    let run = setup.start(label);
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    let pid = get_tcp(localhost(port), "/").expect("first request").pid();
    // The replacement reads `next`; only then does this MAS hang.
    rewrite_config(&run, port, next);
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGUSR1) }, 0);
    (run, port, pid)
}

/// A MAS that stops sending WATCHDOG=1 is replaced by a zero-downtime
/// restart, and the pings to systemd resume for the new MAS.
#[test]
fn a_mas_that_stops_its_watchdog_pings_is_replaced() {
    let (run, port, old) = serving_with_a_hanging_watchdog("watchdog-hang", "", &[]);
    run.wait_log(&format!("MAS (pid {old}) sent no WATCHDOG=1"));
    wait_until("a new MAS to answer", LONG, || {
        get_tcp(localhost(port), "/").is_ok_and(|r| r.pid() != old)
    });
    let new = get_tcp(localhost(port), "/").unwrap().pid();
    wait_until("the hung MAS to exit", LONG, || !pid_alive(old));
    let seen = run.notify.expect_line("READY=1", LONG).join("\n");
    assert!(
        seen.contains(&format!("STATUS=MAS (pid {new}) is serving")),
        "{seen}"
    );
    run.notify.expect_line("WATCHDOG=1", LONG);
    assert!(
        run.log().contains("MAS stopped answering its watchdog"),
        "{}",
        run.log()
    );
}

/// When the replacement of a hung MAS fails too, the supervisor stops its
/// own pings, so that systemd's watchdog acts, and does not try again.
#[test]
fn a_hung_mas_that_cannot_be_replaced_is_left_to_systemds_watchdog() {
    let (run, port, old) = serving_with_a_hanging_watchdog(
        "watchdog-fail",
        "standin:\n  never_ready: true\n",
        &["--ready-timeout=500ms"],
    );
    run.wait_log(&format!(
        "MAS (pid {old}) hangs and could not be replaced; no more watchdog pings"
    ));
    // Drain what was sent up to now; from here on systemd must hear no ping.
    while run.notify.recv(Duration::from_millis(1)).is_some() {}
    // Four watchdog periods of silence.
    let quiet_until = Instant::now() + Duration::from_millis(1600);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        if let Some(datagram) = run.notify.recv(left) {
            assert!(
                !datagram.lines().any(|l| l == "WATCHDOG=1"),
                "a ping after the failed replacement: {datagram:?}\n{}",
                run.log()
            );
        }
    }
    assert_eq!(
        run.log().matches("sent no WATCHDOG=1").count(),
        1,
        "one replacement only:\n{}",
        run.log()
    );
    assert!(pid_alive(old));
    let _ = port;
}

/// `reload --signal-only` passes SIGHUP to MAS (its template reload) and
/// relays its RELOADING=1 and READY=1; MAS stays the same process.
#[test]
fn signal_only_reload_passes_sighup_to_mas() {
    let (run, port, old) = serving("signal-only", "", &[]);
    let out = control(&run, &["reload", "--signal-only"]);
    assert!(out.status.success(), "{}\n{}", text(&out), run.log());
    // The stand-in writes this line just after its READY=1, which may reach
    // the supervisor, and end the reload, first.
    run.wait_log("SIGHUP received: reloaded");
    let seen = run.notify.expect_line("READY=1", LONG);
    // As MAS sent them: systemd reads MONOTONIC_USEC= from RELOADING=1's
    // own datagram.
    assert!(
        seen.iter().any(|d| {
            let lines: Vec<&str> = d.lines().collect();
            lines.contains(&"RELOADING=1") && lines.iter().any(|l| l.starts_with("MONOTONIC_USEC="))
        }),
        "{seen:?}"
    );
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
}

/// The pids of the supervisor's children that are still running.
fn live_children(run: &Run) -> Vec<u32> {
    let sv = run.child.id();
    fs::read_to_string(format!("/proc/{sv}/task/{sv}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| pid_alive(p))
        .collect()
}

/// A serving MAS that crashes while its replacement starts: the replacement
/// takes over, and the restart planned after the crash is dropped, so that
/// exactly one MAS serves and no second one starts beside it, untracked.
#[test]
fn a_crash_during_a_restart_leaves_exactly_one_mas() {
    let (run, port, old) = serving("crash-mid-restart", "", &["--backoff=3s"]);
    rewrite_config(&run, port, "standin:\n  startup_delay_ms: 2000\n");
    let reload = reload_in_background(&run);
    run.wait_log("generation 2)");
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    run.wait_log(&format!("MAS (pid {old}) exited on its own"));
    let out = reload.join().unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), run.log());
    let log = run.log();
    let crashed = log.find(&format!("MAS (pid {old}) exited on its own"));
    let promoted = log.find("is ready; it takes over");
    assert!(
        crashed < promoted,
        "the crash must come before the new MAS is ready:\n{log}"
    );
    let new = get_tcp(localhost(port), "/").unwrap().pid();
    assert_ne!(new, old);
    // The crash's restart was due 3 s after it; watch past that moment.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let kids = live_children(&run);
        assert!(
            kids.len() <= 1,
            "more than one MAS runs: {kids:?}\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!run.log().contains("generation 3)"), "{}", run.log());
    assert_eq!(live_children(&run), vec![new], "{}", run.log());
    let status = String::from_utf8_lossy(&control(&run, &["status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("child: {new}\n")) && status.contains("state: serving\n"),
        "{status}"
    );
}

/// A stop that comes while a new MAS starts: the new MAS may still report
/// ready (MAS acts on signals only once it serves), but the old one, which
/// is draining, must not get a second SIGTERM, which would make it drop its
/// in-flight requests.
#[test]
fn a_stop_during_a_restart_lets_the_old_mas_drain() {
    let (mut run, port, _old) = serving("stop-mid-restart", "", &["--stop-timeout=30s"]);
    rewrite_config(&run, port, "standin:\n  startup_delay_ms: 1500\n");
    let slow = std::thread::spawn(move || get_tcp(localhost(port), "/slow/5000"));
    run.wait_log("holding /slow/5000");
    let reload = reload_in_background(&run);
    run.wait_log("generation 2)");
    run.signal(libc::SIGTERM);
    let response = slow
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the in-flight request was cut: {e}\n{}", run.log()));
    assert_eq!(response.status, 200);
    let status = run.wait();
    assert!(status.success(), "{status}\n{}", run.log());
    let out = reload.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stopping"),
        "{}",
        text(&out)
    );
    assert!(!run.log().contains("hard shutdown"), "{}", run.log());
}

/// `status` counts only the crashes inside the crash window.
#[test]
fn status_counts_only_crashes_inside_the_window() {
    let (run, port, old) = serving(
        "crash-window",
        "",
        &["--backoff=100ms", "--crash-window=8s"],
    );
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    wait_until("a new MAS to answer", LONG, || {
        get_tcp(localhost(port), "/").is_ok_and(|r| r.pid() != old)
    });
    let crashes = || {
        let out = control(&run, &["status"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("crashes in window: ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no crash count in {}", text(&out)))
    };
    assert_eq!(crashes(), "1");
    wait_until("the crash to leave the 8 s window", LONG, || {
        crashes() == "0"
    });
}

/// A crash that reaches the limit while a new MAS starts still makes the
/// supervisor give up: the new MAS is stopped instead of taking over from a
/// supervisor that has decided to leave the next step to systemd.
#[test]
fn the_crash_limit_reached_during_a_restart_still_gives_up() {
    let (mut run, port, old) = serving("limit-mid-restart", "", &["--crash-limit=1"]);
    rewrite_config(&run, port, "standin:\n  startup_delay_ms: 1500\n");
    let reload = reload_in_background(&run);
    run.wait_log("generation 2)");
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    let status = run.wait();
    assert_eq!(status.code(), Some(128 + 9), "{}", run.log());
    assert!(
        run.log().contains("that is 1 crashes within"),
        "{}",
        run.log()
    );
    assert!(
        !run.log().contains("it takes over"),
        "the new MAS took over:\n{}",
        run.log()
    );
    let out = reload.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// When a MAS crashes and the config files no longer check, the MAS that
/// replaces it runs on the config the crashed one had, not on the one the
/// supervisor started with: a reload since then may have changed it.
#[test]
fn a_crash_restart_falls_back_to_the_config_of_the_crashed_mas() {
    let (run, port, _) = serving(
        "crash-fallback",
        "standin:\n  startup_delay_ms: 111\n",
        &["--backoff=100ms"],
    );
    rewrite_config(&run, port, "standin:\n  startup_delay_ms: 222\n");
    let out = control(&run, &["reload"]);
    assert!(out.status.success(), "{}\n{}", text(&out), run.log());
    let reloaded = get_tcp(localhost(port), "/").unwrap().pid();
    fs::write(config_path(&run), "http: [unclosed\n").unwrap();
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(reloaded as i32, libc::SIGKILL) }, 0);
    wait_until("a new MAS to answer", LONG, || {
        get_tcp(localhost(port), "/").is_ok_and(|r| r.pid() != reloaded)
    });
    let log = run.log();
    assert!(log.contains("starting MAS on the config it had"), "{log}");
    assert_eq!(
        (
            log.matches("start-up delay of 111 ms").count(),
            log.matches("start-up delay of 222 ms").count()
        ),
        (1, 2),
        "the MAS after the crash must read the reloaded config:\n{log}"
    );
}

/// A control connection that sends a huge line of garbage gets a short
/// refusal: the supervisor reads a request line of bounded length only.
#[test]
fn garbage_on_the_control_socket_gets_a_short_refusal() {
    use std::io::{Read as _, Write as _};
    let (run, _port, pid) = serving("control-garbage", "", &[]);
    let mut stream = std::os::unix::net::UnixStream::connect(run.dir.join("rt/control.sock"))
        .expect("connect to the control socket");
    stream.set_read_timeout(Some(LONG)).unwrap();
    // The supervisor may stop reading and answer before all of it is sent.
    let _ = stream.write_all(&vec![b'x'; 1 << 20]);
    let _ = stream.write_all(b"\n");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(
        answer.starts_with("error unknown request"),
        "{:.200}",
        answer
    );
    assert!(
        answer.len() < 300,
        "{} bytes: {:.200}",
        answer.len(),
        answer
    );
    // Bytes that are not UTF-8 are shown, replaced, not dropped.
    let mut stream = std::os::unix::net::UnixStream::connect(run.dir.join("rt/control.sock"))
        .expect("connect to the control socket");
    stream.set_read_timeout(Some(LONG)).unwrap();
    stream.write_all(b"\xff\xfe\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(
        answer.starts_with("error unknown request \"\u{fffd}\u{fffd}\""),
        "{answer:?}"
    );
    let status = String::from_utf8_lossy(&control(&run, &["status"]).stdout).into_owned();
    assert!(status.contains(&format!("child: {pid}\n")), "{status}");
}

/// Like [`control`], but fails the test instead of waiting for ever when the
/// command does not finish within [`LONG`].
fn control_within(run: &Run, args: &[&str]) -> Output {
    let mut child = Command::new(mas_sockets())
        .args(args)
        .arg("--runtime-dir")
        .arg(run.dir.join("rt"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mas-sockets");
    let deadline = Instant::now() + LONG;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "`mas-sockets {}` did not finish within {LONG:?}\n{}\n{}",
                args.join(" "),
                text(&out),
                run.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}

/// A stop that comes while a crashed MAS waits out its backoff ends the
/// supervisor with 0: nothing runs, so the crash's status is not the stop's.
#[test]
fn a_stop_during_the_crash_backoff_exits_0() {
    let (mut run, _port, old) = serving("stop-in-backoff", "", &["--backoff=30s"]);
    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    run.wait_log("(SIGKILL); starting it again in 30s");
    run.signal(libc::SIGTERM);
    let status = run.wait();
    assert_eq!(status.code(), Some(0), "{status}\n{}", run.log());
}

/// A template reload whose MAS is replaced before it answers: the new MAS,
/// which read its templates as it started, answers it.
#[test]
fn a_signal_only_reload_that_a_restart_overtakes_is_answered_by_the_new_mas() {
    let (run, port, old) = serving(
        "signal-overtaken",
        "standin:\n  hang_on_sighup: true\n",
        &[],
    );
    rewrite_config(&run, port, "standin:\n  startup_delay_ms: 300\n");
    std::thread::scope(|s| {
        let signal_only = s.spawn(|| control_within(&run, &["reload", "--signal-only"]));
        run.wait_log("no READY=1 will follow (hang_on_sighup)");
        let out = control_within(&run, &["reload"]);
        assert!(out.status.success(), "{}\n{}", text(&out), run.log());
        let new = get_tcp(localhost(port), "/").unwrap().pid();
        assert_ne!(new, old);
        let out = signal_only.join().expect("signal-only reload");
        assert!(out.status.success(), "{}\n{}", text(&out), run.log());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!(
                "MAS was replaced by a new process (pid {new}), which loaded its templates"
            )),
            "{}",
            text(&out)
        );
    });
}

/// A MAS that never answers a SIGHUP with READY=1 fails the template reload
/// after the ready timeout, and keeps serving; systemd, which heard its
/// RELOADING=1, gets the READY=1 that ends the reload.
#[test]
fn a_signal_only_reload_that_mas_never_answers_fails_after_the_ready_timeout() {
    let (run, port, old) = serving(
        "signal-hang",
        "standin:\n  hang_on_sighup: true\n",
        &["--ready-timeout=1s"],
    );
    let out = control_within(&run, &["reload", "--signal-only"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), run.log());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "reload failed: MAS (pid {old}) did not send READY=1 within 1s of the SIGHUP"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
    // systemd heard MAS's RELOADING=1; the READY=1 that must follow comes
    // from the supervisor, or the unit stays "reloading" and every later
    // reload waits behind it.
    let seen = run.notify.expect_line("RELOADING=1", LONG);
    let after = run.notify.expect_line("READY=1", LONG).join("\n");
    assert!(
        after.contains(&format!(
            "STATUS=MAS (pid {old}) did not finish reloading its templates within 1s; it serves on"
        )),
        "{seen:?} then {after}"
    );
}

/// Signals that would end a process by default, which scripts send to
/// daemons (logrotate's SIGUSR1, say), are logged and ignored: MAS keeps
/// serving, its request in flight is answered.
#[test]
fn stray_signals_leave_mas_serving() {
    let (run, port, old) = serving("stray-signals", "", &[]);
    let slow = std::thread::spawn(move || get_tcp(localhost(port), "/slow/1000"));
    run.wait_log("holding /slow/1000");
    for (signal, name) in [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        run.signal(signal);
        run.wait_log(&format!("{name} ignored"));
    }
    let response = slow
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the in-flight request was cut: {e}\n{}", run.log()));
    assert_eq!((response.status, response.pid()), (200, old));
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
}

/// A new MAS that dies after it took over, while the old one still drains,
/// fails the restart: `reload` exits 1 saying so, and never claims that a
/// MAS serves; the old one's request in flight is still answered.
#[test]
fn a_new_mas_that_dies_while_the_old_one_drains_fails_the_restart() {
    let (run, port, old) = serving("die-mid-drain", "", &["--backoff=3s"]);
    let slow = std::thread::spawn(move || get_tcp(localhost(port), "/slow/3000"));
    run.wait_log("holding /slow/3000");
    rewrite_config(&run, port, "standin:\n  crash_after_ms: 300\n");
    let out = control(&run, &["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}\n{}", text(&out), run.log());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("after it took over, while the old one drained")
            && !stderr.contains("pid 0"),
        "{}",
        text(&out)
    );
    let response = slow
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("the in-flight request was cut: {e}\n{}", run.log()));
    assert_eq!((response.status, response.pid()), (200, old));
    let status = String::from_utf8_lossy(&control(&run, &["status"]).stdout).into_owned();
    assert!(status.contains("after it took over"), "{status}");
}

/// A watchdog period shorter than the supervisor can tell a hang by makes
/// no storm of replacements: MAS counts as hung only after 100 ms without a
/// ping, and a warning says so. A period that is no number is said too.
#[test]
fn a_watchdog_too_short_to_honour_replaces_nothing() {
    let port = crate::util::free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let run = Setup::new(&config)
        .listen(localhost(port))
        .env("WATCHDOG_USEC", "1000")
        .start("watchdog-tiny");
    knock(localhost(port));
    run.notify.expect_line("READY=1", LONG);
    run.wait_log("WATCHDOG_USEC=1000 is shorter than the 100ms");
    let pid = get_tcp(localhost(port), "/").unwrap().pid();
    // Pings to systemd go on; a second of them, and MAS is the same.
    let until = Instant::now() + Duration::from_secs(1);
    let mut pings = 0;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Some(d) = run.notify.recv(left) {
            pings += d.lines().filter(|l| *l == "WATCHDOG=1").count();
        }
    }
    assert!(pings > 0, "no pings to systemd\n{}", run.log());
    assert!(!run.log().contains("sent no WATCHDOG=1"), "{}", run.log());
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), pid);

    let run = Setup::new(&config.replace(&port.to_string(), &crate::util::free_port().to_string()))
        .env("WATCHDOG_USEC", "garbage")
        .start("watchdog-garbage");
    run.wait_log("WATCHDOG_USEC=\"garbage\" is not a number of microseconds");
}

/// `count` connections to the control socket that send nothing.
fn idle_control_connections(run: &Run, count: usize) -> Vec<std::os::unix::net::UnixStream> {
    (0..count)
        .map(|_| {
            std::os::unix::net::UnixStream::connect(run.dir.join("rt/control.sock"))
                .expect("connect to the control socket")
        })
        .collect()
}

/// Reads what the supervisor sends on `stream` up to its close, waiting at
/// most `timeout`.
fn read_answer(stream: &mut std::os::unix::net::UnixStream, timeout: Duration) -> String {
    use std::io::Read as _;
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Connections that never send their request take a bounded number of the
/// supervisor's fds, for a bounded time: beyond 32 at once they are told
/// that it is busy and closed, `status` says so in one line, and each idle
/// one is closed after 2 s, after which `status` answers again.
#[test]
fn idle_control_connections_are_capped_and_closed() {
    let (run, _port, pid) = serving("control-idle", "", &[]);
    let mut idle = idle_control_connections(&run, 40);
    for (i, stream) in idle.iter_mut().enumerate().skip(32) {
        let answer = read_answer(stream, Duration::from_secs(5));
        assert!(
            answer.starts_with("busy the supervisor has as many control connections as it takes at once (32 that have not sent their request, or 256 in all); try again in a moment\n"),
            "connection {i}: {answer:?}\n{}",
            run.log()
        );
    }
    let out = control(&run, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mas-sockets: the supervisor at {}/control.sock is busy: the supervisor has as many control connections as it takes at once (32 that have not sent their request, or 256 in all); try again in a moment\n",
            run.dir.join("rt").display()
        )
    );
    let began = Instant::now();
    let answer = read_answer(&mut idle[0], LONG);
    assert!(
        answer.starts_with("error unknown request") && began.elapsed() < Duration::from_secs(4),
        "after {:?}: {answer:?}",
        began.elapsed()
    );
    wait_until("status to answer again", LONG, || {
        String::from_utf8_lossy(&control(&run, &["status"]).stdout)
            .contains(&format!("child: {pid}\n"))
    });
}

/// The supervisor's CPU time so far, in clock ticks (utime + stime).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The fields after the command name, which ends with the last `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// When the supervisor runs out of fds, accepting on the control socket
/// fails (EMFILE) with the connection left in the backlog: the failure is
/// logged once, accepting pauses instead of spinning, and it works again
/// once fds are free.
#[test]
fn running_out_of_fds_does_not_make_the_control_socket_spin() {
    let port = crate::util::free_port();
    let config = web_listener(
        &format!("        - host: 127.0.0.1\n          port: {port}\n"),
        "",
    );
    let run = Setup::new(&config)
        .wrapper(["prlimit", "--nofile=40:40"])
        .start("control-emfile");
    run.notify.expect_line("READY=1", LONG);
    let idle = idle_control_connections(&run, 40);
    run.wait_log("accepting on the control socket failed: Too many open files");
    let before = cpu_ticks(run.pid());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(run.pid()) - before;
    assert!(spent < 20, "{spent} ticks of CPU in 1 s");
    let log = run.log();
    assert_eq!(
        log.matches("accepting on the control socket failed")
            .count(),
        1,
        "{:.3000}",
        log
    );
    assert!(log.contains("Too many open files (os error 24); trying again every 100ms, logged again once it works"), "{log}");
    drop(idle);
    wait_until("status to answer again", LONG, || {
        control(&run, &["status"]).status.success()
    });
    run.wait_log("accepting on the control socket works again, after ");
    assert_eq!(
        get_tcp(localhost(port), "/").map(|r| r.status).ok(),
        Some(200)
    );
}

/// `status` against a supervisor that does not answer (stopped with
/// SIGSTOP here) gives up after 10 s and says so, with what to look at.
#[test]
fn status_says_when_the_supervisor_gives_no_answer() {
    let (run, _port, _) = serving("control-stopped", "", &[]);
    run.signal(libc::SIGSTOP);
    let out = control(&run, &["status"]);
    run.signal(libc::SIGCONT);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mas-sockets: the supervisor at {}/control.sock gave no answer within 10 s; it may be stopped (SIGSTOP) or stuck: look at `systemctl status` and the journal of the service, and restart it if it stays so\n",
            run.dir.join("rt").display()
        )
    );
}

/// A runtime directory emptied while the supervisor runs (an operator's
/// `rm -rf DIR/*`, tmpfiles) leaves no notify socket for a new MAS to say it
/// is ready on: a restart fails at once, naming the directory and the fix,
/// and the old MAS keeps serving; a MAS that crashes then is not started
/// again, and the supervisor exits so that systemd starts afresh.
#[test]
fn a_runtime_directory_emptied_while_running_fails_the_next_start_cleanly() {
    let (mut run, port, old) = serving("rt-emptied", "", &["--backoff=100ms"]);
    let dir = run.dir.join("rt");
    for entry in fs::read_dir(&dir).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let want = format!(
        "the runtime directory {} lost its notify.{}.sock since this supervisor started: a new MAS could not tell it that it is ready, and `mas-sockets reload` and `status` cannot reach it, so no MAS is started; restart the service (e.g. systemctl restart mas), which makes the directory anew",
        dir.display(),
        run.pid()
    );
    run.signal(libc::SIGHUP);
    run.wait_log("restart failed after");
    assert!(run.log().contains(&want), "{}", run.log());
    assert_eq!(run.reports().len(), 1, "a new MAS was started");
    assert_eq!(get_tcp(localhost(port), "/").unwrap().pid(), old);
    run.notify.expect_line("READY=1", LONG);

    // SAFETY: kill(2) on the stand-in's pid, read from its own response.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    let status = run.wait();
    assert_eq!(status.signal(), None, "{}", run.log());
    assert_ne!(status.code(), Some(0), "{}", run.log());
    assert!(
        run.log().contains(&format!("{want}; giving up")),
        "{}",
        run.log()
    );
    assert_eq!(run.reports().len(), 1, "a new MAS was started");
}
