//! The systemd units for a [`Plan`]: one `.socket` unit per bind and one
//! `.service` that runs `mas-sockets supervise` on all of them.
//!
//! Follows systemd.socket(5), systemd.service(5), systemd.exec(5) and
//! systemd.syntax(7) as of systemd 252, the version of Debian 12 and RHEL 9;
//! nothing newer is written.
//!
//! Why one socket unit per bind: `FileDescriptorName=`, `SocketMode=` and the
//! socket's owner are per unit, so a unit per bind keeps every fd named after
//! its bind and every Unix socket with its own mode. Nothing depends on the
//! order in which systemd passes the fds: supervise matches them by address.
//!
//! The output depends only on the plan and the options, so the same input
//! gives the same bytes. No value from the config other than listener names,
//! addresses and socket paths is written, so no secret can reach a unit.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{BindSpec, Endpoint, Location, Plan};

/// How the units are named and what they run.
#[derive(Debug, Clone)]
pub struct UnitOptions {
    /// Prefix of every unit name: `<name>.service`, `<name>-<listener>.socket`.
    pub name: String,
    pub mas_cli: PathBuf,
    pub mas_sockets: PathBuf,
    pub user: String,
    pub group: String,
    /// Group of the Unix sockets; a reverse proxy in this group may connect.
    /// Defaults to `group`.
    pub socket_group: Option<String>,
    /// Config files for `ExecStart=`, absolute, in merge order.
    pub config_files: Vec<PathBuf>,
    /// How long supervise lets MAS drain when stopping.
    pub stop_timeout: Duration,
    /// How long a new MAS may take to become ready during a restart.
    pub ready_timeout: Duration,
    /// How long the old MAS may drain after a restart.
    pub drain_timeout: Duration,
    /// The systemd version of the target host (252: Debian 12, RHEL 9).
    pub systemd_version: u32,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub name: String,
    pub contents: String,
}

