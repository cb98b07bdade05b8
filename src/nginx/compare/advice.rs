//! What a location meant for MAS needs from the listener it reaches, and
//! the messages when it reaches no bind or a listener without it: each
//! fix points at the binds of listeners that serve what the location
//! needs, as nginx would write them (a bind on every address is reached on
//! loopback), never at a listener that would answer 404, nor at one that
//! does not take what the `proxy_pass` sends: an http one reaches only
//! listeners without `proxy_protocol: true` and with `tls:` exactly for
//! `https://`; a stream server listeners that expect the PROXY protocol
//! exactly when it sends it. When no listener fits, the fix says what to
//! change in the config or the site instead.

use super::targets::Target;
use super::{Module, Pass};
use crate::config::{Bind, Endpoint, Listener, Plan};

/// A resource that a location needs from the listener it reaches, with a
/// path of it that nginx sends to that location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) resource: &'static str,
    pub(super) path: String,
    /// The path of it in MAS's routes, before the listener's `prefix`.
    pub(super) route: &'static str,
}

/// The message for a `proxy_pass` meant for MAS that reaches no bind;
/// `resolved` says what nginx resolves a host name of `target` to.
pub(super) fn unmatched(
    plan: &Plan,
    at: &str,
    target: &Target,
    resolved: &str,
    pass: &Pass,
) -> String {
    let needs = distinct(&pass.needs);
    let advice = advise(plan, &needs, None, pass);
    let binds = || advice.point_at.iter().flat_map(|l| l.binds.iter());
    let same_kind = |b: &&Bind| match target {
        Target::Unix(_) => b.endpoints.iter().any(|e| matches!(e, Endpoint::Unix(_))),
        Target::Tcp { .. } => b.endpoints.iter().any(|e| !matches!(e, Endpoint::Unix(_))),
    };
    let nearest = binds()
        .find(same_kind)
        .or_else(|| binds().find(|b| !b.endpoints.is_empty()));
    match nearest {
        Some(bind) => format!(
            "{at}: proxy_pass to {target}{resolved}, which no bind of the config has (the nearest is {} at {}); {}",
            bind.spec, bind.location, advice.text
        ),
        None if needs.is_empty() => format!(
            "{at}: proxy_pass to {target}{resolved}, which no bind of the config has, and no bind has an address nginx could use ({} has only `fd:` binds); add a `socket:` or `host:` bind",
            plan.listeners
                .first()
                .map_or_else(|| "the config".to_owned(), |l| l.location.to_string())
        ),
        None => format!(
            "{at}: proxy_pass to {target}{resolved}, which no bind of the config has; {}",
            advice.text
        ),
    }
}

/// The message for a `proxy_pass` that reaches `listener`, when that
/// listener lacks a resource its location needs.
pub(super) fn lacking(
    plan: &Plan,
    at: &str,
    target: &Target,
    listener: &Listener,
    pass: &Pass,
) -> Option<String> {
    // A stream server that reaches a bind is not held to the auth host's
    // resources: it may serve a listener of another purpose (health checks
    // over the PROXY protocol), and only one that reaches no bind is taken
    // for MAS's public port, to choose what to point it at.
    if pass.module == Module::Stream {
        return None;
    }
    let needs = distinct(&pass.needs);
    let missing: Vec<&Need> = needs
        .iter()
        .copied()
        .filter(|n| !serves(listener, n))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let advice = advise(plan, &needs, Some(listener), pass);
    Some(format!(
        "{at}: proxy_pass to {target} reaches listener {} ({}), which does not serve {}, which paths of this location need ({}), so MAS answers 404 to them; {}",
        listener.label(),
        listener.location,
        resource_list(&missing),
        path_list(&missing),
        advice.text
    ))
}

/// A fix, and the listeners it points at.
struct Advice<'p> {
    point_at: Vec<&'p Listener>,
    text: String,
}

