//! The hidden `mas-sockets exec-child -- COMMAND...`: the step between fork and
//! MAS that writes the child's own pid into LISTEN_PID (see [`crate::child`]).

use std::process::ExitCode;

use crate::cli::ExecChildArgs;

/// Exit status when the command cannot be executed, as shells use.
pub const EXIT_CANNOT_EXEC: u8 = 127;

/// Executes the command; returns only when that fails, with status 127.
///
/// # Errors
///
/// Never: a failure is printed here so that its status stays 127.
pub fn run(args: ExecChildArgs) -> anyhow::Result<ExitCode> {
    let (program, rest) = args
        .command
        .split_first()
        .expect("clap requires at least one word");
    let err = crate::child::exec_child(program, rest);
    eprintln!("mas-sockets: {err}");
    Ok(ExitCode::from(EXIT_CANNOT_EXEC))
}
