//! The nginx site for a [`Plan`]: which listener serves each host, how nginx
//! reaches it, and the configuration text.
//!
//! The auth host (`--server-name`) goes to the first listener that serves
//! every resource MAS's pages need (`discovery`, `human`, `oauth`, `graphql`,
//! and `assets` unless nginx serves them from `--assets-dir`); with
//! `--assets-dir` or a Matrix host, which need nginx's http module, the first
//! such listener without `proxy_protocol`, if there is one. The Matrix host
//! (`--matrix-server-name`) sends the compatibility endpoints to a listener
//! serving `compat` and everything else under `/_matrix/` and
//! `/_synapse/client/` to the homeserver. nginx reaches a listener through its
//! first Unix socket, else its first TCP bind (loopback preferred).
//!
//! Facts of MAS behind these choices (its `crates/cli`, `crates/listener`):
//! - the resources are mounted under the listener's `prefix`, so nginx passes
//!   paths unchanged and the Matrix host's compat paths get the prefix added;
//! - with `proxy_protocol: true` the PROXY header is required, and its source
//!   address is the client's address whatever `trusted_proxies` says;
//! - without it, the client is the right-most address of the socket peer
//!   followed by `X-Forwarded-For` that `trusted_proxies` does not hold: over
//!   TCP nginx's own address must be trusted, over a Unix socket there is no
//!   peer address and the header alone counts.
//!
//! nginx overwrites `X-Forwarded-For` with the address it sees
//! (`$remote_addr`) instead of appending to what the client sent, so no client
//! can choose the address MAS logs and rate-limits by. It opens a new
//! connection to MAS for each request: a kept-alive idle connection that an
//! old MAS closes while it drains could meet a request that nginx may not
//! resend (a POST), which would be a 502 during a zero-downtime restart.
//! And every upstream of a site gives nginx a next server to resend a
//! request to that a restarting MAS closed unanswered: a lone socket or
//! address is listed twice ([`Upstream::with_retry`]). A stream
//! configuration keeps its one entry: nginx's stream proxy moves on to a
//! next server only when it cannot connect, never once MAS has accepted.
//!
//! The output depends only on the plan and the options (and, for the socket
//! permission check, on the host's users and groups), so the same input gives
//! the same bytes. Only listener names, paths, addresses and the options are
//! written: no secret of the config reaches the site.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::options::{homeserver_target, listen_address, plain, validate_options};
pub use super::options::{MatrixHost, RedirectMode, SiteOptions};
use super::render;
use crate::config::{Bind, BindSpec, Endpoint, Listener, Location, Plan};

/// The resources the auth host's pages need from one listener.
pub const AUTH_RESOURCES: &[&str] = &["discovery", "human", "oauth", "graphql"];

/// The regular expression of the compatibility endpoints MAS answers on the
/// Matrix host: `/_matrix/client/<version>/login`, `/logout` and `/refresh`,
/// and what lies under them (`login/sso/redirect`, `logout/all`).
pub const COMPAT_LOCATION: &str = "^/_matrix/client/[^/]+/(login|logout|refresh)(/|$)";

/// Which module of nginx a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// The http module: a site, included in `http { }` (Debian: sites-enabled/).
    Http,
    /// The stream module: included in `stream { }` in nginx.conf's main context.
    Stream,
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    pub name: String,
    pub context: Context,
    pub contents: String,
}

/// The generated files and what is worth saying about them.
#[derive(Debug, Clone)]
pub struct Generated {
    pub files: Vec<SiteFile>,
    pub warnings: Vec<String>,
}

/// The users and groups of the host that runs nginx; a parameter for tests.
pub trait Accounts {
    /// Whether `user` belongs to `group` (as its primary group or a member).
    ///
    /// # Errors
    ///
    /// When the user or the group does not exist: a text saying which.
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String>;

    /// The gid of `group`, a name or a number.
    ///
    /// # Errors
    ///
    /// When the group does not exist: a text saying which.
    fn gid(&self, group: &str) -> Result<u32, String>;

    /// The name of `user`'s primary group, when both exist.
    fn primary_group(&self, user: &str) -> Option<String>;
}

/// This host's users and groups (getpwnam, getgrnam, getgrgid).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String> {
        use nix::unistd::User;
        let u = User::from_name(user)
            .map_err(|e| format!("cannot look up user `{user}`: {e}"))?
            .ok_or_else(|| format!("there is no user `{user}` on this machine"))?;
        let g = system_group(group)?;
        Ok(u.gid == g.gid || g.mem.iter().any(|m| m == user))
    }

    fn gid(&self, group: &str) -> Result<u32, String> {
        Ok(system_group(group)?.gid.as_raw())
    }

    fn primary_group(&self, user: &str) -> Option<String> {
        use nix::unistd::{Group, User};
        let gid = User::from_name(user).ok()??.gid;
        Some(Group::from_gid(gid).ok()??.name)
    }
}

