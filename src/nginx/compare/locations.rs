//! Which `location` of an http server nginx picks for a URI, as its
//! `ngx_http_core_find_location` does (`src/http/ngx_http_core_module.c`).
//!
//! An exact (`=`) location that equals the URI ends the search. Otherwise
//! the longest prefix location that the URI starts with is remembered and
//! the locations nested in it are searched the same way; then, unless that
//! prefix is written with `^~`, the regular expressions (`~`, `~*`) of the
//! level are tried in the order they appear, and the first that matches
//! wins (its nested locations searched in turn); else the longest prefix
//! stands.
//!
//! There is no regular expression engine here, and nginx's (PCRE) is not
//! Rust's anyway: a regular expression is decided only where its literal
//! parts decide it (`^/_matrix/client/...` cannot match `/login`;
//! `\.php$` cannot match `/graphql`). Where it might match, the lookup says
//! [`Found::Unknown`], and callers must then assume nothing about the URI.

use crate::nginx::syntax::Directive;

/// What a `location` matches.
pub(super) enum LocationPath<'a> {
    /// A prefix (`/auth/`, `^~ /auth/`) or an exact path (`= /auth`).
    Literal {
        path: &'a str,
        /// `=`: only this very path.
        exact: bool,
        /// `^~`: when it is the longest prefix, no regular expression is tried.
        noregex: bool,
    },
    /// A regular expression (`~`, or `~*` without regard to case).
    Regex { pattern: &'a str, caseless: bool },
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
        "~" | "~*" => LocationPath::Regex {
            pattern: path,
            caseless: modifier == "~*",
        },
        _ if path.starts_with('@') => LocationPath::Named,
        _ => LocationPath::Literal {
            path,
            exact: modifier == "=",
            noregex: modifier == "^~",
        },
    }
}

/// Where nginx's lookup of a URI ends.
#[derive(Debug)]
pub(super) enum Found<'t> {
    /// In this location, the innermost one.
    At(&'t Directive),
    /// In no location: only the server's own directives apply.
    Nowhere,
    /// Not known: a regular expression that might match was reached.
    Unknown,
}

/// The location of the server whose directives are `items` that nginx
/// picks for `uri` (a path, without query).
pub(super) fn find_location<'t>(items: &'t [Directive], uri: &str) -> Found<'t> {
    match lookup(items, uri) {
        Lookup::Done(d) | Lookup::Open(Some(d)) => Found::At(d),
        Lookup::Open(None) => Found::Nowhere,
        Lookup::Unknown => Found::Unknown,
    }
}

/// One level of the lookup.
enum Lookup<'t> {
    /// An exact location or a regular expression matched: the search ends.
    Done(&'t Directive),
    /// The longest prefix, if any, which a regular expression of an
    /// enclosing level may still override.
    Open(Option<&'t Directive>),
    Unknown,
}

fn lookup<'t>(items: &'t [Directive], uri: &str) -> Lookup<'t> {
    let locations = || items.iter().filter(|d| d.name == "location");
    let mut longest: Option<(&Directive, usize, bool)> = None;
    for d in locations() {
        match location_path(&d.args) {
            LocationPath::Literal {
                path, exact: true, ..
            } if path == uri => return Lookup::Done(d),
            LocationPath::Literal {
                path,
                exact: false,
                noregex,
            } if uri.starts_with(path) && longest.is_none_or(|(_, len, _)| path.len() > len) => {
                longest = Some((d, path.len(), noregex));
            }
            _ => {}
        }
    }
    let mut found = None;
    let mut noregex = false;
    if let Some((prefix, _, no)) = longest {
        noregex = no;
        match lookup(prefix.children(), uri) {
            Lookup::Done(inner) => return Lookup::Done(inner),
            Lookup::Unknown => return Lookup::Unknown,
            Lookup::Open(inner) => found = Some(inner.unwrap_or(prefix)),
        }
    }
    if !noregex {
        for d in locations() {
            let LocationPath::Regex { pattern, caseless } = location_path(&d.args) else {
                continue;
            };
            match regex_matches(pattern, caseless, uri) {
                Some(false) => {}
                None => return Lookup::Unknown,
                Some(true) => {
                    return match lookup(d.children(), uri) {
                        Lookup::Done(inner) | Lookup::Open(Some(inner)) => Lookup::Done(inner),
                        Lookup::Open(None) => Lookup::Done(d),
                        Lookup::Unknown => Lookup::Unknown,
                    }
                }
            }
        }
    }
    Lookup::Open(found)
}

