//! How nginx reaches one listener: the bind it connects to (a Unix socket
//! first, else loopback), the `server` lines of its `upstream` block with
//! the entry nginx resends a request to, and the refusals and warnings that
//! the listener and its bind call for.
//!
//! Which listeners are reached is `listeners`'; whether nginx's user may
//! open a Unix socket is `access`'; writing the block is
//! [`render`](super::super::render)'s, which reads these types.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::access::check_socket_access;
use super::{Accounts, SiteError, SiteOptions};
use crate::config::{Bind, BindSpec, Endpoint, Listener, Location, Plan};
use crate::nginx::options::plain;

/// How nginx reaches one listener.
#[derive(Debug, Clone)]
pub(in crate::nginx) struct Upstream {
    /// The index of the listener it reaches.
    pub(in crate::nginx) listener: usize,
    /// The upstream block's name, unique within a file.
    pub(in crate::nginx) name: String,
    /// The listener's prefix, normalized: empty or `/auth` (no trailing `/`).
    pub(in crate::nginx) prefix: String,
    /// The listener and bind, for the comment.
    pub(in crate::nginx) about: String,
    /// The `server` lines, in order.
    pub(in crate::nginx) servers: Vec<Server>,
}

/// One `server` line of an `upstream` block.
#[derive(Debug, Clone)]
pub(in crate::nginx) struct Server {
    /// `unix:/path`, or an address with its port.
    pub(in crate::nginx) address: String,
    pub(in crate::nginx) role: ServerRole,
    /// `max_fails=`; `None` leaves nginx's default (1 in 10 s).
    pub(in crate::nginx) max_fails: Option<u32>,
}

/// What a `server` line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::nginx) enum ServerRole {
    /// Tried first.
    Primary,
    /// `backup`: the bind's other loopback address, tried after the first.
    Backup,
    /// `backup`: the first server's address once more, as the next server of
    /// a retry (see [`Upstream::with_retry`]).
    Retry,
}

impl Server {
    fn new(address: String, role: ServerRole) -> Server {
        Server {
            address,
            role,
            max_fails: None,
        }
    }
}

impl Upstream {
    pub(super) fn of(
        listener: &Listener,
        opts: &SiteOptions,
        plan: &Plan,
        accounts: &dyn Accounts,
        warnings: &mut Vec<String>,
    ) -> Result<Upstream, SiteError> {
        if listener.tls {
            return Err(SiteError::ListenerTls {
                listener: listener.label(),
                location: listener.location.clone(),
            });
        }
        let prefix = match listener.prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            None | Some("") => String::new(),
            Some(p) if !p.starts_with('/') => {
                return Err(SiteError::BadPrefix {
                    prefix: p.to_owned(),
                    location: listener.location.clone(),
                })
            }
            Some(p) if !plain(p) => {
                return Err(SiteError::BadPrefix {
                    prefix: p.to_owned(),
                    location: listener.location.clone(),
                })
            }
            Some(p) => p.to_owned(),
        };
        let bind = choose_bind(listener).ok_or_else(|| SiteError::Unreachable {
            listener: listener.label(),
            location: listener.location.clone(),
        })?;
        let servers = match &bind.spec {
            BindSpec::Unix { path, .. } if !path.is_absolute() => {
                return Err(SiteError::RelativeSocket {
                    path: path.display().to_string(),
                    location: bind.location.clone(),
                })
            }
            BindSpec::Unix { path, mode } => {
                check_socket_access(bind, path, mode.unwrap_or(0o660), opts, accounts)?;
                vec![Server::new(
                    format!("unix:{}", path.display()),
                    ServerRole::Primary,
                )]
            }
            _ => tcp_servers(bind),
        };
        let every_address = bind.endpoints.iter().find_map(every_address_port);
        if let Some(port) = every_address {
            warnings.push(format!(
                "{}: listener {} binds port {port} on every address, so clients can reach MAS without nginx; bind it to `host: localhost` or a Unix socket",
                bind.location, listener.label()
            ));
        }
        let is_tcp = !matches!(bind.spec, BindSpec::Unix { .. });
        if listener.proxy_protocol && bind.reaches_beyond_loopback() {
            warnings.push(bind.proxy_protocol_exposed(listener));
        }
        if is_tcp && !listener.proxy_protocol {
            for server in &servers {
                let Ok(addr) = server.address.parse::<SocketAddr>() else {
                    continue;
                };
                let ip = addr.ip();
                if !plan.trusted_proxies.iter().any(|n| n.contains(ip)) {
                    return Err(SiteError::UntrustedProxy {
                        ip,
                        bits: if ip.is_ipv4() { 32 } else { 128 },
                        location: plan.trusted_proxies_location.clone().unwrap_or(Location {
                            file: None,
                            key: "http.trusted_proxies".into(),
                        }),
                    });
                }
            }
        }
        Ok(Upstream {
            listener: listener.index,
            name: upstream_name(&opts.name, listener),
            prefix,
            about: format!(
                "listener {}, bind {}: {}",
                listener.label(),
                bind.index,
                bind.spec
            ),
            servers,
        })
    }

    /// The upstream for nginx's http proxy: a lone server is listed again,
    /// as `backup`, and every entry gets `max_fails=0`.
    ///
    /// Listed twice because nginx resends a request whose connection closed
    /// before the response header (`proxy_next_upstream error`, its default)
    /// only to a next server of the upstream, and a restarting MAS closes,
    /// unanswered, connections it accepted but had not read (on a Unix socket
    /// nothing keeps them from it; TCP has `TCP_DEFER_ACCEPT`). The new
    /// connection reaches the new MAS. A POST, PATCH or LOCK that nginx has
    /// sent is never resent (`non_idempotent` stays off). TCP upstreams get
    /// the entry too, for the requests a crashed MAS reset: resent, they wait
    /// in the socket's backlog for the next MAS. `localhost`'s two addresses
    /// give a next server already. `backup` keeps the first entry the one
    /// tried first; `max_fails=0` keeps a failure from taking an entry out
    /// for 10 s, after which two failed entries would make nginx answer 502
    /// without trying ("no live upstreams").
    pub(super) fn with_retry(mut self) -> Upstream {
        if let [first] = self.servers.as_slice() {
            let again = Server::new(first.address.clone(), ServerRole::Retry);
            self.servers.push(again);
        }
        for server in &mut self.servers {
            server.max_fails = Some(0);
        }
        self
    }
}

