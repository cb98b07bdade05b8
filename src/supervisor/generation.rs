//! One MAS process and what belongs to it: its number, pid and pidfd, its
//! rewritten config file, its readiness and watchdog state.
//!
//! Signals go through the pidfd, so a signal can never reach another process
//! that reused the pid. Each process is waited for by a task of its own that
//! reports the exit on a channel, which keeps the event loop free of a
//! changing set of futures.

use std::ffi::OsString;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;
use std::process::ExitStatus;

use serde_norway::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::runtime_dir::{write_private, TempFile};
use super::{Options, SuperviseError};
use crate::assign::ChildSocket;
use crate::child::{self, ChildCommand};
use crate::sys;

/// A generation's exit, as reported by its waiting task.
#[derive(Debug)]
pub struct Exit {
    pub generation: u64,
    pub status: std::io::Result<ExitStatus>,
}

/// One running MAS.
#[derive(Debug)]
pub struct Generation {
    pub number: u64,
    pub pid: u32,
    pidfd: Option<OwnedFd>,
    pub started: Instant,
    pub ready_at: Option<Instant>,
    /// The last `WATCHDOG=1` (or readiness, which starts the clock).
    pub last_ping: Option<Instant>,
    /// The rewritten config it was started with, for a MAS that replaces it
    /// after a crash when the files no longer check.
    pub config: Value,
    config_file: TempFile,
}

impl Generation {
    /// Writes the config for this generation and starts MAS on `sockets`.
    ///
    /// # Errors
    ///
    /// The config cannot be written, or MAS cannot be started.
    pub fn spawn(
        number: u64,
        config: &Value,
        sockets: &[ChildSocket],
        notify_path: &Path,
        opts: &Options,
        exits: mpsc::UnboundedSender<Exit>,
    ) -> Result<Generation, SuperviseError> {
        let dir = opts.runtime_dir.path();
        // A MAS started without its notify socket could never be ready.
        opts.runtime_dir
            .check_intact(&[notify_path, &dir.join(crate::control::SOCKET_NAME)])?;
        let config_path = dir.join(format!("config.{}.{number}.yaml", std::process::id()));
        let text = crate::config::raw::to_yaml(config).map_err(SuperviseError::Serialize)?;
        // Only an earlier process with our pid (a reused pid, or PID 1 of a
        // container) can have left this name behind; it is stale.
        let _ = std::fs::remove_file(&config_path);
        write_private(&config_path, &text).map_err(|error| SuperviseError::WriteConfig {
            dir: dir.to_owned(),
            error,
        })?;
        let config_file = TempFile(Some(config_path.clone()));

        let (program, args) = opts.command.split_first().expect("clap requires a command");
        let mut env = vec![
            (
                OsString::from("NOTIFY_SOCKET"),
                notify_path.as_os_str().to_owned(),
            ),
            (
                OsString::from(crate::config::MAS_CONFIG),
                config_path.into_os_string(),
            ),
        ];
        // WATCHDOG_PID is written by exec-child, which knows MAS's pid.
        if let Some(usec) = opts.watchdog_usec {
            env.push(("WATCHDOG_USEC".into(), usec.to_string().into()));
        }
        let command = ChildCommand {
            program: program.clone(),
            args: args.to_vec(),
            fds: sockets.iter().map(|s| s.fd.as_fd()).collect(),
            fd_names: sockets.iter().map(|s| s.name.clone()).collect(),
            env,
            env_remove: env_to_remove(),
            helper: opts.helper.clone(),
        };
        let mut process = child::spawn(&command).map_err(|error| SuperviseError::Spawn {
            command: opts.shown_command(),
            error,
        })?;
        let pid = process.id().expect("a just spawned child has a pid");
        // The pidfd is opened before the child can be reaped (only the task
        // below reaps it), so it names this very process.
        let pidfd = sys::pidfd_open(pid)
            .map_err(|e| debug!("no pidfd for pid {pid}: {e}; signals go by pid"))
            .ok();
        tokio::spawn(async move {
            let status = process.wait().await;
            let _ = exits.send(Exit {
                generation: number,
                status,
            });
        });
        Ok(Generation {
            number,
            pid,
            pidfd,
            started: Instant::now(),
            ready_at: None,
            last_ping: None,
            config: config.clone(),
            config_file,
        })
    }

    pub fn is_ready(&self) -> bool {
        self.ready_at.is_some()
    }

    /// Marks MAS ready; it has read its config, so the secrets leave the disk.
    pub fn mark_ready(&mut self) {
        let now = Instant::now();
        self.ready_at = Some(now);
        self.last_ping = Some(now);
        self.config_file.remove();
    }

    /// Sends `signal`; a process that exited already is not an error.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let result = match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_fd(), signal as libc::c_int),
            None => i32::try_from(self.pid)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))
                .and_then(|pid| {
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
                        .map_err(std::io::Error::from)
                }),
        };
        if let Err(e) = result {
            debug!("cannot send {signal} to MAS pid {}: {e}", self.pid);
        }
    }
}

/// Environment variables MAS must not inherit from us: systemd's, which
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
