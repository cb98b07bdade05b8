//! A parsed nginx file held against the config, for `check --nginx`.
//!
//! Every `proxy_pass` (in http locations and stream servers, through
//! `upstream` blocks) is resolved to sockets and matched with the binds; a
//! socket an upstream lists twice (generate-nginx lists a lone one again, as
//! the next server nginx resends to) is one socket, named at its first line.
//! A match is then checked for TLS (an http `proxy_pass` must say `https://`
//! exactly when the listener has `tls:`) and for the PROXY protocol: nginx sends a header exactly
//! when a stream server (or the stream block) says `proxy_protocol on`, and
//! the listener must expect it exactly then. `proxy_protocol` in the http
//! module is no nginx directive at all.
//!
//! A `proxy_pass` that reaches no bind is a problem only when it is meant for
//! MAS: in a location of the http server that nginx picks for
//! `public_base`'s host (by exact name, wildcard or regular expression, not
//! a default server) that one of MAS's paths (under `public_base`'s path)
//! lands in, as nginx picks locations (so MAS under a prefix on the
//! homeserver's host leaves the homeserver's locations alone), in a
//! location that one of the compatibility endpoints (`login`, `logout`,
//! `refresh` under `/_matrix/client/`) lands in, or in a stream server that
//! sends the PROXY protocol. Others (the homeserver, anything else) are
//! left alone.
//!
//! A `proxy_pass` meant for MAS must also reach a listener that serves
//! what its location needs, or MAS answers 404 there. On the auth host
//! that is the resources of MAS's paths (under public_base's path, listed
//! in `nginx::routes`) that nginx sends to the location, found as nginx
//! finds locations (`locations`): `location /` needs `discovery`, `human`,
//! `oauth`, `graphql` and, unless a location of its own serves `/assets/`,
//! `assets`; `location /graphql` only `graphql`; a location that no path
//! of MAS reaches (`= /health`) needs nothing. Paths that nginx answers or
//! rewrites first, or that a regular expression might take, are left out.
//! A location of the compatibility endpoints needs `compat`. A URI part
//! of the `proxy_pass` must send those paths where the listener serves
//! them, under its `prefix` (`uri`). A stream
//! server sees no paths and is not checked for resources. When a
//! `proxy_pass` reaches no bind, the fix offers the binds of the listeners
//! that serve what its location needs and take what it sends (`advice`);
//! for a stream server that sends the PROXY protocol (the only kind meant
//! for MAS, its public port as generate-nginx writes it) that is what the
//! auth host needs, all of it from one listener.
//!
//! MAS's paths that land in a location nginx answers with an error itself
//! (`return 404`) are warned of: MAS links and redirects there, so they
//! fail (a listener `prefix` that `public_base` does not end with).
//!
//! Where a pass is right, what keeps nginx from sending a request that MAS
//! closed unanswered to a next server is warned of (`retry`): an upstream
//! of two or more entries without `max_fails=0`, and, for a Unix socket
//! over http, `proxy_next_upstream` without `error`,
//! `proxy_next_upstream_tries 1` or the other entry `down`.
//!
//! Which module a file is for: a file with `http`, `stream` or `events`
//! blocks is a whole nginx.conf; otherwise a file whose `server` blocks hold
//! `proxy_pass` directly is stream configuration, else a site. `include` is
//! not followed, and a `proxy_pass` whose host, port or socket path is
//! written with variables cannot be resolved: both are said in a warning.
//! Variables after a literal host and port are the URI's
//! (`http://127.0.0.1:8080$request_uri`) and leave the socket known. Host
//! names, `localhost` too, are resolved as nginx resolves them when it
//! loads its config: with the system resolver (getaddrinfo, which reads
//! `/etc/hosts`), every address it returns; an address of them that the
//! listener reached does not bind is warned of.

use std::path::Path;

use self::advice::{lacking, unmatched, Need};
use self::locations::{find_location, location_path, stays, Found, LocationPath};
use self::retry::Resend;
use self::targets::{addresses, entry_target, reaches, targets_of, unheld, Target};
use super::routes::{AUTH_ROUTES, COMPAT_SAMPLE};
use super::site::COMPAT_LOCATION;
use super::syntax::Directive;
use crate::config::plan::Resolver;
use crate::config::{Bind, Listener, Plan};

mod advice;
mod locations;
mod retry;
mod targets;
mod uri;

/// What the comparison found.
#[derive(Debug, Default)]
pub struct Report {
    /// Mismatches, one line each naming the site's and the config's lines.
    pub problems: Vec<String>,
    /// What each `proxy_pass` reaches, for the summary.
    pub notes: Vec<String>,
    /// What could not be checked, and what works but loses requests.
    pub warnings: Vec<String>,
}

/// Which nginx module a block belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Module {
    Http,
    Stream,
}

