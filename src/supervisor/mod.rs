//! The supervisor: MAS on the assigned sockets, its notifications relayed to
//! systemd, zero-downtime restarts, crash recovery, the watchdog, and a clean
//! stop. Towards systemd the supervisor stays the main process throughout.
//!
//! This module holds what callers see ([`run`], [`Request`], [`Options`],
//! [`Outcome`], [`SuperviseError`]), the supervisor's state, and the event
//! loop in [`run`]. The loop waits on four sources and hands each event to
//! the submodule that owns it:
//!
//! - a MAS's exit: `crash` (the end of a restart's drain, a new MAS that
//!   failed, a crash and the start after it, or giving up);
//! - a datagram on the private notify socket: `relay` (sd_notify(3), what
//!   each MAS may say and what of it reaches systemd);
//! - a request from a signal or the control socket: `requests`, with the
//!   socket itself in `control_socket`;
//! - a deadline or a watchdog tick: `timers`.
//!
//! Zero-downtime restarts are `restart`'s, the `STATUS=` text and the
//! `status` report are `status`'s, one MAS process is a
//! `generation::Generation`, and the private files live in [`runtime_dir`].
//!
//! Stopping: `STOPPING=1`, SIGTERM to every MAS, up to the stop timeout, then
//! SIGKILL; wait for all; remove the private files.
//!
//! Signals and control requests reach [`run`] as values on a channel.

mod control_socket;
mod crash;
mod generation;
mod relay;
mod requests;
mod restart;
pub mod runtime_dir;
mod status;
mod timers;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_norway::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use self::control_socket::{accept_control, bind_control};
use self::generation::{Exit, Generation};
use self::restart::{LastRestart, Restart};
pub use self::runtime_dir::RuntimeDir;
pub use self::timers::MIN_HANG_USEC;
use crate::assign::{ChildSocket, Origin};
use crate::config::Plan;
use crate::control;
use crate::notify::{NotifyReceiver, NotifyState, SystemdNotifier};

/// The answer to a restart or signal-only request: what happened, or why not.
pub type Reply = oneshot::Sender<Result<String, String>>;

/// A request to the supervisor, from a signal or the control socket.
#[derive(Debug)]
pub enum Request {
    /// SIGTERM or SIGINT: stop (a second one is passed on to MAS, which then
    /// stops at once).
    Stop(Signal),
    /// SIGHUP or `mas-sockets reload`: replace MAS without a gap.
    Restart(Option<Reply>),
    /// `mas-sockets reload --signal-only`: SIGHUP to MAS (templates only).
    SignalOnly(Reply),
    /// `mas-sockets status`.
    Status(oneshot::Sender<String>),
}

/// What the supervisor needs besides the plan and the sockets.
#[derive(Debug)]
pub struct Options {
    pub command: Vec<OsString>,
    pub stop_timeout: Duration,
    /// How long a new MAS may take to become ready during a restart.
    pub ready_timeout: Duration,
    /// How long an old MAS may drain after a restart before it is killed.
    pub drain_timeout: Duration,
    /// This many crashes of a serving MAS within `crash_window` make the
    /// supervisor give up.
    pub crash_limit: u32,
    pub crash_window: Duration,
    /// The first delay before a crashed MAS is started again; it doubles with
    /// each crash in the window, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub runtime_dir: RuntimeDir,
    /// Who made the listening sockets, which decides how binds are changed.
    pub sockets_origin: Origin,
    /// The binary re-executed as `exec-child` (default `/proc/self/exe`).
    pub helper: PathBuf,
    /// systemd's watchdog period for us (`WATCHDOG_USEC`), if it asked for
    /// pings. MAS gets the same period; we ping systemd while the serving MAS
    /// pings us, and replace a MAS that stops pinging.
    pub watchdog_usec: Option<u64>,
}

