//! Switches that make the stand-in misbehave on purpose.
//!
//! Each switch is read from an environment variable and from the top-level
//! `standin:` section of the merged config; the environment wins, and an empty
//! variable counts as unset. Durations are whole milliseconds; booleans are
//! YAML booleans, or `1/0`, `true/false`, `yes/no`, `on/off` in the
//! environment. A bad value or an unknown key under `standin:` is an error, so
//! a test cannot silently run without the behaviour it asked for.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_norway::Value;

use crate::config::inline;

/// The `standin:` section of the config.
const SECTION: &str = "standin";

/// Every switch: environment variable, then YAML key.
const STARTUP_DELAY: (&str, &str) = ("MAS_STANDIN_STARTUP_DELAY_MS", "startup_delay_ms");
const NEVER_READY: (&str, &str) = ("MAS_STANDIN_NEVER_READY", "never_ready");
const EXIT_AT_START: (&str, &str) = ("MAS_STANDIN_EXIT_AT_START", "exit_at_start");
const IGNORE_SIGTERM: (&str, &str) = ("MAS_STANDIN_IGNORE_SIGTERM", "ignore_sigterm");
const REQUEST_DELAY: (&str, &str) = ("MAS_STANDIN_REQUEST_DELAY_MS", "request_delay_ms");
const FIRST_READ_DELAY: (&str, &str) = ("MAS_STANDIN_FIRST_READ_DELAY_MS", "first_read_delay_ms");
const GRACE: (&str, &str) = ("MAS_STANDIN_GRACE_MS", "grace_ms");
const WATCHDOG_STOP_ON_SIGUSR1: (&str, &str) = (
    "MAS_STANDIN_WATCHDOG_STOP_ON_SIGUSR1",
    "watchdog_stop_on_sigusr1",
);
const CRASH_AFTER: (&str, &str) = ("MAS_STANDIN_CRASH_AFTER_MS", "crash_after_ms");
const NOTIFY_AT_START: (&str, &str) = ("MAS_STANDIN_NOTIFY_AT_START", "notify_at_start");
const HANG_ON_SIGHUP: (&str, &str) = ("MAS_STANDIN_HANG_ON_SIGHUP", "hang_on_sighup");
const ALL: [(&str, &str); 11] = [
    STARTUP_DELAY,
    NEVER_READY,
    EXIT_AT_START,
    IGNORE_SIGTERM,
    REQUEST_DELAY,
    FIRST_READ_DELAY,
    GRACE,
    WATCHDOG_STOP_ON_SIGUSR1,
    CRASH_AFTER,
    NOTIFY_AT_START,
    HANG_ON_SIGHUP,
];

/// MAS's hard-shutdown timeout.
const DEFAULT_GRACE: Duration = Duration::from_secs(60);

/// How the stand-in should behave, beyond what MAS does.
#[derive(Debug, PartialEq)]
pub(crate) struct Switches {
    /// Sleep this long after `MAINPID=`, before taking or binding any socket,
    /// like MAS's database and migration work.
    pub(crate) startup_delay: Duration,
    /// Never take the sockets and never send `READY=1`; only wait for signals.
    pub(crate) never_ready: bool,
    /// Exit with status 1 right after `MAINPID=`.
    pub(crate) exit_at_start: bool,
    /// Ignore SIGTERM and SIGINT entirely; only SIGKILL stops the process.
    pub(crate) ignore_sigterm: bool,
    /// Every request waits this long before it is answered.
    pub(crate) request_delay: Duration,
    /// Every accepted connection waits this long before its first byte is
    /// read, as on a MAS too busy to poll it at once. A shutdown that starts
    /// meanwhile closes it unanswered, as MAS closes a connection it has not
    /// read from: this widens that gap of a restart from an instant to this
    /// long, so that a test meets it every time.
    pub(crate) first_read_delay: Duration,
    /// After the first stop signal, exit anyway once this has passed.
    pub(crate) grace: Duration,
    /// Stop sending `WATCHDOG=1` on SIGUSR1, as a server that hangs would,
    /// at the moment a test chooses. Without it SIGUSR1 kills the process,
    /// as it does MAS.
    pub(crate) watchdog_stop_on_sigusr1: bool,
    /// Exit with status 1 this long after `READY=1`, as a crash would: no
    /// `STOPPING=1`, no drain. A stop signal that comes first wins.
    pub(crate) crash_after: Option<Duration>,
    /// Send this text as one extra datagram right after `MAINPID=`, before
    /// the start-up delay, as a misbehaving server might.
    pub(crate) notify_at_start: Option<String>,
    /// On SIGHUP send `RELOADING=1` and never the `READY=1` that should
    /// follow, as a template reload that hangs would.
    pub(crate) hang_on_sighup: bool,
}