/// Why units cannot be generated for a plan.
#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    #[error("{location}: an `fd:` bind names no address, so no socket unit can be written for it; replace it with the `host`+`port`, `address` or `socket` bind that the socket should have, or write that socket unit by hand")]
    FdBind { location: Location },
    #[error("{location}: the socket path `{path}` is relative, and a socket unit needs an absolute one; write the full path MAS should use")]
    RelativeSocket { location: Location, path: String },
    #[error("`{value}` is not usable as a unit name prefix; use letters, digits, `-`, `_` or `.`, not first (e.g. --name mas)")]
    BadName { value: String },
    #[error("{location}: the socket path `{path}` cannot be written into a unit as it is: {why}; write it plainly")]
    UnwritablePath {
        location: Location,
        path: String,
        why: &'static str,
    },
    #[error("the unit name `{name}` is longer than the 255 characters systemd allows; shorten the listener name or --name")]
    NameTooLong { name: String },
    #[error("{what} `{value}` is not an absolute path; give the full path")]
    RelativePath { what: &'static str, value: String },
    #[error(
        "{what} `{value}` contains a character systemd cannot take in this position; rename it"
    )]
    BadValue { what: &'static str, value: String },
    #[error("{what} `{value}` {why}, which a unit cannot hold as it is; rename the file or give another path")]
    UnwritableOption {
        what: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Writes the socket units and the service unit for `plan`.
///
/// # Errors
///
/// A bind that has no address (`fd:`), a relative socket path, or an option
/// that cannot appear in a unit.
pub fn generate(plan: &Plan, opts: &UnitOptions) -> Result<Vec<UnitFile>, UnitsError> {
    validate_options(opts)?;
    let header = header(opts);
    let service_name = format!("{}.service", opts.name);
    let mut files = Vec::new();
    let mut socket_names: Vec<String> = Vec::new();
    for (listener, labels) in plan.listeners.iter().zip(socket_labels(plan)) {
        for (bind, label) in listener.binds.iter().zip(labels) {
            let unit_name = format!("{}-{label}.socket", opts.name);
            if unit_name.len() > 255 {
                return Err(UnitsError::NameTooLong { name: unit_name });
            }
            let contents =
                socket_unit(&header, &service_name, &label, listener.label(), bind, opts)?;
            socket_names.push(unit_name.clone());
            files.push(UnitFile {
                name: unit_name,
                contents,
            });
        }
    }
    files.push(UnitFile {
        name: service_name,
        contents: service_unit(&header, &socket_names, opts),
    });
    Ok(files)
}

fn validate_options(opts: &UnitOptions) -> Result<(), UnitsError> {
    if !is_name_prefix(&opts.name) {
        return Err(UnitsError::BadName {
            value: opts.name.clone(),
        });
    }
    for (what, path) in [
        ("--mas-cli", &opts.mas_cli),
        ("--mas-sockets", &opts.mas_sockets),
    ] {
        if !path.is_absolute() {
            return Err(UnitsError::RelativePath {
                what,
                value: path.display().to_string(),
            });
        }
    }
    // ExecStart= would get another path than the one given: units are UTF-8
    // text, and a control character would end or garble the line.
    let paths = [
        ("--mas-cli", &opts.mas_cli),
        ("--mas-sockets", &opts.mas_sockets),
    ]
    .into_iter()
    .chain(opts.config_files.iter().map(|p| ("the config path", p)));
    for (what, path) in paths {
        let why = match path.to_str() {
            None => Some("is not valid UTF-8"),
            Some(text) if text.chars().any(char::is_control) => Some("holds control characters"),
            Some(_) => None,
        };
        if let Some(why) = why {
            return Err(UnitsError::UnwritableOption {
                what,
                value: crate::config::plan::escape_controls(&path.to_string_lossy()),
                why,
            });
        }
    }
    for (what, value) in [
        ("--user", Some(&opts.user)),
        ("--group", Some(&opts.group)),
        ("--socket-group", opts.socket_group.as_ref()),
    ] {
        if let Some(value) = value {
            let ok = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                return Err(UnitsError::BadValue {
                    what,
                    value: value.clone(),
                });
            }
        }
    }
    Ok(())
}

/// How every generated unit starts; it marks the files generate-units owns.
pub const HEADER_START: &str = "# Generated by `mas-sockets generate-units`";

fn header(opts: &UnitOptions) -> String {
    let files: Vec<String> = opts
        .config_files
        .iter()
        .map(|p| one_line(&p.display().to_string()))
        .collect();
    let from = if files.is_empty() {
        "no config file (MAS's defaults)".to_owned()
    } else {
        files.join(", ")
    };
    format!(
        "{HEADER_START} from {from}.\n# Regenerate it after changing the listeners; put local changes in a drop-in.\n"
    )
}

/// The label of each bind's socket unit (`<name>-<label>.socket`, and its
/// `FileDescriptorName=`), listener by listener.
///
/// A listener's label is its name made safe for a unit name, or
/// `listener<index>` when it has none; a listener with several binds adds
/// `-<bind index>` for each. So that no unit can pass for another listener's,
/// a label that equals an earlier listener's, or differs from it only by a
/// `-<digits>` ending (which reads as a bind index), gets `-listener<index>`
/// added, as often as it takes.
fn socket_labels(plan: &Plan) -> Vec<Vec<String>> {
    let mut taken: Vec<String> = Vec::new();
    plan.listeners
        .iter()
        .map(|listener| {
            let base = listener_label(listener.name.as_deref(), listener.index);
            let suffix = format!("-listener{}", listener.index);
            let label = (0..)
                .map(|k| format!("{base}{}", suffix.repeat(k)))
                .find(|candidate| !taken.iter().any(|t| confusable(candidate, t)))
                .expect("finitely many labels are taken");
            taken.push(label.clone());
            if listener.binds.len() > 1 {
                listener
                    .binds
                    .iter()
                    .map(|bind| format!("{label}-{}", bind.index))
                    .collect()
            } else {
                vec![label]
            }
        })
        .collect()
}

/// A listener's name made safe for a unit name: letters, digits, `_` and
/// `-`, every other character `-`, no `-` at either end; `listener<index>`
/// when that leaves nothing.
fn listener_label(name: Option<&str>, index: usize) -> String {
    let label: String = name
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        format!("listener{index}")
    } else {
        label.to_owned()
    }
}

