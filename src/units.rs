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
//!
//! This file holds the options, the errors and [`generate`], which puts the
//! units together. The names (the `--name` prefix, each socket unit's label,
//! the runtime directory) are chosen in `naming`; the two kinds of unit are
//! written in `socket` and `service`, with the escapes systemd needs from
//! `escape`; `warnings` says which paths of a plan or of the options the
//! generated service could not use, and `readable` which config files its
//! user could not read.

use std::path::PathBuf;
use std::time::Duration;

use self::escape::one_line;
use self::naming::socket_labels;
pub use self::naming::{is_name_prefix, runtime_directory};
pub use self::readable::{unreadable_by, unreadable_config_warnings};
use self::service::service_unit;
use self::socket::socket_unit;
pub use self::warnings::{hidden_path_warnings, runtime_directory_warnings};
use crate::config::{Location, Plan};

mod escape;
mod naming;
mod readable;
mod service;
mod socket;
mod warnings;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_texts;
    use crate::config::plan::SystemResolver;

    pub(super) fn opts() -> UnitOptions {
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

    pub(super) fn units(text: &str, opts: &UnitOptions) -> Result<Vec<UnitFile>, UnitsError> {
        let base = "http:\n  public_base: https://auth.example.com/\n";
        let plan = check_texts(&[("base.yaml", base), ("c.yaml", text)], &SystemResolver)
            .expect("valid config");
        generate(&plan, opts)
    }

    /// With no listeners there is no socket unit, and the service names
    /// none: an empty `Sockets=` or `Requires=` would read as a reset.
    #[test]
    fn no_listeners_make_a_service_alone() {
        let files = units("http:\n  listeners: []\n", &opts()).unwrap();
        assert_eq!(files.len(), 1);
        let service = &files[0].contents;
        for key in ["Sockets=", "Requires=", "Also=", "After=mas"] {
            assert!(!service.contains(key), "{key} in\n{service}");
        }
        assert!(service.contains("\nExecStart=/usr/bin/mas-sockets supervise "));
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
}
