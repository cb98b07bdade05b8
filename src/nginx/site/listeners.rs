//! Which listener serves each host: the auth host's, which must serve all
//! of MAS's pages, and the Matrix host's `compat` one; and what is said
//! about a listener that expects the PROXY protocol but that the site does
//! not reach.
//!
//! How nginx reaches the chosen listeners is `upstream`'s; whether
//! `public_base` fits the auth host's listener is `urls`'.

use super::upstream::{choose_bind, tcp_servers};
use super::{SiteError, SiteOptions, AUTH_RESOURCES};
use crate::config::{BindSpec, Listener, Plan};

/// A listener with `proxy_protocol: true` is meant for a proxy in front of
/// it, and only nginx's stream module can be that proxy; the site reaches
/// only the auth host's listener (and the Matrix host's compat one), so any
/// other is said, with how to reach it, rather than left out silently.
pub(super) fn warn_of_unreached_proxy_protocol(
    plan: &Plan,
    auth: &Listener,
    compat: Option<&Listener>,
    warnings: &mut Vec<String>,
) {
    let reached =
        |l: &Listener| l.index == auth.index || compat.is_some_and(|c| c.index == l.index);
    for listener in plan
        .listeners
        .iter()
        .filter(|l| l.proxy_protocol && !reached(l))
    {
        let target = match choose_bind(listener).map(|b| (b, &b.spec)) {
            Some((_, BindSpec::Unix { path, .. })) => format!("unix:{}", path.display()),
            Some((bind, _)) => tcp_servers(bind)
                .first()
                .map_or_else(|| "ADDRESS".to_owned(), |s| s.address.clone()),
            None => "ADDRESS".to_owned(),
        };
        warnings.push(format!(
            "{}: listener {} expects the PROXY protocol and gets no nginx configuration: generate-nginx writes it only for the auth host's listener, {}; for nginx in front of {} too, write a stream server by hand (`server {{ listen PORT; proxy_pass {target}; proxy_protocol on; }}` in a `stream {{ }}` block of nginx.conf; Debian: apt-get install libnginx-mod-stream) and check it with mas-sockets check --nginx",
            listener.proxy_protocol_location,
            listener.label(),
            auth.label(),
            listener.label(),
        ));
    }
}

/// The resources the auth host needs from its listener.
fn needed_resources(opts: &SiteOptions) -> Vec<&'static str> {
    let mut needed = AUTH_RESOURCES.to_vec();
    if opts.assets_dir.is_none() {
        needed.push("assets");
    }
    needed
}

/// How the assets may come to a listener that lacks only them: from nginx
/// (`--assets-dir`), unless every such listener expects the PROXY
/// protocol, which only nginx's stream module sends, and a stream server
/// serves no files: then MAS must serve them.
fn assets_hint(plan: &Plan, needed: &[&str], opts: &SiteOptions) -> String {
    // Without listeners, nothing would serve the rest either.
    if opts.assets_dir.is_some() || plan.listeners.is_empty() {
        return String::new();
    }
    let lacking_only_assets: Vec<&Listener> = plan
        .listeners
        .iter()
        .filter(|l| {
            needed
                .iter()
                .filter(|r| **r != "assets")
                .all(|r| l.resources.iter().any(|x| x == r))
        })
        .collect();
    match lacking_only_assets.first() {
        Some(first) if lacking_only_assets.iter().all(|l| l.proxy_protocol) => format!(
            ", or add `- name: assets` to the resources of listener {}: it expects the PROXY protocol, which only nginx's stream module sends, and a stream server cannot serve files, so --assets-dir cannot stand in",
            first.label()
        ),
        _ => ", or give --assets-dir so that nginx serves the assets".to_owned(),
    }
}

/// The auth host's listener: the first that serves every resource the auth
/// host needs; when the site needs nginx's http module (`--assets-dir`, a
/// Matrix host), the first such without `proxy_protocol`, if there is one.
pub(super) fn pick_auth_listener<'p>(
    plan: &'p Plan,
    opts: &SiteOptions,
) -> Result<&'p Listener, SiteError> {
    let needed = needed_resources(opts);
    let serves_all = |l: &Listener| needed.iter().all(|r| l.resources.iter().any(|x| x == r));
    // The assets and the Matrix host need nginx's http module, which cannot
    // send the PROXY protocol: a listener without it serves them, if any.
    let needs_http = opts.assets_dir.is_some() || opts.matrix.is_some();
    let mut candidates = plan.listeners.iter().filter(|l| serves_all(l));
    let first = candidates.next();
    if let Some(listener) = first
        .filter(|l| needs_http && l.proxy_protocol)
        .and_then(|_| candidates.find(|l| !l.proxy_protocol))
        .or(first)
    {
        return Ok(listener);
    }
    let found = if plan.listeners.is_empty() {
        "the config has no listeners".to_owned()
    } else {
        plan.listeners
            .iter()
            .map(|l| format!("{} serves {}", l.label(), l.resources.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Err(SiteError::NoListener {
        needed: needed
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
        found,
        assets_hint: assets_hint(plan, &needed, opts),
    })
}

/// The Matrix host's listener for the compatibility endpoints: the auth
/// host's when it serves `compat`, else the first without `proxy_protocol`
/// that does.
pub(super) fn pick_compat_listener<'p>(
    plan: &'p Plan,
    auth: &'p Listener,
) -> Result<&'p Listener, SiteError> {
    let serves = |l: &Listener| l.resources.iter().any(|r| r == "compat");
    if serves(auth) {
        return Ok(auth);
    }
    if let Some(l) = plan
        .listeners
        .iter()
        .find(|l| serves(l) && !l.proxy_protocol)
    {
        return Ok(l);
    }
    match plan.listeners.iter().find(|l| serves(l)) {
        Some(l) => Err(SiteError::CompatBehindProxyProtocol {
            listener: l.label(),
            location: l.proxy_protocol_location.clone(),
        }),
        None => Err(SiteError::NoCompat),
    }
}