/// Whether two listeners' labels could be taken for each other: equal, or
/// one is the other with `-<digits>` added, which reads as a bind index.
fn confusable(a: &str, b: &str) -> bool {
    let bind_of = |x: &str, y: &str| {
        x.strip_prefix(y)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    };
    a == b || bind_of(a, b) || bind_of(b, a)
}

fn socket_unit(
    header: &str,
    service: &str,
    label: &str,
    listener: String,
    bind: &crate::config::Bind,
    opts: &UnitOptions,
) -> Result<String, UnitsError> {
    let mut out = String::from(header);
    let description = one_line(&format!(
        "MAS listener {listener}, bind {}: {}",
        bind.index, bind.spec
    ));
    let _ = write!(
        out,
        "\n[Unit]\nDescription={}\nDocumentation=man:mas-sockets(1)\n\n[Socket]\n",
        escape_specifiers(&description)
    );
    match &bind.spec {
        BindSpec::Fd { .. } => {
            return Err(UnitsError::FdBind {
                location: bind.location.clone(),
            })
        }
        BindSpec::Unix { path, mode } => {
            if !path.is_absolute() {
                return Err(UnitsError::RelativeSocket {
                    location: bind.location.clone(),
                    path: path.display().to_string(),
                });
            }
            if let Some(why) = unwritable(path) {
                return Err(UnitsError::UnwritablePath {
                    location: bind.location.clone(),
                    path: path.display().to_string(),
                    why,
                });
            }
            let group = opts.socket_group.as_deref().unwrap_or(&opts.group);
            let _ = writeln!(out, "ListenStream={}", escape_path(path));
            let _ = writeln!(out, "FileDescriptorName={label}");
            // Without a mode MAS leaves the socket to the umask; never more open
            // than owner and group, whatever systemd's 0666 default would be.
            let _ = writeln!(out, "SocketMode={:04o}", mode.unwrap_or(0o660));
            let _ = writeln!(out, "SocketUser={}", opts.user);
            let _ = writeln!(out, "SocketGroup={group}");
            let _ = writeln!(out, "RemoveOnStop=yes");
        }
        BindSpec::HostPort { .. } | BindSpec::Address(_) => {
            for endpoint in &bind.endpoints {
                match endpoint {
                    Endpoint::Tcp(addr) => {
                        let _ = writeln!(out, "ListenStream={}", listen_address(addr));
                    }
                    // A bare port is systemd's dual-stack socket, as MAS's `[::]`.
                    Endpoint::AnyTcp(port) => {
                        let _ = writeln!(out, "ListenStream={port}");
                    }
                    Endpoint::Unix(_) => unreachable!("a TCP bind has TCP endpoints"),
                }
            }
            let _ = writeln!(out, "FileDescriptorName={label}");
            // See `assign::DEFER_ACCEPT_SECS`: a restart must not close
            // connections the old MAS accepted before their request came.
            let _ = writeln!(out, "DeferAcceptSec={}s", crate::assign::DEFER_ACCEPT_SECS);
            // `localhost` stands for both loopback addresses; on a host without
            // IPv6 on loopback the socket for [::1] must not fail the unit.
            let is_localhost = matches!(&bind.spec, BindSpec::HostPort { host: Some(h), .. }
                if h.eq_ignore_ascii_case("localhost") || h.eq_ignore_ascii_case("localhost."));
            if is_localhost {
                let _ = writeln!(out, "FreeBind=yes");
            }
        }
    }
    let _ = write!(
        out,
        "Service={service}\n\n[Install]\nWantedBy=sockets.target\n"
    );
    Ok(out)
}