/// The group of this host named `group`; a number is a gid, as systemd
/// reads `SocketGroup=`.
fn system_group(group: &str) -> Result<nix::unistd::Group, String> {
    use nix::unistd::{Gid, Group};
    match group.parse::<u32>() {
        Ok(gid) if group.bytes().all(|b| b.is_ascii_digit()) => Group::from_gid(Gid::from_raw(gid)),
        _ => Group::from_name(group),
    }
    .map_err(|e| format!("cannot look up group `{group}`: {e}"))?
    .ok_or_else(|| format!("there is no group `{group}` on this machine"))
}

/// Why no site can be written for this config and these options.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("no listener serves all of {needed} that the auth host needs from one listener ({found}); put them in one listener{assets_hint}")]
    NoListener {
        needed: String,
        found: String,
        assets_hint: &'static str,
    },
    #[error("{location}: listener {listener} has only `fd:` binds, and an fd names no address nginx could connect to; add a `socket:` bind (or a `host: localhost` bind) for nginx")]
    Unreachable {
        listener: String,
        location: Location,
    },
    #[error("{location}: listener {listener} terminates TLS itself (`tls:`), and nginx in front terminates it already; remove `tls` from the listener")]
    ListenerTls {
        listener: String,
        location: Location,
    },
    #[error("{location}: `prefix: {prefix}` does not start with `/`, so no URL path can reach it; write e.g. `prefix: /auth`")]
    BadPrefix { prefix: String, location: Location },
    #[error("{location}: the Unix socket path `{path}` is relative: MAS binds it in its working directory and nginx would look for it in its own; give the absolute path")]
    RelativeSocket { path: String, location: Location },
    /// `message` says which socket, its group and mode, nginx's user, and the fix.
    #[error("{location}: {message}")]
    SocketPermission { location: Location, message: String },
    #[error("cannot check that nginx (user `{user}`) may connect to {path}: {reason}; run generate-nginx on the host that runs nginx, or fix --nginx-user / --socket-group")]
    UnknownAccount {
        user: String,
        path: String,
        reason: String,
    },
    #[error("{location}: nginx connects to MAS from {ip}, which `trusted_proxies` does not hold, so MAS would ignore X-Forwarded-For and see every client as {ip}; add `{ip}/{bits}` to http.trusted_proxies, or bind the listener on a Unix socket")]
    UntrustedProxy {
        ip: IpAddr,
        bits: u8,
        location: Location,
    },
    #[error("{location}: listener {listener} expects the PROXY protocol, which nginx sends only from its stream module, and a stream server cannot serve files; leave out --assets-dir (MAS serves its assets), or set `proxy_protocol: false` (nginx then passes the client's address in X-Forwarded-For)")]
    AssetsBehindProxyProtocol {
        listener: String,
        location: Location,
    },
    #[error("{location}: listener {listener} expects the PROXY protocol, which nginx sends only from its stream module, and a stream server cannot share its port with the Matrix host's http server; set `proxy_protocol: false` (nginx then passes the client's address in X-Forwarded-For), or leave out --matrix-server-name")]
    MatrixBehindProxyProtocol {
        listener: String,
        location: Location,
    },
    #[error("no listener serves `compat` for the Matrix host's login, logout and refresh endpoints; add `- name: compat` to a listener, or leave out --matrix-server-name")]
    NoCompat,
    #[error("{location}: --matrix-server-name `{server_name}` is the auth host's name too, and listener {listener} has no `prefix`, so MAS's paths and the homeserver's would share one host's root; give the listener a prefix (e.g. `prefix: /auth`, with public_base https://{server_name}/auth/), or give MAS a host name of its own")]
    SharedHostWithoutPrefix {
        server_name: String,
        listener: String,
        location: Location,
    },
    #[error("{location}: listener {listener} serves `compat` but expects the PROXY protocol, which nginx's http proxy cannot send, and the Matrix host needs the http proxy to tell MAS's paths from the homeserver's; serve `compat` from a listener without proxy_protocol too")]
    CompatBehindProxyProtocol {
        listener: String,
        location: Location,
    },
    #[error("--listen `{first}` and --listen `{second}` are the same address to nginx ({address}), which refuses a server that listens on one address twice (\"a duplicate listen\"); give each address once")]
    DuplicateListen {
        first: String,
        second: String,
        address: SocketAddr,
    },
    #[error("{option} `{value}` {why}")]
    BadOption {
        option: &'static str,
        value: String,
        why: &'static str,
    },
}

