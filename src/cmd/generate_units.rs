//! `mas-sockets generate-units`: print or write the systemd units for the config.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::GenerateUnitsArgs;
use crate::config::plan::escape_controls;
use crate::units::{self, UnitFile, UnitOptions};

/// Runs `generate-units`.
///
/// # Errors
///
/// Units that cannot be generated for this config, or files that cannot be written.
pub fn run(args: GenerateUnitsArgs) -> anyhow::Result<ExitCode> {
    // Units for no file make a service that reads none either, as MAS
    // would; said, since an empty value is more often an unset variable.
    if let Some(what) = super::empty_mas_config(&args.config) {
        eprintln!("mas-sockets: warning: {what}, and so will the service; if a config was meant, give it with --config");
    }
    let plan = match super::load_plan(&args.config, super::EXIT_CANNOT_RUN) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    if !args.config_in_unit.is_empty() && args.config_in_unit.len() != plan.files.len() {
        anyhow::bail!(
            "--config-in-unit is given {} time(s) for {} config file(s) ({}); give one per config file, in the same order, or the service would read other files than these",
            args.config_in_unit.len(),
            plan.files.len(),
            if plan.files.is_empty() {
                "none".to_owned()
            } else {
                plan.files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let config_files = if args.config_in_unit.is_empty() {
        plan.files
            .iter()
            .map(|p| absolute(p))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        args.config_in_unit.clone()
    };
    let opts = UnitOptions {
        name: args.name,
        mas_cli: args.mas_cli,
        mas_sockets: args.mas_sockets,
        user: args.user,
        group: args.group,
        socket_group: args.socket_group,
        config_files,
        stop_timeout: args.stop_timeout,
        ready_timeout: args.ready_timeout,
        drain_timeout: args.drain_timeout,
        systemd_version: args.systemd_version,
    };
    if let Some(p) = opts.config_files.iter().find(|p| !p.is_absolute()) {
        anyhow::bail!(
            "--config-in-unit `{}` is not an absolute path; give the full path on the host that runs the units",
            p.display()
        );
    }
    let files = units::generate(&plan, &opts)?;
    let warnings = units::hidden_path_warnings(&opts)
        .into_iter()
        .chain(units::unreadable_config_warnings(&opts))
        .chain(units::runtime_directory_warnings(
            &plan.listeners,
            &opts.name,
        ));
    for warning in warnings {
        eprintln!("mas-sockets: warning: {}", escape_controls(&warning));
    }
    match &args.output_dir {
        None => {
            let mut out = String::new();
            for file in &files {
                out.push_str(&format!("### {}\n{}\n", file.name, file.contents));
            }
            super::print_stdout(&out)?;
        }
        Some(dir) => {
            fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create {}; give an --output-dir that this user may create or write",
                    dir.display()
                )
            })?;
            write_units(dir, &files)?;
            let stale = stale_units(dir, &opts.name, &files);
            for unit in &stale {
                eprintln!(
                    "mas-sockets: warning: {} was generated earlier and is not part of this config any more; systemd would still pass its socket and supervise would refuse it: run `systemctl disable --now {unit}` and remove the file (the next: line does both, first)",
                    dir.join(unit).display()
                );
            }
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            super::print_stdout(&format!(
                "wrote {} to {}\nnext: {}\n",
                names.join(", "),
                dir.display(),
                next_step(dir, &names, &stale),
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The commands that put the units `written` to `dir` into effect, with the
/// `stale` ones there taken out of the way first.
///
/// A stale socket unit that still runs holds its address, which a new unit
/// may want (a listener renamed on the same port): so it is stopped,
/// disabled and its file removed before the reload, and the new units
/// start only after that. `restart` starts what is stopped (a first
/// install) and restarts what runs (a regeneration): a socket unit keeps its
/// old binds until it is restarted, and systemd starts it only while its
/// service is stopped, which one transaction for all of them orders.
/// Enabling the service enables its sockets (`Also=`).
fn next_step(dir: &Path, written: &[&str], stale: &[String]) -> String {
    let mut steps = Vec::new();
    if !stale.is_empty() {
        steps.push(format!("systemctl disable --now {}", stale.join(" ")));
        let files: Vec<String> = stale
            .iter()
            .map(|unit| crate::supervisor::shell_word(&dir.join(unit)))
            .collect();
        steps.push(format!("rm -- {}", files.join(" ")));
    }
    steps.push("systemctl daemon-reload".to_owned());
    steps.push(format!(
        "systemctl enable {}",
        written.last().copied().unwrap_or_default()
    ));
    steps.push(format!("systemctl restart {}", written.join(" ")));
    steps.join(" && ")
}

/// Socket units for `<name>` in `dir` that an earlier generate-units wrote
/// (they carry its header) and that this run did not write.
fn stale_units(dir: &Path, name: &str, written: &[UnitFile]) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(&format!("{name}-")) && f.ends_with(".socket"))
        .filter(|f| !written.iter().any(|w| &w.name == f))
        .filter(|f| {
            fs::read_to_string(dir.join(f)).is_ok_and(|text| text.starts_with(units::HEADER_START))
        })
        .collect();
    stale.sort();
    stale
}

/// `path` as the unit should name it: absolute, and without `..`, which
/// would make the service walk through directories it may not enter (from
/// /root, `../etc/mas/config.yaml` is `/root/../etc/...`, and ProtectHome=
/// hides /root). The part up to the last `..` is resolved as the kernel
/// would; symlinks after it stay as given.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    use std::path::Component;
    let path = std::path::absolute(path).with_context(|| {
        format!(
            "cannot make {} absolute; give the full path with --config, or the path for the unit with --config-in-unit",
            path.display()
        )
    })?;
    let components: Vec<Component> = path.components().collect();
    let Some(last) = components.iter().rposition(|c| *c == Component::ParentDir) else {
        return Ok(path);
    };
    let head: PathBuf = components[..=last].iter().collect();
    let head = head.canonicalize().with_context(|| {
        format!(
            "cannot resolve `..` in {}; give the config's path without `..`",
            path.display()
        )
    })?;
    Ok(components[last + 1..].iter().fold(head, |p, c| p.join(c)))
}

/// Writes the units all or nothing: every file goes to a temporary name in
/// `dir` first, and only when all are written are they renamed into place.
fn write_units(dir: &Path, files: &[UnitFile]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp_of = |file: &UnitFile| dir.join(format!(".{}.tmp", file.name));
    let write = |file: &UnitFile| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(tmp_of(file))?;
        f.write_all(file.contents.as_bytes())?;
        f.sync_all()
    };
    let cleanup = || {
        for file in files {
            let _ = fs::remove_file(tmp_of(file));
        }
    };
    for file in files {
        if let Err(e) = write(file) {
            cleanup();
            return Err(e).with_context(|| {
                format!(
                    "cannot write {}; check that the directory is writable; no unit was changed",
                    dir.join(&file.name).display()
                )
            });
        }
    }
    for file in files {
        let path = dir.join(&file.name);
        if let Err(e) = fs::rename(tmp_of(file), &path) {
            cleanup();
            return Err(e).with_context(|| {
                format!(
                    "cannot put {} in place; check that the directory is writable and the name is not a directory",
                    path.display()
                )
            });
        }
    }
    Ok(())
}