fn service_unit(header: &str, sockets: &[String], opts: &UnitOptions) -> String {
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
    let sockets = sockets.join(" ");
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
Requires={sockets}
After={sockets}

[Service]
Type={service_type}
NotifyAccess=main
ExecStart={exec}
{exec_reload}Sockets={sockets}
SyslogIdentifier={name}
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
# Exit status 2: the config, or sockets that do not fit it; no restart
# mends those, so the unit fails and says why.
RestartPreventExitStatus=2

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
Also={sockets}
"
    )
}

/// Whether `name` may be `--name`: a prefix of unit names, and one path
/// component of the runtime directory `/run/mas-sockets/<name>`. `:` would
/// split RuntimeDirectory= in two, `/` would add components, and a leading
/// `.` makes names such as `.` and `..` that systemd will not use as a
/// directory.
pub fn is_name_prefix(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The `RuntimeDirectory=` of the service, relative to /run. Not `/run/<name>`:
/// systemd empties the runtime directory whenever the service stops, and that
/// is where an operator would put the Unix sockets, which belong to the socket
/// units and must survive a restart.
pub fn runtime_directory(name: &str) -> String {
    format!("mas-sockets/{name}")
}

/// Directories the generated service cannot see, and why.
const HIDDEN_FROM_SERVICE: &[(&str, &str)] = &[
    ("/home", "ProtectHome=yes hides from the service"),
    ("/root", "ProtectHome=yes hides from the service"),
    ("/run/user", "ProtectHome=yes hides from the service"),
    (
        "/tmp",
        "PrivateTmp=yes replaces with an empty directory of the service's own",
    ),
    (
        "/var/tmp",
        "PrivateTmp=yes replaces with an empty directory of the service's own",
    ),
];

/// Warnings for the paths the service unit names (the config files in
/// `ExecStart=`, `--mas-cli`, `--mas-sockets`) that lie where the unit's
/// hardening hides them from the service, so it would fail to start.
pub fn hidden_path_warnings(opts: &UnitOptions) -> Vec<String> {
    let hidden = |path: &Path| {
        HIDDEN_FROM_SERVICE
            .iter()
            .find(|(dir, _)| path.starts_with(dir))
            .copied()
    };
    let mut warnings = Vec::new();
    for path in &opts.config_files {
        if let Some((dir, why)) = hidden(path) {
            warnings.push(format!(
                "the config path `{}` in ExecStart= is under {dir}, which {why}, so MAS could not read it; move the config, e.g. to /etc/mas/, or give --config-in-unit with the path it will have",
                path.display()
            ));
        } else if let Some((target, (dir, why))) = path
            .canonicalize()
            .ok()
            .and_then(|target| Some((target.clone(), hidden(&target)?)))
        {
            // A link (of the file or of a directory on the way) into a
            // hidden directory leads the service nowhere.
            warnings.push(format!(
                "the config path `{}` in ExecStart= leads through a symlink to `{}`, under {dir}, which {why}, so MAS could not read it; move the config, e.g. to /etc/mas/, and make the link point there (or copy the file)",
                path.display(),
                target.display()
            ));
        }
    }
    for (option, path, example) in [
        ("--mas-cli", &opts.mas_cli, "/usr/bin/mas-cli"),
        ("--mas-sockets", &opts.mas_sockets, "/usr/bin/mas-sockets"),
    ] {
        if let Some((dir, why)) = hidden(path) {
            warnings.push(format!(
                "{option} `{}` is under {dir}, which {why}, so the service could not run it; install it elsewhere, e.g. as {example}, and give that path with {option}",
                path.display()
            ));
        }
    }
    warnings
}

/// Warnings for the Unix sockets of `plan` that lie inside the runtime
/// directory of a service as generate-units writes it
/// (`/run/mas-sockets/<name>/`, for any `<name>`): systemd empties that
/// directory whenever the service stops, and with it the socket file that
/// the socket unit still holds and clients look for.
pub fn runtime_directory_warnings(plan: &Plan) -> Vec<String> {
    plan.binds()
        .filter_map(|bind| {
            let BindSpec::Unix { path, .. } = &bind.spec else {
                return None;
            };
            let name = runtime_directory_of(path)?;
            let file = path
                .file_name()
                .map_or_else(|| "web.sock".into(), |f| f.to_string_lossy());
            Some(format!(
                "{}: the socket path `{}` is inside /run/{}, the runtime directory of {name}.service, which systemd empties whenever the service stops, so the socket file would vanish while its socket unit still holds the socket; put it in a directory of its own, e.g. /run/mas/{file}",
                bind.location,
                path.display(),
                runtime_directory(&name),
            ))
        })
        .collect()
}

/// The `<name>` of the runtime directory `/run/mas-sockets/<name>` that
/// holds `path`, if one does.
fn runtime_directory_of(path: &Path) -> Option<String> {
    use std::path::Component;
    let rest = ["/run", "/var/run"]
        .iter()
        .find_map(|run| path.strip_prefix(Path::new(run).join("mas-sockets")).ok())?;
    let mut parts = rest.components();
    let Some(Component::Normal(name)) = parts.next() else {
        return None;
    };
    // The directory itself, or something beside it, is not inside it.
    parts.next()?;
    Some(name.to_string_lossy().into_owned())
}

/// Why a socket path would not reach systemd as written, if it would not:
/// `ListenStream=` takes the rest of the line, trims it, continues it after a
/// trailing backslash, and refuses paths that are not normalized.
fn unwritable(path: &Path) -> Option<&'static str> {
    let text = path.to_string_lossy();
    if text.chars().any(char::is_control) {
        return Some("it holds control characters");
    }
    if text.contains('\\') {
        return Some("it holds a backslash");
    }
    if text.trim() != text {
        return Some("it starts or ends with white space");
    }
    let normal = text
        .split('/')
        .skip(1)
        .all(|part| !part.is_empty() && part != "." && part != "..");
    if !normal {
        return Some("it is not normalized (`//`, `.` or `..`, or a trailing `/`)");
    }
    None
}