/// One `proxy_pass` and what decides whether it must reach MAS.
struct Pass<'a> {
    module: Module,
    line: usize,
    arg: &'a str,
    /// Whether nginx sends a PROXY header here, and the line that says so.
    proxy_protocol: Option<(bool, usize)>,
    /// Whether it is meant for MAS even when it reaches no bind.
    for_mas: bool,
    /// What its location needs from the listener it reaches.
    needs: Vec<Need>,
    /// The resend directives that apply to it (http only).
    resend: Resend<'a>,
    /// The http location it is in, and whether it is in an `if` or
    /// `limit_except` block there: what nginx replaces with its URI part.
    location: Option<&'a Directive>,
    in_block: bool,
}

/// What the levels around an http directive say of it: whether it is in a
/// location for the compatibility endpoints, or one of MAS's, what that
/// location needs from the listener it reaches, the location itself, and
/// whether an `if` or `limit_except` block lies between.
#[derive(Clone, Default)]
struct Scope<'t> {
    compat: bool,
    for_mas: bool,
    needs: Vec<Need>,
    location: Option<&'t Directive>,
    in_block: bool,
}

/// Compares `tree`, read from `site`, with `plan`.
pub fn compare(plan: &Plan, site: &Path, tree: &[Directive], resolver: &dyn Resolver) -> Report {
    let mut report = Report::default();
    let shown = site.display().to_string();
    let mut upstreams: Vec<(Module, &str, &Directive)> = Vec::new();
    let mut passes: Vec<Pass> = Vec::new();
    let whole = tree
        .iter()
        .any(|d| matches!(d.name.as_str(), "http" | "stream" | "events"));
    let mut walker = Walker {
        plan,
        compat: Vec::new(),
        site: &shown,
        report: &mut report,
        upstreams: &mut upstreams,
        passes: &mut passes,
    };
    if whole {
        for d in tree {
            match d.name.as_str() {
                "http" => walker.http_block(d.children()),
                "stream" => walker.stream_block(d.children()),
                _ => walker.note_include(d),
            }
        }
    } else {
        let stream_like = tree
            .iter()
            .any(|d| d.name == "server" && d.children().iter().any(|c| c.name == "proxy_pass"));
        if stream_like {
            walker.stream_block(tree);
        } else {
            walker.http_block(tree);
        }
    }
    for pass in &passes {
        check_pass(plan, &shown, pass, &upstreams, resolver, &mut report);
    }
    // A directive or an upstream that several proxy_passes share is said
    // once.
    let mut said = std::collections::HashSet::new();
    report.warnings.retain(|w| said.insert(w.clone()));
    report
}

struct Walker<'a, 't> {
    plan: &'a Plan,
    /// The locations of the server being walked that the compatibility
    /// endpoints land in.
    compat: Vec<&'t Directive>,
    site: &'a str,
    report: &'a mut Report,
    upstreams: &'a mut Vec<(Module, &'t str, &'t Directive)>,
    passes: &'a mut Vec<Pass<'t>>,
}