/// Whether nginx hands `uri`, found in `location` of the server whose
/// directives are `server`, to that location's handler as it is: no
/// `rewrite` of the server changes it before the lookup, and the location
/// neither answers it itself (`return`) nor rewrites it into another
/// lookup (a `rewrite` without `break`). A `rewrite` counts when its
/// regular expression might match; one in an `if` block too.
pub(super) fn stays(server: &[Directive], location: &Directive, uri: &str) -> bool {
    let rewrites = |items: &[Directive], count: &dyn Fn(&Directive) -> bool| {
        let here = items.iter();
        let in_ifs = items
            .iter()
            .filter(|d| d.name == "if")
            .flat_map(|d| d.children());
        here.chain(in_ifs).any(|d| {
            d.name == "rewrite"
                && count(d)
                && d.args
                    .first()
                    .is_some_and(|re| regex_matches(re, false, uri) != Some(false))
        })
    };
    let answers = |items: &[Directive]| items.iter().any(|d| d.name == "return");
    let leaves = |d: &Directive| d.args.get(2).is_none_or(|flag| flag != "break");
    !(answers(server)
        || rewrites(server, &|_| true)
        || answers(location.children())
        || rewrites(location.children(), &leaves))
}

/// Whether the regular expression `pattern` matches `uri`, where its
/// literal start (after `^`) or end (before `$`) decides it; `None` when
/// they do not.
pub(super) fn regex_matches(pattern: &str, caseless: bool, uri: &str) -> Option<bool> {
    literal_matches(pattern, caseless, uri).or_else(|| {
        // What the literals leave open, the pattern itself decides, where
        // the regex crate reads it as PCRE would (no look-around, no
        // back-references: those it refuses, and the answer stays open).
        regex::RegexBuilder::new(pattern)
            .case_insensitive(caseless)
            .build()
            .ok()
            .map(|re| re.is_match(uri))
    })
}

/// [`regex_matches`] by the pattern's literal start and end alone.
fn literal_matches(pattern: &str, caseless: bool, uri: &str) -> Option<bool> {
    // Inline flags (`(?i)`) change how the literals compare, and an
    // alternation at the top level makes each side a pattern of its own.
    if pattern.contains("(?") || has_top_level_alternation(pattern) {
        return None;
    }
    let fold = |s: &str| {
        if caseless {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        }
    };
    let uri = fold(uri);
    let anchored = pattern.strip_prefix('^');
    let (head, rest) = literal_head(anchored.unwrap_or(pattern));
    let head = fold(&head);
    let ends = rest == "$";
    if rest.is_empty() || ends {
        // The whole pattern is literal.
        return Some(match (anchored.is_some(), ends) {
            (true, true) => uri == head,
            (true, false) => uri.starts_with(&head),
            (false, true) => uri.ends_with(&head),
            (false, false) => uri.contains(&head),
        });
    }
    if anchored.is_some() && !uri.starts_with(&head) {
        return Some(false);
    }
    if let Some(tail) = literal_tail(pattern) {
        if !uri.ends_with(&fold(&tail)) {
            return Some(false);
        }
    }
    None
}

/// Characters with a meaning of their own in a regular expression.
const META: &str = ".[](){}*+?|^$";

