//! The supervisor's deadlines, and the watchdog.
//!
//! Every wait the supervisor bounds has its deadline in its state: the
//! answer to a signal-only request, MAS's own `RELOADING=1` that systemd
//! holds the unit "reloading" for, a MAS started again after a crash that
//! must be ready, the start after a crash's delay, the stop's SIGKILL, and a
//! restart's ready and drain timeouts. The event loop sleeps until the
//! earliest ([`Supervisor::next_deadline`]) and then lets
//! [`Supervisor::on_timers`] act on every one that has passed.
//!
//! The watchdog (`WATCHDOG_USEC=`, sd_watchdog_enabled(3)): the event loop
//! ticks at half systemd's period; each tick pings systemd with
//! `WATCHDOG=1` while the serving MAS pings us, and replaces a MAS that has
//! gone silent. What a timeout means for a restart, and how a new MAS is
//! started, belong to the restart's own code.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;
use tracing::warn;

use super::Supervisor;
use crate::notify::NotifyState;

/// The shortest silence, in microseconds, that counts as a hung MAS,
/// whatever shorter watchdog period systemd gives: ten watchdog ticks.
pub const MIN_HANG_USEC: u64 = 100_000;

impl Supervisor<'_> {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let restart = self.restart.as_ref().map(|r| match &r.draining {
            Some((_, kill_at)) => *kill_at,
            None => r.deadline,
        });
        [
            restart,
            self.respawn_at,
            self.stopping,
            self.signal_deadline,
            self.reloading_until.get(),
            self.respawn_ready_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// By when a MAS started again after a crash must be ready: the same
    /// `--ready-timeout` as a restart's new MAS, since no systemd start
    /// timeout covers it. (The first MAS has systemd's `TimeoutStartSec=`.)
    fn respawn_ready_deadline(&self) -> Option<Instant> {
        let g = self.current.as_ref()?;
        let pending = self.was_ready && !g.is_ready() && self.respawn_killed != Some(g.pid);
        pending.then(|| g.started + self.opts.ready_timeout)
    }

    pub(super) fn on_timers(&mut self, now: Instant) {
        if self.signal_deadline.is_some_and(|at| now >= at) {
            let pid = self.current.as_ref().map_or(0, |g| g.pid);
            let why = format!(
                "MAS (pid {pid}) did not send READY=1 within {:?} of the SIGHUP; it may still be reloading its templates (see the journal)",
                self.opts.ready_timeout
            );
            warn!("{why}");
            self.answer_signal_waiters(&Err(why));
        }
        if self.reloading_until.get().is_some_and(|at| now >= at) {
            let pid = self.current.as_ref().map_or(0, |g| g.pid);
            warn!(
                "MAS (pid {pid}) sent RELOADING=1 and no READY=1 within {:?}; telling systemd it serves on, so that the unit does not stay \"reloading\"",
                self.opts.ready_timeout
            );
            self.notify(&[
                NotifyState::Ready,
                NotifyState::Status(format!(
                    "MAS (pid {pid}) did not finish reloading its templates within {:?}; it serves on",
                    self.opts.ready_timeout
                )),
            ]);
        }
        if self.stopping.is_none() && self.respawn_ready_deadline().is_some_and(|at| now >= at) {
            if let Some(g) = &self.current {
                warn!(
                    "MAS (pid {}), started again after a crash, was not ready within {:?}; killing it, which counts as one more crash",
                    g.pid, self.opts.ready_timeout
                );
                g.signal(Signal::SIGKILL);
                self.respawn_killed = Some(g.pid);
            }
        }
        if self.respawn_at.is_some_and(|at| now >= at) {
            self.respawn_at = None;
            // A MAS that runs already (one that was starting as a restart
            // when the other crashed) must never be replaced untracked.
            if self.stopping.is_none() && self.current.is_none() {
                let crashed = self.crashed_config.take();
                let config = self.reload_config().unwrap_or_else(|e| {
                    warn!("{e}; starting MAS on the config it had");
                    // A reload since the start may have changed the config.
                    crashed.unwrap_or_else(|| self.plan.rewrite(&self.binds))
                });
                match self.spawn(&config) {
                    Ok(g) => self.current = Some(g),
                    Err(e) => {
                        warn!("{e}; giving up");
                        self.give_up = true;
                    }
                }
            }
        }
        if self.stopping.is_some_and(|at| now >= at) {
            warn!(
                "MAS did not stop within {:?}; killing it",
                self.opts.stop_timeout
            );
            self.for_each_generation(|g| g.signal(Signal::SIGKILL));
            self.stopping = Some(now + Duration::from_secs(3600));
        }
        let Some(restart) = self.restart.as_mut() else {
            return;
        };
        if let Some((old, kill_at)) = restart.draining.as_mut() {
            if now >= *kill_at {
                warn!(
                    "the old MAS (pid {}) did not finish within {:?}; killing it",
                    old.pid, self.opts.drain_timeout
                );
                old.signal(Signal::SIGKILL);
                *kill_at = now + Duration::from_secs(3600);
            }
        } else if now >= restart.deadline {
            let restart = self.restart.take().expect("checked above");
            let pid = restart.candidate.as_ref().map_or(0, |g| g.pid);
            // Its exit arrives later and matches no generation any more.
            if let Some(candidate) = &restart.candidate {
                candidate.signal(Signal::SIGKILL);
            }
            let why = format!(
                "the new MAS (pid {pid}) was not ready within {:?}",
                self.opts.ready_timeout
            );
            self.finish_restart_failed(restart.waiters, restart.began, why);
        }
    }

    /// Pings systemd while the serving MAS is healthy; replaces one that hangs.
    ///
    /// While a restart runs (bounded by the ready and drain timeouts) the
    /// pings go on even if the old MAS hangs: the replacement is under way,
    /// and a watchdog kill from systemd would only throw it away. If the
    /// replacement of a hung MAS fails, the pings stop and systemd's watchdog
    /// takes over (`WatchdogSignal=`, then `Restart=`).
    pub(super) fn on_watchdog_tick(&mut self) {
        let Some(usec) = self.opts.watchdog_usec else {
            return;
        };
        // Below this the ticks and the scheduler, not MAS, decide.
        let period = Duration::from_micros(usec.max(MIN_HANG_USEC));
        let Some(current) = self.current.as_ref() else {
            return;
        };
        let Some(last) = current.last_ping else {
            return;
        };
        if last.elapsed() <= period || self.restart.is_some() {
            self.notify(&[NotifyState::Watchdog]);
        } else if self.stopping.is_some() {
            // Stopping is bounded by the stop timeout; nothing to replace.
        } else if self.hung == Some(current.pid) {
            // Said once, when the replacement failed (below).
        } else {
            let pid = current.pid;
            warn!(
                "MAS (pid {pid}) sent no WATCHDOG=1 for {:?}; replacing it",
                last.elapsed()
            );
            self.hung = Some(pid);
            self.begin_restart(None, "MAS stopped answering its watchdog".to_owned());
        }
    }
}
