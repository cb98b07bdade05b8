//! The command line, shaped like `mas-cli [server] [--config PATH]...`.
//!
//! MAS declares `--config`/`-c` as a repeatable global option and runs the
//! server when no subcommand is given; the server's own flags (`--no-migrate`,
//! `--no-worker`, `--no-sync`, `--migrate`) are accepted and have no effect here.
//! Other subcommands and unknown flags are errors, so a supervisor that builds a
//! wrong command line finds out in its tests.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// The config file used when neither `--config` nor `MAS_CONFIG` names one.
const DEFAULT_CONFIG: &str = "config.yaml";

/// Flags of `mas-cli server` that change nothing in the stand-in.
const IGNORED_SERVER_FLAGS: &[&str] = &["--no-migrate", "--migrate", "--no-worker", "--no-sync"];

const USAGE: &str =
    "usage: mas-standin [server] [--config PATH]... [--no-migrate] [--no-worker] [--no-sync]";

/// What the command line asked for.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Args {
    /// `--config`/`-c` values, in the order given.
    pub(crate) config: Vec<PathBuf>,
}

impl Args {
    /// The config files to read, chosen as MAS chooses them: the `--config`
    /// values, else `MAS_CONFIG` split on `:`, else `config.yaml`.
    pub(crate) fn config_paths(&self, mas_config: Option<String>) -> Vec<PathBuf> {
        if !self.config.is_empty() {
            return self.config.clone();
        }
        let list = mas_config.unwrap_or_else(|| DEFAULT_CONFIG.to_owned());
        list.split(':').map(PathBuf::from).collect()
    }
}

/// Parses the arguments that follow the program name.
///
/// # Errors
///
/// A non-UTF-8 argument, an unknown flag or subcommand, or `--config` without
/// a value.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut seen_server = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|raw| anyhow::anyhow!("argument {raw:?} is not UTF-8; {USAGE}"))?;
        if arg == "--config" || arg == "-c" {
            let value = args
                .next()
                .with_context(|| format!("{arg} needs a path; {USAGE}"))?;
            parsed.config.push(PathBuf::from(value));
        } else if let Some(value) = arg.strip_prefix("--config=") {
            parsed.config.push(PathBuf::from(value));
        } else if let Some(value) = arg.strip_prefix("-c").filter(|v| !v.is_empty()) {
            parsed
                .config
                .push(PathBuf::from(value.trim_start_matches('=')));
        } else if arg == "server" && !seen_server {
            seen_server = true;
        } else if IGNORED_SERVER_FLAGS.contains(&arg.as_str()) {
            // Accepted for fidelity with `mas-cli server`; nothing to do.
        } else {
            bail!("unknown argument '{arg}'; {USAGE}");
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> anyhow::Result<Args> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn config_is_repeatable_in_every_spelling() {
        let args = parse_strs(&["-c", "a.yaml", "server", "--config", "b.yaml"]).unwrap();
        assert_eq!(
            args.config,
            [PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
        let args = parse_strs(&["server", "--config=a.yaml", "-cb.yaml", "-c=c.yaml"]).unwrap();
        let want: Vec<PathBuf> = ["a.yaml", "b.yaml", "c.yaml"].map(PathBuf::from).into();
        assert_eq!(args.config, want);
    }

    #[test]
    fn no_subcommand_means_server_and_server_flags_are_accepted() {
        assert_eq!(parse_strs(&[]).unwrap(), Args::default());
        assert!(parse_strs(&["server", "--no-migrate", "--no-worker"]).is_ok());
    }

    #[test]
    fn unknown_arguments_and_missing_values_are_errors() {
        let err = parse_strs(&["worker"]).unwrap_err().to_string();
        assert!(err.starts_with("unknown argument 'worker'"), "{err}");
        assert!(parse_strs(&["server", "server"]).is_err());
        assert!(parse_strs(&["--config"]).is_err());
    }

    #[test]
    fn config_paths_fall_back_to_mas_config_then_config_yaml() {
        let none = Args::default();
        assert_eq!(none.config_paths(None), [PathBuf::from("config.yaml")]);
        let from_env = none.config_paths(Some("a.yaml:b.yaml".to_owned()));
        assert_eq!(from_env, [PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]);
        let given = Args {
            config: vec![PathBuf::from("c.yaml")],
        };
        assert_eq!(given.config_paths(Some("a.yaml".to_owned())), given.config);
    }
}