/// The literal characters at the start of `pattern` (escapes undone), and
/// the rest. A literal followed by a quantifier that lets it be absent or
/// repeated (`?`, `*`, `{`) is left to the rest.
fn literal_head(pattern: &str) -> (String, &str) {
    let mut head = String::new();
    let mut last_start = 0;
    let mut chars = pattern.char_indices().peekable();
    let mut end = pattern.len();
    while let Some(&(i, c)) = chars.peek() {
        let literal = match c {
            '\\' => {
                let escaped = pattern[i + 1..].chars().next();
                match escaped {
                    // `\d`, `\w`, `\b`, ...: classes and assertions.
                    Some(e) if !e.is_ascii_alphanumeric() => Some((e, 1 + e.len_utf8())),
                    _ => None,
                }
            }
            c if META.contains(c) => None,
            c => Some((c, c.len_utf8())),
        };
        let Some((ch, len)) = literal else {
            end = i;
            break;
        };
        last_start = i;
        head.push(ch);
        for _ in 0..len {
            chars.next();
        }
    }
    let rest = &pattern[end..];
    if rest.starts_with(['?', '*', '{']) && !head.is_empty() {
        head.pop();
        return (head, &pattern[last_start..]);
    }
    (head, rest)
}

/// The literal characters right before a final, unescaped `$`.
fn literal_tail(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let backslashes_before = |i: usize| chars[..i].iter().rev().take_while(|&&c| c == '\\').count();
    let last = chars.len().checked_sub(1)?;
    if chars[last] != '$' || backslashes_before(last) % 2 == 1 {
        return None;
    }
    let mut tail = Vec::new();
    let mut i = last;
    while i > 0 {
        let c = chars[i - 1];
        if backslashes_before(i - 1) % 2 == 1 {
            if c.is_ascii_alphanumeric() {
                break;
            }
            tail.push(c);
            i -= 2;
        } else {
            if META.contains(c) || c == '\\' {
                break;
            }
            tail.push(c);
            i -= 1;
        }
    }
    Some(tail.into_iter().rev().collect())
}

