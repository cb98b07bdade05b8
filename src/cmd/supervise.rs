//! `mas-sockets supervise -- COMMAND...`: the service's main process.
//!
//! Order matters: the inherited fds are taken (and the `LISTEN_*` variables
//! removed) before any thread exists or any file is opened, the logger's
//! included; the config is checked and every socket matched before the child
//! is started, so a mismatch never starts MAS; only then does the
//! single-threaded runtime start. Single-threaded on purpose:
//! the child's parent-death signal is tied to the thread that forked it.
//!
//! Exit status: 0 when MAS stopped cleanly after we asked it to; MAS's own
//! non-zero status when it failed; 128+N when it was killed by signal N (137
//! after the stop timeout); 1 when it exited with 0 without being asked;
//! 2 when mas-sockets could not start it at all (see [`super`]).

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::warn;

use crate::cli::SuperviseArgs;
use crate::supervisor::{self, Options, Outcome, Request, RuntimeDir};
use crate::{activation, assign, bind, logging, notify};

/// Runs `supervise`.
///
/// # Errors
///
/// Anything that keeps MAS from being started.
pub fn run(args: SuperviseArgs) -> anyhow::Result<ExitCode> {
    if let Some(word) = own_config_flag(&args.command) {
        anyhow::bail!(
            "the MAS command has its own `{}`; give the config files to mas-sockets instead (`supervise --config FILE -- mas-cli server`), which passes MAS a rewritten config",
            word.to_string_lossy()
        );
    }
    check_program(&args.command[0], std::env::var_os("PATH").as_deref())?;
    // Before any thread exists, as this edits our environment, and before
    // the logger opens the journal's socket, which would take the number of
    // a passed fd that is missing.
    let inherited = activation::take_inherited();
    if let Some(warning) = logging::init(args.log_target, &args.log).map_err(anyhow::Error::msg)? {
        warn!("{warning}");
    }
    let inherited = inherited?;
    if let Some(warning) = &inherited.names_warning {
        warn!("{warning}");
    }
    let inherited = inherited.fds;
    let plan = match super::load_plan(&args.config, super::EXIT_CANNOT_RUN) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    // The private directory comes before any socket is bound, so that a run
    // that cannot start never touches a path another process serves on.
    let runtime_dir = runtime_dir(args.runtime_dir)?;
    let (fds, _bound_paths, origin) = if inherited.is_empty() {
        let (fds, paths) = bind::bind_all(&plan)?;
        (fds, Some(paths), assign::Origin::SelfBound)
    } else {
        (inherited, None, assign::Origin::Inherited)
    };
    let assignment = match assign::assign(&plan, fds, origin) {
        Ok(a) => a,
        Err(problems) => {
            // On stderr, which is the journal under systemd: one line each.
            for p in &problems {
                eprintln!("mas-sockets: {p}");
            }
            anyhow::bail!(
                "the passed sockets do not match the config ({} problem(s) above); MAS was not started",
                problems.len()
            );
        }
    };
    assign::defer_accept(&assignment.sockets);
    if origin == assign::Origin::Inherited {
        assign::warn_of_lost_unix_paths(&assignment.sockets);
    }
    let systemd = notify::SystemdNotifier::from_env()?;
    let opts = Options {
        command: args.command,
        stop_timeout: args.stop_timeout,
        ready_timeout: args.ready_timeout,
        drain_timeout: args.drain_timeout,
        crash_limit: args.crash_limit,
        crash_window: args.crash_window,
        backoff_initial: args.backoff,
        backoff_max: args.backoff_max,
        runtime_dir,
        sockets_origin: origin,
        helper: PathBuf::from(crate::child::DEFAULT_HELPER),
        watchdog_usec: watchdog_usec(),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    let outcome = runtime.block_on(async {
        let (tx, rx) = mpsc::channel(64);
        forward_signals(tx.clone())?;
        let outcome = supervisor::run(
            &plan,
            assignment.sockets,
            assignment.binds,
            opts,
            systemd,
            rx,
            tx,
        )
        .await?;
        anyhow::Ok(outcome)
    })?;
    Ok(exit_code(outcome))
}

/// Refuses a MAS command that cannot be run, before anything starts: a
/// path that is not an executable file, or a name that no directory of
/// `path` (`PATH`) holds as one, as execvp(3) looks for it. Started anyway,
/// it would fail with status 127 at every start and restart.
fn check_program(program: &OsStr, path: Option<&OsStr>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |candidate: &Path| {
        candidate.is_file()
            && nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    let shown = program.to_string_lossy();
    if program.as_encoded_bytes().contains(&b'/') {
        let candidate = Path::new(program);
        if runnable(candidate) {
            return Ok(());
        }
        let elsewhere = "give the path of mas-cli after `--`, e.g. `-- /usr/bin/mas-cli server` (generate-units writes it from --mas-cli)";
        let (why, fix) = match std::fs::metadata(candidate) {
            Err(e) => (e.to_string(), elsewhere.to_owned()),
            Ok(m) if m.is_dir() => ("it is a directory".to_owned(), elsewhere.to_owned()),
            Ok(m) if !m.is_file() => ("it is not a regular file".to_owned(), elsewhere.to_owned()),
            Ok(m) => (
                format!(
                    "this user (uid {}) may not execute it (mode {:04o})",
                    nix::unistd::getuid(),
                    m.permissions().mode() & 0o7777
                ),
                format!(
                    "let the service's user execute it (e.g. `chmod 755 {}`), or {elsewhere}",
                    crate::supervisor::shell_word(candidate)
                ),
            ),
        };
        anyhow::bail!("cannot execute the MAS command {shown:?}: {why}; {fix}");
    }
    // Without PATH, glibc's execvp looks in its default.
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    // An empty entry of PATH is the working directory, as for execvp: the
    // name joined to it stays relative.
    let found = std::env::split_paths(path).any(|dir| runnable(&dir.join(program)));
    if !found {
        anyhow::bail!(
            "cannot execute the MAS command {shown:?}: no directory of PATH ({}) holds it as an executable file; give its full path after `--`, e.g. `-- /usr/bin/mas-cli server`",
            path.to_string_lossy()
        );
    }
    Ok(())
}

/// A `--config` (or, for mas-cli, `-c`) among the MAS command's arguments: MAS
/// would read that file instead of the rewritten config.
fn own_config_flag(command: &[std::ffi::OsString]) -> Option<&std::ffi::OsString> {
    let is_mas_cli = command.first().is_some_and(|p| {
        std::path::Path::new(p)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("mas-cli"))
    });
    command.iter().skip(1).find(|w| {
        let w = w.to_string_lossy();
        w == "--config" || w.starts_with("--config=") || (is_mas_cli && w.starts_with("-c"))
    })
}

/// The private directory: `--runtime-dir` (created when missing), else
/// systemd's `RuntimeDirectory=`, else a new one under `$XDG_RUNTIME_DIR` or
/// the temp dir; locked for as long as supervise runs.
fn runtime_dir(given: Option<PathBuf>) -> anyhow::Result<RuntimeDir> {
    let given = match given {
        Some(dir) => Some(dir),
        None => supervisor::runtime_dir::systemd_runtime_directory()?,
    };
    let dir = match given {
        Some(dir) => {
            check_dir_name(&dir)?;
            check_dir_len(&dir)?;
            RuntimeDir::given(dir)?
        }
        None => {
            let parent = std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            check_dir_name(&parent)?;
            check_dir_len(&parent.join(RuntimeDir::longest_created_name()))?;
            RuntimeDir::create_in(&parent)?
        }
    };
    Ok(dir)
}

/// MAS splits `MAS_CONFIG` on `:`, so the rewritten config's path cannot hold one.
fn check_dir_name(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.to_string_lossy().contains(':') {
        anyhow::bail!(
            "the runtime directory {} contains `:`, which MAS would take as a separator between config files; give another with --runtime-dir",
            dir.display()
        );
    }
    Ok(())
}

/// The sockets in the runtime directory need their whole path in a socket
/// address, which holds 107 bytes.
fn check_dir_len(dir: &std::path::Path) -> anyhow::Result<()> {
    let longest = supervisor::notify_socket_name(std::process::id());
    let room = crate::config::plan::MAX_UNIX_PATH - 1 - longest.len();
    let len = dir.as_os_str().len();
    if len > room {
        anyhow::bail!(
            "the runtime directory {} is {len} bytes long, but the sockets in it (such as {longest}) need a path of at most {} bytes, so the directory may have at most {room}; give a shorter one with --runtime-dir",
            dir.display(),
            crate::config::plan::MAX_UNIX_PATH
        );
    }
    Ok(())
}

/// systemd's watchdog period, when it is meant for us (`WATCHDOG_PID` unset or
/// ours, as sd_watchdog_enabled(3) decides).
fn watchdog_usec() -> Option<u64> {
    let text = std::env::var("WATCHDOG_USEC").ok()?;
    let Ok(usec) = text.parse::<u64>() else {
        warn!("WATCHDOG_USEC={text:?} is not a number of microseconds, so there is no watchdog; set WatchdogSec= in the unit instead of WATCHDOG_USEC by hand");
        return None;
    };
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse() != Ok(std::process::id()) => {
            warn!(
                "WATCHDOG_PID={pid} is not our pid {}; the watchdog is not ours",
                std::process::id()
            );
            None
        }
        _ if usec > 0 && usec < supervisor::MIN_HANG_USEC => {
            warn!(
                "WATCHDOG_USEC={usec} is shorter than the {}ms that mas-sockets can tell a hang by; it pings systemd as often as it can, and takes MAS for hung only after {}ms without WATCHDOG=1: give WatchdogSec= a second or more",
                supervisor::MIN_HANG_USEC / 1000,
                supervisor::MIN_HANG_USEC / 1000
            );
            Some(usec)
        }
        _ => (usec > 0).then_some(usec),
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into [`Request`]s.
fn forward_signals(tx: mpsc::Sender<Request>) -> anyhow::Result<()> {
    use nix::sys::signal::Signal;
    let kinds: [(SignalKind, fn() -> Request); 3] = [
        (SignalKind::terminate(), || Request::Stop(Signal::SIGTERM)),
        (SignalKind::interrupt(), || Request::Stop(Signal::SIGINT)),
        (SignalKind::hangup(), || Request::Restart(None)),
    ];
    for (kind, request) in kinds {
        let mut stream = signal(kind).context("cannot install a signal handler")?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(request()).await.is_err() {
                    break;
                }
            }
        });
    }
    // Signals whose default is to end the process, which scripts send to
    // daemons (SIGUSR1 to reopen logs, ...): by default they would kill the
    // supervisor, and with it MAS, requests in flight. A handler, not
    // SIG_IGN, so that MAS starts with the default dispositions as ever.
    for (kind, name) in [
        (SignalKind::user_defined1(), "SIGUSR1"),
        (SignalKind::user_defined2(), "SIGUSR2"),
        (SignalKind::alarm(), "SIGALRM"),
        (SignalKind::from_raw(libc::SIGVTALRM), "SIGVTALRM"),
        (SignalKind::from_raw(libc::SIGPROF), "SIGPROF"),
        (SignalKind::io(), "SIGIO"),
        (SignalKind::from_raw(libc::SIGPWR), "SIGPWR"),
    ] {
        let mut stream = signal(kind).context("cannot install a signal handler")?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                warn!("{name} ignored: mas-sockets restarts MAS without a gap on SIGHUP (`mas-sockets reload`), and stops on SIGTERM or SIGINT");
            }
        });
    }
    Ok(())
}

/// The supervisor's exit status for how the child ended.
pub fn exit_code(outcome: Outcome) -> ExitCode {
    let status = outcome.status;
    if let Some(code) = status.code() {
        return match (code, outcome.requested) {
            (0, true) => ExitCode::SUCCESS,
            (0, false) => ExitCode::from(1),
            (code, _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        };
    }
    let signal = status.signal().unwrap_or(0);
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
}
