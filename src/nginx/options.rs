//! The options of `generate-nginx`, checked before anything is decided: host
//! names, paths and addresses that nginx's configuration can hold as one
//! plain word, and the homeserver as a `proxy_pass` target.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use super::site::SiteError;

/// What `generate-nginx` was asked for.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Prefix of the file and upstream names (generate-units' `--name`).
    pub name: String,
    /// The auth host: MAS's public name.
    pub server_name: String,
    /// The Matrix host, when nginx should also split it between MAS and the homeserver.
    pub matrix: Option<MatrixHost>,
    /// A directory of MAS's assets that nginx serves itself.
    pub assets_dir: Option<PathBuf>,
    /// Certificate and key for TLS; plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// nginx's listen addresses; empty means 443 and `[::]:443` (80 without TLS).
    pub listen: Vec<String>,
    /// With TLS, whether plain HTTP on port 80 is redirected to https.
    pub redirect: RedirectMode,
    /// Group of MAS's Unix sockets (generate-units' `--socket-group`).
    pub socket_group: String,
    /// The user nginx's workers run as.
    pub nginx_user: String,
}

impl SiteOptions {
    /// The Matrix host when it is the auth host too: MAS under its prefix
    /// and the homeserver share one server.
    pub(crate) fn shared_matrix_host(&self) -> Option<&MatrixHost> {
        self.matrix
            .as_ref()
            .filter(|m| m.server_name.eq_ignore_ascii_case(&self.server_name))
    }
}

/// What nginx does with plain HTTP when it terminates TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectMode {
    /// A server on port 80 for each host answers 301 to the https URL, on
    /// port 80 of each address that listens on 443 (`80` and `[::]:80` by
    /// default); none when a `--listen` is on port 80 already.
    ToHttps,
    /// No port-80 servers: something else answers there (`--no-redirect`).
    Off,
}

/// The Matrix host and its homeserver.
#[derive(Debug, Clone)]
pub struct MatrixHost {
    pub server_name: String,
    /// `http://host:port` or `https://host:port`, without a path.
    pub homeserver: String,
}

/// Whether a text can be written as one nginx word without quotes, escapes
/// or variables.
pub(crate) fn plain(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\;{}#$".contains(c))
}

pub(crate) fn validate_options(opts: &SiteOptions) -> Result<(), SiteError> {
    let bad = |option, value: &str, why| {
        Err(SiteError::BadOption {
            option,
            value: value.to_owned(),
            why,
        })
    };
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with('-')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
    };
    if !name_ok(&opts.server_name) {
        return bad(
            "--server-name",
            &opts.server_name,
            "is not a host name; give the name clients use, e.g. auth.example.com",
        );
    }
    if let Some(m) = &opts.matrix {
        if !name_ok(&m.server_name) {
            return bad(
                "--matrix-server-name",
                &m.server_name,
                "is not a host name; give e.g. matrix.example.com",
            );
        }
        homeserver_target(&m.homeserver)?;
    }
    if !opts
        .name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || opts.name.is_empty()
        || opts.name.starts_with('.')
    {
        return bad(
            "--name",
            &opts.name,
            "is not usable in file and upstream names; use only letters, digits, `-`, `_` and `.`, and do not start it with `.` (e.g. --name mas)",
        );
    }
    for (option, path) in [
        ("--assets-dir", opts.assets_dir.as_ref()),
        ("--tls-cert", opts.tls.as_ref().map(|t| &t.0)),
        ("--tls-key", opts.tls.as_ref().map(|t| &t.1)),
    ] {
        let Some(path) = path else { continue };
        let text = path.display().to_string();
        if !path.is_absolute() {
            return bad(option, &text, "is not an absolute path; nginx would read it relative to its prefix: give the full path");
        }
        if !plain(&text) {
            return bad(option, &text, "holds blanks, quotes, `;`, `{`, `}`, `#` or `$`, which nginx would split or expand; use a plain path");
        }
        if option == "--assets-dir" && path.parent().is_none() {
            return bad(option, &text, "is the root of the file system, every file of which nginx would serve; give MAS's assets directory (the `share/assets` of its install)");
        }
    }
    let mut seen: Vec<(&str, SocketAddr)> = Vec::new();
    for listen in &opts.listen {
        let Some(addr) = listen_address(listen) else {
            return bad("--listen", listen, "is not PORT, IPV4:PORT or [IPV6]:PORT");
        };
        // nginx refuses one server listening twice on an address ("a
        // duplicate listen"), however it is spelled; two spellings are
        // likely two intentions, so neither is dropped silently.
        if let Some((first, _)) = seen.iter().find(|(_, a)| *a == addr) {
            return Err(SiteError::DuplicateListen {
                first: (*first).to_owned(),
                second: listen.clone(),
                address: addr,
            });
        }
        seen.push((listen, addr));
    }
    Ok(())
}

/// The address nginx reads a `--listen` value as: a bare `PORT` is
/// `0.0.0.0:PORT` (nginx's `listen 443` is IPv4 only).
pub(crate) fn listen_address(text: &str) -> Option<SocketAddr> {
    let text = parse_listen(text)?;
    match text.parse::<u16>() {
        Ok(port) => Some(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)),
        Err(_) => text.parse().ok(),
    }
}

/// `PORT`, `IPV4:PORT` or `[IPV6]:PORT`, as nginx's `listen` writes them.
pub(crate) fn parse_listen(text: &str) -> Option<String> {
    let port_ok =
        |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0) && p.bytes().all(|b| b.is_ascii_digit());
    if port_ok(text) {
        return Some(text.to_owned());
    }
    let addr: SocketAddr = text.parse().ok()?;
    (addr.port() > 0).then(|| addr.to_string())
}

/// The homeserver as a `proxy_pass` target: `scheme://host[:port]`.
pub(crate) fn homeserver_target(url: &str) -> Result<String, SiteError> {
    let bad = || {
        SiteError::BadOption {
        option: "--homeserver",
        value: url.to_owned(),
        why: "is not http://HOST[:PORT] or https://HOST[:PORT] (no path: nginx passes the request's own path on)",
    }
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    // A bracketed IPv6 address, or a name or IPv4 address; then the port, if any.
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port)) => (ip.parse::<Ipv6Addr>().is_ok(), port),
            None => (false, ""),
        },
        None => {
            let (host, port) = match authority.find(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            let name_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
            (name_ok, port)
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|p| p > 0),
    };
    if !host_ok || !port_ok {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}
