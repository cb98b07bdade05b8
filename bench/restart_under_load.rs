//! How three ways of restarting MAS compare under the same load, side by side
//! in one run against a real systemd booted in private namespaces:
//!
//! - (a) MAS binding its own sockets, restarted with `systemctl restart`;
//! - (b) the generated socket units, with `systemctl restart` of the service;
//! - (c) `systemctl reload` through mas-sockets.
//!
//! The MAS stand-in takes 1 s to become ready, as a MAS with a database
//! takes seconds. The load is the one of the restart tests: 32 workers, half
//! of them on keep-alive connections, `GET /` and `GET /slow/200` on the TCP
//! and the Unix bind.
//!
//! For each way it prints the requests that started inside the restart
//! windows, how many failed and how, their p50/p99/max latency, and the time
//! from the command until the new process answers. A window runs from the
//! command to one second after both the command has returned and the new
//! process answers. It asserts nothing: it is run by `bench/restart-under-load`,
//! not by the test suite.

// The test suite's helpers. Their own unit tests are compiled out here (no
// test harness), which leaves their `use super::*` unused.
#[path = "../tests/util/mod.rs"]
#[allow(unused_imports)]
mod util;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use util::deploy::{boot, install_units_with, sock_path, stage, STAGE, TIMEOUT};
use util::load::{Load, LoadReport, LoadSpec, Target};
use util::{free_port, get_tcp};

/// How long the load runs on after each restart, and before the first.
const SETTLE: Duration = Duration::from_secs(1);

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let ways = [Way::OwnSockets, Way::SocketUnitsRestart, Way::Reload];
    let results: Vec<Result> = ways.iter().map(|way| way.measure(rounds)).collect();

    println!();
    println!(
        "restart-under-load: {rounds} restarts per way; 32 workers (half keep-alive), GET / and /slow/200 on TCP and Unix; the stand-in is ready 1 s after it starts"
    );
    println!(
        "{:<42} {:>9} {:>7} {:>9} {:>9} {:>9} {:>22} {:>16}",
        "way", "requests", "failed", "p50", "p99", "max", "new MAS serves after", "command returns"
    );
    for r in &results {
        println!(
            "{:<42} {:>9} {:>7} {:>9} {:>9} {:>9} {:>22} {:>16}",
            r.way.describe(),
            r.requests,
            r.failed,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            format!("{} (max {})", ms(median(&r.serves)), ms(max(&r.serves))),
            ms(median(&r.returns)),
        );
    }
    for r in &results {
        if !r.kinds.is_empty() {
            let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "{}: failures by kind: {}",
                r.way.describe(),
                kinds.join(", ")
            );
        }
    }
    println!("latencies are of the requests that succeeded; times are medians over the restarts");
}

#[derive(Clone, Copy)]
enum Way {
    OwnSockets,
    SocketUnitsRestart,
    Reload,
}

struct Result {
    way: Way,
    requests: usize,
    failed: usize,
    kinds: BTreeMap<String, usize>,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// From each command to the first answer of the new process.
    serves: Vec<Duration>,
    /// From each command to its return.
    returns: Vec<Duration>,
}

