//! The `mas-sockets` binary: parse the arguments, run, print the error.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory as _, Parser as _};
use mas_sockets::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            if let Some(line) = env_value_error(&err) {
                eprintln!("mas-sockets: {line}");
                return ExitCode::from(2);
            }
            err.exit()
        }
    };
    match mas_sockets::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mas-sockets: {err:#}");
            ExitCode::from(mas_sockets::cmd::EXIT_CANNOT_RUN)
        }
    }
}

/// One line naming the variable, for a bad value that came from an
/// option's environment variable (a drop-in's `Environment=`) rather than
/// the command line, where clap would name only the option.
fn env_value_error(err: &clap::Error) -> Option<String> {
    if !matches!(
        err.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--stop-timeout <DURATION>` → `stop-timeout`.
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let given_here = std::env::args_os().any(|a| {
        let a = a.to_string_lossy();
        a == format!("--{long}") || a.starts_with(&format!("--{long}="))
    });
    if given_here {
        return None;
    }
    let var = find_env(&Cli::command(), long)?;
    let value = std::env::var_os(&var)?;
    let reason = err.to_string();
    let reason = reason
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    Some(format!(
        "{var}={:?}: {reason}; fix the variable where it is set (for the service, `systemctl edit` its drop-in's Environment=)",
        value.to_string_lossy()
    ))
}

/// The environment variable of the option `--long` in `cmd` or a subcommand.
fn find_env(cmd: &clap::Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .or_else(|| cmd.get_subcommands().find_map(|sub| find_env(sub, long)))
}
