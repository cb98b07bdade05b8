//! What a location meant for MAS needs from the listener it reaches, and
//! the messages when it reaches no bind or a listener without it: each
//! fix points at the binds of listeners that serve what the location
//! needs, as nginx would write them (a bind on every address is reached on
//! loopback), never at a listener that would answer 404.

use super::targets::Target;
use crate::config::{Bind, Endpoint, Listener, Plan};

/// A resource that a location needs from the listener it reaches, with a
/// path of it that nginx sends to that location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) resource: &'static str,
    pub(super) path: String,
}

/// The message for a `proxy_pass` meant for MAS that reaches no bind.
pub(super) fn unmatched(plan: &Plan, at: &str, target: &Target, needs: &[Need]) -> String {
    let needs = distinct(needs);
    let advice = advise(plan, &needs, None);
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
            "{at}: proxy_pass to {target}, which no bind of the config has (the nearest is {} at {}); {}",
            bind.spec, bind.location, advice.text
        ),
        None if needs.is_empty() => format!(
            "{at}: proxy_pass to {target}, which no bind of the config has, and no bind has an address nginx could use ({} has only `fd:` binds); add a `socket:` or `host:` bind",
            plan.listeners
                .first()
                .map_or_else(|| "the config".to_owned(), |l| l.location.to_string())
        ),
        None => format!(
            "{at}: proxy_pass to {target}, which no bind of the config has; {}",
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
    needs: &[Need],
) -> Option<String> {
    let needs = distinct(needs);
    let missing: Vec<&Need> = needs
        .iter()
        .copied()
        .filter(|n| !serves(listener, n))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let advice = advise(plan, &needs, Some(listener));
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

/// The fix for a location that needs `needs` (and reaches `reached`, if
/// any listener): the binds of every listener that serves all of it; else
/// what to add to the listener that serves the most of it (`reached` when
/// it serves as much as any), and where else the rest could go.
fn advise<'p>(plan: &'p Plan, needs: &[&Need], reached: Option<&Listener>) -> Advice<'p> {
    let fit: Vec<&Listener> = plan
        .listeners
        .iter()
        .filter(|l| needs.iter().all(|n| serves(l, n)))
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
    let served = |l: &Listener| needs.iter().filter(|n| serves(l, n)).count();
    let most = plan.listeners.iter().map(served).max().unwrap_or(0);
    let best = plan.listeners.iter().find(|l| match reached {
        Some(r) if served(r) == most => l.index == r.index,
        _ => served(l) == most,
    });
    let Some(best) = best else {
        return Advice {
            point_at: Vec::new(),
            text: "add a listener to the config".to_owned(),
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
    for other in plan.listeners.iter().filter(|l| l.index != best.index) {
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
