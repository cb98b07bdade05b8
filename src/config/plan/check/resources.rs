//! The `resources` of one listener, checked as MAS reads them: a list of
//! mappings tagged by `name` (MAS refuses one without), each name listed
//! once, a name MAS does not know warned about rather than refused, and a
//! key that looks like a misspelt field of its resource warned about.
//!
//! What each field may hold is read by [`fields`]; the rest of the listener
//! is checked by the listener's own check, which calls this one.

use serde_norway::Value;

use super::Checker;
use crate::config::fields;
use crate::config::merge;
use crate::config::names;
use crate::config::plan::{ConfigError, ErrorKind, Location};
use crate::config::raw::kind_of;

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

impl Checker<'_> {
    /// The resource names of listener `listener` (its `resources`, `value`),
    /// each problem with them recorded.
    pub(super) fn resources(
        &mut self,
        listener: usize,
        value: Option<&Value>,
        default: bool,
    ) -> Vec<String> {
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
}
