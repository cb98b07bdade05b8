//! Warnings about paths the generated service could not use: the files and
//! programs its sandboxing hides from it (`ProtectHome=`, `PrivateTmp=` in
//! systemd.exec(5)), and Unix sockets inside a runtime directory that
//! systemd empties whenever the service stops.
//!
//! These are warnings, not errors: the units are still written, and
//! generate-units and check print them. The runtime directory's name is
//! `naming`'s.

use std::path::Path;

use super::naming::runtime_directory;
use super::UnitOptions;
use crate::config::{BindSpec, Listener};

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

/// Warnings for the Unix sockets of `listeners` that lie inside the runtime
/// directory of a service as generate-units writes it
/// (`/run/mas-sockets/<name>/`, for any `<name>`): systemd empties that
/// directory whenever the service stops, and with it the socket file that
/// the socket unit still holds and clients look for.
///
/// `service` is the `--name` of the units (`mas` where it is not known, as
/// for `check`): a socket at that service's runtime directory itself, or
/// at the directory that holds them all, is warned about too.
pub fn runtime_directory_warnings(listeners: &[Listener], service: &str) -> Vec<String> {
    listeners
        .iter()
        .flat_map(|l| &l.binds)
        .filter_map(|bind| {
            let BindSpec::Unix { path, .. } = &bind.spec else {
                return None;
            };
            let (name, inside) = runtime_directory_place(path)?;
            let itself = match name.as_deref() {
                None => Some("the directory that holds the runtime directory of every service generate-units writes".to_owned()),
                Some(name) if !inside && name == service => {
                    Some(format!("the runtime directory of {service}.service itself"))
                }
                Some(_) => None,
            };
            if let Some(what) = itself {
                return Some(format!(
                    "{}: the socket path `{}` is {what}, which systemd makes a directory when the service starts, so the service could not start once the socket unit holds a socket there; put the socket in a directory of its own, e.g. /run/mas/web.sock",
                    bind.location,
                    path.display(),
                ));
            }
            let name = name.filter(|_| inside)?;
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

/// Where `path` lies among the runtime directories generate-units gives
/// services (`/run/mas-sockets/<name>`): `None` outside `/run/mas-sockets`;
/// else the `<name>` it is or lies in (`None` for `/run/mas-sockets`
/// itself), and whether it lies inside that directory rather than being it.
fn runtime_directory_place(path: &Path) -> Option<(Option<String>, bool)> {
    use std::path::Component;
    let rest = ["/run", "/var/run"]
        .iter()
        .find_map(|run| path.strip_prefix(Path::new(run).join("mas-sockets")).ok())?;
    let mut parts = rest.components();
    match parts.next() {
        None => Some((None, false)),
        Some(Component::Normal(name)) => Some((
            Some(name.to_string_lossy().into_owned()),
            parts.next().is_some(),
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_texts;
    use crate::config::plan::SystemResolver;
    use crate::units::tests::opts;

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
        let config_listeners = |path: &str| {
            let base = "http:\n  public_base: https://auth.example.com/\n";
            let text = format!("http:\n  listeners:\n    - name: web\n      resources: [{{name: human}}]\n      binds: [{{socket: {path}}}]\n");
            check_texts(&[("base.yaml", base), ("c.yaml", &text)], &SystemResolver)
                .expect("valid config")
                .listeners
        };
        assert_eq!(
            runtime_directory_warnings(&config_listeners("/run/mas-sockets/mas/web.sock"), "mas"),
            ["c.yaml:5:15: http.listeners[0].binds[0]: the socket path `/run/mas-sockets/mas/web.sock` is inside /run/mas-sockets/mas, the runtime directory of mas.service, which systemd empties whenever the service stops, so the socket file would vanish while its socket unit still holds the socket; put it in a directory of its own, e.g. /run/mas/web.sock"]
        );
        // A path with `//` or `..` is refused before (config::plan).
        assert_eq!(
            runtime_directory_warnings(
                &config_listeners("/var/run/mas-sockets/other/a/b.sock"),
                "mas"
            )
            .len(),
            1
        );
        // The directories themselves, which systemd makes.
        assert_eq!(
            runtime_directory_warnings(&config_listeners("/run/mas-sockets/mas"), "mas"),
            ["c.yaml:5:15: http.listeners[0].binds[0]: the socket path `/run/mas-sockets/mas` is the runtime directory of mas.service itself, which systemd makes a directory when the service starts, so the service could not start once the socket unit holds a socket there; put the socket in a directory of its own, e.g. /run/mas/web.sock"]
        );
        assert_eq!(
            runtime_directory_warnings(&config_listeners("/run/mas-sockets"), "mas").len(),
            1
        );
        for path in ["/run/mas/web.sock", "/run/mas-sockets-x/a/b.sock"] {
            assert!(
                runtime_directory_warnings(&config_listeners(path), "mas").is_empty(),
                "{path}"
            );
        }
    }
}