/// Collapses control characters so a value cannot start a new unit line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Escapes `%` specifiers (systemd.unit(5) "Specifiers").
fn escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// A socket address as `ListenStream=` takes it: systemd reads an IPv6
/// scope after the port (`[fe80::1]:8080%2`), not inside the brackets as
/// Rust writes it, and `%` is a specifier to it.
fn listen_address(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            format!("[{}]:{}%%{}", v6.ip(), v6.port(), v6.scope_id())
        }
        _ => addr.to_string(),
    }
}

/// A path in a `ListenStream=` line: specifiers escaped, no quoting there.
fn escape_path(path: &Path) -> String {
    escape_specifiers(&one_line(&path.display().to_string()))
}

/// One word of a command line (systemd.service(5) "Command lines"): quoted when
/// it holds whitespace or quotes, with `%` and `$` escaped.
fn quote_arg(word: &str) -> String {
    let word = escape_specifiers(&one_line(word)).replace('$', "$$");
    if word.is_empty()
        || word
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\;".contains(c))
    {
        let inner = word.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{inner}\"")
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_texts;
    use crate::config::plan::SystemResolver;

    fn opts() -> UnitOptions {
        UnitOptions {
            name: "mas".into(),
            mas_cli: "/usr/bin/mas-cli".into(),
            mas_sockets: "/usr/bin/mas-sockets".into(),
            user: "mas".into(),
            group: "mas".into(),
            socket_group: None,
            config_files: vec!["/etc/mas/config.yaml".into()],
            stop_timeout: Duration::from_secs(65),
            ready_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(65),
            systemd_version: 252,
        }
    }

    fn units(text: &str, opts: &UnitOptions) -> Result<Vec<UnitFile>, UnitsError> {
        let base = "http:\n  public_base: https://auth.example.com/\n";
        let plan = check_texts(&[("base.yaml", base), ("c.yaml", text)], &SystemResolver)
            .expect("valid config");
        generate(&plan, opts)
    }

    /// systemd.socket(5) takes an IPv6 scope after the port; inside the
    /// brackets, as Rust writes it, systemd refuses the whole socket unit.
    #[test]
    fn a_scoped_ipv6_address_has_its_scope_after_the_port() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{address: \"[fe80::1%1]:8080\"}, {address: \"[fe80::2]:8080\"}]\n",
            &opts(),
        )
        .unwrap();
        assert!(
            files[0]
                .contents
                .contains("ListenStream=[fe80::1]:8080%%1\nFileDescriptorName=web-0\n"),
            "{}",
            files[0].contents
        );
        assert!(files
            .iter()
            .any(|f| f.contents.contains("ListenStream=[fe80::2]:8080\n")));
    }

    #[test]
    fn localhost_becomes_both_loopback_addresses() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{host: localhost, port: 8080}]\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(files[0].name, "mas-web.socket");
        assert!(files[0].contents.contains(
            "ListenStream=127.0.0.1:8080\nListenStream=[::1]:8080\nFileDescriptorName=web\n"
        ));
        assert_eq!(files[1].name, "mas.service");
        assert!(files[1].contents.contains("\nSockets=mas-web.socket\n"));
    }

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

    #[test]
    fn unix_socket_is_never_more_open_than_owner_and_group() {
        let mut o = opts();
        o.socket_group = Some("www-data".into());
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{socket: /run/mas/web.sock}, {socket: /run/mas/b.sock, mode: '600'}]\n",
            &o,
        )
        .unwrap();
        assert_eq!(files[0].name, "mas-web-0.socket");
        assert!(files[0]
            .contents
            .contains("SocketMode=0660\nSocketUser=mas\nSocketGroup=www-data\nRemoveOnStop=yes\n"));
        assert!(files[1].contents.contains("SocketMode=0600\n"));
    }

    #[test]
    fn fd_binds_are_refused_with_the_way_forward() {
        let err = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{fd: 0}]\n",
            &opts(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "c.yaml:5:15: http.listeners[0].binds[0]: an `fd:` bind names no address"
            ),
            "{err}"
        );
    }

    #[test]
    fn command_line_words_are_quoted_and_escaped() {
        assert_eq!(quote_arg("/etc/mas/config.yaml"), "/etc/mas/config.yaml");
        assert_eq!(
            quote_arg("/etc/my mas/100%.yaml"),
            "\"/etc/my mas/100%%.yaml\""
        );
        assert_eq!(quote_arg("/etc/$HOME"), "/etc/$$HOME");
    }

    #[test]
    fn paths_a_unit_cannot_hold_as_they_are_are_refused() {
        use std::os::unix::ffi::OsStrExt as _;
        let config = "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n";
        let not_utf8 = PathBuf::from(std::ffi::OsStr::from_bytes(b"/etc/mas/\xff.yaml"));
        for (field, path, why) in [
            ("config", not_utf8.clone(), "is not valid UTF-8"),
            (
                "config",
                PathBuf::from("/etc/mas/a\nb.yaml"),
                "holds control characters",
            ),
            ("mas-cli", not_utf8.clone(), "is not valid UTF-8"),
            (
                "mas-sockets",
                PathBuf::from("/usr/bin/mas\tsockets"),
                "holds control characters",
            ),
        ] {
            let mut o = opts();
            match field {
                "config" => o.config_files = vec![path],
                "mas-cli" => o.mas_cli = path,
                _ => o.mas_sockets = path,
            }
            let err = units(config, &o).unwrap_err().to_string();
            assert!(err.contains(why), "{field}: {err}");
            assert!(!err.contains('\n'), "{field}: one line: {err:?}");
        }
    }

    #[test]
    fn paths_the_hardened_service_cannot_see_are_warned_about() {
        let mut o = opts();
        assert!(hidden_path_warnings(&o).is_empty());
        o.config_files = vec!["/root/x/config.yaml".into(), "/etc/mas/b.yaml".into()];
        assert_eq!(
            hidden_path_warnings(&o),
            ["the config path `/root/x/config.yaml` in ExecStart= is under /root, which ProtectHome=yes hides from the service, so MAS could not read it; move the config, e.g. to /etc/mas/, or give --config-in-unit with the path it will have"]
        );
        o.config_files = vec!["/tmp/y/config.yaml".into()];
        assert_eq!(
            hidden_path_warnings(&o),
            ["the config path `/tmp/y/config.yaml` in ExecStart= is under /tmp, which PrivateTmp=yes replaces with an empty directory of the service's own, so MAS could not read it; move the config, e.g. to /etc/mas/, or give --config-in-unit with the path it will have"]
        );
        for path in ["/home/a/c.yaml", "/run/user/0/c.yaml", "/var/tmp/c.yaml"] {
            o.config_files = vec![path.into()];
            assert_eq!(hidden_path_warnings(&o).len(), 1, "{path}");
        }
        for path in [
            "/tmpfs/c.yaml",
            "/etc/mas/c.yaml",
            "/run/mas/c.yaml",
            "/homes/c.yaml",
        ] {
            o.config_files = vec![path.into()];
            assert!(hidden_path_warnings(&o).is_empty(), "{path}");
        }
        o.config_files = Vec::new();
        o.mas_cli = "/root/.cargo/bin/mas-cli".into();
        o.mas_sockets = "/home/me/bin/mas-sockets".into();
        assert_eq!(
            hidden_path_warnings(&o),
            [
                "--mas-cli `/root/.cargo/bin/mas-cli` is under /root, which ProtectHome=yes hides from the service, so the service could not run it; install it elsewhere, e.g. as /usr/bin/mas-cli, and give that path with --mas-cli",
                "--mas-sockets `/home/me/bin/mas-sockets` is under /home, which ProtectHome=yes hides from the service, so the service could not run it; install it elsewhere, e.g. as /usr/bin/mas-sockets, and give that path with --mas-sockets",
            ]
        );
    }

    #[test]
    fn sockets_in_a_service_runtime_directory_are_warned_about() {
        let config = |path: &str| {
            let base = "http:\n  public_base: https://auth.example.com/\n";
            let text = format!("http:\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds: [{{socket: {path}}}]\n");
            check_texts(&[("base.yaml", base), ("c.yaml", &text)], &SystemResolver)
                .expect("valid config")
        };
        assert_eq!(
            runtime_directory_warnings(&config("/run/mas-sockets/mas/web.sock")),
            ["c.yaml:5:15: http.listeners[0].binds[0]: the socket path `/run/mas-sockets/mas/web.sock` is inside /run/mas-sockets/mas, the runtime directory of mas.service, which systemd empties whenever the service stops, so the socket file would vanish while its socket unit still holds the socket; put it in a directory of its own, e.g. /run/mas/web.sock"]
        );
        // A path with `//` or `..` is refused before (config::plan).
        assert_eq!(
            runtime_directory_warnings(&config("/var/run/mas-sockets/other/a/b.sock")).len(),
            1
        );
        for path in [
            "/run/mas/web.sock",
            "/run/mas-sockets/web.sock",
            "/run/mas-sockets-x/a/b.sock",
        ] {
            assert!(
                runtime_directory_warnings(&config(path)).is_empty(),
                "{path}"
            );
        }
    }

    /// The socket unit names for listeners of `names` ("" for none), each
    /// with as many binds as given.
    fn unit_names(listeners: &[(&str, usize)]) -> Vec<String> {
        let mut text = String::from("http:\n  listeners:\n");
        let mut port = 8080;
        for (name, binds) in listeners {
            if !name.is_empty() {
                text.push_str(&format!("    - name: \"{name}\"\n"));
                text.push_str("      resources: [{name: health}]\n");
            } else {
                text.push_str("    - resources: [{name: health}]\n");
            }
            text.push_str("      binds:\n");
            for _ in 0..*binds {
                text.push_str(&format!("        - {{host: 127.0.0.1, port: {port}}}\n"));
                port += 1;
            }
        }
        let files = units(&text, &opts()).unwrap();
        files
            .iter()
            .filter(|f| f.name.ends_with(".socket"))
            .map(|f| f.name.clone())
            .collect()
    }

    #[test]
    fn a_listener_that_could_pass_for_another_gets_its_index() {
        // A second `web` with two binds must not look like binds of the first.
        assert_eq!(
            unit_names(&[("web", 1), ("web", 2)]),
            [
                "mas-web.socket",
                "mas-web-listener1-0.socket",
                "mas-web-listener1-1.socket"
            ]
        );
        // A name ending in `-N` reads as a bind index of another listener.
        assert_eq!(
            unit_names(&[("web", 2), ("web-1", 1)]),
            [
                "mas-web-0.socket",
                "mas-web-1.socket",
                "mas-web-1-listener1.socket"
            ]
        );
        assert_eq!(
            unit_names(&[("web-0", 1), ("web", 2)]),
            [
                "mas-web-0.socket",
                "mas-web-listener1-0.socket",
                "mas-web-listener1-1.socket"
            ]
        );
        assert_eq!(
            unit_names(&[("web", 1), ("web-2", 1)]),
            ["mas-web.socket", "mas-web-2-listener1.socket"]
        );
        // Names that become the same label, and an unnamed listener's label.
        assert_eq!(
            unit_names(&[("web.", 1), ("web", 1)]),
            ["mas-web.socket", "mas-web-listener1.socket"]
        );
        assert_eq!(
            unit_names(&[("", 1), ("listener0", 1)]),
            ["mas-listener0.socket", "mas-listener0-listener1.socket"]
        );
        // Distinct names keep their plain units.
        assert_eq!(
            unit_names(&[("web", 1), ("admin", 2), ("", 1)]),
            [
                "mas-web.socket",
                "mas-admin-0.socket",
                "mas-admin-1.socket",
                "mas-listener2.socket"
            ]
        );
    }

    /// Whatever the names, no two units are the same, and no listener's
    /// label equals another's or another's with a `-N` bind index.
    #[test]
    fn unit_names_are_unambiguous_for_every_combination() {
        let names = [
            "web",
            "web-0",
            "web-1",
            "",
            "listener0",
            "listener1",
            "web-listener1",
            "web-listener1-listener1",
        ];
        for a in names {
            for b in names {
                for c in names {
                    for binds in [[1, 1, 1], [2, 1, 2], [1, 2, 1], [2, 2, 2]] {
                        let listeners = [(a, binds[0]), (b, binds[1]), (c, binds[2])];
                        let all = unit_names(&listeners);
                        let unique: std::collections::BTreeSet<_> = all.iter().collect();
                        assert_eq!(unique.len(), all.len(), "{listeners:?}: {all:?}");
                        // Each unit's label, less the bind index of a listener with several.
                        let mut labels = Vec::new();
                        let mut names = all.iter();
                        for (_, n) in listeners {
                            let name = names.next().unwrap();
                            let label = name
                                .strip_prefix("mas-")
                                .unwrap()
                                .strip_suffix(".socket")
                                .unwrap();
                            let label = if n > 1 {
                                label.rsplit_once('-').unwrap().0
                            } else {
                                label
                            };
                            labels.push(label.to_owned());
                            for _ in 1..n {
                                names.next();
                            }
                        }
                        for (i, x) in labels.iter().enumerate() {
                            for y in &labels[..i] {
                                assert!(!confusable(x, y), "{listeners:?}: {x} and {y} in {all:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn same_listener_names_get_distinct_units() {
        let files = units(
            "http:\n  listeners:\n    - name: web\n      resources: [{name: human}]\n      binds: [{port: 8080}]\n    - name: web\n      resources: [{name: health}]\n      binds: [{port: 8081}]\n    - resources: [{name: health}]\n      binds: [{port: 8082}]\n",
            &opts(),
        )
        .unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mas-web.socket",
                "mas-web-listener1.socket",
                "mas-listener2.socket",
                "mas.service"
            ]
        );
        assert!(files[1]
            .contents
            .contains("ListenStream=8081\nFileDescriptorName=web-listener1\n"));
    }
}
