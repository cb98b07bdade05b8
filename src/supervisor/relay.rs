//! MAS's notifications, and what of them reaches systemd.
//!
//! Protocol: sd_notify(3) on both sides. Every MAS gets the same private
//! `NOTIFY_SOCKET`; a datagram counts only when its credentials carry the pid
//! of one of our MAS processes, and it is attributed to that generation.
//! Towards systemd the supervisor stays the main process: it never relays
//! `MAINPID=`, and it says `READY=1` only when a MAS is ready. The serving
//! MAS's `STATUS=`, `EXTEND_TIMEOUT_USEC=` and its own reloads are relayed;
//! a new MAS that is starting as a restart is heard only for its readiness,
//! its watchdog pings and `EXTEND_TIMEOUT_USEC=`; a draining one is not
//! relayed at all.
//!
//! Parsing the datagrams, and the queue towards systemd, belong to
//! [`crate::notify`]; what a new MAS's `READY=1` sets off belongs to the
//! restart.

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Supervisor;
use crate::notify::NotifyState;

impl Supervisor<'_> {
    /// Which generation sent a datagram, by the sender's pid.
    pub(super) fn on_datagram(&mut self, datagram: crate::notify::Datagram) {
        let Some(pid) = datagram.sender_pid else {
            warn!("ignored a notification without credentials on the private notify socket");
            return;
        };
        if datagram.closed_fds > 0 {
            warn!(
                "closed {} fd(s) sent with a notification from pid {pid}; none are expected",
                datagram.closed_fds
            );
        }
        let is_current = self.current.as_ref().is_some_and(|g| g.pid == pid);
        let is_candidate = self
            .restart
            .as_ref()
            .and_then(|r| r.candidate.as_ref())
            .is_some_and(|g| g.pid == pid);
        let is_draining = self
            .restart
            .as_ref()
            .and_then(|r| r.draining.as_ref())
            .is_some_and(|(g, _)| g.pid == pid);
        if !(is_current || is_candidate || is_draining) {
            warn!("ignored a notification from pid {pid} on the private notify socket; only MAS processes started here may send");
            return;
        }
        // systemd drops such a datagram whole; reading the part that fits
        // would take its last line cut short for a value of its own.
        if datagram.truncated {
            warn!(
                "ignored a notification of more than {} bytes from MAS (pid {pid}); systemd would ignore it too",
                crate::notify::MAX_DATAGRAM
            );
            return;
        }
        let mut states: Vec<&NotifyState> = datagram.states.iter().collect();
        let reload_part =
            |s: &NotifyState| matches!(s, NotifyState::Reloading | NotifyState::MonotonicUsec(_));
        if is_current
            && self.stopping.is_none()
            && states.iter().any(|s| **s == NotifyState::Reloading)
        {
            // systemd reads MONOTONIC_USEC= from RELOADING=1's own datagram.
            let mut reloading: Vec<NotifyState> = states
                .iter()
                .filter(|s| reload_part(s))
                .map(|s| (*s).clone())
                .collect();
            states.retain(|s| !reload_part(s));
            if self.current.as_ref().is_some_and(|g| g.is_ready()) {
                // systemd 253+ waits for MONOTONIC_USEC= with RELOADING=1;
                // MAS sends it, and where a MAS did not, now is when its
                // reload began.
                if !reloading
                    .iter()
                    .any(|s| matches!(s, NotifyState::MonotonicUsec(_)))
                {
                    reloading.extend(crate::notify::monotonic_usec_now());
                }
                self.notify(&reloading);
                self.reloading_until
                    .set(Some(Instant::now() + self.opts.ready_timeout));
            } else {
                // systemd is still waiting for the start: there is nothing
                // to reload yet, and its READY=1 ends the start anyway.
                warn!("MAS (pid {pid}) sent RELOADING=1 before it was ready; not relayed");
            }
        }
        for state in states {
            if is_candidate {
                self.on_candidate_state(state);
            } else if is_current {
                self.on_current_state(state);
            } else {
                debug!("draining MAS (pid {pid}) sent {state}; not relayed");
            }
        }
    }

    fn on_current_state(&mut self, state: &NotifyState) {
        let stopping = self.stopping.is_some();
        let Some(current) = self.current.as_mut() else {
            return;
        };
        match state {
            NotifyState::Ready => {
                let first = !current.is_ready();
                if first {
                    current.mark_ready();
                    self.was_ready = true;
                    info!("MAS (pid {}) is ready", current.pid);
                } else {
                    current.last_ping = Some(Instant::now());
                }
                if !stopping {
                    let status = self.status_line();
                    self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
                }
                self.answer_signal_waiters(&Ok("MAS reloaded its templates".to_owned()));
            }
            NotifyState::Watchdog => current.last_ping = Some(Instant::now()),
            NotifyState::WatchdogTrigger if !current.is_ready() => warn!(
                "MAS (pid {}) asked for a watchdog failure before it was ready; ignored: it has not started serving yet",
                current.pid
            ),
            NotifyState::WatchdogTrigger => {
                warn!(
                    "MAS (pid {}) asked for a watchdog failure; replacing it",
                    current.pid
                );
                self.begin_restart(None, "MAS triggered its watchdog".to_owned());
            }
            NotifyState::Reloading | NotifyState::MonotonicUsec(_) if !stopping => {
                self.notify(std::slice::from_ref(state));
            }
            NotifyState::Status(_) | NotifyState::ExtendTimeoutUsec(_) => {
                self.notify(std::slice::from_ref(state));
            }
            // We stay the main process: MAS's pid is never relayed.
            NotifyState::MainPid(p) => debug!("MAS announced MAINPID={p}; not relayed"),
            other => debug!("MAS sent {other}; not relayed"),
        }
    }

    fn on_candidate_state(&mut self, state: &NotifyState) {
        match state {
            NotifyState::Ready => self.promote(),
            NotifyState::Watchdog => {
                if let Some(c) = self.restart.as_mut().and_then(|r| r.candidate.as_mut()) {
                    c.last_ping = Some(Instant::now());
                }
            }
            NotifyState::ExtendTimeoutUsec(_) => self.notify(std::slice::from_ref(state)),
            other => debug!("starting MAS sent {other}; not relayed"),
        }
    }
}
