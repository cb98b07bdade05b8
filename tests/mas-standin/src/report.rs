//! The start report: one line per start, appended to `$MAS_STANDIN_REPORT`.
//!
//! Tests use it to see what a supervisor handed its child: which config files,
//! which `LISTEN_*` and `NOTIFY_SOCKET` values, and which fds were open when
//! the process began (to catch fds leaked across `exec`). The line is
//!
//! ```text
//! pid=<pid> config=<a,b> listen_fds=<v> listen_pid=<v> notify_socket=<v> listen_fdnames=<v>
//! watchdog_usec=<v> watchdog_pid=<v> mas_sockets_stop_timeout=<v> fds=<0 1 2 ...>
//! ```
//!
//! An unset variable is written `<unset>`. The file is opened with `O_APPEND`
//! and the line written with one `write(2)`, so concurrent starts do not
//! interleave.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The variable that names the report file; unset means no report.
const REPORT_VAR: &str = "MAS_STANDIN_REPORT";

/// The variables whose values the report records, with their field names.
const RECORDED_VARS: [(&str, &str); 7] = [
    ("listen_fds", "LISTEN_FDS"),
    ("listen_pid", "LISTEN_PID"),
    ("notify_socket", "NOTIFY_SOCKET"),
    ("listen_fdnames", "LISTEN_FDNAMES"),
    ("watchdog_usec", "WATCHDOG_USEC"),
    ("watchdog_pid", "WATCHDOG_PID"),
    ("mas_sockets_stop_timeout", "MAS_SOCKETS_STOP_TIMEOUT"),
];

/// Lists the open fds of this process from `/proc/self/fd`, in ascending
/// order, leaving out the one used to read that directory.
///
/// # Errors
///
/// `/proc/self/fd` cannot be opened or read.
pub(crate) fn list_open_fds() -> io::Result<Vec<RawFd>> {
    let mut dir = Dir::open(
        "/proc/self/fd",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let own = dir.as_raw_fd();
    let mut fds = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let parsed = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|name| name.parse::<RawFd>().ok());
        if let Some(fd) = parsed.filter(|&fd| fd != own) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// Appends the start line to `$MAS_STANDIN_REPORT`, when it is set.
///
/// # Errors
///
/// The fds could not be listed, or the file could not be opened or written
/// in one piece.
pub(crate) fn append_if_requested(
    config_paths: &[PathBuf],
    inherited_fds: io::Result<Vec<RawFd>>,
) -> anyhow::Result<()> {
    let Some(path) = std::env::var_os(REPORT_VAR) else {
        return Ok(());
    };
    let fds = inherited_fds.context("listing /proc/self/fd for the start report")?;
    let line = format_line(
        std::process::id(),
        config_paths,
        |var| std::env::var(var).ok(),
        &fds,
    );
    let shown = PathBuf::from(&path).display().to_string();
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(&path)
        .with_context(|| format!("{REPORT_VAR}={shown}: cannot open the report file"))?;
    let written = file
        .write(line.as_bytes())
        .with_context(|| format!("{REPORT_VAR}={shown}: cannot write the report"))?;
    if written != line.len() {
        bail!(
            "{REPORT_VAR}={shown}: short write ({written} of {} bytes)",
            line.len()
        );
    }
    Ok(())
}

/// Builds the report line, newline included.
fn format_line(
    pid: u32,
    config_paths: &[PathBuf],
    env: impl Fn(&str) -> Option<String>,
    fds: &[RawFd],
) -> String {
    let config: Vec<String> = config_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut line = format!("pid={pid} config={}", config.join(","));
    for (field, var) in RECORDED_VARS {
        let value = env(var).unwrap_or_else(|| "<unset>".to_owned());
        line.push_str(&format!(" {field}={value}"));
    }
    let fds: Vec<String> = fds.iter().map(RawFd::to_string).collect();
    line.push_str(&format!(" fds={}\n", fds.join(" ")));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_lists_config_env_and_fds() {
        let paths = [PathBuf::from("/etc/a.yaml"), PathBuf::from("b.yaml")];
        let env = |var: &str| (var == "LISTEN_FDS").then(|| "2".to_owned());
        let line = format_line(42, &paths, env, &[0, 1, 2, 3, 4]);
        assert_eq!(
            line,
            "pid=42 config=/etc/a.yaml,b.yaml listen_fds=2 listen_pid=<unset> \
             notify_socket=<unset> listen_fdnames=<unset> watchdog_usec=<unset> \
             watchdog_pid=<unset> mas_sockets_stop_timeout=<unset> fds=0 1 2 3 4\n"
        );
    }

    #[test]
    fn open_fds_include_stdio() {
        // Only stdio is asserted: the other tests of this binary open and
        // close fds on their threads meanwhile.
        let fds = list_open_fds().unwrap();
        assert!(fds.starts_with(&[0, 1, 2]), "{fds:?}");
    }
}