impl<'t> Walker<'_, 't> {
    fn note_include(&mut self, d: &Directive) {
        if d.name == "include" {
            self.report.warnings.push(format!(
                "{}:{}: `{d}` is not followed; check those files with another --nginx",
                self.site, d.line
            ));
        }
    }

    fn http_block(&mut self, items: &'t [Directive]) {
        let host = public_host(self.plan);
        let resend = Resend::default().within(items);
        let picked = host
            .as_deref()
            .map(|h| servers_for_host(items, h))
            .unwrap_or_default();
        let named_for_mas = |d: &Directive| picked.iter().any(|p| std::ptr::eq(*p, d));
        let http_error_page = items.iter().any(|d| d.name == "error_page");
        // Of the servers picked for public_base's host, those on its port
        // are MAS's when there are any (not, say, the homeserver's
        // federation server on 8448 under the same name); else all are, as
        // behind another TLS terminator.
        let port = public_port(self.plan);
        let on_port = |d: &Directive| port.is_some_and(|p| listens_on(d.children(), p));
        let any_on_port = items
            .iter()
            .any(|d| d.name == "server" && named_for_mas(d) && on_port(d));
        for d in items {
            match d.name.as_str() {
                "upstream" => {
                    if let Some(name) = d.args.first() {
                        self.upstreams.push((Module::Http, name, d));
                    }
                }
                "server" => {
                    let for_mas = named_for_mas(d) && (!any_on_port || on_port(d));
                    let mas = for_mas.then(|| MasPaths::of(self.plan, d.children()));
                    // An http-level error_page may hand any error on.
                    if let Some(m) = mas.as_ref().filter(|_| !http_error_page) {
                        self.report.warnings.extend(m.refusals(self.site));
                    }
                    self.compat = compat_locations(d.children());
                    let resend = resend.within(d.children());
                    self.http_items(d.children(), mas.as_ref(), &Scope::default(), resend);
                    self.check_compat_routing(d);
                }
                _ => self.http_other(d),
            }
        }
    }

    /// Directives inside an http server, location, `if` or `limit_except`.
    /// `mas` is set in a server picked for public_base's host; `scope`
    /// says what the levels around `items` say of them, and `resend` holds
    /// the resend directives of those levels, theirs included.
    fn http_items(
        &mut self,
        items: &'t [Directive],
        mas: Option<&MasPaths<'t>>,
        scope: &Scope<'t>,
        resend: Resend<'t>,
    ) {
        for d in items {
            match d.name.as_str() {
                "location" => {
                    let compat_here =
                        scope.compat || self.compat.iter().any(|l| std::ptr::eq(*l, d));
                    let for_mas_here = mas.is_some_and(|m| m.lands_in(d));
                    let mut needs_here: Vec<Need> = match mas {
                        Some(m) if for_mas_here => m.needs_of(d),
                        _ => Vec::new(),
                    };
                    if compat_here {
                        needs_here.push(Need {
                            resource: "compat",
                            path: COMPAT_SAMPLE.to_owned(),
                            route: COMPAT_SAMPLE,
                        });
                    }
                    let inner = Scope {
                        compat: compat_here,
                        for_mas: for_mas_here,
                        needs: needs_here,
                        location: Some(d),
                        in_block: false,
                    };
                    self.http_items(d.children(), mas, &inner, resend.within(d.children()));
                }
                "proxy_pass" => {
                    if let Some(arg) = d.args.first() {
                        self.passes.push(Pass {
                            module: Module::Http,
                            line: d.line,
                            arg,
                            proxy_protocol: None,
                            for_mas: scope.for_mas || scope.compat,
                            needs: scope.needs.clone(),
                            resend,
                            location: scope.location,
                            in_block: scope.in_block,
                        });
                    }
                }
                _ if d.block.is_some() => {
                    let resend = resend.within(d.children());
                    let inner = Scope {
                        in_block: true,
                        ..scope.clone()
                    };
                    self.http_items(d.children(), mas, &inner, resend);
                }
                _ => self.http_other(d),
            }
        }
    }

    /// On a server that proxies the homeserver's client paths (the Matrix
    /// host), MAS's compatibility endpoints must land in a location of
    /// their own, or logins go to the homeserver, which leaves them to MAS
    /// and answers none. Only when the config serves `compat`; not on a
    /// server for federation alone (port 8448), where clients do not log
    /// in, nor where an `include` may hold the location.
    fn check_compat_routing(&mut self, server: &'t Directive) {
        let serves_compat = self
            .plan
            .listeners
            .iter()
            .any(|l| l.resources.iter().any(|r| r == "compat"));
        let items = server.children();
        let listens: Vec<&Directive> = items.iter().filter(|c| c.name == "listen").collect();
        let federation_only = !listens.is_empty()
            && listens
                .iter()
                .all(|l| l.args.first().is_some_and(|a| a.ends_with("8448")));
        let includes = |items: &[Directive]| items.iter().any(|c| c.name == "include");
        if !serves_compat || federation_only || includes(items) {
            return;
        }
        // The homeserver's own location for its client paths: one written
        // for /_matrix, not a catch-all such as MAS's `location /`.
        let Found::At(homeserver) = find_location(items, HOMESERVER_PATHS[0]) else {
            return;
        };
        let for_matrix = match location_path(&homeserver.args) {
            LocationPath::Literal { path, .. } => path.starts_with("/_matrix"),
            LocationPath::Regex { pattern, .. } => pattern.contains("_matrix"),
            LocationPath::Named => false,
        };
        if !for_matrix || includes(homeserver.children()) {
            return;
        }
        // Each endpoint once, as clients call it now.
        for path in COMPAT_PATHS.iter().filter(|p| p.contains("/v3/")) {
            match find_location(items, path) {
                Found::At(location) if std::ptr::eq(location, homeserver) => {}
                _ => continue,
            }
            let endpoint = path.rsplit('/').next().unwrap_or_default();
            self.report.warnings.push(format!(
                "{}:{}: {path} lands in `location {}`, where the homeserver's client paths go too, not in a location of MAS's compatibility endpoints, so MAS's {endpoint} goes where that location sends it (the homeserver, which with MAS in charge of logins does not serve it); add `location ~ {COMPAT_LOCATION}` passing to the listener that serves `compat`, as generate-nginx --matrix-server-name writes",
                self.site,
                homeserver.line,
                homeserver.args.join(" "),
            ));
        }
    }

    fn http_other(&mut self, d: &Directive) {
        if d.name == "proxy_protocol" {
            self.report.problems.push(format!(
                "{}:{}: `{d}` is not a directive of nginx's http module, so nginx -t refuses the file; only nginx's stream module sends the PROXY protocol (`proxy_protocol on` in a stream server), so remove it, or reach a listener with `proxy_protocol: true` from a stream server",
                self.site, d.line
            ));
        }
        self.note_include(d);
    }

    fn stream_block(&mut self, items: &'t [Directive]) {
        let default = proxy_protocol_of(items);
        for d in items {
            match d.name.as_str() {
                "upstream" => {
                    if let Some(name) = d.args.first() {
                        self.upstreams.push((Module::Stream, name, d));
                    }
                }
                "server" => {
                    let pp = proxy_protocol_of(d.children()).or(default);
                    for c in d.children() {
                        if c.name == "proxy_pass" {
                            if let Some(arg) = c.args.first() {
                                self.passes.push(Pass {
                                    module: Module::Stream,
                                    line: c.line,
                                    arg,
                                    proxy_protocol: pp,
                                    for_mas: pp.is_some_and(|(on, _)| on),
                                    needs: if pp.is_some_and(|(on, _)| on) {
                                        public_site_needs(self.plan)
                                    } else {
                                        Vec::new()
                                    },
                                    resend: Resend::default(),
                                    location: None,
                                    in_block: false,
                                });
                            }
                        } else {
                            self.note_include(c);
                        }
                    }
                }
                _ => self.note_include(d),
            }
        }
    }
}

