//! The checks that turn the merged config into a [`Plan`]. [`build`] reads
//! the `http` section itself (`public_base`, `issuer`, `trusted_proxies`, a
//! misspelt key), hands each listener to `listener` (which hands on its
//! resources to `resources` and each bind to `bind`), has `keys` walk the
//! whole config for keys MAS reads otherwise than written, and then checks
//! what listeners may not share: a socket or fd, and a name. Every problem is
//! recorded as a [`ConfigError`] and every remark as a warning; the plan comes
//! only when no problem was found.
//!
//! The [`Checker`] carries what these share: the merged config, to locate a
//! key path, and the errors and warnings found so far. What the errors say is
//! in `plan/error.rs`, and what a URL, `tls` or a resource field may hold in
//! [`fields`]. Nothing here opens a socket; host names go to the
//! [`Resolver`] given.

use serde_norway::Value;

use super::defaults::{default_http_value, DEFAULT_PUBLIC_BASE};
use super::{Bind, BindSpec, ConfigError, ErrorKind, Listener, Location, Plan, Refused, Resolver};
use crate::config::fields;
use crate::config::merge;
use crate::config::names;
use crate::config::net::{default_trusted_proxies, IpNet};
use crate::config::raw::{big_int, kind_of, Merged};

pub use self::bind::parse_mode;

mod bind;
mod keys;
mod listener;
mod resources;

/// Checks the merged config and builds the plan; every problem is reported.
///
/// # Errors
///
/// All problems found, in config order, with the warnings found.
pub fn build(merged: &Merged, resolver: &dyn Resolver) -> Result<Plan, Refused> {
    let mut cx = Checker {
        merged,
        errors: Vec::new(),
        warnings: merged
            .documents
            .iter()
            .flat_map(|d| d.warnings.iter().cloned())
            .collect(),
        resolver,
    };
    let (http_is_default, listeners_value) = match merged.value.get("http") {
        None => (true, default_http_value()["listeners"].clone()),
        Some(Value::Mapping(http)) => {
            if merge::only_in_merge(http, "public_base") {
                cx.error_at(
                    "http",
                    ErrorKind::OnlyInMerge {
                        at: "`http`",
                        key: "public_base",
                    },
                );
            } else if matches!(http.get("public_base"), None | Some(Value::Null)) {
                cx.error_at("http", ErrorKind::NoPublicBase);
            }
            for key in http.keys().filter_map(Value::as_str) {
                if let Some(meant) = names::near_key(key, names::HTTP_KEYS) {
                    let location = cx.location(&format!("http.{key}#key"));
                    cx.warnings.push(format!(
                        "{location}: unknown key `{key}` in `http` (did you mean `{meant}`?); MAS ignores it, so `http` has no `{meant}` from it; rename it to `{meant}`"
                    ));
                }
            }
            for key in ["public_base", "issuer"] {
                let Some(value) = http.get(key) else { continue };
                let at = format!("http.{key}");
                match fields::check_url(key, value) {
                    Ok(None) => {}
                    Ok(Some(warning)) => {
                        let location = cx.location(&at);
                        cx.warnings.push(format!("{location}: {warning}"));
                    }
                    Err(kind) => cx.error_at(&at, kind),
                }
            }
            (false, http.get("listeners").cloned().unwrap_or(Value::Null))
        }
        Some(other) => {
            cx.error_at(
                "http",
                ErrorKind::HttpNotMapping {
                    found: kind_of(other),
                },
            );
            cx.check_sections(false);
            return Err(Refused {
                errors: cx.errors,
                warnings: cx.warnings,
                listeners: Vec::new(),
            });
        }
    };
    let mut listeners = Vec::new();
    match &listeners_value {
        // Said outright, no listeners is what MAS runs: its background
        // jobs, and no HTTP at all.
        Value::Sequence(items) if items.is_empty() => {
            let location = cx.location("http.listeners");
            cx.warnings.push(format!(
                "{location}: `listeners: []`: MAS serves no HTTP at all, only its background jobs, and there is no socket for mas-sockets to hold; add a listener if MAS should serve"
            ));
        }
        Value::Null => cx.error_at("http", ErrorKind::NoListeners),
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(listener) = cx.listener(i, item, http_is_default) {
                    listeners.push(listener);
                }
            }
        }
        other => cx.error_at(
            "http.listeners",
            ErrorKind::ListenersNotList {
                found: kind_of(other),
            },
        ),
    }
    let (public_base, trusted_proxies, trusted_proxies_location) = cx.http_extras(http_is_default);
    let matrix_endpoint = merged
        .value
        .get("matrix")
        .and_then(|m| m.get("endpoint"))
        .and_then(Value::as_str)
        .map(|e| (e.to_owned(), cx.location("matrix.endpoint")));
    if !http_is_default {
        cx.check_merge_keys();
    }
    cx.check_keys(&merged.value, &mut String::new());
    cx.check_sections(http_is_default);
    cx.check_duplicates(&listeners);
    for (i, listener) in listeners.iter().enumerate() {
        let Some(name) = &listener.name else { continue };
        if let Some(first) = listeners[..i]
            .iter()
            .find(|l| l.name.as_ref() == Some(name))
        {
            cx.warnings.push(format!(
                "{}: listener name `{name}` is also used at {}; MAS shows names in traces and metrics, so give each listener its own",
                listener.location, first.location
            ));
        }
    }
    if cx.errors.is_empty() {
        Ok(Plan {
            files: merged.documents.iter().map(|d| d.path.clone()).collect(),
            merged: merged.value.clone(),
            http_is_default,
            listeners,
            public_base,
            trusted_proxies,
            trusted_proxies_location,
            matrix_endpoint,
            warnings: cx.warnings,
        })
    } else {
        Err(Refused {
            errors: cx.errors,
            warnings: cx.warnings,
            listeners,
        })
    }
}

