//! One module per subcommand, each with a `run` that returns the exit status.
//!
//! Exit statuses (also in the README):
//! - 0: success.
//! - 1: `check` found problems in the config.
//! - 2: mas-sockets could not do its job: bad usage, unreadable or invalid
//!   config (for `check`: unreadable), a `MAS_HTTP*` variable in the
//!   environment, sockets that do not match the config, a child that could
//!   not start.
//! - supervise passes MAS's own status through once MAS ran (see [`supervise`]).

pub mod check;
pub mod exec_child;
pub mod generate_nginx;
pub mod generate_units;
pub mod reload;
pub mod supervise;

use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::{Cli, Command, ConfigArgs};
use crate::config::plan::escape_controls;
use crate::config::{self, DocumentError, LoadError, Plan};

/// The config is invalid (`check` only).
pub const EXIT_PROBLEMS: u8 = 1;
/// mas-sockets could not do its job.
pub const EXIT_CANNOT_RUN: u8 = 2;

/// Runs the chosen subcommand.
///
/// # Errors
///
/// Anything that stops the command; `main` prints it and exits with 2.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::GenerateUnits(args) => generate_units::run(args),
        Command::GenerateNginx(args) => generate_nginx::run(args),
        Command::Supervise(args) => supervise::run(args),
        Command::Reload(args) => reload::run_reload(args),
        Command::Status(args) => reload::run_status(args),
        Command::ExecChild(args) => exec_child::run(args),
    }
}

/// Loads the plan for `args`, printing problems one per line on stderr.
///
/// Returns `Err(status)` when the config cannot be used: `invalid_status` for
/// problems in the config, [`EXIT_CANNOT_RUN`] for an unreadable file and
/// for a `MAS_HTTP*` variable, which holds listeners that no command can
/// check (no file shows them).
pub(crate) fn load_plan(args: &ConfigArgs, invalid_status: u8) -> Result<Plan, ExitCode> {
    load_plan_warning(args, invalid_status, |_| Vec::new())
}

/// [`load_plan`], with `more` warnings about the listeners, shown after the
/// config's own and before its errors: for the plan, and also for what
/// could be read of the listeners of a config that is refused.
pub(crate) fn load_plan_warning(
    args: &ConfigArgs,
    invalid_status: u8,
    more: impl Fn(&[config::Listener]) -> Vec<String>,
) -> Result<Plan, ExitCode> {
    let overrides = config::listener_env_overrides(std::env::vars_os());
    if !overrides.is_empty() {
        eprintln!(
            "mas-sockets: {} is set: MAS would take listeners from it that no config file shows, around the sockets mas-sockets checks; move the listeners into a config file and unset it",
            overrides.join(", ")
        );
        return Err(ExitCode::from(EXIT_CANNOT_RUN));
    }
    let mas_config = std::env::var_os(config::MAS_CONFIG);
    let paths = match config::config_paths(&args.config, mas_config.as_deref()) {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("mas-sockets: {e}");
            return Err(ExitCode::from(EXIT_CANNOT_RUN));
        }
    };
    match config::load(&paths) {
        Ok(plan) => {
            print_warnings(&plan.warnings);
            print_warnings(&more(&plan.listeners));
            Ok(plan)
        }
        Err(LoadError::Document(DocumentError::Read { error, .. }))
            if args.config.is_empty()
                && mas_config.is_none()
                && error.kind() == io::ErrorKind::NotFound =>
        {
            // Neither was given: the path is MAS's default, in this directory.
            let here = std::env::current_dir().map_or_else(
                |_| "the working directory".to_owned(),
                |d| d.display().to_string(),
            );
            eprintln!(
                "mas-sockets: {}",
                escape_controls(&format!(
                    "config.yaml: cannot read the config file: {error}; with neither --config nor MAS_CONFIG, MAS and mas-sockets read config.yaml in the working directory ({here}); give the config with --config PATH"
                ))
            );
            Err(ExitCode::from(EXIT_CANNOT_RUN))
        }
        Err(LoadError::Document(e)) => {
            // The path, or the parser's words, may hold control characters.
            eprintln!("mas-sockets: {}", escape_controls(&e.to_string()));
            Err(ExitCode::from(EXIT_CANNOT_RUN))
        }
        Err(LoadError::Invalid(refused)) => {
            // Every problem found: the warnings too, which may explain an
            // error (a misspelt section beside a missing setting).
            print_warnings(&refused.warnings);
            print_warnings(&more(&refused.listeners));
            for e in &refused.errors {
                eprintln!("mas-sockets: {e}");
            }
            Err(ExitCode::from(invalid_status))
        }
    }
}

/// What an empty `MAS_CONFIG` means, when it is what chooses the files
/// (no `--config`) and names none: MAS then reads no file and serves its
/// built-in listeners, as mas-sockets does, but an empty value is more
/// often a variable that was never set than a choice.
pub(crate) fn empty_mas_config(args: &ConfigArgs) -> Option<String> {
    if !args.config.is_empty() {
        return None;
    }
    let value = std::env::var_os(config::MAS_CONFIG)?;
    let paths = config::config_paths(&[], Some(&value)).ok()?;
    paths.is_empty().then(|| {
        format!(
            "{}=\"{}\" is set but names no file, so MAS reads no config file and serves its built-in listeners (web on [::]:8080, every address; internal on localhost:8081)",
            config::MAS_CONFIG,
            escape_controls(&value.to_string_lossy())
        )
    })
}

fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        // A warning may quote the config's values: shown escaped, it stays
        // one line.
        eprintln!("mas-sockets: warning: {}", escape_controls(warning));
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write the output to stdout: {e}; check where stdout goes (a full disk?), or give --output-dir where the command has one"),
        )),
        Ok(()) => Ok(()),
    }
}