/// MAS's compatibility endpoints as clients call them.
const COMPAT_PATHS: [&str; 6] = [
    "/_matrix/client/v3/login",
    "/_matrix/client/r0/login",
    "/_matrix/client/v3/logout",
    "/_matrix/client/r0/logout",
    "/_matrix/client/v3/refresh",
    "/_matrix/client/v1/refresh",
];

/// Other client paths of the homeserver's: a location they land in too
/// (`location /_matrix/`, `~ ^(/_matrix|/_synapse/client)`) is the
/// homeserver's, however it catches the compatibility endpoints.
const HOMESERVER_PATHS: [&str; 3] = [
    "/_matrix/client/v3/sync",
    "/_matrix/client/versions",
    "/_matrix/client/v3/account/whoami",
];

/// The locations of the server `items` that are for the compatibility
/// endpoints: where one lands, as nginx picks locations, and no other
/// client path of the homeserver's does.
fn compat_locations(items: &[Directive]) -> Vec<&Directive> {
    let at = |path: &str| match find_location(items, path) {
        Found::At(location) => Some(location),
        Found::Nowhere | Found::Unknown => None,
    };
    let homeservers: Vec<&Directive> = HOMESERVER_PATHS.iter().filter_map(|p| at(p)).collect();
    COMPAT_PATHS
        .iter()
        .filter_map(|p| at(p))
        .filter(|l| !homeservers.iter().any(|h| std::ptr::eq(*h, *l)))
        .collect()
}

/// Which locations of a server picked for public_base's host are MAS's:
/// those that MAS's paths (under public_base's path) land in, as nginx
/// picks locations, and what each needs: the resources of those paths. A
/// path sent to a location that nginx answers itself (`alias` for the
/// assets, `return`) needs nothing of MAS.
struct MasPaths<'t> {
    /// MAS's paths and the location each lands in.
    landed: Vec<(&'t Directive, Need)>,
    /// MAS's paths that land in a location that answers them with an
    /// error of nginx's own (`return 404`), and that answer's directive.
    refused: Vec<(&'t Directive, &'t Directive, Need)>,
}

impl<'t> MasPaths<'t> {
    fn of(plan: &Plan, server: &'t [Directive]) -> MasPaths<'t> {
        let mut landed = Vec::new();
        let mut refused = Vec::new();
        for need in public_site_needs(plan) {
            match find_location(server, &need.path) {
                Found::At(location) if stays(server, location, &need.path) => {
                    landed.push((location, need));
                }
                Found::At(location) => {
                    if let Some(answer) = refusal(server, location) {
                        refused.push((location, answer, need));
                    }
                }
                // Not known, or in no location.
                Found::Nowhere | Found::Unknown => {}
            }
        }
        MasPaths { landed, refused }
    }

    /// One warning per location that answers MAS's own paths with an error
    /// of nginx's (as a site generated for a listener `prefix` that
    /// `public_base` does not end with has it), naming those paths.
    fn refusals(&self, site: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: Vec<&Directive> = Vec::new();
        for (location, answer, _) in &self.refused {
            if seen.iter().any(|l| std::ptr::eq(*l, *location)) {
                continue;
            }
            seen.push(location);
            let paths: Vec<&str> = self
                .refused
                .iter()
                .filter(|(l, ..)| std::ptr::eq(*l, *location))
                .map(|(.., need)| need.path.as_str())
                .collect();
            let shown = match paths.len() {
                0..=3 => paths.join(", "),
                n => format!("{}, and {} more", paths[..3].join(", "), n - 3),
            };
            out.push(format!(
                "{site}:{}: `{answer}` answers MAS's own paths under public_base ({shown}), which land in `location {}`, so MAS's links and redirects to them fail there; if MAS should serve them, send them to MAS (with a listener `prefix`, public_base must end with it)",
                answer.line,
                location.args.join(" "),
            ));
        }
        out
    }

    /// Whether `location` is MAS's: one of MAS's paths lands in it, as
    /// nginx picks locations. A location that none reaches (another
    /// service's, the homeserver's beside a prefix) is not, whatever its
    /// text holds.
    fn lands_in(&self, location: &Directive) -> bool {
        self.landed.iter().any(|(l, _)| std::ptr::eq(*l, location))
    }

    /// What `location` needs of MAS.
    fn needs_of(&self, location: &Directive) -> Vec<Need> {
        self.landed
            .iter()
            .filter(|(l, _)| std::ptr::eq(*l, location))
            .map(|(_, need)| need.clone())
            .collect()
    }
}

/// The `return` with an error status (400 or more) by which `location` of
/// `server` answers every request that lands in it; none where anything
/// else may act first or instead: a `rewrite` (of the server or the
/// location), the server's own `return` (or one in an `if`), or an
/// `error_page`, which may hand the error on (`error_page 418 = @mas`);
/// the caller leaves out a server under an http-level `error_page`.
fn refusal<'t>(server: &'t [Directive], location: &'t Directive) -> Option<&'t Directive> {
    let acts_first = |items: &[Directive]| {
        let in_ifs = || {
            items
                .iter()
                .filter(|d| d.name == "if")
                .flat_map(|d| d.children())
        };
        items
            .iter()
            .any(|d| matches!(d.name.as_str(), "rewrite" | "error_page"))
            // A `return` in an `if` may answer first (a redirect).
            || in_ifs().any(|d| matches!(d.name.as_str(), "rewrite" | "error_page" | "return"))
    };
    if acts_first(server)
        || server.iter().any(|d| d.name == "return")
        || acts_first(location.children())
    {
        return None;
    }
    location.children().iter().find(|d| {
        d.name == "return"
            && d.args
                .first()
                .and_then(|code| code.parse::<u16>().ok())
                .is_some_and(|code| code >= 400)
    })
}

/// What a stream server that sends the PROXY protocol (MAS's public port,
/// as generate-nginx writes it) needs, for the fix when it reaches no bind:
/// every path of the auth host goes to the one listener, since a stream
/// server sees no paths and cannot serve the assets itself.
fn public_site_needs(plan: &Plan) -> Vec<Need> {
    let base = format!("{}/", public_path(plan).trim_end_matches('/'));
    AUTH_ROUTES
        .iter()
        .map(|(resource, route)| Need {
            resource,
            path: format!("{base}{}", route.trim_start_matches('/')),
            route,
        })
        .collect()
}

/// The path of `public_base`, `/` without one.
fn public_path(plan: &Plan) -> String {
    let Some(base) = plan.public_base.as_deref() else {
        return "/".to_owned();
    };
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].to_owned(),
        None => "/".to_owned(),
    }
}

