//! The supervisor's event loop: one MAS child on the assigned sockets, its
//! notifications relayed to systemd, and signals turned into a clean stop.
//!
//! Protocols: sd_notify(3) on both sides. The child gets a private
//! `NOTIFY_SOCKET`; datagrams are accepted only when their credentials carry
//! the child's pid. Towards systemd the supervisor stays the main process: it
//! never relays `MAINPID=`, and it says `READY=1` only after the child did.
//!
//! Stopping, in order: say `STOPPING=1`, send SIGTERM to the child, wait up to
//! the stop timeout for it to drain, then SIGKILL it; reap it; remove the
//! private files. The sockets stay open until the supervisor exits, so
//! connections that arrive meanwhile wait in the backlog for the next start.
//!
//! Signals reach [`run`] as values on a channel, so tests can drive it.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::os::fd::AsFd as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::assign::Assignment;
use crate::child::{self, ChildCommand};
use crate::config::Plan;
use crate::notify::{NotifyReceiver, NotifyState, SystemdNotifier};

/// A signal delivered to the supervisor, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT: stop (a second one is passed on to MAS, which then
    /// stops at once).
    Stop(Signal),
    /// SIGHUP: passed on to MAS, which reloads its templates.
    Reload,
}

/// What the supervisor needs besides the plan and the sockets.
#[derive(Debug)]
pub struct Options {
    pub command: Vec<OsString>,
    pub stop_timeout: Duration,
    pub runtime_dir: RuntimeDir,
    /// The binary re-executed as `exec-child` (default `/proc/self/exe`).
    pub helper: PathBuf,
    /// systemd's watchdog period for us (`WATCHDOG_USEC`), if it asked for
    /// pings. MAS gets the same period and its pings are passed on, so systemd
    /// hears from us exactly while MAS is alive and well.
    pub watchdog_usec: Option<u64>,
}

/// How the child ended, and whether we asked it to.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub status: ExitStatus,
    pub requested: bool,
    pub was_ready: bool,
}

/// Why supervising failed before or around the child.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot write the child's config in {dir}: {error}; check that the runtime directory is writable by this user", dir = dir.display())]
    WriteConfig { dir: PathBuf, error: io::Error },
    #[error("cannot create the private notify socket {path}: {error}", path = path.display())]
    NotifySocket { path: PathBuf, error: io::Error },
    #[error("cannot start {command}: {error}; check the command after `--`")]
    Spawn { command: String, error: io::Error },
    #[error("waiting for the child failed: {0}")]
    Wait(io::Error),
    #[error("cannot write the merged config as YAML: {0}; MAS could not read this config either, so check it with `mas-sockets check`")]
    Serialize(serde_norway::Error),
}

/// A private directory (mode 0700) for the notify socket and the rewritten config.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Whether we made the directory (and so remove it) or were given it.
    owned: bool,
}

impl RuntimeDir {
    /// Uses `dir` as given (systemd's `RuntimeDirectory=` is already private),
    /// after removing the files a killed supervisor left there.
    pub fn given(dir: PathBuf) -> RuntimeDir {
        sweep(&dir, |name| {
            let pid = name
                .strip_prefix("config.")
                .or_else(|| name.strip_prefix("notify."))?;
            pid.split('.').next()
        });
        RuntimeDir {
            path: dir,
            owned: false,
        }
    }

    /// Makes a new directory `mas-sockets.<pid>` under `parent`, mode 0700,
    /// after removing such directories of supervisors that were killed.
    ///
    /// # Errors
    ///
    /// The directory cannot be created (it must not exist).
    pub fn create_in(parent: &Path) -> io::Result<RuntimeDir> {
        sweep(parent, |name| name.strip_prefix("mas-sockets."));
        let path = parent.join(format!("mas-sockets.{}", std::process::id()));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(RuntimeDir { path, owned: true })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes the entries of `dir` that are ours (same owner) and belong to a
/// supervisor pid that no longer runs: a rewritten config must not outlive a
/// supervisor that was killed before it could remove it. `pid_of` extracts the
/// pid from an entry's name, or says it is not such an entry.
fn sweep(dir: &Path, pid_of: impl Fn(&str) -> Option<&str>) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = pid_of(&name).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.uid() == uid);
        if !ours || pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => info!(
                "removed {}, left by supervisor pid {pid}, which is gone",
                path.display()
            ),
            Err(e) => warn!(
                "cannot remove {}, left by a supervisor that is gone: {e}",
                path.display()
            ),
        }
    }
}

