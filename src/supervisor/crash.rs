//! A MAS's exit, and crash recovery.
//!
//! Each exit is matched to its generation by number. The old MAS of a
//! restart that exits has finished draining, and the restart is complete; a
//! new one that exits before it was ready fails its restart. The serving MAS
//! that exits while the supervisor stops has stopped; one that exits before
//! any MAS was ever ready leaves the next step to systemd.
//!
//! A MAS that dies while serving is started again on the same sockets after a
//! growing delay; connections wait in the backlog meanwhile. Too many crashes
//! within the window, and the supervisor exits so that systemd's `Restart=`
//! applies (the socket units keep the sockets).
//!
//! This module only decides and schedules: the start after the delay, and
//! the kill of a MAS started again that is not ready in time, happen when
//! the event loop's timers run out.

use std::process::ExitStatus;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::generation::Exit;
use super::Supervisor;
use crate::notify::NotifyState;

impl Supervisor<'_> {
    pub(super) fn on_exit(&mut self, exit: Exit) {
        let status = match exit.status {
            Ok(s) => s,
            Err(e) => {
                warn!("waiting for MAS generation {} failed: {e}", exit.generation);
                return;
            }
        };
        // The old MAS finished draining: the restart is complete.
        if let Some(r) = self.restart.as_mut() {
            if r.draining
                .as_ref()
                .is_some_and(|(g, _)| g.number == exit.generation)
            {
                let (old, _) = r.draining.take().expect("checked above");
                info!("the old MAS (pid {}) exited: {status}", old.pid);
                if self.stopping.is_none() {
                    self.finish_restart_ok();
                }
                return;
            }
            if r.candidate
                .as_ref()
                .is_some_and(|g| g.number == exit.generation)
            {
                let restart = self.restart.take().expect("checked above");
                let pid = restart.candidate.as_ref().map_or(0, |g| g.pid);
                let why = format!("the new MAS (pid {pid}) exited before it was ready: {status}");
                if self.stopping.is_none() && !self.give_up {
                    self.finish_restart_failed(restart.waiters, restart.began, why);
                } else {
                    for w in restart.waiters {
                        let _ = w.send(Err("mas-sockets is stopping".to_owned()));
                    }
                }
                return;
            }
        }
        let Some(current) = self.current.take_if(|g| g.number == exit.generation) else {
            debug!("generation {} exited: {status}", exit.generation);
            return;
        };
        self.last_status = Some(status);
        if self.stopping.is_some() {
            info!("MAS (pid {}) stopped: {status}", current.pid);
            return;
        }
        if !current.is_ready() && !self.was_ready {
            // The first MAS never became ready: systemd decides what follows.
            warn!(
                "MAS (pid {}) exited on its own before it was ready: {status}",
                current.pid
            );
            self.give_up = true;
            self.notify(&[NotifyState::Status(format!(
                "MAS exited before it was ready: {status}"
            ))]);
            return;
        }
        if let Some(r) = self.restart.as_mut().filter(|r| r.draining.is_some()) {
            // The new MAS took over and died before the old one finished:
            // the restart failed, and nothing serves until the next start.
            let after = current
                .ready_at
                .map_or(0.0, |at| at.elapsed().as_secs_f64());
            let why = format!(
                "the new MAS (pid {}) exited {after:.1}s after it took over, while the old one drained: {status}; the old one was stopped already, so MAS starts again after the crash backoff",
                current.pid
            );
            for w in r.waiters.drain(..) {
                let _ = w.send(Err(why.clone()));
            }
            r.failed = Some(why.clone());
            self.record(Err(why));
        }
        self.on_crash(current.pid, status);
        self.crashed_config = Some(current.config);
    }

    /// How many of the recorded crashes lie within the crash window before
    /// `now`; the list is trimmed only when a crash comes, so `status` must
    /// not take its length as the count.
    pub(super) fn crashes_in_window(&self, now: Instant) -> usize {
        self.crashes
            .iter()
            .filter(|t| now.duration_since(**t) <= self.opts.crash_window)
            .count()
    }

    /// A serving MAS died: start another after a delay, or give up.
    fn on_crash(&mut self, pid: u32, status: ExitStatus) {
        let now = Instant::now();
        self.crashes.push_back(now);
        // Older crashes no longer count; dropping them keeps the list short.
        let window = self.opts.crash_window;
        self.crashes.retain(|t| now.duration_since(*t) <= window);
        let count = self.crashes.len() as u32;
        if count >= self.opts.crash_limit {
            warn!(
                "MAS (pid {pid}) exited on its own: {status}; that is {count} crashes within {:?}, so mas-sockets gives up and leaves the next step to systemd's Restart=",
                self.opts.crash_window
            );
            self.notify(&[NotifyState::Status(format!(
                "MAS crashed {count} times within {:?}; giving up",
                self.opts.crash_window
            ))]);
            self.give_up = true;
            self.abandon_restart(&format!("mas-sockets gave up after {count} crashes"));
            return;
        }
        let delay = self
            .opts
            .backoff_initial
            .saturating_mul(1 << (count - 1).min(16))
            .min(self.opts.backoff_max);
        warn!("MAS (pid {pid}) exited on its own: {status}; starting it again in {delay:?} (crash {count} of {} allowed within {:?})", self.opts.crash_limit, self.opts.crash_window);
        self.notify(&[NotifyState::Status(format!(
            "MAS crashed ({status}); starting it again in {delay:?}"
        ))]);
        self.respawn_at = Some(now + delay);
    }
}
