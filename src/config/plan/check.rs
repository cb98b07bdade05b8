//! The checks that turn the merged config into a [`Plan`]: [`build`] walks
//! the `http` section, its listeners, their resources and binds, and the
//! keys around them, records every problem as a [`ConfigError`] and every
//! remark as a warning, and gives the plan only when no problem was found.
//!
//! What the errors say is in [`error`](super::error), what the plan holds
//! is in [`plan`](super), and the typed settings beside the binds (URLs,
//! `tls`, resource fields) are read by [`fields`]. Nothing here opens a
//! socket; host names go to the [`Resolver`] given.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::defaults::{default_http_value, DEFAULT_PUBLIC_BASE};
use super::{
    Bind, BindSpec, ConfigError, Endpoint, ErrorKind, FdKind, Listener, Location, Plan, Refused,
    Resolver, MAX_UNIX_PATH,
};
use crate::config::fields;
use crate::config::merge;
use crate::config::names;
use crate::config::net::{default_trusted_proxies, IpNet};
use crate::config::raw::{big_int, kind_of, Merged};

/// Resource names MAS knows (mas-facts.md); others are reported, not refused,
/// so that a newer MAS with a new resource still works.
const KNOWN_RESOURCES: &[&str] = &[
    "discovery",
    "human",
    "oauth",
    "compat",
    "graphql",
    "assets",
    "adminapi",
    "prometheus",
    "connection-info",
    "health",
];

/// Keys a bind may carry, across all four forms.
pub(super) const BIND_KEYS: &[&str] = &["host", "port", "address", "socket", "mode", "fd", "kind"];

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
            });
        }
    };
    let mut listeners = Vec::new();
    match &listeners_value {
        Value::Sequence(items) if items.is_empty() => {
            cx.error_at("http.listeners", ErrorKind::NoListeners)
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
        })
    }
}

/// A bind read from the config, before it gets its location.
struct ReadBind {
    spec: BindSpec,
    endpoints: Vec<Endpoint>,
    /// Things to say about it: the key path after the bind's, and the text.
    warnings: Vec<(&'static str, String)>,
}

struct Checker<'a> {
    merged: &'a Merged,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    resolver: &'a dyn Resolver,
}

