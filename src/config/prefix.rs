//! A listener's `prefix`, read as MAS's router takes it.
//!
//! MAS trims the trailing `/`s, adds one, and nests the listener's routes
//! there with axum 0.8, unless that leaves just `/`. axum panics at start-up
//! when the path does not start with `/`, when a segment starts with `:` or
//! `*` (the capture syntax of axum 0.7, which 0.8 refuses), and when its
//! braces are not what its router (matchit) reads: `{name}` capturing the
//! rest of a segment, `{{` and `}}` for a literal brace, and no `{*rest}`
//! wildcard, which must end a route and cannot end a prefix. Those are
//! errors here. A capture that works matches any segment, and a character
//! that requests carry only percent-encoded matches no request: both are
//! accepted by MAS and are warnings here.
//!
//! This module does not know nginx; it only names the characters that
//! generate-nginx cannot write into a location, since it refuses them.

use super::plan::ErrorKind;

/// Checks `prefix` as written in the config.
///
/// # Errors
///
/// A prefix on which MAS would panic at start-up.
pub fn check_prefix(prefix: &str) -> Result<Option<String>, ErrorKind> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        // MAS nests nothing: the routes stay at the root.
        return Ok(None);
    }
    if !trimmed.starts_with('/') {
        return Err(ErrorKind::PrefixNotAbsolute {
            prefix: prefix.to_owned(),
            nested: format!("{trimmed}/"),
            fixed: format!("/{trimmed}"),
        });
    }
    if let Some(segment) = trimmed
        .split('/')
        .find(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return Err(ErrorKind::PrefixOldCapture {
            prefix: prefix.to_owned(),
            segment: segment.to_owned(),
            first: segment
                .chars()
                .next()
                .expect("the segment starts with : or *"),
        });
    }
    let Ok(captures) = read_braces(trimmed) else {
        return Err(ErrorKind::PrefixBadBraces {
            prefix: prefix.to_owned(),
        });
    };
    if let Some(name) = captures.first() {
        return Ok(Some(format!(
            "`prefix: {prefix}` holds the capture `{{{name}}}`: MAS's router matches any path segment there, not that text, and generate-nginx refuses such a prefix; write a plain path such as `prefix: /auth`"
        )));
    }
    if let Some(c) = trimmed.chars().find(|c| !in_request_path(*c)) {
        return Ok(Some(format!(
            "`prefix: {prefix}` holds `{c}`, which a request path carries only percent-encoded, so no request would reach the listener's resources; use letters, digits, `-`, `.`, `_`, `~` and `/`"
        )));
    }
    if let Some(c) = trimmed.chars().find(|c| "$';".contains(*c)) {
        return Ok(Some(format!(
            "`prefix: {prefix}` holds `{c}`, which generate-nginx cannot write into an nginx location, so it refuses the listener; use letters, digits, `-`, `.`, `_`, `~` and `/`"
        )));
    }
    Ok(None)
}

/// Whether a request path may hold `c` as it is (RFC 3986 `pchar`, `/`,
/// and `%` of a percent-encoding, which axum matches as written).
fn in_request_path(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%/".contains(c)
}

/// The names of the captures in `path` as matchit reads it, or `Err` where
/// it would refuse the route MAS makes of it (`path` followed by `/` and
/// MAS's own routes).
fn read_braces(path: &str) -> Result<Vec<&str>, ()> {
    let bytes = path.as_bytes();
    let mut captures = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'{', Some(b'{')) | (b'}', Some(b'}')) => i += 2,
            (b'}', _) => return Err(()),
            (b'{', _) => {
                let len = path[i + 1..].find('}').ok_or(())?;
                let name = &path[i + 1..i + 1 + len];
                // `{*rest}` must end a route, and a prefix never does.
                if name.is_empty() || name.contains(['*', '/', '{']) {
                    return Err(());
                }
                let after = i + len + 2;
                // Nothing may follow a capture within its segment.
                if bytes.get(after).is_some_and(|b| *b != b'/') {
                    return Err(());
                }
                captures.push(name);
                i = after;
            }
            _ => i += 1,
        }
    }
    Ok(captures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_prefixes_and_the_root_are_fine() {
        for prefix in [
            "",
            "/",
            "//",
            "/auth",
            "/auth/",
            "/a/b-c_d.e~f",
            "/a%20b",
            "/a:b",
            "/a*",
        ] {
            assert_eq!(check_prefix(prefix), Ok(None), "{prefix}");
        }
    }

    #[test]
    fn a_prefix_without_a_leading_slash_is_refused_with_the_fix() {
        for (prefix, fixed) in [("auth", "/auth"), ("auth/", "/auth"), ("a/b", "/a/b")] {
            let e = check_prefix(prefix).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("`prefix: {prefix}` does not start with `/`")),
                "{text}"
            );
            assert!(
                text.ends_with(&format!("; write `prefix: {fixed}`")),
                "{text}"
            );
        }
    }

    #[test]
    fn what_makes_mas_router_panic_is_refused() {
        for prefix in [
            "/:tenant", "/auth/*x", "/a{b", "/a}b", "/{}", "/{*rest}", "/{x}y", "/{a/b}",
        ] {
            assert!(check_prefix(prefix).is_err(), "{prefix}");
        }
        assert_eq!(
            check_prefix("/:tenant").unwrap_err().to_string(),
            "`prefix: /:tenant` has the segment `:tenant`, and MAS's router panics at start-up on a segment that starts with `:` (the capture syntax of older axum); rename that segment"
        );
    }

    #[test]
    fn what_mas_accepts_but_no_request_reaches_is_a_warning() {
        let warning = |p: &str| check_prefix(p).unwrap().unwrap_or_default();
        assert!(
            warning("/{tenant}").starts_with("`prefix: /{tenant}` holds the capture `{tenant}`: MAS's router matches any path segment there"),
            "{}",
            warning("/{tenant}")
        );
        assert!(warning("/a{b}/c").contains("the capture `{b}`"));
        assert!(warning("/my auth").starts_with(
            "`prefix: /my auth` holds ` `, which a request path carries only percent-encoded"
        ));
        assert!(warning("/a?b").contains("holds `?`"));
        assert!(warning("/{{x}}").contains("holds `{`"));
        assert!(warning("/ä").contains("holds `ä`"));
        assert!(warning("/a$b").contains("generate-nginx cannot write"));
    }
}
