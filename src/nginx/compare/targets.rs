//! What a `proxy_pass` connects to, and which binds that reaches.
//!
//! An argument is resolved through the file's `upstream` blocks, else as
//! written: a Unix socket (`unix:/path`), or a host and port, a host name
//! resolved with the resolver the config uses. nginx finds upstream blocks
//! by name whatever its case. Upstream blocks of other files are not read.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::{Module, Pass};
use crate::config::plan::{same_path, Resolver};
use crate::config::{Bind, Endpoint};
use crate::nginx::syntax::Directive;

/// A socket nginx is told to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
            Target::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Target::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// What a `proxy_pass` argument resolves to: each socket with the line
/// that names it, and the upstream block, if it goes through one.
pub(super) struct Resolved<'u> {
    pub(super) targets: Vec<(Target, usize)>,
    pub(super) upstream: Option<&'u Directive>,
}

/// The sockets of a `proxy_pass` argument: through an upstream block, or as
/// written. `Err` with a reason when it cannot be resolved.
pub(super) fn targets_of<'u>(
    pass: &Pass,
    upstreams: &[(Module, &str, &'u Directive)],
    resolver: &dyn Resolver,
) -> Result<Resolved<'u>, String> {
    let variables = |what: &str| {
        Err(format!(
            "its {what} uses variables, which only nginx can resolve at run time"
        ))
    };
    let (rest, default_port) = match pass.module {
        Module::Http => {
            if let Some(rest) = strip_prefix_caseless(pass.arg, "http://") {
                (rest, Some(80))
            } else if let Some(rest) = strip_prefix_caseless(pass.arg, "https://") {
                (rest, Some(443))
            } else {
                return Err("it is not an http:// or https:// URL".into());
            }
        }
        Module::Stream => (pass.arg, None),
    };
    // Variables in the URI (`http://up/auth$request_uri`) leave the socket
    // known; in the socket itself, only nginx can resolve them.
    if let Some(path) = strip_prefix_caseless(rest, "unix:") {
        // http://unix:/path:/uri; in stream the whole rest is the path.
        let path = match pass.module {
            Module::Http => path.split(':').next().unwrap_or(path),
            Module::Stream => path,
        };
        if path.contains('$') {
            return variables("socket path");
        }
        return Ok(Resolved {
            targets: vec![(Target::Unix(PathBuf::from(path)), pass.line)],
            upstream: None,
        });
    }
    let authority = match pass.module {
        Module::Http => http_authority(rest),
        Module::Stream => rest,
    };
    // `http://$backend`, `http://127.0.0.1:$port`, or a stream address with
    // a variable anywhere.
    let variable_port = authority.ends_with(':') && rest[authority.len()..].starts_with('$');
    if authority.is_empty() || variable_port || authority.contains('$') {
        return variables("host or port");
    }
    // nginx finds upstream blocks by name whatever its case.
    if let Some((_, _, up)) = upstreams
        .iter()
        .find(|(m, name, _)| *m == pass.module && name.eq_ignore_ascii_case(authority))
    {
        let mut found = Vec::new();
        for server in up.children().iter().filter(|d| d.name == "server") {
            if let Some(t) = entry_target(server, default_port.or(Some(80))) {
                found.push((t, server.line));
            }
        }
        return Ok(Resolved {
            targets: found,
            upstream: Some(*up),
        });
    }
    let target = parse_host_port(authority, default_port).ok_or_else(|| {
        format!("`{authority}` is neither host:port nor an upstream block of the file")
    })?;
    if let Target::Tcp { host, port } = &target {
        // Most likely the name of an upstream block in another file (say,
        // conf.d/): its servers are not known here.
        if addresses(host, *port, resolver).is_empty() {
            return Err(format!(
                "`{host}` is no upstream block of this file and no host name this machine resolves (upstream blocks of other files are not read)"
            ));
        }
    }
    Ok(Resolved {
        targets: vec![(target, pass.line)],
        upstream: None,
    })
}