impl Switches {
    /// Reads the switches from `env` (a variable lookup) and the merged config.
    ///
    /// # Errors
    ///
    /// A value that is not a whole number of milliseconds or a boolean, a
    /// `standin:` section that is not a mapping, or an unknown key in it.
    pub(crate) fn read(root: &Value, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let section = root.get(SECTION).cloned().unwrap_or(Value::Null);
        let section = match section {
            Value::Null => serde_norway::Mapping::new(),
            Value::Mapping(map) => map,
            _ => bail!("{SECTION}: expected a mapping of switches, like `{SECTION}: {{never_ready: true}}`"),
        };
        for key in section.keys() {
            let known = ALL.iter().any(|(_, name)| key.as_str() == Some(name));
            if !known {
                let names: Vec<&str> = ALL.iter().map(|(_, name)| *name).collect();
                bail!(
                    "{SECTION}: unknown switch {}; known switches are {}",
                    inline(key),
                    names.join(", ")
                );
            }
        }
        let lookup = |(var, key): (&str, &str)| -> Source {
            match env(var).filter(|value| !value.is_empty()) {
                Some(value) => Source::Env(var.to_owned(), value),
                None => match section.get(key) {
                    Some(value) => Source::Config(format!("{SECTION}.{key}"), value.clone()),
                    None => Source::Unset,
                },
            }
        };
        Ok(Self {
            startup_delay: lookup(STARTUP_DELAY).millis()?.unwrap_or_default(),
            never_ready: lookup(NEVER_READY).flag()?,
            exit_at_start: lookup(EXIT_AT_START).flag()?,
            ignore_sigterm: lookup(IGNORE_SIGTERM).flag()?,
            request_delay: lookup(REQUEST_DELAY).millis()?.unwrap_or_default(),
            first_read_delay: lookup(FIRST_READ_DELAY).millis()?.unwrap_or_default(),
            grace: lookup(GRACE).millis()?.unwrap_or(DEFAULT_GRACE),
            watchdog_stop_on_sigusr1: lookup(WATCHDOG_STOP_ON_SIGUSR1).flag()?,
            crash_after: lookup(CRASH_AFTER).millis()?,
            notify_at_start: lookup(NOTIFY_AT_START).text()?,
            hang_on_sighup: lookup(HANG_ON_SIGHUP).flag()?,
        })
    }
}

/// Where a switch's value came from, for reading it and naming it in errors.
enum Source {
    Env(String, String),
    Config(String, Value),
    Unset,
}

impl Source {
    /// A whole number of milliseconds.
    fn millis(self) -> anyhow::Result<Option<Duration>> {
        let fix = "set it to a whole number of milliseconds, like 500";
        let ms = match self {
            Source::Unset => return Ok(None),
            Source::Env(var, value) => value
                .parse::<u64>()
                .ok()
                .with_context(|| format!("{var}={value:?} is not a duration; {fix}"))?,
            Source::Config(key, value) => value
                .as_u64()
                .with_context(|| format!("{key}: {} is not a duration; {fix}", inline(&value)))?,
        };
        Ok(Some(Duration::from_millis(ms)))
    }

    /// A string, as given.
    fn text(self) -> anyhow::Result<Option<String>> {
        match self {
            Source::Unset => Ok(None),
            Source::Env(_, value) => Ok(Some(value)),
            Source::Config(key, value) => value
                .as_str()
                .map(|text| Some(text.to_owned()))
                .with_context(|| format!("{key}: {} is not a string; quote it", inline(&value))),
        }
    }

