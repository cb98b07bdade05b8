//! What the supervisor says about its state: the one-line `STATUS=` text
//! systemd shows for the unit, and the `key: value` lines that answer
//! `status` on the control socket.
//!
//! `mas-sockets status` prints the report as it comes; the exchange is
//! described in [`crate::control`]. When the `STATUS=` text goes to systemd
//! is up to the code that sends it.

use std::fmt::Write as _;

use tokio::time::Instant;

use super::Supervisor;

impl Supervisor<'_> {
    pub(super) fn status_line(&self) -> String {
        match &self.current {
            Some(g) if g.is_ready() => format!(
                "MAS (pid {}) is serving on {} socket(s)",
                g.pid,
                self.sockets.len()
            ),
            Some(g) => format!("MAS (pid {}) is starting", g.pid),
            None => "MAS is not running".to_owned(),
        }
    }

    pub(super) fn describe(&self) -> String {
        let mut out = String::new();
        let now = Instant::now();
        let _ = writeln!(out, "supervisor: {}", std::process::id());
        let _ = writeln!(
            out,
            "uptime: {}s",
            now.duration_since(self.started).as_secs()
        );
        match &self.current {
            Some(g) => {
                let _ = writeln!(out, "generation: {}", g.number);
                let _ = writeln!(out, "child: {}", g.pid);
                let state = if self.stopping.is_some() {
                    "stopping"
                } else if g.is_ready() {
                    "serving"
                } else {
                    "starting"
                };
                let _ = writeln!(out, "state: {state}");
                let _ = writeln!(
                    out,
                    "child uptime: {}s",
                    now.duration_since(g.started).as_secs()
                );
            }
            None => {
                let _ = writeln!(out, "generation: -");
                let _ = writeln!(out, "child: -");
                let state = if self.respawn_at.is_some() {
                    "waiting to restart after a crash"
                } else {
                    "stopped"
                };
                let _ = writeln!(out, "state: {state}");
            }
        }
        if let Some(r) = &self.restart {
            let phase = if r.draining.is_some() {
                "draining the old MAS"
            } else {
                "starting the new MAS"
            };
            let _ = writeln!(
                out,
                "restart: in progress ({phase}, {}s)",
                now.duration_since(r.began).as_secs()
            );
        }
        match &self.last_restart {
            Some(last) => {
                let ago = last.at.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                let text = match &last.result {
                    Ok(t) => format!("ok, {ago}s ago: {t}"),
                    Err(t) => format!("failed, {ago}s ago: {t}"),
                };
                let _ = writeln!(out, "last restart: {text}");
            }
            None => {
                let _ = writeln!(out, "last restart: none");
            }
        }
        let _ = writeln!(out, "crashes in window: {}", self.crashes_in_window(now));
        for (listener, binds) in self.plan.listeners.iter().zip(&self.binds) {
            let _ = writeln!(
                out,
                "listener {}: {} socket(s)",
                listener.label(),
                binds.len()
            );
        }
        for s in &self.sockets {
            let _ = writeln!(out, "socket: {} ({})", s.description, s.name);
        }
        out
    }
}
