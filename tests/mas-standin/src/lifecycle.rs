//! The life of the process, in MAS's order, with its `sd_notify(3)` messages.
//!
//! 1. Handlers for SIGTERM, SIGINT and SIGHUP are installed, then
//!    `MAINPID=<pid>` is sent.
//! 2. The listeners and the switches are read from the merged config; an
//!    error here exits with status 1, as MAS's config extraction does. The
//!    `notify_at_start` switch sends its datagram now.
//! 3. The start-up delay stands for MAS's database, migration and template
//!    work: nothing is taken, bound or accepted meanwhile, so connections to
//!    inherited sockets wait in the backlog. Signals that arrive now are acted
//!    on only afterwards, because MAS looks at them only once it serves.
//! 4. Inherited fds are taken and the other binds bound, serving starts, and
//!    `READY=1` is sent.
//! 5. While serving: `WATCHDOG=1` every half `WATCHDOG_USEC` when the
//!    watchdog is meant for this pid (until SIGUSR1, with the
//!    `watchdog_stop_on_sigusr1` switch); on SIGHUP, `RELOADING=1` and
//!    `MONOTONIC_USEC=` in one datagram, then `READY=1`.
//! 6. The first SIGTERM or SIGINT sends `STOPPING=1` and starts the graceful
//!    shutdown. The process exits 0 once drained, on a second signal, or when
//!    the grace period is over.
//!
//! The `crash_after_ms` switch cuts step 5 short: that long after `READY=1`
//! the process exits 1 at once, with no `STOPPING=1` and no drain, as a crash
//! of MAS would.
//!
//! Failing to notify is logged and otherwise ignored, as MAS does. The
//! messages go to `NOTIFY_SOCKET` through the sd-notify crate, as MAS's do.

use std::process::ExitCode;

use anyhow::Context;
use sd_notify::NotifyState;
use serde_norway::Value;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::behaviour::Switches;
use crate::serve::Server;
use crate::{config, listen};

/// Runs the stand-in from `MAINPID=` to exit.
///
/// # Errors
///
/// A start-up failure: bad listeners or switches, or a socket that cannot be
/// taken or bound. Nothing after `READY=1` is an error.
pub(crate) fn run(config: &Value) -> anyhow::Result<ExitCode> {
    // One thread: nothing else runs while listenfd edits the environment.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(live(config))
}

/// Steps 1 to 6 of the module doc.
async fn live(config: &Value) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::install()?;
    notify(&[NotifyState::MainPid(std::process::id())]);

    let listeners = config::listeners(config)?;
    let switches = Switches::read(config, |var| std::env::var(var).ok())?;
    if switches.watchdog_stop_on_sigusr1 {
        signals.usr1 =
            Some(signal(SignalKind::user_defined1()).context("cannot install a SIGUSR1 handler")?);
    }
    if let Some(text) = &switches.notify_at_start {
        log!("notify_at_start: sending {} bytes", text.len());
        notify(&[NotifyState::Custom(text)]);
    }
    if switches.exit_at_start {
        log!("exit_at_start is set: exiting with status 1");
        return Ok(ExitCode::FAILURE);
    }
    if !switches.startup_delay.is_zero() {
        log!(
            "start-up delay of {} ms: no socket is taken or bound meanwhile",
            switches.startup_delay.as_millis()
        );
        tokio::time::sleep(switches.startup_delay).await;
    }
    if switches.never_ready {
        log!("never_ready is set: taking no socket and never sending READY=1");
        wait_unready(&mut signals, &switches).await;
        log!("exit 0");
        return Ok(ExitCode::SUCCESS);
    }

    let opened = listen::open_all(&listeners)?;
    let mut server = Server::start(
        opened,
        switches.request_delay,
        switches.first_read_delay,
        config::trusted_proxies(config),
    )?;
    notify(&[NotifyState::Ready]);
    log!("ready (READY=1)");

    let name = serve_until_stop(&mut signals, &switches).await;
    notify(&[NotifyState::Stopping]);
    log!(
        "{name} received: stopping (STOPPING=1), finishing in-flight requests for up to {} ms",
        switches.grace.as_millis()
    );
    server.begin_shutdown();
    tokio::select! {
        () = server.drained() => log!("drained: every connection is finished"),
        name = signals.next_stop() => log!("second {name} received: hard shutdown"),
        () = tokio::time::sleep(switches.grace) => log!("grace period over: hard shutdown"),
    }
    log!("exit 0");
    Ok(ExitCode::SUCCESS)
}