/// Whether `pattern` has a `|` outside groups and classes.
fn has_top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0usize;
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '[' => in_class = true,
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::syntax::parse;

    /// The line of the location `uri` lands in, `0` for none, or `None`
    /// when it cannot be told.
    fn land(server: &str, uri: &str) -> Option<usize> {
        let tree = parse(server).expect("valid nginx syntax");
        match find_location(&tree, uri) {
            Found::At(d) => Some(d.line),
            Found::Nowhere => Some(0),
            Found::Unknown => None,
        }
    }

    #[test]
    fn exact_then_longest_prefix_then_regex_as_nginx_picks() {
        let server = "location = /login { }\nlocation / { }\nlocation /assets/ { }\nlocation ^~ /auth/ { }\nlocation ~ ^/_matrix/client/[^/]+/(login|logout)(/|$) { }\nlocation ~* \\.PNG$ { }\n";
        assert_eq!(land(server, "/login"), Some(1));
        assert_eq!(land(server, "/login/x"), Some(2));
        assert_eq!(land(server, "/assets/app.js"), Some(3));
        // A regular expression beats a plain prefix...
        assert_eq!(land(server, "/assets/logo.png"), Some(6));
        // ... not one written with `^~`.
        assert_eq!(land(server, "/auth/logo.png"), Some(4));
        // Its literal start rules this one out: the prefix stands.
        assert_eq!(land(server, "/graphql"), Some(2));
        // The pattern itself decides what its literals leave open.
        assert_eq!(land(server, "/_matrix/client/v3/login"), Some(5));
        assert_eq!(land(server, "/_matrix/client/v3/sync"), Some(2));
        // One that only PCRE reads (look-ahead) leaves it open.
        assert_eq!(
            land("location / { }\nlocation ~ ^/(?!assets/) { }\n", "/login"),
            None
        );
        assert_eq!(land("location /auth/ { }\n", "/graphql"), Some(0));
    }

    #[test]
    fn nested_locations_are_searched_inside_the_longest_prefix() {
        let server = "location / {\n  location /assets/ { }\n  location ~ \\.json$ { }\n}\nlocation ~ ^/oauth2/ { }\n";
        assert_eq!(land(server, "/assets/x.css"), Some(2));
        assert_eq!(land(server, "/oauth2/keys.json"), Some(3));
        assert_eq!(land(server, "/oauth2/token"), Some(5));
        assert_eq!(land(server, "/login"), Some(1));
    }

    #[test]
    fn a_uri_rewritten_or_answered_by_nginx_does_not_stay() {
        let stays_in = |server: &str, uri: &str| {
            let tree = parse(server).expect("valid nginx syntax");
            let Found::At(location) = find_location(&tree, uri) else {
                panic!("{uri} lands in no location of {server}");
            };
            stays(&tree, location, uri)
        };
        let plain = "location / {\n  proxy_pass http://mas;\n}\n";
        assert!(stays_in(plain, "/login"));
        let server_rewrite = format!("rewrite ^/old/(.*)$ /$1 last;\n{plain}");
        assert!(stays_in(&server_rewrite, "/login"));
        assert!(!stays_in(&server_rewrite, "/old/login"));
        let in_if = format!("if ($http_x) {{\n  rewrite ^ /elsewhere;\n}}\n{plain}");
        assert!(!stays_in(&in_if, "/login"));
        assert!(!stays_in(&format!("return 404;\n{plain}"), "/login"));
        let location =
            |body: &str| format!("location / {{\n  {body}\n  proxy_pass http://mas;\n}}\n");
        assert!(!stays_in(
            &location("return 301 https://elsewhere$request_uri;"),
            "/login"
        ));
        assert!(!stays_in(
            &location("rewrite ^/login$ /other last;"),
            "/login"
        ));
        assert!(stays_in(
            &location("rewrite ^/login$ /other last;"),
            "/graphql"
        ));
        // `break` ends the rewrites and keeps the request in the location.
        assert!(stays_in(
            &location("rewrite ^/(.*)$ /auth/$1 break;"),
            "/login"
        ));
        // A `return` in an `if` answers only some requests.
        assert!(stays_in(
            &location("if ($x) {\n    return 403;\n  }"),
            "/login"
        ));
    }

    #[test]
    fn regular_expressions_are_decided_by_their_literals_then_the_pattern() {
        let cases: [(&str, bool, &str, Option<bool>); 16] = [
            ("^/auth/", false, "/auth/login", Some(true)),
            ("^/auth/", false, "/login", Some(false)),
            ("^/graphql$", false, "/graphql", Some(true)),
            ("^/graphql$", false, "/graphql/playground", Some(false)),
            ("^/Assets/", true, "/assets/x", Some(true)),
            ("^/assets?/", false, "/asset/x", Some(true)),
            ("^/assets?/", false, "/login", Some(false)),
            ("\\.php$", false, "/graphql", Some(false)),
            ("\\.php$", false, "/x.php", Some(true)),
            ("\\.(js|css)$", false, "/assets/x.js", Some(true)),
            ("\\.(js|css)$", false, "/assets/x.png", Some(false)),
            ("^/a|^/b", false, "/b", Some(true)),
            ("(?i)\\.PHP$", false, "/x.php", Some(true)),
            ("^/oauth2/\\w+$", false, "/oauth2/token", Some(true)),
            // Look-around is PCRE's only.
            ("^/(?!assets/)", false, "/login", None),
            ("^/oauth2/\\w+$", false, "/graphql", Some(false)),
        ];
        for (pattern, caseless, uri, want) in cases {
            assert_eq!(
                regex_matches(pattern, caseless, uri),
                want,
                "{pattern} ({caseless}) on {uri}"
            );
        }
    }
}
