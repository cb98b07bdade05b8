//! MAS's config, read as MAS reads it, then checked into a [`Plan`].
//!
//! Which files: `--config` (repeatable), else `MAS_CONFIG` split on `:`, else
//! `config.yaml`, exactly as `mas-cli server` chooses them. [`raw`] parses and
//! merges them; [`plan`] gives the `http.listeners` their meaning, with
//! [`prefix`] reading a listener's `prefix` as MAS's router does,
//! [`fields`] the typed settings beside the binds (URLs, `tls`, resource
//! fields), [`merge`] the YAML merge keys MAS ignores, and [`names`] telling
//! a misspelt key from another tool's. MAS also
//! reads `MAS_*` environment variables at the lowest precedence (figment's
//! `Env::prefixed("MAS_")`, `_` separating keys): `MAS_HTTP_LISTENERS` would
//! add listeners no config file shows, so [`listener_env_overrides`] finds
//! such variables and the commands refuse them.

pub mod fields;
pub mod merge;
pub mod names;
pub mod net;
pub mod plan;
pub mod prefix;
pub mod raw;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub use net::IpNet;
pub use plan::{Bind, BindSpec, ConfigError, Endpoint, FdKind, Listener, Location, Plan, Refused};
pub use raw::{Document, DocumentError, Merged};

/// The environment variable MAS reads its config paths from.
pub const MAS_CONFIG: &str = "MAS_CONFIG";

/// Why a config could not be loaded: one unreadable file, or every problem
/// found (shown as the errors; the warnings found with them are beside).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("{}", .0.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Refused),
}

/// The config files MAS would read: `given` if any, else `MAS_CONFIG` split on
/// `:` (empty parts skipped, so an empty `MAS_CONFIG` means no file and MAS's
/// defaults), else `config.yaml`.
///
/// # Errors
///
/// A `MAS_CONFIG` that is not UTF-8: MAS cannot read it and silently reads
/// `config.yaml` instead, so no file list would be the one meant.
pub fn config_paths(given: &[PathBuf], mas_config: Option<&OsStr>) -> Result<Vec<PathBuf>, String> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let Some(value) = mas_config else {
        return Ok(vec![PathBuf::from("config.yaml")]);
    };
    let Some(value) = value.to_str() else {
        return Err(format!(
            "{MAS_CONFIG}=\"{}\" is not valid UTF-8, so MAS would ignore it and read config.yaml instead; rename the files, or give them with --config",
            value.as_encoded_bytes().escape_ascii()
        ));
    };
    Ok(value
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// Environment variables through which MAS would take listeners that no config
/// file shows (`MAS_HTTP`, `MAS_HTTP_LISTENERS...`). figment matches the prefix
/// without regard to case, trims the name and the key after the prefix, and
/// skips a key with an empty part (`MAS_HTTP__LISTENERS`).
pub fn listener_env_overrides<I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>>(
    vars: I,
) -> Vec<String> {
    let mut names: Vec<String> = vars
        .into_iter()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            let k = k.trim().to_ascii_uppercase();
            let Some(key) = k.strip_prefix("MAS_").map(str::trim) else {
                return false;
            };
            if key.split('_').any(str::is_empty) {
                return false;
            }
            key == "HTTP" || key.starts_with("HTTP_LISTENERS")
        })
        .collect();
    names.sort();
    names
}

/// Reads, merges and checks the files, resolving host names with the system resolver.
///
/// # Errors
///
/// The first file that cannot be read or parsed, or every problem of the merged config.
pub fn load(paths: &[PathBuf]) -> Result<Plan, LoadError> {
    let cwd = std::env::current_dir().ok();
    let documents = paths
        .iter()
        .map(|p| {
            let found = find_as_figment_does(p, cwd.as_deref());
            let mut document = Document::read(&found)?;
            if found != *p {
                document.warnings.insert(0, format!(
                    "{given} is not in the working directory, so MAS reads {found}, the first in a directory above it (figment looks there for a relative path), and so does mas-sockets; if another file was meant, give its absolute path",
                    given = p.display(),
                    found = found.display()
                ));
            }
            Ok(document)
        })
        .collect::<Result<Vec<_>, DocumentError>>()?;
    check(documents, &plan::SystemResolver)
}

/// The file MAS reads for `path`: figment's `Yaml::file` takes a relative
/// path from the working directory `cwd` or, when no file is there, from the
/// nearest directory above it that has one. `path` itself when it is
/// absolute, is a file, or is found nowhere (so that the error names it).
pub fn find_as_figment_does(path: &Path, cwd: Option<&Path>) -> PathBuf {
    let (false, Some(cwd)) = (path.is_absolute(), cwd) else {
        return path.to_owned();
    };
    if cwd.join(path).is_file() {
        return path.to_owned();
    }
    cwd.ancestors()
        .skip(1)
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| path.to_owned())
}

/// Merges and checks already parsed documents.
///
/// # Errors
///
/// Every problem of the merged config.
pub fn check(documents: Vec<Document>, resolver: &dyn plan::Resolver) -> Result<Plan, LoadError> {
    let merged = Merged::new(documents);
    plan::build(&merged, resolver).map_err(LoadError::Invalid)
}

/// Parses documents from in-memory text: `(name, text)` pairs.
///
/// # Errors
///
/// As [`check`], plus YAML errors.
pub fn check_texts(
    texts: &[(&str, &str)],
    resolver: &dyn plan::Resolver,
) -> Result<Plan, LoadError> {
    let documents = texts
        .iter()
        .map(|(name, text)| Document::parse(Path::new(name), text))
        .collect::<Result<Vec<_>, _>>()?;
    check(documents, resolver)
}

#[cfg(test)]
mod tests;
