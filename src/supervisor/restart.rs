//! Zero-downtime restarts: a new MAS starts on the same listening sockets,
//! takes over once it is ready, and the old one drains.
//!
//! A restart (SIGHUP, or `restart` on the control socket): `RELOADING=1` with
//! `MONOTONIC_USEC=`; re-read and check the config (a changed set of binds is
//! refused: the sockets stay, whether the socket units or we made them);
//! start the new MAS on the same sockets; wait for its `READY=1` (ready
//! timeout); SIGTERM the old one, let it drain (drain timeout), SIGKILL it if
//! it must; then `READY=1` and a `STATUS=`. Both serve the same listening sockets meanwhile, so no
//! connection is refused. Requests that arrive during a restart are coalesced
//! into one more restart after it. If the new MAS exits, is not ready in time,
//! or the config is invalid, it is killed and the old one keeps serving.
//!
//! This module begins, promotes, ends and abandons a restart, and keeps the
//! result of the last one for `status`. It does not watch the clock or the
//! processes: the event loop's handlers for notifications, exits and
//! deadlines call in when the new MAS is ready, when either MAS exits, and
//! when the ready or drain timeout runs out.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_norway::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::generation::Generation;
use super::{Reply, Supervisor};
use crate::assign::Origin;
use crate::config::{self, Plan};
use crate::notify::NotifyState;

/// A restart in progress.
#[derive(Debug)]
pub(super) struct Restart {
    /// Who asked; all get the outcome.
    pub(super) waiters: Vec<Reply>,
    why: String,
    pub(super) began: Instant,
    /// The new MAS, until it is ready and promoted.
    pub(super) candidate: Option<Generation>,
    /// Its ready deadline.
    pub(super) deadline: Instant,
    /// The old MAS, once the new one serves: draining until it exits.
    pub(super) draining: Option<(Generation, Instant)>,
    /// Why the restart failed after all, when the new MAS died while the
    /// old one drained (the waiters have heard it already).
    pub(super) failed: Option<String>,
}

/// The result of the last restart, for `status`.
#[derive(Debug, Clone)]
pub(super) struct LastRestart {
    pub(super) at: std::time::SystemTime,
    pub(super) result: Result<String, String>,
}

