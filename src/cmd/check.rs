//! `mas-sockets check`: validate the config and show what each bind means.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::config::Plan;

/// Runs `check`.
///
/// # Errors
///
/// Only when stdout cannot be written.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = match super::load_plan(&args.config, super::EXIT_PROBLEMS) {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    super::print_stdout(&describe(&plan))?;
    Ok(ExitCode::SUCCESS)
}

/// One line per listener, then one per bind with the sockets it stands for.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.http_is_default {
        out.push_str("no `http` section: MAS's built-in listeners apply\n");
    }
    for listener in &plan.listeners {
        let _ = writeln!(
            out,
            "listener {} ({}){}",
            listener.label(),
            listener.resources.join(", "),
            if listener.proxy_protocol {
                " [proxy protocol]"
            } else {
                ""
            }
        );
        for bind in &listener.binds {
            let sockets = if bind.endpoints.is_empty() {
                "the fd at this index of LISTEN_FDS".to_owned()
            } else {
                bind.endpoints
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            let _ = writeln!(out, "  bind {}: {} -> {sockets}", bind.index, bind.spec);
        }
    }
    out
}
