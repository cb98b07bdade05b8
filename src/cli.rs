//! The command line. The doc comments here are the `--help` text and the man
//! pages, so they are written for operators, as plain text: `[::]:443` and
//! `<NAME>` are what `--help` prints, not links or tags for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The version `--version` and the man pages show: the package's, when
/// packaging/build sets `MAS_SOCKETS_VERSION` for the build, else Cargo.toml's.
pub const VERSION: &str = match option_env!("MAS_SOCKETS_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Run the Matrix Authentication Service on sockets held by systemd.
///
/// mas-sockets reads MAS's config, writes the systemd socket and service units
/// that hold exactly its binds, and supervises `mas-cli server` on those
/// sockets: it checks each socket against the config, starts MAS on them and
/// relays MAS's readiness to systemd.
///
/// Exit status: 0 on success; 1 when check finds problems or a reload's
/// restart failed; 2 when mas-sockets cannot do its job (bad usage, an
/// unreadable or invalid config, sockets that do not match it); supervise
/// passes MAS's own status on. Each subcommand's page says more.
#[derive(Debug, Parser)]
#[command(
    name = "mas-sockets",
    version = VERSION,
    propagate_version = true,
    after_long_help = "The packaged units, for MAS's built-in listeners: /usr/lib/systemd/system/mas.service, \
mas-web.socket and mas-internal.socket; override them with drop-ins or with units of \
generate-units in /etc/systemd/system. The guide, with the deployment behind nginx and every \
error and its fix: README.md in /usr/share/doc/mas-sockets/.\n\n\
systemd.socket(5), systemd.service(5), sd_listen_fds(3), sd_notify(3), nginx(8)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the config and print every bind with the sockets it stands for.
    ///
    /// Exit status 0 when the config is valid, 1 when it has problems (each
    /// printed on its own line with file:line:column), 2 when it cannot be read
    /// or a MAS_HTTP* variable would add listeners that no file shows.
    Check(CheckArgs),
    /// Write the systemd .socket and .service units for the config.
    ///
    /// One socket unit per bind, named <NAME>-<listener>.socket, and
    /// <NAME>.service running `mas-sockets supervise` with the same config files.
    /// Exit status 0 when written, 2 when the config or an option cannot be
    /// used (each problem printed).
    GenerateUnits(GenerateUnitsArgs),
    /// Write the nginx site that puts nginx in front of MAS.
    ///
    /// The auth host (--server-name) goes to the first listener that serves
    /// discovery, human, oauth, graphql and (without --assets-dir) assets;
    /// nginx reaches it on its first Unix socket, else its TCP bind. With
    /// --matrix-server-name, the Matrix host sends /_matrix/client/*/login,
    /// /logout and /refresh to MAS and everything else under /_matrix/ and
    /// /_synapse/client/ to --homeserver. A listener with `proxy_protocol:
    /// true` is reached from nginx's stream module with `proxy_protocol on`,
    /// the only part of nginx that can send it. Refuses, with the fix, a
    /// listener nginx cannot reach or may not connect to. Exit status 0 when
    /// written, 2 when it cannot be.
    GenerateNginx(GenerateNginxArgs),
    /// Run MAS on the sockets systemd passes (the service's main process).
    ///
    /// Takes the fds of LISTEN_FDS, matches each to a configured bind by its
    /// address, and starts COMMAND with those sockets as `fd:` binds in a
    /// rewritten config passed as MAS_CONFIG. Without passed fds it binds the
    /// configured addresses itself. Every option can also be set through the
    /// environment variable named next to it. SIGTERM or SIGINT stops MAS
    /// gracefully; SIGHUP, like `mas-sockets reload`, replaces it without a gap.
    /// Exit status 0 when MAS stopped cleanly after being asked to, MAS's own
    /// status when it failed (128+N when killed by signal N), 1 when it exited
    /// 0 unasked, 2 when MAS could not be started (sockets that do not match
    /// the config, say), 127 when COMMAND cannot be executed.
    Supervise(SuperviseArgs),
    /// Replace the running MAS with a new process, without refusing a connection.
    ///
    /// Asks the supervisor of the service (through its control socket) to start a
    /// new MAS on the same sockets, wait until it is ready, then let the old one
    /// drain. Waits for the outcome: exit status 0 once the new MAS serves, 1 when
    /// the restart failed (the old MAS keeps serving), 2 when the supervisor cannot
    /// be reached. The generated unit runs this as ExecReload=.
    Reload(ReloadArgs),
    /// Show the supervisor's state: generation, MAS's pid, state, uptime, the last
    /// restart's result, and the listeners.
    ///
    /// Exit status 0 when the supervisor answered, 2 when it cannot be reached.
    Status(StatusArgs),
    /// Internal: sets LISTEN_PID to its own pid and executes the command.
    #[command(hide = true)]
    ExecChild(ExecChildArgs),
}

