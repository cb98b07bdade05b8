//! Where supervise's log goes: the journal with structured fields when stderr
//! is connected to it, human text on stderr otherwise.
//!
//! systemd sets `JOURNAL_STREAM=<dev>:<ino>` for a service whose stderr is a
//! journal stream (systemd.exec(5)); comparing it with stderr's own device and
//! inode tells whether stderr really is that stream, and not, say, a pipe the
//! variable leaked into.

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

/// Installs the global subscriber. Returns a warning to log when the journal
/// was asked for but could not be reached (stderr is used instead).
///
/// # Errors
///
/// A filter that does not parse.
pub fn init(target: LogTarget, filter: &str) -> Result<Option<String>, String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        format!("invalid log filter `{filter}` (--log or MAS_SOCKETS_LOG): {e}; write e.g. `info` or `mas_sockets=debug`")
    })?;
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
