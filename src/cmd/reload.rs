//! `mas-sockets reload` and `mas-sockets status`: clients of a running
//! supervisor's control socket (see [`crate::control`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{ReloadArgs, StatusArgs, TargetArgs};
use crate::control::{self, Command};

/// The restart failed; the old MAS keeps serving.
pub const EXIT_RESTART_FAILED: u8 = 1;

/// The supervisor's runtime directory for these arguments.
///
/// # Errors
///
/// `--name` is not one safe path component, or `RUNTIME_DIRECTORY` is empty.
fn runtime_dir(target: &TargetArgs) -> anyhow::Result<PathBuf> {
    // Checked even when another option chooses the directory: it is bad
    // input all the same.
    if !crate::units::is_name_prefix(&target.name) {
        anyhow::bail!(
            "--name {:?} cannot name the directory /run/mas-sockets/NAME; use letters, digits, `-`, `_` or `.`, not first, as for generate-units (e.g. --name mas), or give the directory with --runtime-dir",
            target.name
        );
    }
    if let Some(dir) = &target.runtime_dir {
        return Ok(dir.clone());
    }
    // systemd sets RUNTIME_DIRECTORY for ExecReload= too.
    if let Some(dir) = crate::supervisor::runtime_dir::systemd_runtime_directory()? {
        return Ok(dir);
    }
    Ok(PathBuf::from("/run").join(crate::units::runtime_directory(&target.name)))
}

/// Runs `reload`: 0 when the new MAS serves, 1 when the restart failed.
///
/// # Errors
///
/// The supervisor cannot be reached.
pub fn run_reload(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let command = if args.signal_only {
        Command::SignalOnly
    } else {
        Command::Restart
    };
    let answer = control::request(&runtime_dir(&args.target)?, command, None)?;
    match control::decode_outcome(&answer) {
        Ok(text) => {
            super::print_stdout(&format!("{text}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(text) => {
            eprintln!("mas-sockets: reload failed: {text}");
            Ok(ExitCode::from(EXIT_RESTART_FAILED))
        }
    }
}

/// Runs `status`.
///
/// # Errors
///
/// The supervisor cannot be reached.
pub fn run_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let answer = control::request(
        &runtime_dir(&args.target)?,
        Command::Status,
        Some(std::time::Duration::from_secs(10)),
    )?;
    super::print_stdout(&answer)?;
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}