/// The last `proxy_protocol on|off` among `items`, with its line.
fn proxy_protocol_of(items: &[Directive]) -> Option<(bool, usize)> {
    items
        .iter()
        .rev()
        .find(|d| d.name == "proxy_protocol" && d.block.is_none())
        .map(|d| (d.args.first().is_some_and(|a| a == "on"), d.line))
}

/// The port of `public_base`: given, or its scheme's.
fn public_port(plan: &Plan) -> Option<u16> {
    let url = url::Url::parse(plan.public_base.as_deref()?.trim()).ok()?;
    url.port_or_known_default()
}

/// Where an http server listens, as nginx groups servers to pick one from:
/// an address (`*` for any IPv4 one, `[::]` for any IPv6 one; a name such
/// as `localhost` as written) and TCP port, or a Unix socket's path. A
/// connection to an address that some server names itself goes to those
/// servers alone, not to those on the wildcard.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ListenKey {
    Port(String, u16),
    Unix(String),
}

impl ListenKey {
    fn port(&self) -> Option<u16> {
        match self {
            ListenKey::Port(_, port) => Some(*port),
            ListenKey::Unix(_) => None,
        }
    }
}

/// Where an http server with `items` listens: each `listen`'s port (`443`,
/// `[::]:443`, `127.0.0.1:443`; 80 for an address or name alone, such as
/// `127.0.0.1`, `localhost` or `*`) or Unix socket, and port 80 without any
/// `listen`, as nginx reads them (ngx_parse_url).
fn listen_keys(items: &[Directive]) -> Vec<ListenKey> {
    let listens: Vec<&Directive> = items.iter().filter(|c| c.name == "listen").collect();
    if listens.is_empty() {
        return vec![ListenKey::Port("*".into(), 80)];
    }
    let any = |addr: &str| match addr {
        "" | "*" | "0.0.0.0" => "*".to_owned(),
        "[::]" | "[0:0:0:0:0:0:0:0]" => "[::]".to_owned(),
        other => other.to_ascii_lowercase(),
    };
    listens
        .iter()
        .filter_map(|l| l.args.first())
        .filter_map(|a| {
            if let Some(path) = targets::strip_prefix_caseless(a, "unix:") {
                return Some(ListenKey::Unix(path.to_owned()));
            }
            if a.bytes().all(|b| b.is_ascii_digit()) {
                return a.parse().ok().map(|p| ListenKey::Port("*".into(), p));
            }
            // `[::1]:443` or `[::1]`; `host:443` or `host`.
            let (addr, port) = match a.rsplit_once(']') {
                Some((head, rest)) => (format!("{head}]"), rest.strip_prefix(':')),
                None => match a.rsplit_once(':') {
                    Some((host, p)) => (host.to_owned(), Some(p)),
                    None => (a.clone(), None),
                },
            };
            let addr = any(&addr);
            match port {
                Some(p) => p.parse().ok().map(|p| ListenKey::Port(addr, p)),
                None => Some(ListenKey::Port(addr, 80)),
            }
        })
        .collect()
}