/// `text` after `prefix`, which it starts with in any case: nginx reads the
/// scheme of a `proxy_pass` and the `unix:` of an address so
/// (ngx_strncasecmp).
pub(super) fn strip_prefix_caseless<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether an http `proxy_pass` argument speaks TLS to its server.
pub(super) fn is_https(arg: &str) -> bool {
    strip_prefix_caseless(arg, "https://").is_some()
}

/// The socket of an upstream block's `server` entry.
pub(super) fn entry_target(server: &Directive, default_port: Option<u16>) -> Option<Target> {
    let addr = server.args.first()?;
    match strip_prefix_caseless(addr, "unix:") {
        Some(path) => Some(Target::Unix(PathBuf::from(path))),
        None => parse_host_port(addr, default_port),
    }
}

/// The host and port of an http `proxy_pass` URL without its scheme: what
/// comes before the first `/`, `$` or `?`. nginx evaluates the variables of
/// the whole URL at run time, and those after the host and port are taken
/// to be the URI's (`http://127.0.0.1:8080$request_uri`).
fn http_authority(rest: &str) -> &str {
    rest.find(['/', '$', '?']).map_or(rest, |i| &rest[..i])
}

/// `host`, `host:port`, `[v6]:port`; `None` without a port and no default.
pub(super) fn parse_host_port(text: &str, default_port: Option<u16>) -> Option<Target> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        (host, rest.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port?,
    };
    (!host.is_empty()).then(|| Target::Tcp {
        host: host.to_owned(),
        port,
    })
}

/// The addresses a TCP target stands for: nginx resolves a host name in
/// `proxy_pass` or an upstream's `server` once, when it loads its config,
/// with the system resolver (getaddrinfo, so `/etc/hosts` for `localhost`),
/// and connects to every address it returns, in turn. `localhost` is no
/// exception: where it is only `127.0.0.1`, nginx never tries `[::1]`.
pub(super) fn addresses(host: &str, port: u16, resolver: &dyn Resolver) -> Vec<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    let mut found: Vec<SocketAddr> = Vec::new();
    for addr in resolver.resolve(host, port).unwrap_or_default() {
        if !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

/// Whether `bind` has a socket at `addr`.
fn holds(bind: &Bind, addr: &SocketAddr) -> bool {
    bind.endpoints.iter().any(|e| match e {
        // `[::]` is dual stack (the kernel's default); `0.0.0.0` holds the
        // IPv4 addresses of its port.
        Endpoint::Tcp(a) if a.ip().is_unspecified() => {
            a.port() == addr.port() && (a.is_ipv6() || addr.is_ipv4())
        }
        Endpoint::Tcp(a) => a == addr,
        // A bind on every address holds every local address of its port.
        Endpoint::AnyTcp(p) => *p == addr.port(),
        Endpoint::Unix(_) => false,
    })
}

/// The addresses of a TCP `target` that no bind of `binds` holds: nginx's
/// connections there are refused. Empty for a Unix socket.
pub(super) fn unheld<'b>(
    target: &Target,
    binds: impl Iterator<Item = &'b Bind> + Clone,
    resolver: &dyn Resolver,
) -> Vec<SocketAddr> {
    let Target::Tcp { host, port } = target else {
        return Vec::new();
    };
    addresses(host, *port, resolver)
        .into_iter()
        .filter(|a| !binds.clone().any(|b| holds(b, a)))
        .collect()
}

/// Whether connecting to `target` reaches a socket of `bind`.
pub(super) fn reaches(target: &Target, bind: &Bind, resolver: &dyn Resolver) -> bool {
    match target {
        Target::Unix(path) => bind
            .endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Unix(p) if same_path(p, path))),
        Target::Tcp { host, port } => addresses(host, *port, resolver)
            .iter()
            .any(|a| holds(bind, a)),
    }
}