/// Why `listener` does not take what `pass` sends, and what to change in
/// the config or the site so that it does; `None` when it takes it.
fn refusal(listener: &Listener, pass: &Pass) -> Option<(&'static str, String)> {
    match pass.module {
        Module::Http if listener.proxy_protocol => Some((
            "expects the PROXY protocol, which nginx's http proxy cannot send",
            "set `proxy_protocol: false` on it (nginx passes the client's address in X-Forwarded-For), or reach it from a stream server with `proxy_protocol on`".to_owned(),
        )),
        Module::Http => {
            let https = super::targets::is_https(pass.arg);
            match (https, listener.tls) {
                (true, false) => Some((
                    "has no `tls:` and speaks plain HTTP",
                    "write `http://` instead of `https://`".to_owned(),
                )),
                (false, true) => Some((
                    "terminates TLS itself (`tls:`)",
                    "remove `tls:` from it (nginx terminates TLS), or write `https://` instead of `http://`".to_owned(),
                )),
                _ => None,
            }
        }
        Module::Stream => match (pass.proxy_protocol, listener.proxy_protocol) {
            (Some((true, line)), false) => Some((
                "does not expect the PROXY protocol that this stream server sends",
                format!("set `proxy_protocol: true` on it, or remove `proxy_protocol on` (line {line})"),
            )),
            (None | Some((false, _)), true) => Some((
                "expects the PROXY protocol, which this stream server does not send",
                "add `proxy_protocol on;` to the stream server".to_owned(),
            )),
            _ => None,
        },
    }
}

/// The fix for a location that needs `needs` (and reaches `reached`, if
/// any listener), among the listeners that take what `pass` sends: the
/// binds of every one that serves all of it; else, when only listeners
/// that do not take it serve all of it, what to change for the first of
/// them; else what to add to the listener that serves the most of it
/// (`reached` when it serves as much as any), and where else the rest
/// could go.
fn advise<'p>(
    plan: &'p Plan,
    needs: &[&Need],
    reached: Option<&Listener>,
    pass: &Pass,
) -> Advice<'p> {
    let takes = |l: &&Listener| refusal(l, pass).is_none();
    let serves_all = |l: &&Listener| needs.iter().all(|n| serves(l, n));
    let fit: Vec<&Listener> = plan
        .listeners
        .iter()
        .filter(takes)
        .filter(serves_all)
        .collect();
    if let Some(first) = fit.first() {
        let addresses = addresses(fit.iter().flat_map(|l| l.binds.iter()));
        let text = if addresses.is_empty() {
            format!(
                "listener {} ({}), which serves what this location needs, has only `fd:` binds, which name no address nginx could use; add a `socket:` or `host:` bind to it, and point the proxy_pass there",
                first.label(),
                first.location
            )
        } else {
            format!("point it at {}", addresses.join(" or "))
        };
        return Advice {
            point_at: fit,
            text,
        };
    }
    if let Some(other) = plan.listeners.iter().find(serves_all) {
        let (why, change) = refusal(other, pass).expect("a listener that fits was returned above");
        let at = addresses(other.binds.iter());
        let point = if at.is_empty() {
            "add a `socket:` or `host:` bind to it".to_owned()
        } else {
            format!("point it at {}", at.join(" or "))
        };
        return Advice {
            point_at: vec![other],
            text: format!(
                "no listener that serves what {} needs takes what it sends: listener {} ({}) serves it but {why}; {change}, and {point}",
                whose(pass),
                other.label(),
                other.location
            ),
        };
    }
    let usable: Vec<&Listener> = plan.listeners.iter().filter(takes).collect();
    let served = |l: &Listener| needs.iter().filter(|n| serves(l, n)).count();
    let most = usable.iter().map(|l| served(l)).max().unwrap_or(0);
    let best = usable.iter().copied().find(|l| match reached {
        Some(r) if served(r) == most => l.index == r.index,
        _ => served(l) == most,
    });
    let Some(best) = best else {
        let sends = match pass.module {
            Module::Http if super::targets::is_https(pass.arg) => {
                "HTTPS without the PROXY protocol, which a listener with `tls:` and without `proxy_protocol: true` takes"
            }
            Module::Http => {
                "plain HTTP without the PROXY protocol, which a listener without `tls:` and without `proxy_protocol: true` takes"
            }
            Module::Stream if pass.proxy_protocol.is_some_and(|(on, _)| on) => {
                "the PROXY protocol, which a listener with `proxy_protocol: true` takes"
            }
            Module::Stream => "no PROXY header, which a listener without `proxy_protocol: true` takes",
        };
        let serving = if needs.is_empty() {
            String::new()
        } else {
            format!(" that serves {}", resource_list(needs))
        };
        return Advice {
            point_at: Vec::new(),
            text: format!(
                "no listener of the config takes what it sends ({sends}); add such a listener{serving}"
            ),
        };
    };
    let reached_is_best = reached.is_some_and(|r| r.index == best.index);
    let missing: Vec<&Need> = needs.iter().copied().filter(|n| !serves(best, n)).collect();
    let mut text = if reached_is_best {
        format!(
            "add {} to the resources of listener {}",
            resource_list(&missing),
            best.label()
        )
    } else {
        let at = addresses(best.binds.iter());
        let point = if at.is_empty() {
            String::new()
        } else {
            format!("point it at {} and ", at.join(" or "))
        };
        format!(
            "{point}add {} to the resources of listener {} ({})",
            resource_list(&missing),
            best.label(),
            best.location
        )
    };
    // Paths that another listener serves may go there in locations of
    // their own; each path is offered once, to the first such listener.
    let mut offered: Vec<&str> = Vec::new();
    for other in usable.iter().filter(|l| l.index != best.index) {
        let theirs: Vec<&Need> = missing
            .iter()
            .copied()
            .filter(|n| serves(other, n) && !offered.contains(&n.resource))
            .collect();
        let at = addresses(other.binds.iter());
        if theirs.is_empty() || at.is_empty() {
            continue;
        }
        offered.extend(theirs.iter().map(|n| n.resource));
        text.push_str(&format!(
            ", or give {} a location of its own that reaches {}",
            path_list(&theirs),
            at.join(" or ")
        ));
    }
    if let Some(assets) = missing.iter().find(|n| n.resource == "assets") {
        text.push_str(&format!(
            ", or let nginx serve {0} itself (a `location ^~ {0}` with `alias` to MAS's assets directory, as generate-nginx --assets-dir writes)",
            assets.path
        ));
    }
    Advice {
        point_at: vec![best],
        text,
    }
}

