//! The path MAS sees for a request that an http `proxy_pass` with a URI
//! part passes on, as nginx's proxy module builds it (`proxy_pass` in the
//! ngx_http_proxy_module docs; `ngx_http_proxy_create_request`):
//!
//! - without a URI part (`http://127.0.0.1:8080`), the request's URI goes
//!   as it is, and nothing here applies;
//! - with a literal one (`http://127.0.0.1:8080/`), the part of the URI
//!   that matches the location (a prefix, or an exact `=` path) is
//!   replaced by it: `location /auth/ { proxy_pass http://x/; }` sends
//!   `/auth/login` as `/login`;
//! - with variables (`http://127.0.0.1:8080/auth$request_uri`), the URI it
//!   evaluates to replaces the request's whole;
//! - after a `rewrite ... break` in the location, a literal URI part is
//!   ignored and the rewritten URI goes instead;
//! - in a location given by a regular expression, a named location, or an
//!   `if` or `limit_except` block, `nginx -t` refuses a literal one.
//!
//! MAS serves every route under the listener's `prefix` (`Router::nest` in
//! `crates/cli/src/server.rs`), so a URI part that moves a path out of it,
//! or strips it, gets 404 for every request. Only `$request_uri`, `$uri`
//! and `$document_uri` (the path) and `$args`, `$query_string`, `$is_args`
//! (the query, which is no part of a path) are evaluated: a URI part with
//! other variables, or where a `rewrite` might apply, is left unchecked.

use super::locations::{location_path, regex_matches, LocationPath};
use super::{Module, Pass};
use crate::config::Listener;
use crate::nginx::syntax::Directive;

/// An http `proxy_pass` argument split into the part without its URI
/// (`http://127.0.0.1:8080`, `http://unix:/run/mas/web.sock`) and the URI
/// part (`/`, `/auth$request_uri`); `None` without a URI part.
pub(super) fn split_uri(arg: &str) -> Option<(&str, &str)> {
    use super::targets::strip_prefix_caseless;
    let rest =
        strip_prefix_caseless(arg, "http://").or_else(|| strip_prefix_caseless(arg, "https://"))?;
    let scheme = arg.len() - rest.len();
    if let Some(path) = strip_prefix_caseless(rest, "unix:") {
        // `http://unix:/path:/uri`: the socket's path ends at the first `:`.
        let colon = path.find(':')?;
        let uri = &path[colon + 1..];
        return (!uri.is_empty()).then(|| (&arg[..scheme + "unix:".len() + colon], uri));
    }
    // The host and port end at the first `/`, `$` or `?`, as in `targets`.
    let authority = rest.find(['/', '$', '?'])?;
    (authority > 0).then(|| (&arg[..scheme + authority], &rest[authority..]))
}

/// The problem when a literal URI part stands where nginx refuses one, for
/// a `proxy_pass` meant for MAS.
pub(super) fn refused(site: &str, pass: &Pass) -> Option<String> {
    let (bare, uri) = split_uri(pass.arg)?;
    if pass.module != Module::Http || uri.contains('$') {
        return None;
    }
    let location = pass.location?;
    let place = match location_path(&location.args) {
        _ if pass.in_block => "inside an `if` or `limit_except` block",
        LocationPath::Regex { .. } => "in a location given by a regular expression",
        LocationPath::Named => "in a named location",
        LocationPath::Literal { .. } => return None,
    };
    Some(format!(
        "{site}:{}: `proxy_pass {}` has a URI part (`{uri}`) {place} (`{location}`), which nginx refuses (nginx -t: \"proxy_pass\" cannot have URI part ...); drop it, `proxy_pass {bare};`, so that nginx passes the request's URI as it is",
        pass.line, pass.arg
    ))
}

