//! The generated units, installed in a real systemd booted in private
//! namespaces, with supervise running the MAS stand-in on a TCP and a Unix bind.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::systemd::Systemd;
use crate::util::{free_port, get_tcp, get_unix, run_ok};

use crate::util::deploy::generate_units_into;
pub(crate) use crate::util::deploy::{boot, install_units_with, sock_path, stage, STAGE, TIMEOUT};

/// Generates the units for the staged config straight into the instance.
fn install_units(sd: &Systemd) -> Vec<String> {
    install_units_with(sd, &[])
}

/// Everything a real host must show: requests on both binds, active
/// only after the stand-in's READY=1, MainPID stays the supervisor, and a
/// stop leaves no process behind while the sockets stay.
#[test]
fn generated_units_serve_tcp_and_unix_under_real_systemd() {
    let port = free_port();
    let sd = boot("e2e");
    stage(
        &sd,
        &format!(
            "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}, {{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: {port}\n        - socket: /run/mas-e2e-sock/web.sock\nsecrets:\n  encryption: not-for-units\nstandin:\n  startup_delay_ms: 1500\n"
        ),
    );
    let units = install_units(&sd);
    assert_eq!(
        units,
        ["mas-web-0.socket", "mas-web-1.socket", "mas.service"]
    );
    sd.exec_ok(&["systemctl", "start", "mas-web-0.socket", "mas-web-1.socket"]);
    let sock_meta = fs::metadata(sock_path(&sd)).expect("the socket unit made the Unix socket");
    assert_eq!(sock_meta.permissions().mode() & 0o777, 0o660);

    // Start without waiting, and watch it stay `activating` through the
    // stand-in's start-up delay.
    sd.exec_ok(&["systemctl", "start", "--no-block", "mas.service"]);
    sd.wait_for("the stand-in's start-up delay", TIMEOUT, || {
        sd.journal("mas.service")
            .contains("start-up delay of 1500 ms")
    })
    .unwrap();
    assert_eq!(sd.unit_property("mas.service", "ActiveState"), "activating");
    sd.wait_for("mas.service to become active", TIMEOUT, || {
        sd.unit_property("mas.service", "ActiveState") == "active"
    })
    .unwrap();
    let journal = sd.journal("mas.service");
    assert!(journal.contains("ready (READY=1)"), "{journal}");
    assert!(
        journal.contains("is ready"),
        "supervise logs to the journal:\n{journal}"
    );

    let tcp = get_tcp(SocketAddr::from(([127, 0, 0, 1], port)), "/health").expect("tcp request");
    assert_eq!((tcp.status, tcp.body.as_str()), (200, "ok\n"));
    let unix = get_unix(&sock_path(&sd), "/via-unix").expect("unix request");
    assert_eq!(unix.status, 200);
    assert_eq!(unix.pid(), tcp.pid());

    // The supervisor stays the main process; the stand-in is its child.
    let main_pid = sd.unit_property("mas.service", "MainPID");
    let comm = sd.exec_ok(&["cat", &format!("/proc/{main_pid}/comm")]);
    assert_eq!(comm.trim(), "mas-sockets");
    assert_ne!(main_pid, tcp.pid().to_string());
    let status = sd.exec_ok(&["cat", &format!("/proc/{}/status", tcp.pid())]);
    assert!(
        status.contains(&format!("\nPPid:\t{main_pid}\n")),
        "{status}"
    );
    assert_eq!(
        sd.unit_property("mas.service", "StatusText"),
        format!("MAS (pid {}) is serving on 2 socket(s)", tcp.pid())
    );

    sd.exec_ok(&["systemctl", "stop", "mas.service"]);
    let left: Vec<_> = sd
        .processes()
        .into_iter()
        .filter(|p| p.cgroup.contains("mas.service"))
        .collect();
    assert!(left.is_empty(), "processes left after stop: {left:?}");
    assert_eq!(sd.unit_property("mas.service", "Result"), "success");
    for socket in ["mas-web-0.socket", "mas-web-1.socket"] {
        assert_eq!(
            sd.unit_property(socket, "ActiveState"),
            "active",
            "{socket} keeps listening"
        );
    }

    // A connection to the held socket starts the service again.
    let again = get_tcp(SocketAddr::from(([127, 0, 0, 1], port)), "/again")
        .expect("socket-activated request");
    assert_eq!(again.status, 200);
    assert_ne!(again.pid(), tcp.pid());
    sd.stop().unwrap();
}

