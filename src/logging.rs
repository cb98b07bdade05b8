//! Where supervise's log goes: the journal with structured fields when stderr
//! is connected to it, human text on stderr otherwise.
//!
//! systemd sets `JOURNAL_STREAM=<dev>:<ino>` for a service whose stderr is a
//! journal stream (systemd.exec(5)); comparing it with stderr's own device and
//! inode tells whether stderr really is that stream, and not, say, a pipe the
//! variable leaked into.
//!
//! The filter is tracing's `EnvFilter` syntax, with one rule more: a
//! directive without `=` must be a level. EnvFilter takes any other bare word
//! as a target name (`degub` enables only a target called `degub`), which
//! silently turns off every line of ours.

use std::io::IsTerminal as _;
use std::os::unix::fs::MetadataExt as _;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::cli::LogTarget;

/// Whether stderr is the journal stream named by `JOURNAL_STREAM`.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// The levels a directive may be on its own.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Parses a `--log` filter.
///
/// # Errors
///
/// The filter does not parse, has no directive, or has a directive without
/// `=` that is not a level; the message names the option and the value.
fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    let invalid = |why: String| {
        format!("invalid log filter `{filter}` (--log or MAS_SOCKETS_LOG): {why}; write e.g. `info`, `debug` or `mas_sockets=debug`")
    };
    // EnvFilter skips empty directives, as between two commas.
    let directives: Vec<&str> = filter.split(',').filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err(invalid(
            "it has no directive, which would turn off every log line (`off` says so)".to_owned(),
        ));
    }
    if let Some(word) = directives
        .iter()
        .find(|d| !d.contains('=') && !LEVELS.iter().any(|l| d.eq_ignore_ascii_case(l)))
    {
        return Err(invalid(format!(
            "`{word}` is not a level ({}), and a target needs one after `=`",
            LEVELS.join(", ")
        )));
    }
    EnvFilter::try_new(filter).map_err(|e| invalid(e.to_string()))
}

/// Installs the global subscriber. Returns a warning to log when the journal
/// was asked for but could not be reached (stderr is used instead).
///
/// # Errors
///
/// A filter that does not parse.
pub fn init(target: LogTarget, filter: &str) -> Result<Option<String>, String> {
    let filter = parse_filter(filter)?;
    let journal = match target {
        LogTarget::Stderr => false,
        LogTarget::Journal => true,
        LogTarget::Auto => stderr_is_journal(),
    };
    let mut warning = None;
    if journal {
        match tracing_journald::layer() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.with_syslog_identifier("mas-sockets".into()))
                    .init();
                return Ok(None);
            }
            Err(e) => {
                warning = Some(format!(
                    "cannot log to the journal ({e}); logging to stderr"
                ))
            }
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .init();
    Ok(warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_target_levels_are_accepted() {
        for filter in [
            "info",
            "WARN",
            "off",
            "trace",
            "mas_sockets=debug",
            "info,mas_sockets::supervisor=trace",
            "warn,",
        ] {
            assert!(parse_filter(filter).is_ok(), "{filter}");
        }
    }

    #[test]
    fn a_bare_word_that_is_not_a_level_is_refused() {
        for (filter, word) in [
            ("degub", "degub"),
            ("banana", "banana"),
            ("info,banana", "banana"),
            ("mas_sockets", "mas_sockets"),
        ] {
            let err = parse_filter(filter).expect_err(filter);
            assert_eq!(
                err,
                format!("invalid log filter `{filter}` (--log or MAS_SOCKETS_LOG): `{word}` is not a level (off, error, warn, info, debug, trace), and a target needs one after `=`; write e.g. `info`, `debug` or `mas_sockets=debug`")
            );
        }
    }

    #[test]
    fn an_empty_filter_or_a_bad_level_is_refused() {
        let err = parse_filter(",").expect_err("empty");
        assert!(err.contains("it has no directive"), "{err}");
        let err = parse_filter("mas_sockets=degub").expect_err("bad level");
        assert!(
            err.starts_with("invalid log filter `mas_sockets=degub` (--log or MAS_SOCKETS_LOG): "),
            "{err}"
        );
    }
}
