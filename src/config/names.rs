//! Near misses: which key a misspelt one was probably meant to be.
//!
//! MAS ignores keys it does not know, at the top level of its config as in a
//! bind, so a typo there silently changes what it does. This module only
//! measures likeness and knows the names to compare with; what a near miss
//! means (an error, a warning) is for [`super::plan`] to say.

/// The top-level sections of MAS's config (its root config struct). A key
/// that is none of these, nor near one, belongs to another tool and is left
/// alone.
pub const KNOWN_SECTIONS: &[&str] = &[
    "clients",
    "http",
    "database",
    "telemetry",
    "templates",
    "email",
    "secrets",
    "passwords",
    "matrix",
    "policy",
    "rate_limiting",
    "upstream_oauth2",
    "branding",
    "captcha",
    "account",
    "oauth",
    "experimental",
];

/// Whether `key` is probably a misspelling of `target` (and not `target`
/// itself): equal but for case, `-` for `_` or stray `_` at either end, or a
/// small number of typing slips. Short names need more likeness: any two
/// letters are two edits from `fd`.
pub fn is_near(key: &str, target: &str) -> bool {
    if key == target {
        return false;
    }
    let normal = key.trim().to_ascii_lowercase().replace('-', "_");
    let normal = normal.trim_matches('_');
    let limit = match target.chars().count() {
        0..=3 => 1,
        4 => 1,
        _ => 2,
    };
    normal == target
        || edit_distance(normal, target) <= limit
        // A singular for a plural (`trusted_proxy`), or the reverse.
        || (target.len() > 4 && singular(normal) == singular(target))
}

/// An English plural made singular, the way MAS's key names form them
/// (`trusted_proxies`, `listeners`); other words as they are.
fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = word.strip_suffix('s') {
        stem.to_owned()
    } else {
        word.to_owned()
    }
}

/// Keys of a listener (MAS's `ListenerConfig`).
pub const LISTENER_KEYS: &[&str] = &[
    "name",
    "resources",
    "prefix",
    "binds",
    "proxy_protocol",
    "tls",
];

/// Keys of the `http` section (MAS's `HttpConfig`).
pub const HTTP_KEYS: &[&str] = &["listeners", "trusted_proxies", "public_base", "issuer"];

/// The one of `known` that `key` (not itself one of them) is probably a
/// misspelling of, if any.
pub fn near_key(key: &str, known: &[&'static str]) -> Option<&'static str> {
    if known.contains(&key) {
        return None;
    }
    known
        .iter()
        .filter(|k| is_near(key, k))
        .min_by_key(|k| edit_distance(&key.to_ascii_lowercase(), k))
        .copied()
}

/// The known section `key` is probably a misspelling of, if any.
pub fn near_section(key: &str) -> Option<&'static str> {
    near_key(key, KNOWN_SECTIONS)
}

/// ` (did you mean `x`?)` for the closest of `candidates` that is near
/// `key`, or nothing.
pub fn did_you_mean(key: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .filter(|c| is_near(key, c))
        .min_by_key(|c| edit_distance(key, c))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The optimal string alignment distance: insertions, deletions,
/// substitutions and swaps of two neighbouring characters each count one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_count_as_one_slip() {
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("htpp", "http"), 1);
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("", "fd"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn near_misses_of_sections_are_found() {
        for (key, section) in [
            ("htpp", "http"),
            ("HTTP", "http"),
            ("http_", "http"),
            ("Http", "http"),
            ("htp", "http"),
            ("databse", "database"),
            ("rate-limiting", "rate_limiting"),
            ("secret", "secrets"),
            ("upstream_oauth", "upstream_oauth2"),
        ] {
            assert_eq!(near_section(key), Some(section), "{key}");
        }
    }

    #[test]
    fn other_tools_sections_are_not_near_misses() {
        for key in [
            "http",
            "synapse",
            "logging",
            "server",
            "listeners",
            "x",
            "hp",
            "web",
            "admin",
        ] {
            assert_eq!(near_section(key), None, "{key}");
        }
    }

    #[test]
    fn near_misses_of_listener_and_http_keys_are_found() {
        for (key, known, want) in [
            ("proxy-protocol", LISTENER_KEYS, "proxy_protocol"),
            ("tsl", LISTENER_KEYS, "tls"),
            ("perfix", LISTENER_KEYS, "prefix"),
            ("bind", LISTENER_KEYS, "binds"),
            ("resource", LISTENER_KEYS, "resources"),
            ("trusted_proxy", HTTP_KEYS, "trusted_proxies"),
            ("public-base", HTTP_KEYS, "public_base"),
            ("listener", HTTP_KEYS, "listeners"),
        ] {
            assert_eq!(near_key(key, known), Some(want), "{key}");
        }
        for key in ["tls", "x-comment", "description", "port", "ssl", "tags"] {
            assert_eq!(near_key(key, LISTENER_KEYS), None, "{key}");
        }
    }

    #[test]
    fn short_names_need_more_likeness() {
        assert!(is_near("df", "fd"));
        assert!(!is_near("<<", "fd"));
        assert!(!is_near("ab", "fd"));
        assert!(is_near("nmae", "name"));
        assert!(!is_near("path", "name"));
    }
}
