//! Keys that MAS reads otherwise than they are written, wherever they are:
//! a top-level key that looks like a misspelt section of MAS's (which it
//! ignores, so the section keeps its defaults), a YAML merge key (`<<`) in
//! `http` (which MAS does not apply), and a mapping or list used as a key
//! (on which MAS refuses the file). Each is found by walking the merged
//! config whole.
//!
//! A misspelt key inside `http`, a listener or a resource is warned about
//! where that section is checked, with the keys it may hold; what a merge
//! key would have brought is listed by [`merge`].

use serde_norway::Value;

use super::{scalar_text, Checker};
use crate::config::merge;
use crate::config::names;
use crate::config::plan::{ErrorKind, Location};
use crate::config::raw::big_int;

impl Checker<'_> {
    /// Warns about top-level keys that look like a misspelt section of MAS's:
    /// MAS ignores them as it ignores other tools' sections, so the section
    /// meant silently keeps its defaults.
    pub(super) fn check_sections(&mut self, http_is_default: bool) {
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
    pub(super) fn check_merge_keys(&mut self) {
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
    pub(super) fn check_keys(&mut self, value: &Value, path: &mut String) {
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