impl Options {
    fn shown_command(&self) -> String {
        self.command
            .iter()
            .map(|w| w.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How the supervisor ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The last serving MAS's exit status.
    pub status: ExitStatus,
    /// Whether we were asked to stop (else MAS failed in a way we gave up on).
    pub requested: bool,
    pub was_ready: bool,
}

/// Why supervising failed before or around MAS.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot write the child's config in {dir}: {error}; check that the runtime directory is writable by this user", dir = dir.display())]
    WriteConfig { dir: PathBuf, error: io::Error },
    #[error("cannot create the private socket {path}: {error}; {fix}", path = path.display())]
    Socket {
        path: PathBuf,
        error: io::Error,
        fix: &'static str,
    },
    #[error("cannot start {command}: {error}; check the command after `--`")]
    Spawn { command: String, error: io::Error },
    #[error("waiting for MAS failed: {0}")]
    Wait(io::Error),
    #[error("cannot write the merged config as YAML: {0}; MAS could not read this config either, so check it with `mas-sockets check`")]
    Serialize(serde_norway::Error),
    #[error(transparent)]
    RuntimeDir(#[from] runtime_dir::RuntimeDirError),
}

/// The state of the event loop.
struct Supervisor<'a> {
    plan: &'a Plan,
    sockets: Vec<ChildSocket>,
    binds: Vec<Vec<Value>>,
    opts: Options,
    systemd: SystemdNotifier,
    notify_path: PathBuf,
    exits: mpsc::UnboundedSender<Exit>,
    next_generation: u64,
    /// The MAS that serves (or, at first, is starting).
    current: Option<Generation>,
    restart: Option<Restart>,
    /// Requests that came during a restart: one more restart after it.
    queued: Option<Vec<Reply>>,
    /// Signal-only requests waiting for MAS's next `READY=1`.
    signal_waiters: Vec<Reply>,
    /// When they are told that MAS did not answer (the ready timeout after
    /// the first SIGHUP they wait for).
    signal_deadline: Option<Instant>,
    crashes: VecDeque<Instant>,
    /// Set when MAS's own `RELOADING=1` went to systemd: by when its
    /// `READY=1` must follow, or systemd holds the unit in "reloading" and
    /// queues every later reload behind it. Cleared by any `READY=1` sent.
    reloading_until: std::cell::Cell<Option<Instant>>,
    /// When a crashed MAS is started again.
    respawn_at: Option<Instant>,
    /// The MAS started again after a crash that was killed for not being
    /// ready in time; its exit counts as one more crash.
    respawn_killed: Option<u32>,
    /// The config the crashed MAS ran with, for the next one when the files
    /// no longer check.
    crashed_config: Option<Value>,
    last_restart: Option<LastRestart>,
    /// Set once a stop began: SIGKILL deadline.
    stopping: Option<Instant>,
    stop_requested: bool,
    was_ready: bool,
    /// Exit statuses of generations that ended, for the outcome.
    last_status: Option<ExitStatus>,
    give_up: bool,
    /// The serving MAS whose watchdog replacement failed: it is left to
    /// systemd's watchdog rather than replaced again and again.
    hung: Option<u32>,
    started: Instant,
}

/// Runs MAS until asked to stop, or until it fails beyond recovery.
///
/// # Errors
///
/// The private sockets cannot be made, or the first MAS cannot be started.
pub async fn run(
    plan: &Plan,
    sockets: Vec<ChildSocket>,
    binds: Vec<Vec<Value>>,
    opts: Options,
    systemd: SystemdNotifier,
    mut requests: mpsc::Receiver<Request>,
    requests_tx: mpsc::Sender<Request>,
) -> Result<Outcome, SuperviseError> {
    let dir = opts.runtime_dir.path().to_owned();
    let pid = std::process::id();
    let notify_path = dir.join(notify_socket_name(pid));
    let _ = std::fs::remove_file(&notify_path);
    let receiver = NotifyReceiver::bind(&notify_path).map_err(|error| SuperviseError::Socket {
        path: notify_path.clone(),
        error,
        fix: WRITABLE_DIR,
    })?;
    let control = bind_control(&dir)?;
    info!(
        "runtime directory {}; reach this supervisor with `mas-sockets status{how}` or `mas-sockets reload{how}`",
        dir.display(),
        how = how_to_reach(&dir)
    );
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut sv = Supervisor {
        plan,
        sockets,
        binds,
        opts,
        systemd,
        notify_path,
        exits: exits_tx,
        next_generation: 1,
        current: None,
        restart: None,
        queued: None,
        signal_waiters: Vec::new(),
        signal_deadline: None,
        crashes: VecDeque::new(),
        reloading_until: std::cell::Cell::new(None),
        respawn_at: None,
        respawn_killed: None,
        crashed_config: None,
        last_restart: None,
        stopping: None,
        stop_requested: false,
        was_ready: false,
        last_status: None,
        give_up: false,
        hung: None,
        started: Instant::now(),
    };
    let config = plan.rewrite(&sv.binds);
    sv.current = Some(sv.spawn(&config)?);
    let control = tokio::spawn(accept_control(control, requests_tx));
    let watchdog_tick = sv
        .opts
        .watchdog_usec
        .map(|usec| Duration::from_micros(usec / 2).max(Duration::from_millis(10)));
    let mut next_tick = watchdog_tick.map(|t| Instant::now() + t);

    loop {
        if sv.finished() {
            break;
        }
        let deadline = [sv.next_deadline(), next_tick].into_iter().flatten().min();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(exit) = exits.recv() => sv.on_exit(exit),
            datagram = receiver.recv() => match datagram {
                Ok(d) => sv.on_datagram(d),
                Err(e) => warn!("reading the private notify socket failed: {e}"),
            },
            Some(request) = requests.recv() => sv.on_request(request),
            () = timer => {
                let now = Instant::now();
                if let (Some(tick), Some(at)) = (watchdog_tick, next_tick) {
                    if now >= at {
                        sv.on_watchdog_tick();
                        next_tick = Some(now + tick);
                    }
                }
                sv.on_timers(now);
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(control::SOCKET_NAME));
    // The sockets' files go before the runtime directory's lock (in `sv`),
    // so that no other supervisor sweeps while they are still there.
    control.abort();
    drop(receiver);
    // STOPPING=1 (or the status that says why we give up) may still wait for
    // room in systemd's queue: it goes before we exit, within its deadline.
    sv.systemd.finish().await;
    let status = sv
        .last_status
        .unwrap_or_else(|| ExitStatus::from_raw(1 << 8));
    Ok(Outcome {
        status,
        requested: sv.stop_requested && !sv.give_up,
        was_ready: sv.was_ready,
    })
}

/// The name of the private notify socket of the supervisor with `pid`, in
/// its runtime directory; the longest name of a socket there.
pub fn notify_socket_name(pid: u32) -> String {
    format!("notify.{pid}.sock")
}

/// The option that `status` and `reload` need to find the runtime
/// directory `dir`: none for a service's default (`/run/mas-sockets/mas`),
/// `--name` for another service's, and `--runtime-dir` for any other (run
/// by hand, the directory may be a new one that nothing else names).
fn how_to_reach(dir: &std::path::Path) -> String {
    let name = dir
        .strip_prefix("/run/mas-sockets")
        .ok()
        .and_then(|rest| rest.to_str())
        .filter(|name| crate::units::is_name_prefix(name));
    match name {
        Some("mas") => String::new(),
        Some(name) => format!(" --name {name}"),
        None => format!(" --runtime-dir {}", shell_word(dir)),
    }
}

/// `path` as one word for a POSIX shell: as it is when it has nothing the
/// shell would take apart, else in single quotes.
pub(crate) fn shell_word(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The fix for a private socket that cannot be made.
const WRITABLE_DIR: &str =
    "check that the runtime directory is writable by this user, or give another with --runtime-dir";

impl Supervisor<'_> {
    fn spawn(&mut self, config: &Value) -> Result<Generation, SuperviseError> {
        let number = self.next_generation;
        self.next_generation += 1;
        let g = Generation::spawn(
            number,
            config,
            &self.sockets,
            &self.notify_path,
            &self.opts,
            self.exits.clone(),
        )?;
        let on = if self.sockets.is_empty() {
            "no socket (the config has no listeners)".to_owned()
        } else {
            self.sockets
                .iter()
                .map(|s| s.description.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        info!(
            generation = number,
            "started {} (pid {}, generation {number}) on {on}",
            self.opts.shown_command(),
            g.pid,
        );
        Ok(g)
    }

    /// Sends to systemd, after what still waits for room in its queue; never
    /// blocks.
    fn notify(&self, states: &[NotifyState]) {
        // After READY=1, or STOPPING=1, systemd waits for no READY=1.
        if states.contains(&NotifyState::Ready) || states.contains(&NotifyState::Stopping) {
            self.reloading_until.set(None);
        }
        self.systemd.send(states);
    }

    /// Everything has exited after a stop, or the supervisor gave up.
    fn finished(&self) -> bool {
        let nothing_runs = self.current.is_none()
            && self
                .restart
                .as_ref()
                .is_none_or(|r| r.candidate.is_none() && r.draining.is_none());
        (self.stopping.is_some() || self.give_up) && nothing_runs
    }

    fn for_each_generation(&self, f: impl Fn(&Generation)) {
        if let Some(g) = &self.current {
            f(g);
        }
        if let Some(r) = &self.restart {
            if let Some(g) = &r.candidate {
                f(g);
            }
            if let Some((g, _)) = &r.draining {
                f(g);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_one_shell_word() {
        use std::path::Path;
        assert_eq!(
            shell_word(Path::new("/tmp/mas-sockets.12")),
            "/tmp/mas-sockets.12"
        );
        assert_eq!(shell_word(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(shell_word(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
        assert_eq!(shell_word(Path::new("/tmp/$x")), "'/tmp/$x'");
    }

    /// A service's directory is reached as `status` and `reload` find it
    /// without being told, or with `--name`; any other by its path.
    #[test]
    fn the_log_says_how_to_reach_the_supervisor() {
        use std::path::Path;
        assert_eq!(how_to_reach(Path::new("/run/mas-sockets/mas")), "");
        assert_eq!(
            how_to_reach(Path::new("/run/mas-sockets/mas-staging")),
            " --name mas-staging"
        );
        assert_eq!(
            how_to_reach(Path::new("/run/mas-sockets/a/b")),
            " --runtime-dir /run/mas-sockets/a/b"
        );
        assert_eq!(
            how_to_reach(Path::new("/tmp/mas sockets")),
            " --runtime-dir '/tmp/mas sockets'"
        );
    }
}