/// The problem when `pass`, which reaches `listener`, sends the paths of
/// MAS that its location needs to MAS elsewhere than where the listener
/// serves them; `at` names the line for messages.
pub(super) fn misrouted(at: &str, pass: &Pass, listener: &Listener) -> Option<String> {
    if pass.module != Module::Http {
        return None;
    }
    let location = pass.location?;
    let prefix = match location_path(&location.args) {
        LocationPath::Literal { path, .. } if !pass.in_block => Some(path),
        _ => None,
    };
    let Some((bare, uri)) = split_uri(pass.arg) else {
        return unchanged(at, pass, listener, prefix);
    };
    let literal = !uri.contains('$');
    if literal && prefix.is_none() {
        // nginx refuses it: `refused` says so.
        return None;
    }
    // Each path of MAS that the location needs: what nginx sends for it,
    // and where the listener serves it.
    let checked: Vec<(&str, String, String)> = pass
        .needs
        .iter()
        .filter(|need| !rewritten(location, &need.path))
        .filter_map(|need| {
            let sent = if literal {
                let rest = need.path.strip_prefix(prefix?)?;
                path_of(&format!("{uri}{rest}"))?
            } else {
                evaluate(uri, &need.path)?
            };
            Some((need.path.as_str(), sent, served_at(listener, need.route)))
        })
        .collect();
    let wrong: Vec<&(&str, String, String)> = checked.iter().filter(|(_, s, e)| s != e).collect();
    let &&(path, ref sent, ref expected) = wrong.first()?;
    let how = match prefix {
        Some(prefix) if literal => {
            format!("nginx replaces the location's `{prefix}` with `{uri}`")
        }
        _ => format!("nginx sends `{uri}`, evaluated, in place of the request's URI"),
    };
    let (served, more) = served_and_more(listener, wrong.len());
    let fix = if checked.iter().all(|(p, _, e)| p == e) {
        format!("drop the URI part: `proxy_pass {bare};`")
    } else if let Some(uri) = prefix
        .filter(|_| literal)
        .and_then(|p| fitting_uri(p, &checked))
    {
        format!("make it `proxy_pass {};`", with_uri(bare, &uri))
    } else {
        format!("change the URI part so that MAS gets {expected} for {path}")
    };
    Some(format!(
        "{at}: `proxy_pass {}` sends {path} to MAS as {sent} ({how}), but listener {} ({}) serves it at {expected}, {served}, so MAS answers 404 to it{more}; {fix}",
        pass.arg,
        listener.label(),
        listener.location,
    ))
}

/// As [`misrouted`], for a `proxy_pass` without a URI part, which passes
/// each path as it is: MAS's paths, under public_base's path, must then be
/// where the listener serves them, under its `prefix`.
fn unchanged(at: &str, pass: &Pass, listener: &Listener, prefix: Option<&str>) -> Option<String> {
    let location = pass.location?;
    let checked: Vec<(&str, String, String)> = pass
        .needs
        .iter()
        .filter(|need| !rewritten(location, &need.path))
        .map(|need| {
            (
                need.path.as_str(),
                need.path.clone(),
                served_at(listener, need.route),
            )
        })
        .collect();
    let wrong: Vec<&(&str, String, String)> = checked.iter().filter(|(_, s, e)| s != e).collect();
    let &&(path, _, ref expected) = wrong.first()?;
    let (served, more) = served_and_more(listener, wrong.len());
    // public_base's path, which the needs' paths start with.
    let base = pass
        .needs
        .iter()
        .find(|n| n.path == path)
        .and_then(|n| n.path.strip_suffix(n.route.trim_start_matches('/')));
    let prefix_fix = match base.map(|b| b.trim_end_matches('/')) {
        Some("") => "remove the listener's `prefix`".to_owned(),
        Some(b) => format!("give the listener `prefix: {b}`, as public_base's path"),
        None => "make the listener's `prefix` public_base's path".to_owned(),
    };
    let listener_prefix = listener
        .prefix
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let fix = match prefix {
        Some(p) => match fitting_uri(p, &checked) {
            Some(uri) => format!(
                "{prefix_fix}, or pass it on as `proxy_pass {};`",
                with_uri(pass.arg, &uri)
            ),
            None => prefix_fix,
        },
        // A regex location (the compat endpoints) takes a URI part only
        // with variables.
        None if !listener_prefix.is_empty() => format!(
            "pass it on under the prefix, as `proxy_pass {}{listener_prefix}$request_uri;`",
            pass.arg
        ),
        None => prefix_fix,
    };
    Some(format!(
        "{at}: `proxy_pass {}` passes {path} to MAS as it is, but listener {} ({}) serves it at {expected}, {served}, so MAS answers 404 to it{more}; {fix}",
        pass.arg,
        listener.label(),
        listener.location,
    ))
}

