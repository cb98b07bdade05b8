//! `mas-sockets check`: validate the config and show what each bind means;
//! with `--nginx`, also hold nginx files against it.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::CheckArgs;
use crate::config::plan::{escape_controls, SystemResolver};
use crate::config::{BindSpec, Listener, Plan};
use crate::nginx::{compare, syntax};
use crate::units;

/// Runs `check`.
///
/// # Errors
///
/// Only when stdout cannot be written.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if let Some(what) = super::empty_mas_config(&args.config) {
        eprintln!("mas-sockets: warning: {what}; if a config was meant, give it with --config");
    }
    let plan =
        match super::load_plan_warning(&args.config, super::EXIT_PROBLEMS, deployment_warnings) {
            Ok(plan) => plan,
            Err(code) => return Ok(code),
        };
    // The user the packaged units, and generate-units by default, run
    // MAS as: where this host has it, it must be able to read the files.
    let files: Vec<_> = plan
        .files
        .iter()
        .filter_map(|f| std::path::absolute(f).ok())
        .collect();
    for warning in units::unreadable_by(&files, "mas") {
        eprintln!("mas-sockets: warning: {}", escape_controls(&warning));
    }
    super::print_stdout(&describe(&plan))?;
    let mut problems = false;
    for site in &args.nginx {
        match check_site(&plan, site)? {
            SiteOutcome::Clean => {}
            SiteOutcome::Problems => problems = true,
            SiteOutcome::Unreadable => return Ok(ExitCode::from(super::EXIT_CANNOT_RUN)),
        }
    }
    Ok(if problems {
        ExitCode::from(super::EXIT_PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

enum SiteOutcome {
    Clean,
    Problems,
    Unreadable,
}

/// Reads, parses and compares one nginx file, printing what it finds.
fn check_site(plan: &Plan, site: &Path) -> anyhow::Result<SiteOutcome> {
    let text = match std::fs::read(site) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!(
                "mas-sockets: {}",
                escape_controls(&format!(
                    "{}: cannot read the nginx file: {e}; check the path given with --nginx",
                    site.display()
                ))
            );
            return Ok(SiteOutcome::Unreadable);
        }
    };
    let tree = match syntax::parse(&text) {
        Ok(tree) => tree,
        Err(e) => {
            eprintln!(
                "mas-sockets: {}",
                escape_controls(&format!(
                    "{}:{}: not nginx configuration: {}",
                    site.display(),
                    e.line,
                    e.kind
                ))
            );
            return Ok(SiteOutcome::Unreadable);
        }
    };
    let report = compare::compare(plan, site, &tree, &SystemResolver);
    // The lines quote the site's and the config's values: shown escaped,
    // each stays one line.
    let mut out = String::new();
    for note in &report.notes {
        let _ = writeln!(out, "nginx {}", escape_controls(note));
    }
    super::print_stdout(&out)?;
    for warning in &report.warnings {
        eprintln!("mas-sockets: warning: {}", escape_controls(warning));
    }
    for problem in &report.problems {
        eprintln!("mas-sockets: {}", escape_controls(problem));
    }
    Ok(if report.problems.is_empty() {
        SiteOutcome::Clean
    } else {
        SiteOutcome::Problems
    })
}

/// What MAS accepts but generate-units or generate-nginx would refuse, or
/// what would break or be unsafe once the units run: a relative socket
/// path, a PROXY-protocol listener that takes connections from beyond
/// loopback, and a socket in a service's runtime directory. Shown for a
/// config with errors too, for the binds that could be read.
fn deployment_warnings(listeners: &[Listener]) -> Vec<String> {
    let relative = listeners.iter().flat_map(|l| &l.binds).filter_map(|bind| match &bind.spec {
        BindSpec::Unix { path, .. } if !path.is_absolute() => Some(format!(
            "{}: the socket path `{}` is relative: MAS binds it in its working directory, but generate-units and generate-nginx need the absolute path for the socket unit and nginx, and refuse it; write the full path, e.g. /run/mas/web.sock",
            bind.location,
            path.display()
        )),
        _ => None,
    });
    let exposed = listeners.iter().flat_map(|listener| {
        listener
            .binds
            .iter()
            .filter(|b| listener.proxy_protocol && b.reaches_beyond_loopback())
            .map(|b| b.proxy_protocol_exposed(listener))
    });
    relative
        .chain(exposed)
        // check has no --name: the units' default.
        .chain(units::runtime_directory_warnings(listeners, "mas"))
        .collect()
}

/// One line per listener, then one per bind with the sockets it stands for.
///
/// Each line quotes the config's values (names, resources, paths), with
/// control characters shown escaped: a name holding a newline or a terminal
/// escape cannot add a line to what the operator reads, nor recolour it.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.http_is_default {
        out.push_str("no `http` section: MAS's built-in listeners apply\n");
    }
    for listener in &plan.listeners {
        let _ = writeln!(
            out,
            "{}",
            escape_controls(&format!(
                "listener {} ({}){}",
                listener.label(),
                listener.resources.join(", "),
                if listener.proxy_protocol {
                    " [proxy protocol]"
                } else {
                    ""
                }
            ))
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
            let line = format!("  bind {}: {} -> {sockets}", bind.index, bind.spec);
            let _ = writeln!(out, "{}", escape_controls(&line));
        }
    }
    out
}