/// What a pass's needs are those of, for messages.
fn whose(pass: &Pass) -> &'static str {
    match pass.module {
        Module::Http => "this location",
        Module::Stream => "this stream server",
    }
}

/// The first need of each resource, in order.
fn distinct(needs: &[Need]) -> Vec<&Need> {
    let mut out: Vec<&Need> = Vec::new();
    for need in needs {
        if !out.iter().any(|n| n.resource == need.resource) {
            out.push(need);
        }
    }
    out
}

fn serves(listener: &Listener, need: &Need) -> bool {
    listener.resources.iter().any(|r| r == need.resource)
}

/// `` `discovery`, `human` ``.
fn resource_list(needs: &[&Need]) -> String {
    needs
        .iter()
        .map(|n| format!("`{}`", n.resource))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `/login, /graphql`.
fn path_list(needs: &[&Need]) -> String {
    needs
        .iter()
        .map(|n| n.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The addresses nginx connects to for these binds, as a `proxy_pass`
/// writes them.
fn addresses<'b>(binds: impl Iterator<Item = &'b Bind>) -> Vec<String> {
    binds
        .flat_map(|b| b.endpoints.iter())
        .map(|e| match e {
            Endpoint::Unix(p) => format!("unix:{}", p.display()),
            Endpoint::Tcp(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
            Endpoint::Tcp(a) => a.to_string(),
            Endpoint::AnyTcp(p) => format!("127.0.0.1:{p}"),
        })
        .collect()
}