/// How `listener` serves its paths (`under its prefix: /auth`), and how
/// many more of `wrong` paths there are, for messages.
fn served_and_more(listener: &Listener, wrong: usize) -> (String, String) {
    let served = match &listener.prefix {
        Some(p) => format!("under its `prefix: {p}`"),
        None => "without a `prefix`".to_owned(),
    };
    let more = match wrong {
        1 => String::new(),
        n => format!(" (and {} more of this location's paths)", n - 1),
    };
    (served, more)
}

/// A `proxy_pass` argument without a URI part with `uri` added: after a
/// socket's path it follows a `:` (`http://unix:/run/mas/web.sock:/`).
fn with_uri(bare: &str, uri: &str) -> String {
    if bare.contains("://unix:") {
        format!("{bare}:{uri}")
    } else {
        format!("{bare}{uri}")
    }
}

/// The path at which `listener` serves `route`: under its `prefix`, as MAS
/// nests its router there.
fn served_at(listener: &Listener, route: &str) -> String {
    let prefix = listener.prefix.as_deref().unwrap_or("");
    format!(
        "{}/{}",
        prefix.trim_end_matches('/'),
        route.trim_start_matches('/')
    )
}

/// A literal URI part for a location of prefix `location` that sends each
/// checked path where the listener serves it, if one does.
fn fitting_uri(location: &str, checked: &[(&str, String, String)]) -> Option<String> {
    let (path, _, expected) = checked.first()?;
    let rest = path.strip_prefix(location)?;
    let uri = expected.strip_suffix(rest)?;
    let fits = checked.iter().all(|(p, _, e)| {
        p.strip_prefix(location)
            .is_some_and(|rest| format!("{uri}{rest}") == *e)
    });
    (fits && uri.starts_with('/')).then(|| uri.to_owned())
}

/// Whether a `rewrite` of `location` (or of an `if` in it) might change
/// `path` before the proxy_pass: with `break` the request stays, with the
/// rewritten URI, which nginx then sends in place of a literal URI part.
fn rewritten(location: &Directive, path: &str) -> bool {
    let items = location.children();
    let in_ifs = items
        .iter()
        .filter(|d| d.name == "if")
        .flat_map(|d| d.children());
    items.iter().chain(in_ifs).any(|d| {
        d.name == "rewrite"
            && d.args
                .first()
                .is_some_and(|re| regex_matches(re, false, path) != Some(false))
    })
}

/// The path of a URI: up to its query.
fn path_of(uri: &str) -> Option<String> {
    let path = uri.split('?').next().unwrap_or(uri);
    path.starts_with('/').then(|| path.to_owned())
}

/// What a URI part with variables evaluates to, as a path, for a request
/// of `path` without a query; `None` for variables not known here.
fn evaluate(uri: &str, path: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = uri;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}')?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                after.split_at(end)
            }
        };
        match name {
            "request_uri" | "uri" | "document_uri" => out.push_str(path),
            "args" | "query_string" | "is_args" => {}
            _ => return None,
        }
        rest = tail;
    }
    out.push_str(rest);
    path_of(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_part_follows_the_host_and_port_or_the_sockets_colon() {
        assert_eq!(split_uri("http://127.0.0.1:8080"), None);
        assert_eq!(
            split_uri("http://127.0.0.1:8080/"),
            Some(("http://127.0.0.1:8080", "/"))
        );
        assert_eq!(
            split_uri("https://mas/auth$request_uri"),
            Some(("https://mas", "/auth$request_uri"))
        );
        assert_eq!(
            split_uri("http://mas$request_uri"),
            Some(("http://mas", "$request_uri"))
        );
        assert_eq!(split_uri("http://unix:/run/mas/web.sock"), None);
        assert_eq!(
            split_uri("http://unix:/run/mas/web.sock:/mas/"),
            Some(("http://unix:/run/mas/web.sock", "/mas/"))
        );
        assert_eq!(split_uri("http://$backend"), None);
    }

    #[test]
    fn variables_of_the_path_and_query_are_evaluated_others_are_not() {
        assert_eq!(
            evaluate("/auth$request_uri", "/_matrix/client/v3/login").as_deref(),
            Some("/auth/_matrix/client/v3/login")
        );
        assert_eq!(
            evaluate("${uri}$is_args$args", "/login").as_deref(),
            Some("/login")
        );
        assert_eq!(evaluate("/x/$1", "/login"), None);
        assert_eq!(evaluate("?$args", "/login"), None);
    }
}