/// A passed fd that something closed before supervise started is reported
/// as such, also when supervise logs to the journal: the journal's socket
/// must not take that fd's number and pass for one of the sockets.
#[test]
fn a_passed_fd_closed_before_supervise_starts_is_reported_as_not_open() {
    let (first, second) = (free_port(), free_port());
    let sd = boot("closed-fd");
    stage(
        &sd,
        &format!(
            "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds:\n        - host: 127.0.0.1\n          port: {first}\n        - host: 127.0.0.1\n          port: {second}\n"
        ),
    );
    sd.install_unit(
        "closed.socket",
        &format!("[Socket]\nListenStream=127.0.0.1:{first}\nListenStream=127.0.0.1:{second}\n"),
    );
    // The shell closes fd 4 and execs supervise, which keeps its pid, so
    // LISTEN_PID and LISTEN_FDS=2 still hold for it.
    sd.install_unit(
        "closed.service",
        &format!(
            "[Service]\nType=notify\nExecStart=/bin/sh -c 'exec 4<&-; exec {STAGE}/mas-sockets supervise --config {STAGE}/config.yaml -- {STAGE}/mas-cli server'\n"
        ),
    );
    sd.daemon_reload();
    sd.exec_ok(&["systemctl", "start", "closed.socket"]);
    let out = sd.systemctl(&["start", "closed.service"]);
    assert!(!out.status.success(), "the service started");
    let want = "LISTEN_FDS covers fd 4 but it is not open";
    sd.wait_for("the error in the journal", TIMEOUT, || {
        sd.journal("closed.service").contains(want)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", sd.journal("closed.service")));
    let journal = sd.journal("closed.service");
    assert!(!journal.contains("matches no configured bind"), "{journal}");
    sd.stop().unwrap();
}

/// Runs the `next:` line of generate-units' output `out`, step by step: the
/// `systemctl` steps in the instance, with `enable` given `--runtime` so that
/// it writes into the instance's /run and not into the host's /etc; an `rm`
/// step on the host, by `sh`, since generate-units wrote the units through
/// the host's path to the instance and names their files so. Returns the line.
fn follow_next(sd: &Systemd, out: &str) -> String {
    let next = out
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("no `next:` line in:\n{out}"));
    for step in next.split(" && ") {
        if step.starts_with("rm ") {
            run_ok(Command::new("sh").arg("-c").arg(step));
            continue;
        }
        let mut argv: Vec<&str> = step.split_whitespace().collect();
        if argv.get(1) == Some(&"enable") {
            argv.insert(2, "--runtime");
        }
        sd.exec_ok(&argv);
    }
    next.to_owned()
}

/// The `next:` line generate-units prints after writing the units makes
/// them take effect, on a first install and after a regeneration that moves
/// a bind to another port.
#[test]
fn the_next_step_generate_units_prints_puts_the_units_in_effect() {
    let (first, second) = (free_port(), free_port());
    let sd = boot("next-step");
    let config = |port: u16| {
        format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: {port}\n")
    };
    stage(&sd, &config(first));
    let next = follow_next(&sd, &generate_units_into(&sd, &[]));
    let served = get_tcp(SocketAddr::from(([127, 0, 0, 1], first)), "/health")
        .unwrap_or_else(|e| panic!("after a first install and `{next}`: {e}"));
    assert_eq!(served.status, 200);
    assert_eq!(
        sd.unit_property("mas.service", "UnitFileState"),
        "enabled-runtime"
    );

    // The listener moves: regenerate, and follow the same line.
    fs::write(
        sd.host_path(&format!("{STAGE}/config.yaml")),
        config(second),
    )
    .unwrap();
    let next = follow_next(&sd, &generate_units_into(&sd, &[]));
    let served = get_tcp(SocketAddr::from(([127, 0, 0, 1], second)), "/health")
        .unwrap_or_else(|e| panic!("after a regeneration and `{next}`: {e}"));
    assert_eq!(served.status, 200);
    assert!(
        get_tcp(SocketAddr::from(([127, 0, 0, 1], first)), "/health").is_err(),
        "the old port still answers after `{next}`"
    );
    sd.stop().unwrap();
}

/// A listener renamed on the same port gets a socket unit of another name
/// for the address the old unit holds: the `next:` line takes the old unit
/// out of the way first, so that the new one can bind and the service serves.
#[test]
fn the_next_step_after_a_rename_on_the_same_port_serves() {
    let port = free_port();
    let sd = boot("next-rename");
    let config = |name: &str| {
        format!("http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: {name}\n      resources: [{{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: {port}\n")
    };
    stage(&sd, &config("internal"));
    follow_next(&sd, &generate_units_into(&sd, &[]));
    assert_eq!(
        sd.unit_property("mas-internal.socket", "ActiveState"),
        "active"
    );

    fs::write(
        sd.host_path(&format!("{STAGE}/config.yaml")),
        config("health"),
    )
    .unwrap();
    let next = follow_next(&sd, &generate_units_into(&sd, &[]));
    for (unit, state) in [
        ("mas-health.socket", "active"),
        ("mas.service", "active"),
        ("mas-internal.socket", "inactive"),
    ] {
        assert_eq!(
            sd.unit_property(unit, "ActiveState"),
            state,
            "{unit} after `{next}`\n{}",
            sd.journal("mas-health.socket")
        );
    }
    assert!(
        !sd.host_path("/run/systemd/system/mas-internal.socket")
            .exists(),
        "the old unit's file is still there after `{next}`"
    );
    let served = get_tcp(SocketAddr::from(([127, 0, 0, 1], port)), "/health")
        .unwrap_or_else(|e| panic!("after a rename and `{next}`: {e}"));
    assert_eq!(served.status, 200);
    sd.stop().unwrap();
}