/// Serves until a stop signal that is not ignored; returns its name.
async fn serve_until_stop(signals: &mut Signals, switches: &Switches) -> &'static str {
    let mut watchdog = Watchdog::start();
    let crash_at = switches.crash_after.map(|after| Instant::now() + after);
    loop {
        tokio::select! {
            () = sleep_until_some(crash_at) => crash(),
            event = signals.next() => match event {
                Event::Stop(name) if switches.ignore_sigterm => {
                    log!("{name} received: ignored (ignore_sigterm)");
                }
                Event::Stop(name) => return name,
                Event::Reload => reload(switches.hang_on_sighup),
                Event::Hang => {
                    log!("watchdog: pings stopped (SIGUSR1, watchdog_stop_on_sigusr1)");
                    watchdog = None;
                }
            },
            () = Watchdog::tick(&mut watchdog) => notify(&[NotifyState::Watchdog]),
        }
    }
}

/// Sleeps until `at`; never, without a time.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Exits 1 at once, as the `crash_after_ms` switch asks.
fn crash() -> ! {
    log!("crash_after_ms: exiting with status 1");
    // Nothing is dropped or drained: the kernel closes the listening sockets
    // and every connection, in-flight requests unanswered, as after a crash.
    std::process::exit(1)
}

/// Waits for a stop signal without ever having been ready.
async fn wait_unready(signals: &mut Signals, switches: &Switches) {
    loop {
        match signals.next().await {
            Event::Stop(name) if switches.ignore_sigterm => {
                log!("{name} received: ignored (ignore_sigterm)");
            }
            Event::Stop(name) => {
                notify(&[NotifyState::Stopping]);
                log!("{name} received: stopping (STOPPING=1)");
                return;
            }
            Event::Reload => log!("SIGHUP received: ignored, never ready"),
            Event::Hang => log!("SIGUSR1 received: no watchdog pings to stop, never ready"),
        }
    }
}

/// MAS's reload: it reloads only its templates, which the stand-in has none of.
/// With `hang`, the `READY=1` that ends it never comes.
fn reload(hang: bool) {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(err) => {
            log!("cannot read CLOCK_MONOTONIC: {err}");
            notify(&[NotifyState::Reloading]);
        }
    }
    if hang {
        log!("SIGHUP received: RELOADING=1, and no READY=1 will follow (hang_on_sighup)");
        return;
    }
    notify(&[NotifyState::Ready]);
    log!("SIGHUP received: reloaded (RELOADING=1, MONOTONIC_USEC, READY=1)");
}

/// Sends one datagram to `NOTIFY_SOCKET`, if set; a failure is only logged.
fn notify(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        log!("cannot notify NOTIFY_SOCKET: {err}");
    }
}

/// The next delivery of `signal`; never, without one.
async fn recv_some(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// The signals MAS handles.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    /// With the `watchdog_stop_on_sigusr1` switch only.
    usr1: Option<Signal>,
}

/// A handled signal.
enum Event {
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
    /// SIGHUP.
    Reload,
    /// SIGUSR1, with the `watchdog_stop_on_sigusr1` switch.
    Hang,
}

impl Signals {
    /// Installs the handlers; from here on these signals no longer kill the
    /// process but wait to be read.
    fn install() -> anyhow::Result<Self> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("cannot install a {name} handler"))
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
            usr1: None,
        })
    }

    /// The next handled signal.
    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
            _ = self.hup.recv() => Event::Reload,
            Some(()) = recv_some(&mut self.usr1) => Event::Hang,
        }
    }

    /// The next SIGTERM or SIGINT; SIGHUP is logged and skipped.
    async fn next_stop(&mut self) -> &'static str {
        loop {
            match self.next().await {
                Event::Stop(name) => return name,
                Event::Reload => log!("SIGHUP received: ignored while stopping"),
                Event::Hang => log!("SIGUSR1 received: ignored while stopping"),
            }
        }
    }
}

/// Sends `WATCHDOG=1` every half period, as MAS does.
struct Watchdog {
    interval: Interval,
}

impl Watchdog {
    /// Starts when `WATCHDOG_USEC` is set and `WATCHDOG_PID` is unset or ours.
    fn start() -> Option<Self> {
        let period = sd_notify::watchdog_enabled()?;
        let half = period / 2;
        if half.is_zero() {
            log!(
                "watchdog: WATCHDOG_USEC={} is too short to ping; no pings",
                period.as_micros()
            );
            return None;
        }
        log!("watchdog: WATCHDOG=1 every {} ms", half.as_millis());
        let mut interval = tokio::time::interval(half);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Some(Self { interval })
    }

    /// The next ping time; never, without a watchdog.
    async fn tick(watchdog: &mut Option<Self>) {
        match watchdog {
            Some(watchdog) => {
                watchdog.interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}