/// Where to find a running supervisor.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// The supervisor's runtime directory. Default: $RUNTIME_DIRECTORY (set by
    /// systemd for ExecReload=), else /run/mas-sockets/NAME.
    #[arg(long, env = "MAS_SOCKETS_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// The units' name prefix (generate-units' --name), for the default directory.
    #[arg(long, default_value = "mas", value_name = "BASE")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only pass SIGHUP on to MAS, which reloads its templates (not its config).
    #[arg(long)]
    pub signal_only: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Which config files to read.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// A MAS config file; repeat to merge several, in order, as MAS does.
    /// Without it: the files in MAS_CONFIG (separated by `:`), else config.yaml.
    #[arg(long = "config", short = 'c', value_name = "PATH")]
    pub config: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also check an nginx file (a site, a stream configuration, or a whole
    /// nginx.conf) against the config: PROXY protocol on one side only,
    /// proxy_pass to a socket or port that no bind has, and proxy_pass to a
    /// listener without the resources its location needs. Repeatable.
    #[arg(long = "nginx", value_name = "SITE")]
    pub nginx: Vec<PathBuf>,
}

// The usage line is written out: the parser's own, after a missing argument,
// would list every option given so far as if it were required.
#[derive(Debug, Args)]
#[command(
    override_usage = "mas-sockets generate-nginx --server-name <NAME> [--config <PATH>]... [--matrix-server-name <NAME> --homeserver <URL>] [OPTIONS]"
)]
pub struct GenerateNginxArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The auth host: the name clients reach MAS by (public_base's host).
    #[arg(long, value_name = "NAME")]
    pub server_name: String,
    /// The Matrix homeserver's host, whose login, logout and refresh
    /// endpoints MAS answers; needs --homeserver.
    #[arg(long, value_name = "NAME", requires = "homeserver")]
    pub matrix_server_name: Option<String>,
    /// Where nginx reaches the homeserver, e.g. http://localhost:8008.
    #[arg(long, value_name = "URL", requires = "matrix_server_name")]
    pub homeserver: Option<String>,
    /// MAS's assets directory (what the `assets` resource serves, e.g.
    /// /usr/share/mas/assets): nginx serves /assets/ from it, with the
    /// pre-compressed .gz files, cached for a year.
    #[arg(long, value_name = "DIR")]
    pub assets_dir: Option<PathBuf>,
    /// TLS certificate (full chain) for nginx; plain HTTP without it. With
    /// it, plain HTTP on port 80 is redirected to https (see --no-redirect).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key for --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// An address nginx listens on: PORT, IPV4:PORT or [IPV6]:PORT; repeatable.
    /// Default: 443 and [::]:443 with TLS, 80 and [::]:80 without.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// With TLS, leave out the servers on port 80 that redirect plain HTTP
    /// to https (written on port 80 of each address on 443), for when
    /// something else answers port 80.
    #[arg(long, requires = "tls_cert")]
    pub no_redirect: bool,
    /// The group of MAS's Unix sockets, as given to generate-units
    /// (--socket-group, else --group); nginx's user must be in it.
    #[arg(long, default_value = "mas", value_name = "GROUP")]
    pub socket_group: String,
    /// The user nginx's workers run as (nginx.conf's `user`).
    #[arg(long, default_value = "www-data", value_name = "USER")]
    pub nginx_user: String,
    /// Prefix of the file and upstream names (generate-units' --name).
    #[arg(long, default_value = "mas", value_name = "BASE")]
    pub name: String,
    /// Write the file into DIR instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenerateUnitsArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Write the units into DIR (e.g. /etc/systemd/system) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Prefix of the unit names.
    #[arg(long, default_value = "mas", value_name = "BASE")]
    pub name: String,
    /// Path of mas-cli on the host that runs the units.
    #[arg(long, default_value = "/usr/bin/mas-cli", value_name = "PATH")]
    pub mas_cli: PathBuf,
    /// Path of mas-sockets on the host that runs the units.
    #[arg(long, default_value = "/usr/bin/mas-sockets", value_name = "PATH")]
    pub mas_sockets: PathBuf,
    /// User that runs MAS and owns its Unix sockets.
    #[arg(long, default_value = "mas")]
    pub user: String,
    /// Group that runs MAS.
    #[arg(long, default_value = "mas")]
    pub group: String,
    /// Group of the Unix sockets (e.g. www-data, so that nginx may connect).
    /// Defaults to --group.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Config path to write into ExecStart= instead of the absolute path read,
    /// for units generated away from the host that runs them; repeat as --config.
    #[arg(long, value_name = "PATH")]
    pub config_in_unit: Vec<PathBuf>,
    /// How long MAS may drain on stop; sets supervise's --stop-timeout and
    /// the unit's TimeoutStopSec= to match.
    #[arg(long, default_value = "65s", value_parser = parse_duration, value_name = "DURATION")]
    pub stop_timeout: Duration,
    /// How long a new MAS may take to start (supervise's --ready-timeout);
    /// the unit's TimeoutStartSec= leaves room for it and the drain.
    #[arg(long, default_value = "5min", value_parser = parse_wait, value_name = "DURATION")]
    pub ready_timeout: Duration,
    /// How long the old MAS may drain after a restart (supervise's --drain-timeout).
    #[arg(long, default_value = "65s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// The systemd version of the target host; 253 or newer gets Type=notify-reload.
    #[arg(long, default_value_t = 252, value_name = "VERSION")]
    pub systemd_version: u32,
}

