//! YAML merge keys (`<<: *anchor`), which MAS does not apply.
//!
//! MAS loads its files with figment's plain `Yaml` provider, not
//! `YamlExtended`, the one that applies merge keys; serde_norway does not
//! apply them either. So to MAS `<<` is one more unknown key, and the keys it
//! was meant to bring are not set. This module only tells which keys those
//! are; [`super::plan`] says so, at the `<<`.

use serde_norway::{Mapping, Value};

/// The key YAML uses for a merge.
pub const MERGE_KEY: &str = "<<";

/// The keys a `<<` in `map` brings (from one mapping, or a list of them)
/// that `map` does not set itself, in order: what the operator meant to set
/// and MAS does not see. `None` when `map` has no `<<`.
pub fn keys_not_applied(map: &Mapping) -> Option<Vec<String>> {
    let merged = map.get(MERGE_KEY)?;
    let sources: Vec<&Mapping> = match merged {
        Value::Mapping(m) => vec![m],
        Value::Sequence(items) => items.iter().filter_map(Value::as_mapping).collect(),
        _ => Vec::new(),
    };
    let mut keys: Vec<String> = Vec::new();
    for source in sources {
        for key in source.keys().filter_map(Value::as_str) {
            if !map.contains_key(key) && !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
    }
    Some(keys)
}

/// Whether `key`, missing from `map` (or null there), is given only by its `<<`.
pub fn only_in_merge(map: &Mapping, key: &str) -> bool {
    matches!(map.get(key), None | Some(Value::Null))
        && keys_not_applied(map).is_some_and(|keys| keys.iter().any(|k| k == key))
}

/// The warning for a `<<` in a mapping, after its location.
pub fn warning(keys: &[String]) -> String {
    if keys.is_empty() {
        return "`<<` is a YAML merge key, and MAS reads YAML without merge keys, so it ignores `<<`; nothing it brings is missing here, so remove it".to_owned();
    }
    let shown: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    format!(
        "`<<` is a YAML merge key, and MAS reads YAML without merge keys, so it ignores `<<` and {} from it {} not apply here; write {} out in this mapping",
        shown.join(", "),
        if keys.len() == 1 { "does" } else { "do" },
        if keys.len() == 1 { "it" } else { "them" }
    )
}