/// How well one `server_name` entry matches `host` (lower case, in its
/// ASCII form, as clients send it), in nginx's order
/// (ngx_http_find_virtual_server): an exact name first, then the longest
/// wildcard at the front (`*.example.com`, `.example.com`), then the
/// longest at the end (`auth.*`), then a regular expression (`~...`),
/// which nginx tries in the order written. nginx compares names as
/// written: a name in Unicode matches no host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum NameMatch {
    Regex,
    BackWildcard(usize),
    FrontWildcard(usize),
    Exact,
}

/// Whether `name` matches `host`: `Ok(None)` when it does not, `Err(())`
/// for a regular expression that the regex crate cannot read (PCRE's
/// look-around, say), which only nginx can judge.
fn name_match(name: &str, host: &str) -> Result<Option<NameMatch>, ()> {
    if let Some(re) = name.strip_prefix('~') {
        // nginx compares a lower-cased host, and compiles an expression
        // without regard to case only when it has an upper-case letter.
        let re = regex::RegexBuilder::new(re)
            .case_insensitive(re.bytes().any(|b| b.is_ascii_uppercase()))
            .build()
            .map_err(|_| ())?;
        return Ok(re.is_match(host).then_some(NameMatch::Regex));
    }
    let name = name.to_ascii_lowercase();
    if name == host {
        return Ok(Some(NameMatch::Exact));
    }
    let front = |suffix: &str| {
        host.strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.') && head.len() > 1)
            .then_some(NameMatch::FrontWildcard(suffix.len()))
    };
    Ok(if let Some(suffix) = name.strip_prefix('.') {
        // `.example.com` is both `example.com` and `*.example.com`.
        if suffix == host {
            Some(NameMatch::Exact)
        } else {
            front(suffix)
        }
    } else if let Some(suffix) = name.strip_prefix("*.") {
        front(suffix)
    } else if let Some(prefix) = name.strip_suffix(".*") {
        host.strip_prefix(prefix)
            .is_some_and(|tail| tail.starts_with('.') && tail.len() > 1)
            .then_some(NameMatch::BackWildcard(prefix.len()))
    } else {
        None
    })
}

/// The http servers of `items` that nginx picks for a request to `host`:
/// wherever a server listens ([`ListenKey`]), the one whose `server_name`
/// matches best ([`NameMatch`]; the first written of equals). Where no
/// name matches, nginx takes the default server there, which is not
/// counted as MAS's: it may be another site's, and MAS's server may be in
/// a file of its own. Where a regular expression that cannot be read here
/// might decide, nothing is picked, rather than a guess.
fn servers_for_host<'t>(items: &'t [Directive], host: &str) -> Vec<&'t Directive> {
    let host = super::idn::to_ascii(host).unwrap_or_else(|| host.to_owned());
    let host = host.trim_end_matches('.');
    // Each server with where it listens, read once.
    let servers: Vec<(&Directive, Vec<ListenKey>)> = items
        .iter()
        .filter(|d| d.name == "server")
        .map(|d| (d, listen_keys(d.children())))
        .collect();
    // How well the names of `d` match, leaving out the names an earlier
    // server on the same listen took already: nginx ignores such a
    // "conflicting server name" (`.example.com` is `example.com` and
    // `*.example.com` at once, and conflicts with either).
    let best = |d: &Directive, claimed: &mut Vec<String>| -> Result<Option<NameMatch>, ()> {
        let mut best = None;
        let mut unknown = false;
        for name in d
            .children()
            .iter()
            .filter(|c| c.name == "server_name")
            .flat_map(|c| c.args.iter())
        {
            if !name.starts_with('~') {
                let lower = name.to_ascii_lowercase();
                let takes = match lower.strip_prefix('.') {
                    Some(rest) => vec![rest.to_owned(), format!("*.{rest}")],
                    None => vec![lower],
                };
                if takes.iter().any(|t| claimed.contains(t)) {
                    continue;
                }
                claimed.extend(takes);
            }
            match name_match(name, host) {
                Ok(m) => best = best.max(m),
                Err(()) => unknown = true,
            }
        }
        // One match of its names is enough for the server; an expression
        // that cannot be read leaves it open only when nothing else matched.
        match (best, unknown) {
            (Some(m), _) => Ok(Some(m)),
            (None, true) => Err(()),
            (None, false) => Ok(None),
        }
    };
    let mut keys: Vec<&ListenKey> = servers.iter().flat_map(|(_, keys)| keys).collect();
    keys.sort();
    keys.dedup();
    let mut picked: Vec<&Directive> = Vec::new();
    for key in keys {
        let mut claimed = Vec::new();
        let matches: Vec<(&Directive, Result<Option<NameMatch>, ()>)> = servers
            .iter()
            .filter(|(_, keys)| keys.contains(key))
            .map(|(d, _)| (*d, best(d, &mut claimed)))
            .collect();
        let top = matches
            .iter()
            .filter_map(|(_, m)| m.ok().flatten())
            .filter(|m| *m > NameMatch::Regex)
            .max();
        let winner = match top {
            // The first written of the best non-regex matches.
            Some(top) => matches
                .iter()
                .find(|(_, m)| *m == Ok(Some(top)))
                .map(|(d, _)| *d),
            // Regular expressions, in the order written: the first that
            // matches, unless one before it cannot be judged.
            None => matches
                .iter()
                .find(|(_, m)| *m != Ok(None))
                .and_then(|(d, m)| m.is_ok().then_some(*d)),
        };
        if let Some(d) = winner {
            if !picked.iter().any(|p| std::ptr::eq(*p, d)) {
                picked.push(d);
            }
        }
    }
    picked
}