#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// After SIGTERM, how long MAS may finish its requests before it is killed.
    #[arg(long, env = "MAS_SOCKETS_STOP_TIMEOUT", default_value = "65s", value_parser = parse_duration, value_name = "DURATION")]
    pub stop_timeout: Duration,
    /// During a restart, how long the new MAS may take to become ready before it
    /// is killed and the old one keeps serving.
    #[arg(long, env = "MAS_SOCKETS_READY_TIMEOUT", default_value = "5min", value_parser = parse_wait, value_name = "DURATION")]
    pub ready_timeout: Duration,
    /// After a restart, how long the old MAS may finish its requests before it is killed.
    #[arg(long, env = "MAS_SOCKETS_DRAIN_TIMEOUT", default_value = "65s", value_parser = parse_duration, value_name = "DURATION")]
    pub drain_timeout: Duration,
    /// Give up (exit, so that systemd's Restart= applies) after this many crashes
    /// of a serving MAS within --crash-window.
    #[arg(long, env = "MAS_SOCKETS_CRASH_LIMIT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub crash_limit: u32,
    /// How far back crashes count towards --crash-limit and the doubling of
    /// --backoff.
    #[arg(long, env = "MAS_SOCKETS_CRASH_WINDOW", default_value = "5min", value_parser = parse_duration, value_name = "DURATION")]
    pub crash_window: Duration,
    /// The delay before a crashed MAS is started again; it doubles with each
    /// crash in the window, up to --backoff-max.
    #[arg(long, env = "MAS_SOCKETS_BACKOFF", default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub backoff: Duration,
    /// The longest delay before a crashed MAS is started again, however often
    /// it crashed.
    #[arg(long, env = "MAS_SOCKETS_BACKOFF_MAX", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub backoff_max: Duration,
    /// Private directory for the notify socket and the rewritten config,
    /// created (mode 0700) when it does not exist; its parent must exist.
    /// Default: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else a new
    /// directory under $XDG_RUNTIME_DIR or /tmp, named in the log.
    #[arg(long, env = "MAS_SOCKETS_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Where logs go: the journal, stderr, or the journal when stderr is
    /// connected to it (JOURNAL_STREAM).
    #[arg(long, env = "MAS_SOCKETS_LOG_TARGET", value_enum, default_value_t = LogTarget::Auto)]
    pub log_target: LogTarget,
    /// Log filter: a level (off, error, warn, info, debug, trace) or
    /// `target=level`, comma-separated, e.g. `info` or `info,mas_sockets=debug`.
    #[arg(
        long,
        env = "MAS_SOCKETS_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
    /// The MAS command and its arguments, e.g. `/usr/bin/mas-cli server`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Where supervise writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    Auto,
    Journal,
    Stderr,
}

#[derive(Debug, Args)]
pub struct ExecChildArgs {
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// Parses durations such as `65s`, `500ms`, `2min`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 65s, 500ms or 2min"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" | "msec" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, min or h"
            ))
        }
    };
    let duration =
        Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{text}`: {e}"))?;
    if duration > MAX_DURATION {
        return Err(format!("`{text}` is longer than the 24h this accepts"));
    }
    Ok(duration)
}

/// A duration that must not be zero: a ready timeout of nothing would fail
/// every restart before a MAS could start.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration < Duration::from_millis(100) {
        return Err(format!(
            "`{text}` is too short for MAS to start in; give it the time MAS takes, e.g. 5min"
        ));
    }
    Ok(duration)
}

/// The longest duration an option accepts; more is a typo, not a plan.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Writes a duration as [`parse_duration`] and systemd read it: `65s`, `500ms`.
pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("65s"), Ok(Duration::from_secs(65)));
        assert_eq!(parse_duration("65"), Ok(Duration::from_secs(65)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("10000000000000000000s").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(65)), "65s");
    }

    #[test]
    fn a_ready_timeout_leaves_mas_time_to_start() {
        assert_eq!(parse_wait("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_wait("0s")
            .unwrap_err()
            .contains("too short for MAS to start in"));
        assert!(parse_wait("10ms").is_err());
        let cli = Cli::try_parse_from([
            "mas-sockets",
            "supervise",
            "--ready-timeout",
            "0",
            "--",
            "x",
        ]);
        assert!(cli.is_err());
    }
}
