//! What each [`Request`] from a signal or the control socket does.
//!
//! A stop sends `STOPPING=1` and SIGTERM to every MAS, sets the stop
//! timeout, and tells whoever waits for a restart or a template reload that
//! none will come; a second stop passes SIGTERM on, so MAS stops without
//! draining. A restart is begun, or refused while the supervisor stops. A
//! signal-only request passes SIGHUP on to the serving MAS and waits for its
//! next `READY=1`, within the ready timeout. `status` is answered at once.
//!
//! Turning signals into requests belongs to `cmd/supervise.rs`, reading them
//! off the control socket to the control socket's code; the restart itself,
//! and the end of the stop (the SIGKILL at its deadline, the exits), are
//! handled where restarts, deadlines and exits are.

use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;
use tracing::info;

use super::{Request, Supervisor};
use crate::notify::NotifyState;

impl Supervisor<'_> {
    pub(super) fn on_request(&mut self, request: Request) {
        match request {
            Request::Stop(signal) => self.begin_stop(signal),
            Request::Restart(reply) => {
                if self.stopping.is_some() {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err("mas-sockets is stopping".to_owned()));
                    }
                    return;
                }
                let why = if reply.is_some() {
                    "reload requested"
                } else {
                    "SIGHUP"
                };
                self.begin_restart(reply, why.to_owned());
            }
            Request::SignalOnly(reply) => match &self.current {
                Some(g) if g.is_ready() && self.stopping.is_none() => {
                    info!(
                        "passing SIGHUP on to MAS (pid {}), which reloads its templates",
                        g.pid
                    );
                    g.signal(Signal::SIGHUP);
                    self.signal_waiters.push(reply);
                    self.signal_deadline
                        .get_or_insert_with(|| Instant::now() + self.opts.ready_timeout);
                }
                _ => {
                    let _ = reply.send(Err("no MAS is serving to reload its templates".to_owned()));
                }
            },
            Request::Status(reply) => {
                let _ = reply.send(self.describe());
            }
        }
    }

    /// Tells every signal-only request waiting for MAS what came of it.
    pub(super) fn answer_signal_waiters(&mut self, result: &Result<String, String>) {
        self.signal_deadline = None;
        for waiter in self.signal_waiters.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }

    fn begin_stop(&mut self, signal: Signal) {
        if self.stopping.is_some() {
            info!("second {signal}: passing it on, so MAS stops without draining");
            self.for_each_generation(|g| g.signal(Signal::SIGTERM));
            return;
        }
        info!(
            "{signal}: stopping MAS, allowing {:?} to drain",
            self.opts.stop_timeout
        );
        self.stop_requested = true;
        if self.respawn_at.take().is_some() && self.current.is_none() {
            // Asked to stop while a crashed MAS waited to be started again:
            // nothing runs, so the stop itself is clean, whatever the crash was.
            self.last_status = Some(ExitStatus::from_raw(0));
        }
        self.stopping = Some(
            Instant::now()
                .checked_add(self.opts.stop_timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400)),
        );
        self.notify(&[NotifyState::Stopping]);
        self.for_each_generation(|g| g.signal(Signal::SIGTERM));
        self.answer_signal_waiters(&Err("mas-sockets is stopping".to_owned()));
        if let Some(queued) = self.queued.take() {
            for w in queued {
                let _ = w.send(Err("mas-sockets is stopping".to_owned()));
            }
        }
        if let Some(r) = self.restart.as_mut() {
            for w in r.waiters.drain(..) {
                let _ = w.send(Err("mas-sockets is stopping".to_owned()));
            }
        }
    }
}
