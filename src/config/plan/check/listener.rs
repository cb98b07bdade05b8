//! One listener of `http.listeners`, checked as MAS reads it: its `name`,
//! `proxy_protocol`, `prefix` and `tls`, a key that looks like a misspelt
//! listener key, and that it has `resources` and `binds`, which are then
//! checked one by one.
//!
//! What a `prefix` or `tls` may hold is read by [`prefix`](crate::config::prefix)
//! and [`fields`]; the resources and each bind have checks of their own, and
//! what listeners may not share (a socket, a name) is checked once all are read.

use serde_norway::Value;

use super::Checker;
use crate::config::fields;
use crate::config::merge;
use crate::config::names;
use crate::config::plan::{Bind, ConfigError, ErrorKind, Listener};
use crate::config::raw::kind_of;

impl Checker<'_> {
    /// Checks listener `index`, recording each problem; `None` only when it
    /// is not a mapping, else what of it could be read.
    pub(super) fn listener(
        &mut self,
        index: usize,
        value: &Value,
        default: bool,
    ) -> Option<Listener> {
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
}