/// Whether a server with `items` listens on TCP `port`, on any address (see
/// [`listen_keys`]).
fn listens_on(items: &[Directive], port: u16) -> bool {
    listen_keys(items).iter().any(|k| k.port() == Some(port))
}

/// The host of `public_base`, lower-cased, without port or brackets.
fn public_host(plan: &Plan) -> Option<String> {
    let base = plan.public_base.as_deref()?;
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    Some(host.to_ascii_lowercase())
}

fn check_pass(
    plan: &Plan,
    site: &str,
    pass: &Pass,
    upstreams: &[(Module, &str, &Directive)],
    resolver: &dyn Resolver,
    report: &mut Report,
) {
    if pass.for_mas {
        report.problems.extend(uri::refused(site, pass));
    }
    let (targets, upstream) = match targets_of(pass, upstreams, resolver) {
        Ok(r) => (r.targets, r.upstream),
        Err(why) => {
            report.warnings.push(format!(
                "{site}:{}: `proxy_pass {}` is not checked: {why}",
                pass.line, pass.arg
            ));
            return;
        }
    };
    // An upstream may list a socket twice (generate-nginx does, so that
    // nginx has a next server to resend to): one target, checked once, at
    // its first line.
    let mut distinct: Vec<(Target, Vec<usize>)> = Vec::new();
    for (target, line) in targets {
        match distinct.iter_mut().find(|(t, _)| *t == target) {
            Some((_, lines)) => lines.push(line),
            None => distinct.push((target, vec![line])),
        }
    }
    // nginx resends an idempotent request whose connection MAS closed
    // unanswered only to a next server; a restart may close one on a Unix
    // socket (MAS's own gap, which TCP_DEFER_ACCEPT closes over TCP).
    let lone_unix = match distinct.as_slice() {
        [(Target::Unix(_), lines)] if pass.module == Module::Http => lines.len() == 1,
        _ => false,
    };
    // What the URI part makes of MAS's paths is said once, for the first
    // listener reached.
    let mut paths_checked = false;
    for (target, lines) in distinct {
        let line = lines[0];
        let again: String = lines[1..]
            .iter()
            .map(|l| format!(", again at line {l}"))
            .collect();
        let at = if line == pass.line {
            format!("{site}:{line}")
        } else {
            format!("{site}:{line} (upstream of {site}:{}{again})", pass.line)
        };
        let hit: Option<(&Listener, &Bind)> = plan.listeners.iter().find_map(|l| {
            l.binds
                .iter()
                .find(|b| reaches(&target, b, resolver))
                .map(|b| (l, b))
        });
        let Some((listener, bind)) = hit else {
            if pass.for_mas {
                let resolved = resolved_note(&target, resolver);
                report
                    .problems
                    .push(unmatched(plan, &at, &target, &resolved, pass));
            }
            continue;
        };
        if let Target::Tcp { host, port } = &target {
            let refused = unheld(&target, listener.binds.iter(), resolver);
            if !refused.is_empty() {
                let all = addresses(host, *port, resolver);
                report
                    .warnings
                    .push(partly_held(&at, &target, &all, &refused, listener));
            }
        }
        if let Some(mismatch) = tls_mismatch(pass, &at, &target, listener) {
            report.problems.push(mismatch);
            continue;
        }
        let lacks = lacking(plan, &at, &target, listener, pass);
        // A listener that lacks the resources is said to be wrong already;
        // where it would serve them is beside the point.
        let misrouted = if paths_checked || lacks.is_some() {
            None
        } else {
            uri::misrouted(&at, pass, listener)
        };
        paths_checked = true;
        let fits = lacks.is_none() && misrouted.is_none();
        report.problems.extend(lacks);
        report.problems.extend(misrouted);
        let sends = pass.proxy_protocol.is_some_and(|(on, _)| on);
        let expects = listener.proxy_protocol;
        let name = listener.label();
        match (sends, expects) {
            (true, false) => {
                let pp_line = pass.proxy_protocol.map_or(pass.line, |(_, l)| l);
                report.problems.push(format!(
                    "{site}:{pp_line}: PROXY protocol on nginx's side only: `proxy_protocol on` makes nginx send a PROXY header to {target} ({at}), but listener {name} does not expect one ({}), so MAS reads the header as a broken request line and answers 400; remove `proxy_protocol on`, or set `proxy_protocol: true` on the listener",
                    listener.proxy_protocol_location
                ));
            }
            (false, true) => {
                let fix = match pass.module {
                    Module::Stream => "add `proxy_protocol on;` to this stream server",
                    Module::Http => "nginx's http proxy cannot send the header: set `proxy_protocol: false` on the listener (nginx passes the client's address in X-Forwarded-For), or reach it from a stream server with `proxy_protocol on`",
                };
                report.problems.push(format!(
                    "{at}: PROXY protocol on MAS's side only: `proxy_pass {}` sends no PROXY header to {target}, but listener {name} expects one ({}: `proxy_protocol: true`), so MAS closes every connection and nginx answers 502; {fix}",
                    pass.arg, listener.proxy_protocol_location
                ));
            }
            _ => {
                report.notes.push(format!(
                    "{at}: proxy_pass to {target} reaches listener {name} (bind {} at {}), PROXY protocol {}",
                    bind.index,
                    bind.location,
                    if sends { "on both sides" } else { "on neither side" }
                ));
                // Said only of a pass that is right otherwise.
                if !fits || pass.module != Module::Http {
                    continue;
                }
                if lone_unix {
                    report.warnings.push(format!(
                        "{at}: {target} is nginx's only server here, so a request that a restart of MAS closes unanswered on it (see `mas-sockets reload`) is answered 502 rather than sent again; {}",
                        retry::lone_fix(&target, upstream)
                    ));
                }
                if let Target::Unix(_) = target {
                    report
                        .warnings
                        .extend(retry::defeated(site, &target, &pass.resend));
                    if let Some(up) = upstream {
                        report
                            .warnings
                            .extend(retry::down_entries(site, &target, up, &lines));
                    }
                }
                if let Some(up) = upstream {
                    let peers = up
                        .children()
                        .iter()
                        .filter(|d| d.name == "server")
                        .filter_map(|d| entry_target(d, Some(80)))
                        .map(|t| match t {
                            Target::Unix(_) => 1,
                            Target::Tcp { host, port } => {
                                addresses(&host, port, resolver).len().max(1)
                            }
                        })
                        .sum();
                    report
                        .warnings
                        .extend(retry::max_fails(site, up, peers, &name));
                }
            }
        }
    }
}