    /// A boolean; unset is false.
    fn flag(self) -> anyhow::Result<bool> {
        let fix = "set it to true or false";
        match self {
            Source::Unset => Ok(false),
            Source::Env(var, value) => match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => bail!("{var}={value:?} is not a boolean; {fix}"),
            },
            Source::Config(key, value) => value
                .as_bool()
                .with_context(|| format!("{key}: {} is not a boolean; {fix}", inline(&value))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(yaml: &str, env: &[(&str, &str)]) -> anyhow::Result<Switches> {
        let root: Value = serde_norway::from_str(yaml).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Switches::read(&root, |var| env.get(var).cloned())
    }

    #[test]
    fn defaults_are_those_of_mas() {
        let switches = read("{}", &[]).unwrap();
        assert_eq!(
            switches,
            Switches {
                startup_delay: Duration::ZERO,
                never_ready: false,
                exit_at_start: false,
                ignore_sigterm: false,
                request_delay: Duration::ZERO,
                first_read_delay: Duration::ZERO,
                grace: Duration::from_secs(60),
                watchdog_stop_on_sigusr1: false,
                crash_after: None,
                notify_at_start: None,
                hang_on_sighup: false,
            }
        );
    }

    #[test]
    fn notify_at_start_is_a_string() {
        let switches = read("standin: {notify_at_start: \"READY=1\\nSTATUS=x\"}", &[]).unwrap();
        assert_eq!(
            switches.notify_at_start.as_deref(),
            Some("READY=1\nSTATUS=x")
        );
        let err = read("standin: {notify_at_start: 5}", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("standin.notify_at_start: "), "{err}");
    }

    #[test]
    fn config_section_is_read_and_environment_wins() {
        let yaml = "standin: {startup_delay_ms: 100, never_ready: true, grace_ms: 5}";
        let switches = read(
            yaml,
            &[
                ("MAS_STANDIN_GRACE_MS", "7"),
                ("MAS_STANDIN_NEVER_READY", ""),
            ],
        )
        .unwrap();
        assert_eq!(switches.startup_delay, Duration::from_millis(100));
        assert!(switches.never_ready, "an empty variable counts as unset");
        assert_eq!(switches.grace, Duration::from_millis(7));
        let switches = read("{}", &[("MAS_STANDIN_IGNORE_SIGTERM", "yes")]).unwrap();
        assert!(switches.ignore_sigterm);
        let switches = read("standin: {first_read_delay_ms: 20}", &[]).unwrap();
        assert_eq!(switches.first_read_delay, Duration::from_millis(20));
    }

    #[test]
    fn crash_after_is_read_from_config_or_environment() {
        let switches = read("standin: {crash_after_ms: 250}", &[]).unwrap();
        assert_eq!(switches.crash_after, Some(Duration::from_millis(250)));
        let switches = read(
            "standin: {crash_after_ms: 250}",
            &[("MAS_STANDIN_CRASH_AFTER_MS", "0")],
        )
        .unwrap();
        assert_eq!(
            switches.crash_after,
            Some(Duration::ZERO),
            "the environment wins, and 0 means at once"
        );
        let err = read("{}", &[("MAS_STANDIN_CRASH_AFTER_MS", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MAS_STANDIN_CRASH_AFTER_MS=\"soon\" is not a duration"),
            "{err}"
        );
        let err = read("standin: {crash_after_ms: -5}", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("standin.crash_after_ms: "), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable_or_key() {
        let err = read("{}", &[("MAS_STANDIN_REQUEST_DELAY_MS", "1s")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MAS_STANDIN_REQUEST_DELAY_MS=\"1s\" is not a duration"),
            "{err}"
        );
        let err = read("standin: {exit_at_start: 1}", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("standin.exit_at_start: "), "{err}");
        let err = read("standin: {never_redy: true}", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown switch"), "{err}");
        assert!(read("standin: 3", &[]).is_err());
    }
}