/// A file removed when dropped, at the latest.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn remove(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = fs::remove_file(&path) {
                warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Writes `text` to a new file readable by its owner only.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Environment variables the child must not inherit from us: systemd's, which
/// describe our sockets and watchdog, and our own settings.
fn env_to_remove() -> Vec<OsString> {
    let mut names: Vec<OsString> = [
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    names.extend(
        std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.to_str().is_some_and(|k| k.starts_with("MAS_SOCKETS_"))),
    );
    names
}

/// Runs the child until it exits, relaying its notifications.
///
/// # Errors
///
/// The child could not be set up or started, or waiting on it failed.
pub async fn run(
    plan: &Plan,
    assignment: Assignment,
    opts: Options,
    systemd: SystemdNotifier,
    mut requests: mpsc::Receiver<Request>,
) -> Result<Outcome, SuperviseError> {
    let dir = opts.runtime_dir.path().to_owned();
    let pid = std::process::id();

    let config_path = dir.join(format!("config.{pid}.yaml"));
    let rewritten = serde_norway::to_string(&plan.rewrite(&assignment.binds))
        .map_err(SuperviseError::Serialize)?;
    // Only an earlier process with our pid (a reused pid, or PID 1 of a
    // container) can have left this name behind; it is stale.
    let _ = fs::remove_file(&config_path);
    write_private(&config_path, &rewritten).map_err(|source| SuperviseError::WriteConfig {
        dir: dir.clone(),
        error: source,
    })?;
    let mut config_file = TempFile(Some(config_path.clone()));

    let notify_path = dir.join(format!("notify.{pid}.sock"));
    let _ = fs::remove_file(&notify_path);
    let receiver =
        NotifyReceiver::bind(&notify_path).map_err(|source| SuperviseError::NotifySocket {
            path: notify_path.clone(),
            error: source,
        })?;
    let _notify_file = TempFile(Some(notify_path.clone()));

    let (program, args) = opts.command.split_first().expect("clap requires a command");
    let command = ChildCommand {
        program: program.clone(),
        args: args.to_vec(),
        fds: assignment.sockets.iter().map(|s| s.fd.as_fd()).collect(),
        fd_names: assignment.sockets.iter().map(|s| s.name.clone()).collect(),
        env: [
            (
                OsString::from("NOTIFY_SOCKET"),
                notify_path.clone().into_os_string(),
            ),
            (
                OsString::from(crate::config::MAS_CONFIG),
                config_path.into_os_string(),
            ),
        ]
        .into_iter()
        // WATCHDOG_PID is written by exec-child, which knows MAS's pid.
        .chain(opts.watchdog_usec.map(|usec| {
            (
                OsString::from("WATCHDOG_USEC"),
                OsString::from(usec.to_string()),
            )
        }))
        .collect(),
        env_remove: env_to_remove(),
        helper: opts.helper.clone(),
    };
    let shown = opts
        .command
        .iter()
        .map(|w| w.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = child::spawn(&command).map_err(|source| SuperviseError::Spawn {
        command: shown.clone(),
        error: source,
    })?;
    let child_pid = child.id().expect("a just spawned child has a pid");
    info!(
        child = child_pid,
        "started {shown} (pid {child_pid}) on {}",
        assignment
            .sockets
            .iter()
            .map(|s| s.description.clone())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut ready = false;
    let mut stop_requested = false;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut requests_open = true;
    let status = loop {
        let kill_timer = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status.map_err(SuperviseError::Wait)?,
            datagram = receiver.recv() => {
                let datagram = match datagram {
                    Ok(d) => d,
                    Err(e) => {
                        warn!("reading the notify socket failed: {e}");
                        continue;
                    }
                };
                if datagram.sender_pid != Some(child_pid) {
                    warn!(
                        "ignored a notification from pid {} on the private notify socket; only the child (pid {child_pid}) may send",
                        datagram.sender_pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
                    );
                    continue;
                }
                if datagram.closed_fds > 0 {
                    warn!("closed {} fd(s) the child sent with a notification; none are expected", datagram.closed_fds);
                }
                relay(&systemd, &datagram.states, &mut ready, &mut config_file, child_pid, assignment.sockets.len(), stop_requested);
            }
            request = requests.recv(), if requests_open => match request {
                None => requests_open = false,
                Some(Request::Stop(signal)) => {
                    if stop_requested {
                        info!("second {signal}: passing it on, so MAS stops without draining");
                    } else {
                        info!("{signal}: stopping MAS (pid {child_pid}), allowing {:?} to drain", opts.stop_timeout);
                        stop_requested = true;
                        notify(&systemd, &[NotifyState::Stopping]);
                        kill_at = tokio::time::Instant::now().checked_add(opts.stop_timeout);
                    }
                    signal_child(child_pid, Signal::SIGTERM);
                }
                // Before MAS is ready it may not handle SIGHUP yet, and would die of it.
                Some(Request::Reload) if !ready || stop_requested => {
                    warn!("SIGHUP ignored: MAS (pid {child_pid}) is not serving yet, or is stopping");
                }
                Some(Request::Reload) => {
                    info!("SIGHUP: passing it on to MAS (pid {child_pid}), which reloads its templates");
                    signal_child(child_pid, Signal::SIGHUP);
                }
            },
            () = kill_timer => {
                warn!("MAS (pid {child_pid}) did not stop within {:?}; killing it", opts.stop_timeout);
                signal_child(child_pid, Signal::SIGKILL);
                kill_at = None;
            }
        }
    };
    config_file.remove();
    if stop_requested {
        info!("MAS (pid {child_pid}) stopped: {status}");
    } else {
        warn!("MAS (pid {child_pid}) exited on its own: {status}");
    }
    Ok(Outcome {
        status,
        requested: stop_requested,
        was_ready: ready,
    })
}

/// Passes the child's notifications on to systemd, as far as they concern it.
fn relay(
    systemd: &SystemdNotifier,
    states: &[NotifyState],
    ready: &mut bool,
    config_file: &mut TempFile,
    child_pid: u32,
    sockets: usize,
    stopping: bool,
) {
    let mut out = Vec::new();
    for state in states {
        match state {
            NotifyState::Ready => {
                if !*ready {
                    *ready = true;
                    // MAS has read its config; the secrets need not stay on disk.
                    config_file.remove();
                    info!("MAS (pid {child_pid}) is ready");
                    out.push(NotifyState::Status(format!(
                        "MAS (pid {child_pid}) is serving on {sockets} socket(s)"
                    )));
                }
                if !stopping {
                    out.push(NotifyState::Ready);
                }
            }
            NotifyState::Reloading | NotifyState::MonotonicUsec(_) if !stopping => {
                out.push(state.clone())
            }
            NotifyState::Status(_) | NotifyState::ExtendTimeoutUsec(_) => out.push(state.clone()),
            // Only MAS's own pings keep systemd's watchdog quiet.
            NotifyState::Watchdog | NotifyState::WatchdogTrigger => out.push(state.clone()),
            // We stay the main process: the child's pid is never relayed.
            NotifyState::MainPid(p) => debug!("child announced MAINPID={p}; not relayed"),
            other => debug!("child sent {other}; not relayed"),
        }
    }
    if !out.is_empty() {
        notify(systemd, &out);
    }
}

fn notify(systemd: &SystemdNotifier, states: &[NotifyState]) {
    if let Err(e) = systemd.send(states) {
        warn!("cannot notify systemd: {e}");
    }
}

fn signal_child(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(e) = kill(Pid::from_raw(raw), signal) {
        // ESRCH: it exited already; the wait arm will see it.
        debug!("cannot send {signal} to pid {pid}: {e}");
    }
}