impl Supervisor<'_> {
    /// Starts a restart, or queues it behind the one in progress.
    pub(super) fn begin_restart(&mut self, reply: Option<Reply>, why: String) {
        if self.restart.is_some() {
            info!("a restart is in progress; one more will follow it ({why})");
            let queued = self.queued.get_or_insert_with(Vec::new);
            queued.extend(reply);
            return;
        }
        let Some(current) = self.current.as_ref().filter(|g| g.is_ready()) else {
            // Nothing serves (starting, or waiting after a crash): a new MAS
            // will start on the current config anyway.
            warn!("{why} ignored: MAS is not serving yet, and the MAS that starts next reads the config anyway");
            let answer = match &self.current {
                Some(g) if self.was_ready => format!(
                    "MAS (pid {}) is starting again after a crash, on the config files as they were when it started; one that is not ready within the ready timeout ({:?}) is killed and started again on the config as it is at that time, so wait for that, or try again once it is ready",
                    g.pid, self.opts.ready_timeout
                ),
                None if self.was_ready => "MAS crashed and starts again after its backoff, on the config as it is then; try again once it is ready".to_owned(),
                _ => "MAS is not serving yet; it is starting already, so try again once it is ready".to_owned(),
            };
            if let Some(reply) = reply {
                let _ = reply.send(Err(answer));
            }
            return;
        };
        info!("restarting MAS (pid {}): {why}", current.pid);
        // systemd 253+ waits for MONOTONIC_USEC with RELOADING=1.
        if let Some(now) = crate::notify::monotonic_usec_now() {
            self.notify(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status(format!("restarting MAS: {why}")),
            ]);
        }
        let waiters: Vec<Reply> = reply.into_iter().collect();
        let began = Instant::now();
        let config = match self.reload_config() {
            Ok(config) => config,
            Err(e) => {
                self.finish_restart_failed(waiters, began, e);
                return;
            }
        };
        // systemd waits for the reload; tell it how long it may take.
        let extend = self.opts.ready_timeout + self.opts.drain_timeout + Duration::from_secs(10);
        self.notify(&[NotifyState::ExtendTimeoutUsec(extend.as_micros() as u64)]);
        match self.spawn(&config) {
            Ok(candidate) => {
                self.restart = Some(Restart {
                    waiters,
                    why,
                    began,
                    candidate: Some(candidate),
                    deadline: began + self.opts.ready_timeout,
                    draining: None,
                    failed: None,
                });
            }
            Err(e) => self.finish_restart_failed(waiters, began, e.to_string()),
        }
    }

    /// Reads the config again; refuses a changed set of binds.
    pub(super) fn reload_config(&self) -> Result<Value, String> {
        let new = config::load(&self.plan.files).map_err(|e| {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default().to_owned();
            format!("the config is invalid: {first}")
        })?;
        if let Some(change) = bind_change(self.plan, &new) {
            let fix = match self.opts.sockets_origin {
                Origin::Inherited => "the sockets belong to the socket units, and a restart keeps them: to change binds, regenerate the units and restart them (systemctl restart on the .socket units and the service)",
                Origin::SelfBound => "mas-sockets bound the sockets itself, and a restart keeps them: to change binds, restart supervise (stop it, then start it again)",
            };
            return Err(format!("{change}; {fix}"));
        }
        Ok(new.rewrite(&self.binds))
    }

    /// Ends systemd's reload with `READY=1`, saying why it failed and what
    /// serves now.
    fn notify_restart_failed(&self, why: &str, serving: &str) {
        self.notify(&[
            NotifyState::Ready,
            NotifyState::Status(format!("restart failed: {why}; {serving}")),
        ]);
    }

    pub(super) fn finish_restart_failed(
        &mut self,
        waiters: Vec<Reply>,
        began: Instant,
        why: String,
    ) {
        let serving = self.status_line();
        warn!(
            "restart failed after {:?}: {why}; {serving}",
            began.elapsed()
        );
        self.notify_restart_failed(&why, &serving);
        self.record(Err(why.clone()));
        if let Some(pid) = self
            .hung
            .filter(|&pid| self.current.as_ref().is_some_and(|g| g.pid == pid))
        {
            warn!("MAS (pid {pid}) hangs and could not be replaced; no more watchdog pings, so systemd's watchdog takes over");
        }
        for w in waiters {
            let _ = w.send(Err(format!("{why}; {serving}")));
        }
        self.after_restart();
    }

    pub(super) fn record(&mut self, result: Result<String, String>) {
        self.last_restart = Some(LastRestart {
            at: std::time::SystemTime::now(),
            result,
        });
    }

    /// Runs the coalesced restart, if one was asked for meanwhile.
    fn after_restart(&mut self) {
        self.restart = None;
        if let Some(waiters) = self.queued.take() {
            let mut waiters = waiters.into_iter();
            let first = waiters.next();
            self.begin_restart(first, "requested during the previous restart".to_owned());
            // The rest share the outcome of that same restart.
            if let Some(r) = self.restart.as_mut() {
                r.waiters.extend(waiters);
            } else {
                for w in waiters {
                    let _ = w.send(Err("the restart could not begin".to_owned()));
                }
            }
        }
    }

    /// The new MAS is ready: it takes over, and the old one drains.
    ///
    /// Not once a stop began: every MAS has had its SIGTERM then, and MAS
    /// reports ready even after one that came during its start-up, because it
    /// acts on signals only once it serves. Promoting it would send the old
    /// MAS, which is draining already, a second SIGTERM, and MAS takes a
    /// second signal as "drop every connection now". Nor once the supervisor
    /// gave up: it leaves, and the new MAS is being killed.
    pub(super) fn promote(&mut self) {
        if self.stopping.is_some() || self.give_up {
            debug!("the new MAS is ready, but mas-sockets is stopping; it stops too");
            return;
        }
        let Some(restart) = self.restart.as_mut() else {
            return;
        };
        let Some(mut candidate) = restart.candidate.take() else {
            return;
        };
        candidate.mark_ready();
        info!("MAS (pid {}) is ready; it takes over", candidate.pid);
        // A SIGHUP sent to the old MAS is answered by the new one, which
        // read its templates as it started; the old one's `READY=1` would
        // come from a draining MAS and count for nothing.
        let text = format!(
            "MAS was replaced by a new process (pid {}), which loaded its templates as it started",
            candidate.pid
        );
        self.answer_signal_waiters(&Ok(text));
        let restart = self.restart.as_mut().expect("the restart is under way");
        let old = self.current.replace(candidate);
        match old {
            Some(old) => {
                info!(
                    "stopping the old MAS (pid {}), allowing {:?} to drain",
                    old.pid, self.opts.drain_timeout
                );
                old.signal(Signal::SIGTERM);
                restart.draining = Some((old, Instant::now() + self.opts.drain_timeout));
            }
            None => {
                // The old MAS crashed while this one started: this one
                // replaces it, so the start planned after the crash is void.
                if self.respawn_at.take().is_some() {
                    info!("the new MAS replaces the one that crashed; no other is started");
                }
                self.finish_restart_ok();
            }
        }
    }

    pub(super) fn finish_restart_ok(&mut self) {
        let Some(restart) = self.restart.take() else {
            return;
        };
        if let Some(why) = restart.failed {
            // The waiters heard it when the new MAS died; systemd, which
            // waits for the end of the reload, hears it now.
            self.notify_restart_failed(&why, &self.status_line());
            self.after_restart();
            return;
        }
        let pid = self.current.as_ref().map_or(0, |g| g.pid);
        let text = format!(
            "MAS (pid {pid}) serves after a restart ({}) that took {:.1}s",
            restart.why,
            restart.began.elapsed().as_secs_f64()
        );
        info!("{text}");
        let status = self.status_line();
        self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.record(Ok(text.clone()));
        for w in restart.waiters {
            let _ = w.send(Ok(text.clone()));
        }
        self.after_restart();
    }

    /// Ends a restart that is under way because the supervisor gives up: the
    /// new MAS must not take over, so it is killed (the supervisor waits for
    /// it), and whoever waits for the restart, or queued one, hears `why`.
    pub(super) fn abandon_restart(&mut self, why: &str) {
        for w in self.queued.take().into_iter().flatten() {
            let _ = w.send(Err(why.to_owned()));
        }
        let Some(restart) = self.restart.as_mut() else {
            return;
        };
        if let Some(candidate) = &restart.candidate {
            warn!(
                "{why}: killing the new MAS (pid {}) that was starting",
                candidate.pid
            );
            candidate.signal(Signal::SIGKILL);
        }
        for w in restart.waiters.drain(..) {
            let _ = w.send(Err(why.to_owned()));
        }
    }
}