impl Way {
    fn describe(self) -> &'static str {
        match self {
            Way::OwnSockets => "(a) own sockets, systemctl restart",
            Way::SocketUnitsRestart => "(b) socket units, systemctl restart",
            Way::Reload => "(c) systemctl reload (mas-sockets)",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Way::OwnSockets => "bench-own",
            Way::SocketUnitsRestart => "bench-restart",
            Way::Reload => "bench-reload",
        }
    }

    /// Boots a systemd with this way's units, serves, and restarts `rounds`
    /// times under load.
    fn measure(self, rounds: usize) -> Result {
        let port = free_port();
        let sd = boot(self.label());
        stage(&sd, &config(port));
        let (unit, command) = match self {
            Way::OwnSockets => {
                sd.install_unit("mas.service", &own_sockets_unit());
                sd.daemon_reload();
                ("mas.service", "restart")
            }
            Way::SocketUnitsRestart => {
                install_units_with(&sd, &[]);
                ("mas.service", "restart")
            }
            Way::Reload => {
                install_units_with(&sd, &[]);
                ("mas.service", "reload")
            }
        };
        sd.exec_ok(&["systemctl", "start", unit]);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let load = Load::start(LoadSpec {
            targets: vec![Target::Tcp(addr), Target::Unix(sock_path(&sd))],
            workers: 32,
            paths: vec!["/".into(), "/slow/200".into()],
            keep_alive_share: 0.5,
            timeout: Duration::from_secs(20),
        });
        thread::sleep(SETTLE);
        let mut windows = Vec::new();
        let mut serves = Vec::new();
        let mut returns = Vec::new();
        for round in 1..=rounds {
            let old = get_tcp(addr, "/")
                .expect("MAS answers before the restart")
                .pid();
            load.mark(&format!("{} {round}", self.describe()));
            let began = Instant::now();
            let probe = thread::spawn(move || first_answer_from_a_new_pid(addr, old, began));
            sd.exec_ok(&["systemctl", command, unit]);
            let returned = began.elapsed();
            let served = probe.join().expect("probe thread");
            returns.push(returned);
            serves.push(served);
            let end = began + returned.max(served) + SETTLE;
            thread::sleep(end.saturating_duration_since(Instant::now()));
            windows.push((began, end));
            eprintln!(
                "{} round {round}: returned after {}, new pid answered after {}",
                self.describe(),
                ms(returned),
                ms(served)
            );
        }
        let report = load.stop();
        let _ = sd.stop();
        summarise(self, &report, &windows, serves, returns)
    }
}

/// Polls until a process other than `old` answers on `addr`; the time since
/// `began`. A refused connect is retried at once; a queued one waits.
fn first_answer_from_a_new_pid(addr: SocketAddr, old: u32, began: Instant) -> Duration {
    loop {
        if let Ok(response) = get_tcp(addr, "/") {
            if response.pid() != old {
                return began.elapsed();
            }
        }
        assert!(
            began.elapsed() < TIMEOUT,
            "no new MAS answered within {TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

fn summarise(
    way: Way,
    report: &LoadReport,
    windows: &[(Instant, Instant)],
    serves: Vec<Duration>,
    returns: Vec<Duration>,
) -> Result {
    let inside = |at: Instant| windows.iter().any(|(from, to)| at >= *from && at < *to);
    let samples: Vec<_> = report.samples.iter().filter(|s| inside(s.at)).collect();
    let mut latencies: Vec<Duration> = samples.iter().filter(|s| s.ok).map(|s| s.latency).collect();
    latencies.sort_unstable();
    let rank = |percent: usize| {
        latencies
            .get((latencies.len() * percent).div_ceil(100).max(1) - 1)
            .copied()
            .unwrap_or_default()
    };
    let mut kinds = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.ok) {
        let error = s.error.as_deref().unwrap_or("unknown");
        let kind = error.split(':').next().unwrap_or(error).to_owned();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    Result {
        way,
        requests: samples.len(),
        failed: samples.iter().filter(|s| !s.ok).count(),
        kinds,
        p50: rank(50),
        p99: rank(99),
        max: latencies.last().copied().unwrap_or_default(),
        serves,
        returns,
    }
}

/// The config of every way: one listener on a TCP and a Unix bind.
fn config(port: u16) -> String {
    format!(
        "http:\n  public_base: https://auth.example.com/\n  listeners:\n    - name: web\n      resources: [{{name: human}}, {{name: health}}]\n      binds:\n        - host: 127.0.0.1\n          port: {port}\n        - socket: /run/mas-e2e-sock/web.sock\nstandin:\n  startup_delay_ms: 1000\n"
    )
}

/// Way (a): MAS as a plain notify service that binds its own sockets.
fn own_sockets_unit() -> String {
    format!(
        "[Unit]\nDescription=MAS stand-in binding its own sockets\n\n[Service]\nType=notify\nExecStart={STAGE}/mas-cli server --config {STAGE}/config.yaml\nUser=nobody\nGroup=nogroup\nRuntimeDirectory=mas-e2e-sock\nRuntimeDirectoryPreserve=yes\nTimeoutStopSec=30s\n"
    )
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn max(values: &[Duration]) -> Duration {
    values.iter().max().copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