/// What nginx resolves the host name of a TCP `target` to, for messages:
/// ` (nginx resolves `localhost` to 127.0.0.1 here)`; empty for an address
/// or a Unix socket.
fn resolved_note(target: &Target, resolver: &dyn Resolver) -> String {
    match target {
        Target::Tcp { host, port } if host.parse::<std::net::IpAddr>().is_err() => format!(
            " (nginx resolves `{host}` to {} here)",
            address_list(&addresses(host, *port, resolver))
        ),
        _ => String::new(),
    }
}

/// `127.0.0.1, [::1]`, the addresses without their port.
fn address_list(addrs: &[std::net::SocketAddr]) -> String {
    let shown: Vec<String> = addrs
        .iter()
        .map(|a| match a {
            std::net::SocketAddr::V4(v4) => v4.ip().to_string(),
            std::net::SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        })
        .collect();
    shown.join(", ")
}

/// The warning for a host name that nginx resolves to addresses of which
/// only some are `listener`'s (`refused`, the others): nginx tries each in
/// turn, so its connections to those are refused, and it takes each out
/// for fail_timeout before it moves to the next.
fn partly_held(
    at: &str,
    target: &Target,
    all: &[std::net::SocketAddr],
    refused: &[std::net::SocketAddr],
    listener: &Listener,
) -> String {
    let host = match target {
        Target::Tcp { host, .. } => host.as_str(),
        Target::Unix(_) => "",
    };
    let held = all.iter().find(|a| !refused.contains(a));
    let fix = match held {
        Some(a) => format!("write `{a}` instead of `{target}`"),
        None => format!("write the address listener {} binds", listener.label()),
    };
    format!(
        "{at}: nginx resolves `{host}` to {} here (when it loads its config) and connects to each in turn, but listener {} ({}) has no socket at {}, so those connections are refused and nginx takes each such address out for fail_timeout (10 s) before it tries the next; {fix}, or bind the listener there too",
        address_list(all),
        listener.label(),
        listener.location,
        refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The problem when an http `proxy_pass` and the listener it reaches
/// disagree on TLS: nginx's `https://` against a listener without `tls:`
/// fails the handshake (nginx: "wrong version number"), and `http://`
/// against one with `tls:` gets the connection dropped; nginx answers 502
/// to both.
fn tls_mismatch(pass: &Pass, at: &str, target: &Target, listener: &Listener) -> Option<String> {
    if pass.module != Module::Http {
        return None;
    }
    let https = targets::is_https(pass.arg);
    let name = listener.label();
    match (https, listener.tls) {
        (true, false) => Some(format!(
            "{at}: `proxy_pass {}` speaks TLS to {target}, but listener {name} ({}) has no `tls:` and speaks plain HTTP, so the handshake fails and nginx answers 502; write `http://` instead of `https://`",
            pass.arg, listener.location
        )),
        (false, true) => Some(format!(
            "{at}: `proxy_pass {}` speaks plain HTTP to {target}, but listener {name} ({}) terminates TLS itself (`tls:`), so MAS drops every connection and nginx answers 502; remove `tls:` from the listener (nginx terminates TLS), or write `https://` instead of `http://`",
            pass.arg, listener.location
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