/// The port of a TCP socket on every address: a bind without `host`, or
/// one on `0.0.0.0` or `[::]` (MAS's own default is `address: "[::]:8080"`).
fn every_address_port(endpoint: &Endpoint) -> Option<u16> {
    match endpoint {
        Endpoint::AnyTcp(port) => Some(*port),
        Endpoint::Tcp(addr) if addr.ip().is_unspecified() => Some(addr.port()),
        _ => None,
    }
}

/// The bind nginx connects to: the first Unix socket, else the first TCP
/// bind on loopback (a bind on every address is on loopback too), else the
/// first TCP bind.
pub(super) fn choose_bind(listener: &Listener) -> Option<&Bind> {
    let is_unix = |b: &&Bind| matches!(b.spec, BindSpec::Unix { .. });
    let is_tcp = |b: &&Bind| matches!(b.spec, BindSpec::HostPort { .. } | BindSpec::Address(_));
    let loopback = |b: &&Bind| {
        b.endpoints.iter().any(|e| {
            every_address_port(e).is_some() || matches!(e, Endpoint::Tcp(a) if a.ip().is_loopback())
        })
    };
    listener
        .binds
        .iter()
        .find(is_unix)
        .or_else(|| listener.binds.iter().filter(is_tcp).find(loopback))
        .or_else(|| listener.binds.iter().find(is_tcp))
}

/// `server` addresses for a TCP bind: its literal addresses; for `localhost`
/// the IPv4 loopback with the IPv6 one as backup (MAS binds whichever
/// resolves first, the socket units both); for a bind on every address the
/// loopback address of its port: `127.0.0.1` for `0.0.0.0`, and for a dual
/// stack `[::]` (or no host) `127.0.0.1` with `[::1]` as backup, which also
/// reaches it where the host made `[::]` IPv6-only.
pub(super) fn tcp_servers(bind: &Bind) -> Vec<Server> {
    let v4 = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let v6 = |port| SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for endpoint in &bind.endpoints {
        match endpoint {
            Endpoint::Tcp(addr) if addr.ip().is_unspecified() => {
                addrs.push(v4(addr.port()));
                if addr.is_ipv6() {
                    addrs.push(v6(addr.port()));
                }
            }
            Endpoint::Tcp(addr) => addrs.push(*addr),
            Endpoint::AnyTcp(port) => {
                addrs.push(v4(*port));
                addrs.push(v6(*port));
            }
            Endpoint::Unix(_) => {}
        }
    }
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let role = if i == 0 {
                ServerRole::Primary
            } else {
                ServerRole::Backup
            };
            Server::new(a.to_string(), role)
        })
        .collect()
}

/// The upstream block name for a listener: `<name>_<listener>`, in the
/// characters nginx takes in a host name.
fn upstream_name(base: &str, listener: &Listener) -> String {
    let label = match &listener.name {
        Some(name) => name.clone(),
        None => format!("listener{}", listener.index),
    };
    format!("{base}_{label}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
