//! Warnings about the URLs the config gives MAS, held against the site:
//! `public_base` (its host, port and path against `--server-name`, the
//! ports nginx listens on and the auth listener's prefix) and
//! `matrix.endpoint` (which must not go through the Matrix host's site).
//!
//! These never refuse a site; the listener they are checked against is
//! chosen by `listeners`.

use super::{MatrixHost, SiteOptions};
use crate::config::{Listener, Plan};
use crate::nginx::options::{homeserver_target, listen_address};

/// The host and the path of a URL, without user, port or brackets.
fn url_host_and_path(url: &str) -> (&str, &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .trim_start_matches('[');
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
    .trim_end_matches(']');
    (host, path)
}

/// The port a URL names, or its scheme's (`https` 443, `http` 80); `None`
/// for another scheme or a port that is no number.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.1.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, p)| p),
    };
    match port.filter(|p| !p.is_empty()) {
        Some(p) => p.parse().ok(),
        None if scheme.eq_ignore_ascii_case("https") => Some(443),
        None if scheme.eq_ignore_ascii_case("http") => Some(80),
        None => None,
    }
}

/// The ports browsers reach the auth host's servers on: the `--listen`
/// ones, else 443 with TLS and 80 without (the port-80 redirect servers
/// are not counted: they only send browsers to https). Empty when nginx
/// listens on loopback only, behind something else that browsers reach.
fn nginx_ports(opts: &SiteOptions) -> Vec<u16> {
    if opts.listen.is_empty() {
        return vec![if opts.tls.is_some() { 443 } else { 80 }];
    }
    let mut ports: Vec<u16> = Vec::new();
    for port in opts
        .listen
        .iter()
        .filter_map(|l| listen_address(l))
        .filter(|a| !a.ip().is_loopback())
        .map(|a| a.port())
    {
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

/// MAS calls the homeserver's `/_synapse/mas/` endpoints at
/// `matrix.endpoint`; through the Matrix host's site, which publishes only
/// what clients need, they are not found.
pub(super) fn check_matrix_endpoint(plan: &Plan, matrix: &MatrixHost, warnings: &mut Vec<String>) {
    let Some((endpoint, location)) = &plan.matrix_endpoint else {
        return;
    };
    if url_host_and_path(endpoint)
        .0
        .eq_ignore_ascii_case(&matrix.server_name)
    {
        let homeserver = homeserver_target(&matrix.homeserver).unwrap_or_default();
        warnings.push(format!(
            "{location}: MAS reaches the homeserver at {endpoint}, through the Matrix host's site, which does not publish the /_synapse/mas/ endpoints MAS calls there, so MAS cannot provision users; set matrix.endpoint to where nginx reaches the homeserver, {homeserver}/"
        ));
    }
}

/// Warnings for a `public_base` that names another host than
/// `--server-name`, a port nginx does not listen on, or a path that the
/// auth host's listener does not serve under.
pub(super) fn check_public_base(
    plan: &Plan,
    auth: &Listener,
    opts: &SiteOptions,
    warnings: &mut Vec<String>,
) {
    let Some(base) = plan.public_base.as_deref() else {
        return;
    };
    let (host, path) = url_host_and_path(base);
    // MAS's `url::Url`, nginx and browsers all take an internationalized
    // name in its `xn--` form.
    if !crate::nginx::idn::same_host(host, &opts.server_name) {
        let ascii = crate::nginx::idn::to_ascii(host)
            .filter(|_| !host.is_ascii())
            .map(|a| format!(" (`{a}` to nginx and browsers)"))
            .unwrap_or_default();
        warnings.push(format!(
            "public_base {base} names host `{host}`{ascii}, not --server-name `{}`; MAS's links would lead elsewhere",
            opts.server_name
        ));
    }
    // Only where nginx serves public_base's scheme: an https public_base
    // before a plain-HTTP nginx has a TLS terminator in front (warned of
    // below), whose port is not nginx's.
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let same_scheme = base
        .split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case(scheme));
    let ports = nginx_ports(opts);
    let elsewhere = |p: &u16| same_scheme && !ports.is_empty() && !ports.contains(p);
    if let Some(port) = url_port(base).filter(elsewhere) {
        let listens = ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        warnings.push(format!(
            "public_base {base} names port {port}, but nginx listens on {listens} here; MAS's links and redirects would lead to a port nginx does not answer: give --listen {port} (and --listen [::]:{port}), or make public_base's port one nginx listens on"
        ));
    }
    let path = format!("/{}", path.trim_end_matches('/'));
    let prefix = auth.prefix.as_deref().unwrap_or("").trim_end_matches('/');
    let prefix = if prefix.is_empty() { "/" } else { prefix };
    let path = if path == "/" { "/" } else { path.as_str() };
    if path != prefix {
        warnings.push(format!(
            "public_base {base} has the path `{path}`, but listener {} serves under `{prefix}`; MAS's links would miss its pages: make them the same",
            auth.label()
        ));
    }
}