/// Writes the nginx file for `plan`: a site, or a stream configuration when
/// the auth host's listener expects the PROXY protocol.
///
/// # Errors
///
/// A listener that nginx cannot reach or may not connect to, options that do
/// not fit the listeners, or an option that cannot be written into nginx's
/// configuration.
pub fn generate(
    plan: &Plan,
    opts: &SiteOptions,
    accounts: &dyn Accounts,
) -> Result<Generated, SiteError> {
    validate_options(opts)?;
    let mut warnings = Vec::new();
    let auth = pick_auth_listener(plan, opts)?;
    let auth_up = Upstream::of(auth, opts, plan, accounts, &mut warnings)?;
    check_public_base(plan, auth, opts, &mut warnings);
    if opts.tls.is_none()
        && plan
            .public_base
            .as_deref()
            .is_some_and(|b| b.starts_with("https:"))
    {
        warnings.push(format!(
            "public_base {} is https, and without --tls-cert nginx serves plain HTTP; put a TLS terminator in front of it, or give --tls-cert and --tls-key",
            plan.public_base.as_deref().unwrap_or_default()
        ));
    }
    let header = render::header(plan);
    let compat = match &opts.matrix {
        Some(_) if !auth.proxy_protocol => Some(pick_compat_listener(plan, auth)?),
        _ => None,
    };
    warn_of_unreached_proxy_protocol(plan, auth, compat, &mut warnings);
    if auth.proxy_protocol {
        if opts.assets_dir.is_some() {
            return Err(SiteError::AssetsBehindProxyProtocol {
                listener: auth.label(),
                location: auth.proxy_protocol_location.clone(),
            });
        }
        if opts.matrix.is_some() {
            return Err(SiteError::MatrixBehindProxyProtocol {
                listener: auth.label(),
                location: auth.proxy_protocol_location.clone(),
            });
        }
        let mut files = vec![SiteFile {
            name: format!("{}-stream.conf", opts.name),
            context: Context::Stream,
            contents: render::stream_file(&header, &auth_up, opts),
        }];
        if let Some(contents) = render::stream_redirect_file(&header, opts) {
            files.push(SiteFile {
                name: format!("{}-redirect.conf", opts.name),
                context: Context::Http,
                contents,
            });
        }
        return Ok(Generated { files, warnings });
    }
    if let Some(m) = opts.shared_matrix_host() {
        if auth_up.prefix.is_empty() {
            return Err(SiteError::SharedHostWithoutPrefix {
                server_name: m.server_name.clone(),
                listener: auth.label(),
                location: auth.location.clone(),
            });
        }
    }
    let auth_up = auth_up.with_retry();
    let compat_up = match &opts.matrix {
        None => None,
        Some(m) => {
            check_matrix_endpoint(plan, m, &mut warnings);
            let compat = compat.expect("picked with the Matrix host");
            if compat.index == auth.index {
                Some(auth_up.clone())
            } else {
                let mut up =
                    Upstream::of(compat, opts, plan, accounts, &mut warnings)?.with_retry();
                // Names that differ only in characters nginx's names cannot
                // hold (`web-1`, `web_1`), or a name used twice, would give
                // both listeners one upstream block.
                if up.name == auth_up.name {
                    up.name = format!("{}_{}", up.name, compat.index);
                }
                Some(up)
            }
        }
    };
    let contents = render::http_file(&header, &auth_up, compat_up.as_ref(), opts);
    Ok(Generated {
        files: vec![SiteFile {
            name: format!("{}.conf", opts.name),
            context: Context::Http,
            contents,
        }],
        warnings,
    })
}

