//! The real-systemd harness itself: an instance boots, runs units, passes sockets and
//! stops without leaving anything behind. The end-to-end tests of mas-sockets rely on
//! each of these; when one fails here, look no further for why they fail.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::util::systemd::Systemd;

/// How long a unit may take to reach the state a test waits for.
const UNIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Boots an instance for one test, failing the test (never skipping it) when it cannot.
fn boot(label: &str) -> Systemd {
    Systemd::boot(label).unwrap_or_else(|e| panic!("{e}"))
}

/// A port on 127.0.0.1 that was free a moment ago; the instance shares the host's network.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A `Type=notify` service becomes active once it reports `READY=1`, logs to the
/// journal, and `systemctl stop` leaves none of its processes behind.
#[test]
fn boots_runs_a_unit_and_stops_clean() {
    let sd = boot("smoke-unit");
    // systemd-notify runs as a child of the shell, not as the main process, so systemd
    // accepts its READY=1 only with NotifyAccess=all.
    sd.install_unit(
        "smoke.service",
        "[Service]\n\
         Type=notify\n\
         NotifyAccess=all\n\
         ExecStart=/bin/sh -c 'echo smoke-service-started; systemd-notify --ready; exec sleep infinity'\n",
    );
    sd.daemon_reload();
    // With Type=notify, `start` returns only after READY=1 arrived.
    sd.exec_ok(&["systemctl", "start", "smoke.service"]);
    assert_eq!(sd.unit_property("smoke.service", "ActiveState"), "active");

    let running = sd.processes();
    assert!(
        running
            .iter()
            .any(|p| p.comm == "sleep" && p.cgroup.ends_with("/smoke.service")),
        "the service's sleep should be listed: {running:?}"
    );

    sd.exec_ok(&["systemctl", "stop", "smoke.service"]);
    assert_eq!(sd.unit_property("smoke.service", "ActiveState"), "inactive");
    let left = sd.processes();
    assert!(left.is_empty(), "processes left after stop: {left:?}");

    sd.wait_for("the service's line in the journal", UNIT_TIMEOUT, || {
        sd.journal("smoke.service")
            .contains("smoke-service-started")
    })
    .unwrap_or_else(|e| panic!("{e}\njournal:\n{}", sd.journal("smoke.service")));

    sd.stop().expect("clean teardown");
}

/// A connection to a `.socket` unit starts its service with the socket passed as
/// fd 3 under its `FileDescriptorName=`.
#[test]
fn socket_activation_passes_named_fds() {
    let sd = boot("smoke-socket");
    let port = free_port();
    sd.install_unit(
        "smoke-web.socket",
        &format!("[Socket]\nListenStream=127.0.0.1:{port}\nFileDescriptorName=web\n"),
    );
    // `$$` hands `$` to the shell instead of systemd's own expansion; the rename makes
    // the file appear complete.
    sd.install_unit(
        "smoke-web.service",
        "[Service]\n\
         ExecStart=/bin/sh -c 'echo \"$$LISTEN_FDS $$LISTEN_FDNAMES\" > /run/out.tmp && mv /run/out.tmp /run/out; exec sleep infinity'\n",
    );
    sd.daemon_reload();
    sd.exec_ok(&["systemctl", "start", "smoke-web.socket"]);
    assert_eq!(
        sd.unit_property("smoke-web.service", "ActiveState"),
        "inactive"
    );

    let _conn = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    let out = sd.host_path("/run/out");
    sd.wait_for("/run/out from the activated service", UNIT_TIMEOUT, || {
        out.exists()
    })
    .unwrap_or_else(|e| panic!("{e}\njournal:\n{}", sd.journal("smoke-web.service")));
    let passed = fs::read_to_string(&out).expect("read /run/out");
    assert_eq!(passed.trim(), "1 web");
    assert_eq!(
        sd.unit_property("smoke-web.service", "ActiveState"),
        "active"
    );

    sd.stop().expect("clean teardown");
}

/// Instances booted at the same time get their own cgroup, units and `/run`, so tests
/// running in parallel threads cannot see each other's.
#[test]
fn parallel_instances_are_separate() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| boot("smoke-parallel-a"));
        let b = s.spawn(|| boot("smoke-parallel-b"));
        (
            a.join().expect("boot thread a"),
            b.join().expect("boot thread b"),
        )
    });
    assert_ne!(a.name(), b.name());
    assert_ne!(a.pid(), b.pid());

    a.install_unit(
        "smoke-only-in-a.service",
        "[Service]\nExecStart=/bin/sleep infinity\n",
    );
    a.daemon_reload();
    b.daemon_reload();
    assert_eq!(
        a.unit_property("smoke-only-in-a.service", "LoadState"),
        "loaded"
    );
    assert_eq!(
        b.unit_property("smoke-only-in-a.service", "LoadState"),
        "not-found"
    );
    assert!(!b
        .host_path("/run/systemd/system/smoke-only-in-a.service")
        .exists());

    a.exec_ok(&["systemctl", "start", "smoke-only-in-a.service"]);
    // Type=simple: `start` returns before the exec, while comm is still "(sleep)".
    a.wait_for("a to run sleep", UNIT_TIMEOUT, || {
        a.processes().iter().any(|p| p.comm == "sleep")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", a.processes()));
    assert!(b.processes().is_empty(), "b runs: {:?}", b.processes());

    // The boot threads have ended; the instances must outlive them.
    a.stop().expect("clean teardown of a");
    b.stop().expect("clean teardown of b");
}
