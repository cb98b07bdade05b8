//! The `.service` unit (systemd.service(5), systemd.exec(5)): the
//! `ExecStart=` that runs `mas-sockets supervise` on the socket units, the
//! reload that fits the target's systemd version, the timeouts derived from
//! supervise's own, the runtime directory, and the sandboxing.
//!
//! The socket units' names are given to it; the words of its command lines
//! are quoted by `escape`, and the runtime directory is named by `naming`.
//! Which paths the sandboxing hides from the service is said by `warnings`.

use std::time::Duration;

use super::escape::quote_arg;
use super::naming::runtime_directory;
use super::UnitOptions;

/// The service unit that runs supervise on `sockets`, the names of the
/// socket units.
pub(super) fn service_unit(header: &str, sockets: &[String], opts: &UnitOptions) -> String {
    let mut exec = vec![
        quote_arg(&opts.mas_sockets.display().to_string()),
        "supervise".to_owned(),
    ];
    for file in &opts.config_files {
        exec.push("--config".to_owned());
        exec.push(quote_arg(&file.display().to_string()));
    }
    exec.push("--".to_owned());
    exec.push(quote_arg(&opts.mas_cli.display().to_string()));
    exec.push("server".to_owned());
    let fmt = crate::cli::format_duration;
    let (stop, ready, drain) = (
        fmt(opts.stop_timeout),
        fmt(opts.ready_timeout),
        fmt(opts.drain_timeout),
    );
    let whole_secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    // A start, and a reload (which systemd times with TimeoutStartSec= too),
    // may take a whole MAS start-up plus the old MAS's drain.
    let start_timeout = whole_secs(opts.ready_timeout) + whole_secs(opts.drain_timeout) + 30;
    // From 253 on, systemd itself sends SIGHUP for a reload and waits for
    // RELOADING=1 and READY=1; on 252 ExecReload= asks supervise and waits.
    let (service_type, exec_reload) = if opts.systemd_version >= 253 {
        ("notify-reload", String::new())
    } else {
        let reload = format!(
            "{} reload",
            quote_arg(&opts.mas_sockets.display().to_string())
        );
        ("notify", format!("ExecReload={reload}\n"))
    };
    // Without listeners (`listeners: []`) there is no socket unit to name:
    // no empty `Sockets=`, which would read as a reset of the list.
    let (requires, sockets_line, also) = if sockets.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        let sockets = sockets.join(" ");
        (
            format!("Requires={sockets}\nAfter={sockets}\n"),
            format!("Sockets={sockets}\n"),
            format!("Also={sockets}\n"),
        )
    };
    let runtime_dir = runtime_directory(&opts.name);
    // systemd's own limit leaves supervise time to kill MAS and exit.
    let stop_timeout = whole_secs(opts.stop_timeout) + 15;
    let exec = exec.join(" ");
    // Without --config and MAS_CONFIG, supervise reads config.yaml; the
    // units were generated from no file, so the service must read none.
    let no_config = if opts.config_files.is_empty() {
        "# No config file: MAS's built-in defaults, as when the units were generated.\nEnvironment=MAS_CONFIG=\n"
    } else {
        ""
    };
    let user = &opts.user;
    let name = &opts.name;
    let group = &opts.group;
    format!(
        "{header}
[Unit]
Description=Matrix Authentication Service (supervised by mas-sockets)
Documentation=man:mas-sockets(1)
Wants=network-online.target
After=network-online.target
{requires}
[Service]
Type={service_type}
NotifyAccess=main
ExecStart={exec}
{exec_reload}{sockets_line}SyslogIdentifier={name}
User={user}
Group={group}
RuntimeDirectory={runtime_dir}
RuntimeDirectoryMode=0700
UMask=0077
Environment=MAS_SOCKETS_STOP_TIMEOUT={stop} MAS_SOCKETS_READY_TIMEOUT={ready} MAS_SOCKETS_DRAIN_TIMEOUT={drain}
{no_config}# supervise forwards SIGTERM to MAS; a second SIGTERM from systemd would make
# MAS skip its graceful shutdown, so only the main process is signalled.
KillMode=mixed
TimeoutStartSec={start_timeout}s
TimeoutStopSec={stop_timeout}s
Restart=on-failure
RestartSec=2s
# Exit status 2: the config, or sockets that do not fit it; 203: systemd
# could not execute mas-sockets (removed with its package, say). No restart
# mends those, so the unit fails and says why.
RestartPreventExitStatus=2 203

NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
{also}"
    )
}

#[cfg(test)]
mod tests {
    use crate::units::tests::{opts, units};

    /// supervise refuses a runtime directory others may enter, and
    /// systemd's default RuntimeDirectoryMode= is 0755: the unit sets 0700.
    #[test]
    fn the_runtime_directory_is_owner_only() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{host: localhost, port: 8080}]\n",
            &opts(),
        )
        .unwrap();
        assert!(files[1]
            .contents
            .contains("\nRuntimeDirectory=mas-sockets/mas\nRuntimeDirectoryMode=0700\n"));
    }
}
