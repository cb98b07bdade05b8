//! `mas-standin`: a test-only stand-in for `mas-cli server` from the Matrix
//! Authentication Service (MAS).
//!
//! It reads MAS's YAML config files the way MAS reads them, turns the binds of
//! `http.listeners` into sockets the way MAS does (inherited fds by position,
//! host + port, socket address, Unix socket), speaks the same `sd_notify(3)`
//! messages in the same order, and stops on the same signals. For each of
//! MAS's resources it answers that resource's paths (under the listener's
//! `prefix`), speaks the PROXY protocol where MAS would, and works out the
//! client's address as MAS does; every answer names the process, the
//! listener and the resource that answered. Switches (environment or a `standin:` config
//! section) make it misbehave on purpose: start slowly, never get ready, ignore
//! SIGTERM, stop its watchdog pings, crash while serving.
//!
//! It needs no database and is never packaged. Every event is one line on
//! stderr, prefixed `mas-standin[<pid>]: `.
//!
//! Exit status: 0 after a clean stop (soft or hard), 1 when start-up failed or
//! `exit_at_start` or `crash_after_ms` asked for it.

use std::io;
use std::os::fd::RawFd;
use std::process::ExitCode;

/// Writes one event line on stderr, prefixed with the program name and pid.
/// A closed stderr loses the line instead of panicking, as `eprintln!` would.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("mas-standin[{}]: {}\n", std::process::id(), format_args!($($arg)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
}

mod args;
mod behaviour;
mod config;
mod lifecycle;
mod listen;
mod proxy;
mod report;
mod serve;

fn main() -> ExitCode {
    // Listed before this process opens anything, so the report shows exactly
    // what it inherited.
    let inherited_fds = report::list_open_fds();
    match run(inherited_fds) {
        Ok(code) => code,
        Err(err) => {
            // Tests read stderr line by line: keep the whole chain on one line.
            let text = format!("{err:#}").replace('\n', " ");
            log!("error: {text}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the command line and config files, then hands over to the lifecycle.
fn run(inherited_fds: io::Result<Vec<RawFd>>) -> anyhow::Result<ExitCode> {
    let args = args::parse(std::env::args_os().skip(1))?;
    let paths = args.config_paths(std::env::var("MAS_CONFIG").ok());
    report::append_if_requested(&paths, inherited_fds)?;
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    log!("starting, config files: {}", shown.join(", "));
    let merged = config::load_files(&paths)?;
    lifecycle::run(&merged)
}
