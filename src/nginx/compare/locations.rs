//! Which `location` of an http server nginx picks for a URI.

/// What a `location` matches.
pub(super) enum LocationPath<'a> {
    /// A prefix or an exact path (`/auth/`, `^~ /auth/`, `= /auth`).
    Literal(&'a str),
    /// A regular expression (`~`, `~*`).
    Regex(&'a str),
    /// `@name`, reached only from within nginx.
    Named,
}

/// The path of a `location`, as nginx reads its modifiers, which may be
/// separate words or written onto the path (`=/x`).
pub(super) fn location_path(args: &[String]) -> LocationPath<'_> {
    let (modifier, path) = match args {
        [m, path, ..] if matches!(m.as_str(), "=" | "^~" | "~" | "~*") => {
            (m.as_str(), path.as_str())
        }
        [one, ..] => {
            let one = one.as_str();
            if let Some(p) = one.strip_prefix("^~") {
                ("^~", p)
            } else if let Some(p) = one.strip_prefix("~*") {
                ("~*", p)
            } else if let Some(p) = one.strip_prefix('~') {
                ("~", p)
            } else if let Some(p) = one.strip_prefix('=') {
                ("=", p)
            } else {
                ("", one)
            }
        }
        [] => ("", ""),
    };
    match modifier {
        "~" | "~*" => LocationPath::Regex(path),
        _ if path.starts_with('@') => LocationPath::Named,
        _ => LocationPath::Literal(path),
    }
}