impl Checker<'_> {
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

    fn error_at(&mut self, key: &str, kind: ErrorKind) {
        let location = self.location(key);
        self.errors.push(ConfigError { location, kind });
    }

    fn listener(&mut self, index: usize, value: &Value, default: bool) -> Option<Listener> {
        let here = |cx: &Self, rest: &str| cx.listener_location(index, rest, default);
        let Value::Mapping(map) = value else {
            let location = here(self, "");
            self.errors.push(ConfigError {
                location,
                kind: ErrorKind::ListenerNotMapping {
                    found: kind_of(value),
                },
            });
            return None;
        };
        for key in map.keys().filter_map(Value::as_str) {
            if let Some(meant) = names::near_key(key, names::LISTENER_KEYS) {
                let location = here(self, &format!(".{key}#key"));
                self.warnings.push(format!(
                    "{location}: unknown key `{key}` in a listener (did you mean `{meant}`?); MAS ignores it, so the listener has no `{meant}` from it; rename it to `{meant}`"
                ));
            }
        }
        let name = match map.get("name") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let location = here(self, ".name");
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::WrongType {
                        key: "name",
                        found: kind_of(other),
                        expected: "a string",
                        fix: "write one name, e.g. `name: web`",
                    },
                });
                None
            }
        };
        let proxy_protocol = match map.get("proxy_protocol") {
            // An explicit null is not a boolean to MAS: it refuses the config.
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let location = here(self, ".proxy_protocol");
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::WrongType {
                        key: "proxy_protocol",
                        found: kind_of(other),
                        expected: "true or false",
                        fix: "write `true` or `false` without quotes",
                    },
                });
                false
            }
        };
        let proxy_protocol_location = if map.contains_key("proxy_protocol") {
            here(self, ".proxy_protocol")
        } else {
            here(self, "")
        };
        let prefix = match map.get("prefix") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => match crate::config::prefix::check_prefix(p) {
                Ok(warning) => {
                    if let Some(warning) = warning {
                        let location = here(self, ".prefix");
                        self.warnings.push(format!("{location}: {warning}"));
                    }
                    Some(p.clone())
                }
                Err(kind) => {
                    let location = here(self, ".prefix");
                    self.errors.push(ConfigError { location, kind });
                    None
                }
            },
            Some(other) => {
                let location = here(self, ".prefix");
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::WrongType {
                        key: "prefix",
                        found: kind_of(other),
                        expected: "a path such as /auth",
                        fix: "write one path, e.g. `prefix: /auth`",
                    },
                });
                None
            }
        };
        let tls = match map.get("tls") {
            None | Some(Value::Null) => false,
            Some(value) => {
                for (rest, kind) in fields::check_tls(value) {
                    let location = here(self, &rest);
                    self.errors.push(ConfigError { location, kind });
                }
                true
            }
        };
        let resources = if merge::only_in_merge(map, "resources") {
            let location = here(self, "");
            self.errors.push(ConfigError {
                location,
                kind: ErrorKind::OnlyInMerge {
                    at: "the listener",
                    key: "resources",
                },
            });
            Vec::new()
        } else {
            self.resources(index, map.get("resources"), default)
        };
        let mut binds = Vec::new();
        match map.get("binds") {
            Some(Value::Sequence(items)) if !items.is_empty() => {
                for (b, item) in items.iter().enumerate() {
                    let location = here(self, &format!(".binds[{b}]"));
                    if let Some((spec, endpoints)) = self.bind(index, b, item, default) {
                        binds.push(Bind {
                            listener: index,
                            index: b,
                            spec,
                            endpoints,
                            location,
                        });
                    }
                }
            }
            Some(Value::Sequence(_)) | None | Some(Value::Null) => {
                let location = here(self, ".binds");
                let kind = if merge::only_in_merge(map, "binds") {
                    ErrorKind::OnlyInMerge {
                        at: "the listener",
                        key: "binds",
                    }
                } else {
                    ErrorKind::NoBinds
                };
                self.errors.push(ConfigError { location, kind });
            }
            Some(other) => {
                let location = here(self, ".binds");
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::WrongType {
                        key: "binds",
                        found: kind_of(other),
                        expected: "a list of binds",
                        fix: "write each bind as a `- ` item, e.g. `binds: [{host: localhost, port: 8080}]`",
                    },
                });
            }
        }
        Some(Listener {
            index,
            name,
            binds,
            resources,
            proxy_protocol,
            proxy_protocol_location,
            prefix,
            tls,
            location: here(self, ""),
        })
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

    fn resources(&mut self, listener: usize, value: Option<&Value>, default: bool) -> Vec<String> {
        let location = self.listener_location(listener, ".resources", default);
        let items = match value {
            Some(Value::Sequence(items)) if !items.is_empty() => items,
            Some(Value::Sequence(_)) | None | Some(Value::Null) => {
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::NoResources,
                });
                return Vec::new();
            }
            Some(other) => {
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::WrongType {
                        key: "resources",
                        found: kind_of(other),
                        expected: "a list of `- name: ...` items",
                        fix: "write each resource as a `- name: ...` item, e.g. `resources: [{name: health}]`",
                    },
                });
                return Vec::new();
            }
        };
        let mut names = Vec::new();
        let mut firsts: Vec<(String, Location)> = Vec::new();
        for (r, item) in items.iter().enumerate() {
            let at = |rest: &str| format!(".resources[{r}]{rest}");
            let Value::Mapping(resource) = item else {
                let location = self.listener_location(listener, &at(""), default);
                self.errors.push(ConfigError {
                    location,
                    kind: ErrorKind::ResourceNotMapping {
                        found: kind_of(item),
                        name: item.as_str().unwrap_or("health").to_owned(),
                    },
                });
                continue;
            };
            match resource.get("name") {
                Some(Value::String(name)) => {
                    if !KNOWN_RESOURCES.contains(&name.as_str()) {
                        let location = self.listener_location(listener, &at(".name"), default);
                        self.warnings.push(format!(
                            "{location}: resource `{name}` is not one MAS 1.22 knows ({}); MAS will refuse it unless it is newer; check its spelling",
                            KNOWN_RESOURCES.join(", ")
                        ));
                    }
                    for (rest, kind) in fields::check_resource(name, resource) {
                        let location = self.listener_location(listener, &at(&rest), default);
                        self.errors.push(ConfigError { location, kind });
                    }
                    let known: Vec<&'static str> =
                        fields::fields_of(name).iter().map(|(k, _)| *k).collect();
                    for key in resource.keys().filter_map(Value::as_str) {
                        if let Some(meant) = names::near_key(key, &known) {
                            let location = self.listener_location(
                                listener,
                                &at(&format!(".{key}#key")),
                                default,
                            );
                            self.warnings.push(format!(
                                "{location}: unknown key `{key}` in resource `{name}` (did you mean `{meant}`?); MAS ignores it, so the resource has its default `{meant}`; rename it to `{meant}`"
                            ));
                        }
                    }
                    let here = self.listener_location(listener, &at(".name"), default);
                    match firsts.iter().find(|(n, _)| n == name) {
                        Some((_, first)) => self.errors.push(ConfigError {
                            location: here,
                            kind: ErrorKind::RepeatedResource {
                                name: name.clone(),
                                first: first.clone(),
                            },
                        }),
                        None => firsts.push((name.clone(), here)),
                    }
                    names.push(name.clone());
                }
                // MAS reads resources as a enum tagged by `name`: without a
                // name (or with an empty one) it refuses the whole config.
                None | Some(Value::Null) if merge::only_in_merge(resource, "name") => {
                    let location = self.listener_location(listener, &at(""), default);
                    self.errors.push(ConfigError {
                        location,
                        kind: ErrorKind::OnlyInMerge {
                            at: "the resource",
                            key: "name",
                        },
                    });
                }
                None | Some(Value::Null) => {
                    // A misspelt `name` is the likely cause; point at it.
                    let misspelt = resource
                        .keys()
                        .filter_map(Value::as_str)
                        .find(|k| names::is_near(k, "name"))
                        .map(str::to_owned);
                    let rest = match &misspelt {
                        Some(key) => at(&format!(".{key}#key")),
                        None => at(""),
                    };
                    let location = self.listener_location(listener, &rest, default);
                    self.errors.push(ConfigError {
                        location,
                        kind: ErrorKind::ResourceWithoutName { misspelt },
                    });
                }
                Some(other) => {
                    let location = self.listener_location(listener, &at(".name"), default);
                    self.errors.push(ConfigError {
                        location,
                        kind: ErrorKind::WrongType {
                            key: "name",
                            found: kind_of(other),
                            expected: "a resource name",
                            fix: "write one of MAS's resource names, e.g. `name: health`",
                        },
                    });
                }
            }
        }
        names
    }

    /// Classifies one bind, or records every reason it cannot be.
    ///
    /// Each stray key and each value that is wrong by itself is reported.
    /// What a bind lacks (`host` without `port`, `mode` without `socket`,
    /// `kind` without `fd`) is reported only when it has no stray key, which
    /// may be the missing one misspelt, and does not mix forms.
    fn bind(
        &mut self,
        listener: usize,
        index: usize,
        value: &Value,
        default: bool,
    ) -> Option<(BindSpec, Vec<Endpoint>)> {
        let mut problems: Vec<(String, ErrorKind)> = Vec::new();
        let parsed = self.read_bind(value, &mut problems);
        let rest = format!(".binds[{index}]");
        for (key, kind) in problems {
            let location = self.listener_location(listener, &format!("{rest}{key}"), default);
            self.errors.push(ConfigError { location, kind });
        }
        let read = parsed?;
        for (key, text) in read.warnings {
            let location = self.listener_location(listener, &format!("{rest}{key}"), default);
            self.warnings.push(format!("{location}: {text}"));
        }
        Some((read.spec, read.endpoints))
    }

    /// The bind of `value`; `None` when `problems` got at least one
    /// (each with the key path after the bind's).
    fn read_bind(
        &mut self,
        value: &Value,
        problems: &mut Vec<(String, ErrorKind)>,
    ) -> Option<ReadBind> {
        let Value::Mapping(map) = value else {
            problems.push((
                String::new(),
                ErrorKind::BindNotMapping {
                    found: kind_of(value),
                },
            ));
            return None;
        };
        if map.is_empty() {
            problems.push((String::new(), ErrorKind::EmptyBind));
            return None;
        }
        let mut keys: Vec<&'static str> = Vec::new();
        let mut unknown = false;
        let mut host: Option<String> = None;
        let mut port: Option<u16> = None;
        let mut address: Option<SocketAddr> = None;
        let mut socket: Option<PathBuf> = None;
        let mut mode: Option<(u32, String)> = None;
        let mut fd: Option<usize> = None;
        let mut kind = FdKind::Tcp;
        for (key, value) in map {
            let name = key
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{key:?}"));
            let Some(&key) = BIND_KEYS.iter().find(|k| **k == name) else {
                unknown = true;
                problems.push((
                    format!(".{name}#key"),
                    ErrorKind::UnknownBindKey {
                        key: name,
                        rest_is_a_bind: rest_is_a_bind(map),
                    },
                ));
                continue;
            };
            keys.push(key);
            let at = format!(".{key}");
            let mut problem = |kind: ErrorKind| problems.push((at.clone(), kind));
            match (key, value) {
                ("host", Value::Null) => {}
                ("host", Value::String(h)) => {
                    match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                        Some(bare) => problem(ErrorKind::BracketedHost {
                            host: h.clone(),
                            bare: bare.to_owned(),
                        }),
                        None => host = Some(h.clone()),
                    }
                }
                ("host", other) => problem(ErrorKind::WrongType {
                    key: "host",
                    found: kind_of(other),
                    expected: "a host name or IP address",
                    fix: "write one, e.g. `host: localhost` or `host: \"::1\"`",
                }),
                ("port", Value::Null) => {}
                ("port", Value::Number(n)) if n.is_f64() => problem(ErrorKind::PortNotNumber {
                    value: n.to_string(),
                    found: "not a whole number",
                }),
                ("port", Value::Number(n)) => {
                    match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
                        Some(0) => problem(ErrorKind::PortZero),
                        Some(p) => port = Some(p),
                        None => problem(ErrorKind::PortOutOfRange {
                            port: n.to_string(),
                        }),
                    }
                }
                ("port", other) if big_int(other).is_some() => problem(ErrorKind::PortOutOfRange {
                    port: scalar_text(other),
                }),
                ("port", other) => problem(ErrorKind::PortNotNumber {
                    value: scalar_text(other),
                    found: kind_of(other),
                }),
                ("address", Value::String(text)) => match text.parse::<SocketAddr>() {
                    Ok(addr) if addr.port() == 0 => problem(ErrorKind::PortZero),
                    Ok(addr) => address = Some(addr),
                    Err(_) => problem(ErrorKind::BadAddress {
                        address: text.clone(),
                    }),
                },
                ("address", other) => problem(ErrorKind::BadAddress {
                    address: scalar_text(other),
                }),
                ("socket", Value::String(p)) if !p.is_empty() => {
                    if let Some(kind) = socket_path_problem(p) {
                        problem(kind);
                    } else if p.len() > MAX_UNIX_PATH {
                        problem(ErrorKind::SocketPathTooLong {
                            path: p.clone(),
                            len: p.len(),
                        });
                    } else {
                        socket = Some(PathBuf::from(p));
                    }
                }
                ("socket", Value::String(_) | Value::Null) => problem(ErrorKind::EmptySocketPath),
                ("socket", other) => problem(ErrorKind::WrongType {
                    key: "socket",
                    found: kind_of(other),
                    expected: "a path",
                    fix: "write the path, e.g. `socket: /run/mas/web.sock`",
                }),
                ("mode", Value::Null) => {}
                ("mode", Value::String(text)) => match parse_mode(text) {
                    Some(m) => mode = Some((m, text.clone())),
                    // MAS would apply them, but a setuid, setgid or sticky
                    // socket is a slip, not a permission.
                    None if u32::from_str_radix(text, 8).is_ok() => {
                        problem(ErrorKind::ModeBeyondPermissions {
                            value: text.clone(),
                        })
                    }
                    None => problem(ErrorKind::BadMode {
                        value: text.clone(),
                    }),
                },
                ("mode", other) => problem(ErrorKind::BadMode {
                    value: scalar_text(other),
                }),
                ("fd", Value::Number(n)) => {
                    match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        Some(i) => fd = Some(i),
                        None => problem(ErrorKind::BadFd {
                            value: n.to_string(),
                        }),
                    }
                }
                ("fd", other) => problem(ErrorKind::BadFd {
                    value: scalar_text(other),
                }),
                ("kind", Value::String(k)) if k == "tcp" => kind = FdKind::Tcp,
                ("kind", Value::String(k)) if k == "unix" => kind = FdKind::Unix,
                ("kind", other) => problem(ErrorKind::BadKind {
                    value: scalar_text(other),
                }),
                _ => unreachable!("every bind key is matched above"),
            }
        }
        let has = |k: &str| keys.contains(&k);
        // A name is resolved even when the rest of the bind is wrong: an
        // unknown name is a problem of its own.
        let host_endpoints = match &host {
            Some(h) => match self.host_endpoints(h, port.unwrap_or(1)) {
                Ok(found) => Some(found),
                Err(kind) => {
                    problems.push((".host".into(), kind));
                    None
                }
            },
            None => None,
        };
        // Each form's keys; a key from another form is a mix.
        let form = |k: &str| match k {
            "host" | "port" => 0,
            "address" => 1,
            "socket" | "mode" => 2,
            _ => 3,
        };
        let mixed = keys
            .iter()
            .flat_map(|a| keys.iter().map(move |b| (*a, *b)))
            .find(|(a, b)| form(a) < form(b));
        let port_missing = matches!(map.get("port"), None | Some(Value::Null));
        if let Some((first, second)) = mixed {
            problems.push((String::new(), ErrorKind::MixedForms { first, second }));
        } else if !unknown {
            if (has("host") || has("port")) && port_missing {
                problems.push((
                    String::new(),
                    ErrorKind::HostWithoutPort {
                        host: host.clone().unwrap_or_default(),
                    },
                ));
            }
            if has("mode") && !has("socket") {
                problems.push((".mode".into(), ErrorKind::ModeWithoutSocket));
            }
            if has("kind") && !has("fd") {
                problems.push((".kind".into(), ErrorKind::KindWithoutFd));
            }
        }
        if !problems.is_empty() {
            return None;
        }
        let mut warnings = Vec::new();
        if has("host") || has("port") {
            let port = port.expect("a bind without a port is a problem above");
            let endpoints = match host_endpoints {
                Some((endpoints, warning)) => {
                    warnings.extend(warning.map(|w| (".host", w)));
                    endpoints
                }
                None => vec![Endpoint::AnyTcp(port)],
            };
            return Some(ReadBind {
                spec: BindSpec::HostPort { host, port },
                endpoints,
                warnings,
            });
        }
        if let Some(addr) = address {
            return Some(ReadBind {
                spec: BindSpec::Address(addr),
                endpoints: vec![Endpoint::Tcp(addr)],
                warnings,
            });
        }
        if let Some(path) = socket {
            let endpoints = vec![Endpoint::Unix(path.clone())];
            if let Some((m, text)) = &mode {
                if m & 0o002 != 0 {
                    warnings.push((".mode", format!("`mode: {text}` lets any local user connect to MAS (connecting to a Unix socket needs write permission, and this mode gives it to others); use e.g. `mode: \"660\"` and give the clients the socket's group (generate-units --socket-group)")));
                }
            }
            let mode = mode.map(|(m, _)| m);
            return Some(ReadBind {
                spec: BindSpec::Unix { path, mode },
                endpoints,
                warnings,
            });
        }
        let index = fd.expect("a bind of no other form has `fd`, or a problem above");
        Some(ReadBind {
            spec: BindSpec::Fd { index, kind },
            endpoints: Vec::new(),
            warnings,
        })
    }

    /// The endpoints of a bind with `host`, and a warning when they come
    /// from a name resolved now.
    fn host_endpoints(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<Endpoint>, Option<String>), ErrorKind> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![Endpoint::Tcp(SocketAddr::new(ip, port))], None));
        }
        if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
            // MAS binds whichever loopback address resolves first; a socket on
            // either one serves the bind, so a unit may hold both.
            let endpoints = vec![
                Endpoint::Tcp(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)),
                Endpoint::Tcp(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)),
            ];
            return Ok((endpoints, None));
        }
        let mut addrs =
            self.resolver
                .resolve(host, port)
                .map_err(|reason| ErrorKind::Unresolvable {
                    host: host.to_owned(),
                    reason,
                })?;
        if addrs.is_empty() {
            return Err(ErrorKind::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        let unique: BTreeSet<SocketAddr> = addrs.drain(..).collect();
        let addrs: Vec<SocketAddr> = unique.into_iter().collect();
        let warning = format!(
            "host `{host}` resolved to {}; the sockets use these addresses, so regenerate the units if its addresses change",
            addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        Ok((
            addrs.into_iter().map(Endpoint::Tcp).collect(),
            Some(warning),
        ))
    }

    /// Warns about top-level keys that look like a misspelt section of MAS's:
    /// MAS ignores them as it ignores other tools' sections, so the section
    /// meant silently keeps its defaults.
    fn check_sections(&mut self, http_is_default: bool) {
        let Value::Mapping(root) = &self.merged.value else {
            return;
        };
        for key in root.keys().filter_map(Value::as_str) {
            let Some(section) = names::near_section(key) else {
                continue;
            };
            let location = self.location(&format!("{key}#key"));
            let consequence = if section == "http" && http_is_default {
                "and without an `http` section serves its built-in listeners on every address ([::]:8080)"
            } else {
                "so none of its settings apply"
            };
            self.warnings.push(format!(
                "{location}: `{key}` is not a section MAS knows (did you mean `{section}`?); MAS ignores it, {consequence}; rename it to `{section}`"
            ));
        }
    }

    /// Warns about every YAML merge key (`<<`) in the `http` section: MAS
    /// ignores it, and so the keys it brings.
    fn check_merge_keys(&mut self) {
        let Some(Value::Mapping(http)) = self.merged.value.get("http") else {
            return;
        };
        let mut found: Vec<(Location, String)> = Vec::new();
        let mut at_http = Vec::new();
        for (key, value) in http {
            if key.as_str() == Some("listeners") {
                continue;
            }
            let rest = key.as_str().map_or_else(|| scalar_text(key), str::to_owned);
            merges_in(value, &format!(".{rest}"), &mut at_http);
        }
        if let Some(keys) = merge::keys_not_applied(http) {
            at_http.insert(0, (String::new(), keys));
        }
        for (rest, keys) in at_http {
            let location = self.location(&format!("http{rest}.{}#key", merge::MERGE_KEY));
            found.push((location, merge::warning(&keys)));
        }
        if let Some(Value::Sequence(listeners)) = http.get("listeners") {
            for (i, listener) in listeners.iter().enumerate() {
                let mut here = Vec::new();
                merges_in(listener, "", &mut here);
                for (rest, keys) in here {
                    let location = self.listener_location(
                        i,
                        &format!("{rest}.{}#key", merge::MERGE_KEY),
                        false,
                    );
                    found.push((location, merge::warning(&keys)));
                }
            }
        }
        for (location, warning) in found {
            self.warnings.push(format!("{location}: {warning}"));
        }
    }

    /// MAS's config loader takes only plain keys; a mapping or list used as a
    /// key (`? {k: v}`) makes it refuse the file.
    fn check_keys(&mut self, value: &Value, path: &mut String) {
        match value {
            Value::Mapping(map) => {
                for (key, child) in map {
                    if matches!(
                        key,
                        Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_)
                    ) && big_int(key).is_none()
                    {
                        let at = if path.is_empty() {
                            "(top level)".to_owned()
                        } else {
                            path.clone()
                        };
                        self.error_at(&at, ErrorKind::ComplexKey);
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&key.as_str().map_or_else(|| scalar_text(key), str::to_owned));
                    self.check_keys(child, path);
                    path.truncate(len);
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    self.check_keys(item, path);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn check_duplicates(&mut self, listeners: &[Listener]) {
        let binds: Vec<&Bind> = listeners.iter().flat_map(|l| l.binds.iter()).collect();
        for (i, bind) in binds.iter().enumerate() {
            for earlier in &binds[..i] {
                let same_fd = matches!(
                    (&bind.spec, &earlier.spec),
                    (BindSpec::Fd { index: a, .. }, BindSpec::Fd { index: b, .. }) if a == b
                );
                let clash = same_fd
                    || bind
                        .endpoints
                        .iter()
                        .any(|e| earlier.endpoints.iter().any(|o| e.overlaps(o)));
                if clash {
                    self.errors.push(ConfigError {
                        location: bind.location.clone(),
                        kind: ErrorKind::Duplicate {
                            this: bind.spec.to_string(),
                            other: format!("{} at {}", earlier.spec, earlier.location),
                        },
                    });
                    break;
                }
            }
        }
    }
}

/// Every mapping with a merge key in `value` (at key path `rest` after its
/// parent's), with the keys the merge brings, in document order.
fn merges_in(value: &Value, rest: &str, found: &mut Vec<(String, Vec<String>)>) {
    match value {
        Value::Mapping(map) => {
            if let Some(keys) = merge::keys_not_applied(map) {
                found.push((rest.to_owned(), keys));
            }
            for (key, child) in map {
                // What a merge brings is not applied, merges in it neither.
                if key.as_str() == Some(merge::MERGE_KEY) {
                    continue;
                }
                let name = key.as_str().map_or_else(|| scalar_text(key), str::to_owned);
                merges_in(child, &format!("{rest}.{name}"), found);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                merges_in(item, &format!("{rest}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Whether MAS reads a bind's known keys as one of its forms, as it does when
/// it ignores an unknown key: `port` as a number, `address` or `socket` as a
/// string (with `mode`, if any, as a string), or an explicit `fd`. Any other
/// bind falls through to MAS's last form, whose defaults make it `fd: 0`.
fn rest_is_a_bind(map: &Mapping) -> bool {
    let port = map
        .get("port")
        .and_then(Value::as_u64)
        .is_some_and(|p| u16::try_from(p).is_ok());
    let host = matches!(map.get("host"), None | Some(Value::Null | Value::String(_)));
    let mode = matches!(map.get("mode"), None | Some(Value::Null | Value::String(_)));
    (port && host)
        || matches!(map.get("address"), Some(Value::String(_)))
        || (matches!(map.get("socket"), Some(Value::String(_))) && mode)
        || map.contains_key("fd")
}

/// Why MAS, or a socket unit, could not take the socket path `path` as it
/// is, if either could not: a trailing `/` (MAS fails at start-up), or an
/// absolute path with `//`, `.` or `..` (systemd refuses it in
/// `ListenStream=`). A relative path is warned about elsewhere, whole.
fn socket_path_problem(path: &str) -> Option<ErrorKind> {
    if path.ends_with('/') {
        let dir = path.trim_end_matches('/');
        let dir = if dir.is_empty() { "/run/mas" } else { dir };
        return Some(ErrorKind::SocketPathDirectory {
            path: path.to_owned(),
            example: format!("{dir}/web.sock"),
        });
    }
    let rest = path.strip_prefix('/')?;
    if rest
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..")
    {
        return None;
    }
    // The path as the kernel would read it where no directory is a symlink.
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(ErrorKind::SocketPathNotNormal {
        path: path.to_owned(),
        normal: format!("/{}", parts.join("/")),
    })
}

/// Parses a permission string as MAS does (`u32::from_str_radix(text, 8)`:
/// octal digits, an optional leading `+`, any leading zeros), limited to the
/// read, write and execute bits (0777) that mean something on a socket.
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o777)
}

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