/// A listener with `proxy_protocol: true` is meant for a proxy in front of
/// it, and only nginx's stream module can be that proxy; the site reaches
/// only the auth host's listener (and the Matrix host's compat one), so any
/// other is said, with how to reach it, rather than left out silently.
fn warn_of_unreached_proxy_protocol(
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

fn pick_auth_listener<'p>(plan: &'p Plan, opts: &SiteOptions) -> Result<&'p Listener, SiteError> {
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
    let found = plan
        .listeners
        .iter()
        .map(|l| format!("{} serves {}", l.label(), l.resources.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    Err(SiteError::NoListener {
        needed: needed
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
        found,
        assets_hint: if opts.assets_dir.is_none() {
            ", or give --assets-dir so that nginx serves the assets"
        } else {
            ""
        },
    })
}

fn pick_compat_listener<'p>(plan: &'p Plan, auth: &'p Listener) -> Result<&'p Listener, SiteError> {
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

/// How nginx reaches one listener.
#[derive(Debug, Clone)]
pub(super) struct Upstream {
    /// The index of the listener it reaches.
    pub(super) listener: usize,
    /// The upstream block's name, unique within a file.
    pub(super) name: String,
    /// The listener's prefix, normalized: empty or `/auth` (no trailing `/`).
    pub(super) prefix: String,
    /// The listener and bind, for the comment.
    pub(super) about: String,
    /// The `server` lines, in order.
    pub(super) servers: Vec<Server>,
}

/// One `server` line of an `upstream` block.
#[derive(Debug, Clone)]
pub(super) struct Server {
    /// `unix:/path`, or an address with its port.
    pub(super) address: String,
    pub(super) role: ServerRole,
    /// `max_fails=`; `None` leaves nginx's default (1 in 10 s).
    pub(super) max_fails: Option<u32>,
}

/// What a `server` line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerRole {
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
    fn of(
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
fn choose_bind(listener: &Listener) -> Option<&Bind> {
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
fn tcp_servers(bind: &Bind) -> Vec<Server> {
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

/// Whether nginx's user may connect to a socket of `opts.socket_group` with `mode`.
fn check_socket_access(
    bind: &Bind,
    path: &Path,
    mode: u32,
    opts: &SiteOptions,
    accounts: &dyn Accounts,
) -> Result<(), SiteError> {
    // connect(2) on a Unix socket needs write permission on it, and the
    // kernel takes the group's bits for a member of the socket's group and
    // the others' bits for anyone else (nginx's user does not own it).
    let (group_may, others_may) = (mode & 0o020 != 0, mode & 0o002 != 0);
    if group_may && others_may {
        return Ok(());
    }
    let (user, group) = (&opts.nginx_user, &opts.socket_group);
    // The group to suggest: nginx's own, so that the fix works as written.
    let own = accounts
        .primary_group(user)
        .unwrap_or_else(|| "GROUP".to_owned());
    let refuse = |fix: String| {
        SiteError::SocketPermission {
        location: bind.location.clone(),
        message: format!(
            "the Unix socket {} is owned by group `{group}` with mode {mode:04o}, and nginx's user `{user}` is not allowed to connect, so nginx would answer 502 (permission denied); {fix}",
            path.display()
        ),
    }
    };
    if !group_may && !others_may {
        return Err(refuse(format!(
            "give the bind `mode: \"660\"` and the sockets a group that `{user}` is in (generate-units and generate-nginx --socket-group {own})"
        )));
    }
    let member = accounts
        .is_member(user, group)
        .map_err(|reason| SiteError::UnknownAccount {
            user: user.clone(),
            path: path.display().to_string(),
            reason,
        })?;
    // Adding nginx's user to gid 0 would give every worker, and whoever
    // takes one over, root's group: files such as /etc/shadow on some
    // systems, and whatever an admin made group-root writable.
    let root_group = || accounts.gid(group).is_ok_and(|gid| gid == 0);
    match (member, group_may) {
        (true, true) | (false, false) => Ok(()),
        (false, true) if root_group() => Err(refuse(format!(
            "give MAS's sockets a group that `{user}` is in instead (generate-units --socket-group {own}, and the same --socket-group here), and do not add `{user}` to group `{group}`: gid 0 is root's group"
        ))),
        (false, true) => Err(refuse(format!(
            "give the sockets a group of nginx's (generate-units --socket-group {own}, and the same --socket-group here), or add the user to the group (usermod -aG {group} {user}, then restart nginx)"
        ))),
        (true, false) => Err(refuse(
            "as a member of the group it gets the group's permissions, not the others'; give the bind `mode: \"660\"`".to_owned(),
        )),
    }
}

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
fn check_matrix_endpoint(plan: &Plan, matrix: &MatrixHost, warnings: &mut Vec<String>) {
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

fn check_public_base(plan: &Plan, auth: &Listener, opts: &SiteOptions, warnings: &mut Vec<String>) {
    let Some(base) = plan.public_base.as_deref() else {
        return;
    };
    let (host, path) = url_host_and_path(base);
    // MAS's `url::Url`, nginx and browsers all take an internationalized
    // name in its `xn--` form.
    if !super::idn::same_host(host, &opts.server_name) {
        let ascii = super::idn::to_ascii(host)
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

#[cfg(test)]
mod tests;
