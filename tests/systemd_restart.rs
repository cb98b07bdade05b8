//! Zero-downtime restarts under a real systemd, with continuous load on the
//! TCP and the Unix bind, and the stand-in taking 1 s to become ready.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use crate::systemd_e2e::{boot, install_units_with, sock_path, stage, STAGE, TIMEOUT};
use crate::util::load::{Load, LoadSpec, Target};
use crate::util::systemd::Systemd;
use crate::util::{free_port, get_tcp};

fn config(port: u16, standin: &str) -> String {
    format!(
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}, {{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: {port}\n        - socket: /run/mas-e2e-sock/web.sock\nstandin:\n  startup_delay_ms: 1000\n{standin}"
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Boots systemd with the generated units running and ready.
fn deploy(label: &str, port: u16, extra_units: &[&str]) -> Systemd {
    deploy_with_dropin(label, port, extra_units, None)
}

/// Like [`deploy`], with a drop-in for mas.service in place before it starts.
fn deploy_with_dropin(
    label: &str,
    port: u16,
    extra_units: &[&str],
    dropin: Option<&str>,
) -> Systemd {
    deploy_full(label, port, extra_units, dropin, "")
}

/// Like [`deploy_with_dropin`], with `standin` switches for the first MAS.
fn deploy_full(
    label: &str,
    port: u16,
    extra_units: &[&str],
    dropin: Option<&str>,
    standin: &str,
) -> Systemd {
    let sd = boot(label);
    stage(&sd, &config(port, standin));
    install_units_with(&sd, extra_units);
    if let Some(dropin) = dropin {
        sd.install_unit("mas.service.d/test.conf", dropin);
        sd.daemon_reload();
    }
    sd.exec_ok(&["systemctl", "start", "mas.service"]);
    assert_eq!(sd.unit_property("mas.service", "ActiveState"), "active");
    sd
}

fn restage_config(sd: &Systemd, port: u16, standin: &str) {
    fs::write(
        sd.host_path(&format!("{STAGE}/config.yaml")),
        config(port, standin),
    )
    .unwrap();
}

/// The load of the zero-downtime tests: 32 workers, new connections and keep-alive,
/// responses of 0 and 200 ms, on the TCP and the Unix bind.
fn start_load(sd: &Systemd, port: u16) -> Load {
    Load::start(LoadSpec {
        targets: vec![Target::Tcp(addr(port)), Target::Unix(sock_path(sd))],
        workers: 32,
        paths: vec!["/".into(), "/slow/200".into()],
        keep_alive_share: 0.5,
        timeout: Duration::from_secs(20),
    })
}

fn pid_now(port: u16) -> u32 {
    get_tcp(addr(port), "/").expect("request").pid()
}

/// 20 `systemctl reload`s under load: no request fails, and each reload
/// returns only once the new MAS answers.
#[test]
fn twenty_reloads_under_load_lose_no_request() {
    let port = free_port();
    let sd = deploy("reload-load", port, &[]);
    let main_pid = sd.unit_property("mas.service", "MainPID");
    let load = start_load(&sd, port);
    let mut pids = vec![pid_now(port)];
    for i in 1..=20 {
        load.mark(&format!("reload {i} begins"));
        sd.exec_ok(&["systemctl", "reload", "mas.service"]);
        load.mark(&format!("reload {i} returned"));
        let now = pid_now(port);
        assert!(
            !pids.contains(&now),
            "reload {i} returned before the new MAS answered: pid {now} served already ({pids:?})"
        );
        pids.push(now);
    }
    let report = load.stop();
    // None may fail on TCP. On the Unix socket, MAS's own graceful shutdown
    // may close a connection the old MAS accepted just before its request
    // came (see `failures_split_unix_unread_close`); that stays rare.
    let (unix_unread, others) = report.failures_split_unix_unread_close();
    assert!(
        others.is_empty() && unix_unread.len() <= 10,
        "{} of {} requests failed ({} closed unanswered on the Unix socket):\n{}",
        report.failures().len(),
        report.samples.len(),
        unix_unread.len(),
        report.describe_failures(20)
    );
    if !unix_unread.is_empty() {
        eprintln!(
            "{} of {} requests on the Unix socket closed unanswered by an old MAS",
            unix_unread.len(),
            report.samples.len()
        );
    }
    assert!(report.ok() > 1000, "too little load: {}", report.ok());
    assert!(report.targets_served().len() == 2, "both binds served");
    assert!(report.pids().len() >= 21, "{:?}", report.pids());
    assert_eq!(
        sd.unit_property("mas.service", "MainPID"),
        main_pid,
        "the supervisor stays"
    );
    assert_eq!(sd.unit_property("mas.service", "ActiveState"), "active");
    sd.stop().unwrap();
}

/// Failed restarts through `systemctl reload`: it exits non-zero, the old
/// MAS answers, and the unit stays active.
#[test]
fn failed_reloads_keep_the_old_mas_and_the_unit_active() {
    let port = free_port();
    let sd = deploy("reload-fail", port, &["--ready-timeout", "3s"]);
    let old = pid_now(port);
    for (standin, why) in [
        ("  never_ready: true\n", "was not ready within 3s"),
        ("  exit_at_start: true\n", "exited before it was ready"),
        ("  - not: [a mapping\n", "the config is invalid"),
    ] {
        restage_config(&sd, port, standin);
        let out = sd.systemctl(&["reload", "mas.service"]);
        assert!(!out.status.success(), "reload with {standin:?} succeeded");
        assert_eq!(
            pid_now(port),
            old,
            "{standin:?}: the old MAS must still answer"
        );
        // systemd takes the supervisor's READY=1 and the end of ExecReload in
        // either order; after a RELOADING=1 it may pass through "reloading".
        sd.wait_for("the unit to be active again", TIMEOUT, || {
            let state = sd.unit_property("mas.service", "ActiveState");
            assert!(
                matches!(state.as_str(), "active" | "reloading"),
                "{standin:?}: the unit is {state}"
            );
            state == "active"
        })
        .unwrap_or_else(|e| panic!("{standin:?}: {e}\n{}", sd.journal("mas.service")));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let journal = sd.journal("mas.service");
        assert!(
            journal.contains(why),
            "{standin:?}: no `{why}` in the journal:\n{journal}\nsystemctl said: {stderr}"
        );
        let status = sd.unit_property("mas.service", "StatusText");
        assert!(
            status.starts_with("restart failed: ") && status.contains(why),
            "{standin:?}: StatusText={status:?}"
        );
    }
    // Fixed, a reload works again.
    restage_config(&sd, port, "");
    sd.exec_ok(&["systemctl", "reload", "mas.service"]);
    assert_ne!(pid_now(port), old);
    sd.stop().unwrap();
}

/// `kill -9` of MAS under load: no connection is refused, and a new MAS answers.
#[test]
fn killed_mas_is_replaced_without_refusing_connections() {
    let port = free_port();
    let sd = deploy("kill9", port, &[]);
    let old = pid_now(port);
    let load = start_load(&sd, port);
    load.mark("kill -9");
    sd.exec_ok(&["kill", "-9", &old.to_string()]);
    load.mark("killed");
    sd.wait_for("a new MAS to answer", TIMEOUT, || {
        get_tcp(addr(port), "/").is_ok_and(|r| r.pid() != old)
    })
    .unwrap();
    // The load itself meets the new MAS before it stops: of the requests
    // that succeed from here on, at most one per worker can have been
    // answered by the killed MAS before it died.
    let done = load.completed();
    sd.wait_for("the load to be served by the new MAS", TIMEOUT, || {
        load.completed() >= done + 64
    })
    .unwrap();
    let report = load.stop();
    // Requests that the killed MAS had accepted die with it; every other one,
    // in particular each connection made while no MAS ran, must succeed.
    let killed = report.mark_at("killed").expect("mark");
    let lost: Vec<_> = report
        .failures()
        .into_iter()
        .filter(|s| {
            s.at >= killed
                || s.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("refused") || e.starts_with("connect"))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} requests begun after the kill or refused failed:\n{}",
        lost.len(),
        report.describe_failures(40)
    );
    assert!(report.pids().len() >= 2, "{:?}", report.pids());
    assert_eq!(sd.unit_property("mas.service", "ActiveState"), "active");
    sd.stop().unwrap();
}

/// A crash loop: the supervisor gives up after its limit, systemd restarts
/// it, and the socket units keep the sockets throughout.
#[test]
fn crash_loop_is_left_to_systemd_and_the_sockets_stay() {
    let port = free_port();
    let sd = deploy_with_dropin(
        "crashloop",
        port,
        &[],
        Some("[Service]\nEnvironment=MAS_SOCKETS_CRASH_LIMIT=2 MAS_SOCKETS_BACKOFF=50ms\n"),
    );
    restage_config(&sd, port, "  crash_after_ms: 100\n");
    // The restart reads the crashing config; from then on each MAS crashes.
    sd.exec_ok(&["systemctl", "reload", "mas.service"]);
    sd.wait_for("systemd to restart the supervisor", TIMEOUT, || {
        sd.unit_property("mas.service", "NRestarts")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    })
    .unwrap();
    let journal = sd.journal("mas.service");
    assert!(journal.contains("that is 2 crashes within"), "{journal}");
    for socket in ["mas-web-0.socket", "mas-web-1.socket"] {
        assert_eq!(
            sd.unit_property(socket, "ActiveState"),
            "active",
            "{socket}"
        );
    }
    // Repaired, the next start serves again on the same sockets.
    restage_config(&sd, port, "");
    sd.wait_for("MAS to serve again", TIMEOUT, || {
        get_tcp(addr(port), "/").is_ok()
    })
    .unwrap();
    sd.stop().unwrap();
}

/// An old MAS that ignores SIGTERM is SIGKILLed after the drain timeout, and
/// the reload waits for that before it returns.
#[test]
fn old_mas_ignoring_sigterm_is_killed_after_the_drain_timeout() {
    let port = free_port();
    let sd = deploy_full(
        "drain-kill",
        port,
        &["--drain-timeout", "2s"],
        None,
        "  ignore_sigterm: true\n",
    );
    let old = pid_now(port);
    restage_config(&sd, port, "");
    sd.exec_ok(&["systemctl", "reload", "mas.service"]);
    assert_ne!(pid_now(port), old);
    let alive = sd.exec(&["kill", "-0", &old.to_string()]);
    assert!(
        !alive.status.success(),
        "the old MAS (pid {old}) outlived the reload"
    );
    let journal = sd.journal("mas.service");
    assert!(
        journal.contains("SIGTERM received: ignored (ignore_sigterm)")
            && journal.contains(&format!(
                "the old MAS (pid {old}) did not finish within 2s; killing it"
            )),
        "{journal}"
    );
    sd.stop().unwrap();
}

/// A mas-sockets that systemd cannot execute (removed with its package,
/// while an admin's units stay) fails the unit at once: no restart every
/// 2 s for ever, which systemd's start limit would not stop at that pace.
#[test]
fn a_mas_sockets_that_cannot_be_executed_fails_the_unit_without_restarts() {
    let port = free_port();
    let sd = deploy("exec-fails", port, &[]);
    fs::remove_file(sd.host_path(&format!("{STAGE}/mas-sockets"))).unwrap();
    let out = sd.systemctl(&["restart", "mas.service"]);
    assert!(
        !out.status.success(),
        "a restart without mas-sockets succeeded"
    );
    sd.wait_for("mas.service to fail", TIMEOUT, || {
        sd.unit_property("mas.service", "ActiveState") == "failed"
    })
    .unwrap();
    assert_eq!(
        sd.unit_property("mas.service", "ExecMainStatus"),
        "203",
        "{}",
        sd.journal("mas.service")
    );
    assert_eq!(sd.unit_property("mas.service", "NRestarts"), "0");
    sd.stop().unwrap();
}

/// A config that no restart can mend (exit status 2) fails the unit at once
/// instead of restarting it for ever. A client that connects meanwhile makes
/// systemd start it again and again until the start limit, which fails the
/// socket units too: clients are then refused, not kept waiting. Once the
/// config is fixed, the README's two commands (`reset-failed`, `restart`)
/// serve again, socket units included.
#[test]
fn an_invalid_config_fails_the_unit_without_restarts() {
    let port = free_port();
    let sd = deploy("config-fails", port, &[]);
    restage_config(&sd, port, "  - not: [a mapping\n");
    let out = sd.systemctl(&["restart", "mas.service"]);
    assert!(
        !out.status.success(),
        "a restart on an invalid config succeeded"
    );
    sd.wait_for("mas.service to fail", TIMEOUT, || {
        sd.unit_property("mas.service", "ActiveState") == "failed"
    })
    .unwrap();
    assert_eq!(sd.unit_property("mas.service", "NRestarts"), "0");
    assert_eq!(
        sd.unit_property("mas.service", "ExecMainStatus"),
        "2",
        "{}",
        sd.journal("mas.service")
    );
    // One waiting connection keeps the socket readable: systemd starts the
    // service for it until the start limit, and then fails the sockets.
    let waiting = std::net::TcpStream::connect(addr(port)).expect("connect while failed");
    for socket in ["mas-web-0.socket", "mas-web-1.socket"] {
        sd.wait_for(&format!("{socket} to fail"), TIMEOUT, || {
            sd.unit_property(socket, "ActiveState") == "failed"
        })
        .unwrap();
    }
    assert_eq!(
        sd.unit_property("mas-web-0.socket", "Result"),
        "service-start-limit-hit"
    );
    drop(waiting);
    assert!(
        std::net::TcpStream::connect(addr(port)).is_err(),
        "the failed socket unit still listens"
    );
    restage_config(&sd, port, "");
    sd.exec_ok(&["systemctl", "reset-failed", "mas*"]);
    sd.exec_ok(&["systemctl", "restart", "mas.service"]);
    assert_eq!(get_tcp(addr(port), "/").expect("serves again").status, 200);
    for socket in ["mas-web-0.socket", "mas-web-1.socket"] {
        assert_eq!(
            sd.unit_property(socket, "ActiveState"),
            "active",
            "{socket}"
        );
    }
    sd.stop().unwrap();
}