/// The first difference between the binds of `old` and `new`, if any.
fn bind_change(old: &Plan, new: &Plan) -> Option<String> {
    if old.listeners.len() != new.listeners.len() {
        return Some(format!(
            "the config now has {} listener(s) instead of {}",
            new.listeners.len(),
            old.listeners.len()
        ));
    }
    for (a, b) in old.listeners.iter().zip(&new.listeners) {
        if a.binds.len() != b.binds.len() {
            return Some(format!(
                "listener {} at {} now has {} bind(s) instead of {}",
                b.label(),
                b.location,
                b.binds.len(),
                a.binds.len()
            ));
        }
        for (x, y) in a.binds.iter().zip(&b.binds) {
            if x.spec == y.spec && x.endpoints != y.endpoints {
                // A host name that resolves to other addresses now.
                let show = |e: &[config::Endpoint]| {
                    e.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                return Some(format!(
                    "bind {} of listener {} at {}: {} now stands for {} instead of {}",
                    y.index,
                    b.label(),
                    y.location,
                    y.spec,
                    show(&y.endpoints),
                    show(&x.endpoints)
                ));
            }
            if x.spec != y.spec {
                return Some(format!(
                    "bind {} of listener {} at {} changed from {} to {}",
                    y.index,
                    b.label(),
                    y.location,
                    x.spec,
                    y.spec
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::plan::Resolver;

    /// Resolves every name to the addresses it was made with.
    struct Resolves(Vec<&'static str>);

    impl Resolver for Resolves {
        fn resolve(&self, _host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
            Ok(self
                .0
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), port))
                .collect())
        }
    }

    fn plan(text: &str, resolver: &dyn Resolver) -> Plan {
        config::check_texts(&[("c.yaml", text)], resolver).expect("valid config")
    }

    const NAMED: &str = "http:\n  public_base: https://a/\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{host: mas.internal, port: 8080}]\n";

    #[test]
    fn a_bind_whose_name_resolves_elsewhere_now_says_so() {
        let old = plan(NAMED, &Resolves(vec!["192.0.2.1"]));
        let new = plan(NAMED, &Resolves(vec!["192.0.2.2"]));
        let change = bind_change(&old, &new).expect("a change");
        assert!(
            change.contains("host mas.internal port 8080 now stands for tcp 192.0.2.2:8080 instead of tcp 192.0.2.1:8080"),
            "{change}"
        );
        assert!(bind_change(&old, &old).is_none());
    }
}