/// What the checks share while they walk the config: the merged config, to
/// locate key paths in, and the errors and warnings found so far.
struct Checker<'a> {
    merged: &'a Merged,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    resolver: &'a dyn Resolver,
}

impl Checker<'_> {
    /// Where the key path `key` is; with `#key` at its end, where the key
    /// itself is rather than its value.
    fn location(&self, key: &str) -> Location {
        Location {
            file: self
                .merged
                .locate(key)
                .map(|(path, pos)| (path.to_owned(), pos)),
            // `#key` asks for the key's own position; it is not part of the path shown.
            key: key.trim_end_matches("#key").to_owned(),
        }
    }

    /// Where `rest` (a key path after the listener's, such as `.binds[0]`) is
    /// in listener `listener`; `default` listeners are MAS's, in no file.
    fn listener_location(&self, listener: usize, rest: &str, default: bool) -> Location {
        // `#key` asks for the key's own position; it is not part of the path shown.
        let key = format!(
            "http.listeners[{listener}]{}",
            rest.trim_end_matches("#key")
        );
        if default {
            return Location { file: None, key };
        }
        // A missing key inside the listener points at the listener itself.
        let file = self
            .merged
            .locate_in_listener(listener, rest)
            .or_else(|| self.merged.locate_in_listener(listener, ""))
            .map(|(path, pos)| (path.to_owned(), pos));
        Location { file, key }
    }

    /// Records an error at the key path `key`.
    fn error_at(&mut self, key: &str, kind: ErrorKind) {
        let location = self.location(key);
        self.errors.push(ConfigError { location, kind });
    }

    /// `public_base` and `trusted_proxies` of the `http` section, as MAS
    /// would use them.
    fn http_extras(&mut self, default: bool) -> (Option<String>, Vec<IpNet>, Option<Location>) {
        let http = self.merged.value.get("http");
        let public_base = if default {
            Some(DEFAULT_PUBLIC_BASE.to_owned())
        } else {
            http.and_then(|h| h.get("public_base"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let Some(value) = http.and_then(|h| h.get("trusted_proxies")) else {
            return (public_base, default_trusted_proxies(), None);
        };
        let location = self.location("http.trusted_proxies");
        let mut nets = Vec::new();
        match value {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().map(str::parse::<IpNet>) {
                        Some(Ok(net)) => nets.push(net),
                        _ => self.error_at(
                            &format!("http.trusted_proxies[{i}]"),
                            ErrorKind::BadTrustedProxy {
                                value: scalar_text(item),
                            },
                        ),
                    }
                }
            }
            other => self.error_at(
                "http.trusted_proxies",
                ErrorKind::WrongType {
                    key: "trusted_proxies",
                    found: kind_of(other),
                    expected: "a list of IP networks",
                    fix: "write a list, e.g. `trusted_proxies: [127.0.0.1/8, \"::1/128\"]`",
                },
            ),
        }
        (public_base, nets, Some(location))
    }

    /// Refuses each bind whose fd, or a socket of which, an earlier bind (of
    /// any listener) already takes.
    fn check_duplicates(&mut self, listeners: &[Listener]) {
        let binds: Vec<&Bind> = listeners.iter().flat_map(|l| l.binds.iter()).collect();
        for (i, bind) in binds.iter().enumerate() {
            for earlier in &binds[..i] {
                // What both take: the fd, or the first socket of this bind
                // that one of the earlier's overlaps (a host name stands for
                // each address it resolves to, as its socket units hold it).
                let shared = match (&bind.spec, &earlier.spec) {
                    (BindSpec::Fd { index: a, .. }, BindSpec::Fd { index: b, .. }) if a == b => {
                        Some(format!("the fd at index {a} of LISTEN_FDS"))
                    }
                    _ => bind.endpoints.iter().find_map(|e| {
                        earlier.endpoints.iter().find(|o| e.overlaps(o)).map(|o| {
                            if o == e {
                                e.to_string()
                            } else {
                                format!("{e} and {o}, which overlap")
                            }
                        })
                    }),
                };
                if let Some(shared) = shared {
                    self.errors.push(ConfigError {
                        location: bind.location.clone(),
                        kind: ErrorKind::Duplicate {
                            this: bind.spec.to_string(),
                            other: format!("{} at {}", earlier.spec, earlier.location),
                            shared,
                        },
                    });
                    break;
                }
            }
        }
    }
}

/// A value as an error quotes it: a string in quotes, a number (even one too
/// big for 64 bits), boolean or null as such, and anything else by its kind.
fn scalar_text(value: &Value) -> String {
    if let Some(digits) = big_int(value) {
        return digits.to_owned();
    }
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => kind_of(other).to_owned(),
    }
}
