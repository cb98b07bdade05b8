//! The `mas-sockets` binary: parse the arguments, run, print the error.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mas_sockets::cli::Cli::parse();
    match mas_sockets::cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mas-sockets: {err:#}");
            ExitCode::from(mas_sockets::cmd::EXIT_CANNOT_RUN)
        }
    }
}
