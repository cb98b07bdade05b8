//! The nginx site for a [`Plan`]: which listener serves each host, how nginx
//! reaches it, and the configuration text.
//!
//! The auth host (`--server-name`) goes to the first listener that serves
//! every resource MAS's pages need (`discovery`, `human`, `oauth`, `graphql`,
//! and `assets` unless nginx serves them from `--assets-dir`). The Matrix host
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
//!
//! The output depends only on the plan and the options (and, for the socket
//! permission check, on the host's users and groups), so the same input gives
//! the same bytes. Only listener names, paths, addresses and the options are
//! written: no secret of the config reaches the site.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{Bind, BindSpec, Endpoint, Listener, Location, Plan};

/// The resources the auth host's pages need from one listener.
pub const AUTH_RESOURCES: &[&str] = &["discovery", "human", "oauth", "graphql"];

/// The regular expression of the compatibility endpoints MAS answers on the
/// Matrix host: `/_matrix/client/<version>/login`, `/logout` and `/refresh`,
/// and what lies under them (`login/sso/redirect`, `logout/all`).
pub const COMPAT_LOCATION: &str = "^/_matrix/client/[^/]+/(login|logout|refresh)(/|$)";

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
    /// nginx's listen addresses; empty means 443 and [::]:443 (80 without TLS).
    pub listen: Vec<String>,
    /// Group of MAS's Unix sockets (generate-units' `--socket-group`).
    pub socket_group: String,
    /// The user nginx's workers run as.
    pub nginx_user: String,
}

/// The Matrix host and its homeserver.
#[derive(Debug, Clone)]
pub struct MatrixHost {
    pub server_name: String,
    /// `http://host:port` or `https://host:port`, without a path.
    pub homeserver: String,
}

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
}

/// This host's users and groups (getpwnam, getgrnam).
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn is_member(&self, user: &str, group: &str) -> Result<bool, String> {
        use nix::unistd::{Group, User};
        let u = User::from_name(user)
            .map_err(|e| format!("cannot look up user `{user}`: {e}"))?
            .ok_or_else(|| format!("there is no user `{user}` on this machine"))?;
        let g = Group::from_name(group)
            .map_err(|e| format!("cannot look up group `{group}`: {e}"))?
            .ok_or_else(|| format!("there is no group `{group}` on this machine"))?;
        Ok(u.gid == g.gid || g.mem.iter().any(|m| m == user))
    }
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
    #[error("{location}: listener {listener} serves `compat` but expects the PROXY protocol, which nginx's http proxy cannot send, and the Matrix host needs the http proxy to tell MAS's paths from the homeserver's; serve `compat` from a listener without proxy_protocol too")]
    CompatBehindProxyProtocol {
        listener: String,
        location: Location,
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
    let header = header(plan);
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
        let contents = stream_file(&header, &auth_up, opts);
        return Ok(Generated {
            files: vec![SiteFile {
                name: format!("{}-stream.conf", opts.name),
                context: Context::Stream,
                contents,
            }],
            warnings,
        });
    }
    let compat_up = match &opts.matrix {
        None => None,
        Some(_) => {
            let compat = pick_compat_listener(plan, auth)?;
            if compat.index == auth.index {
                Some(auth_up.clone())
            } else {
                Some(Upstream::of(compat, opts, plan, accounts, &mut warnings)?)
            }
        }
    };
    let contents = http_file(&header, &auth_up, compat_up.as_ref(), opts);
    Ok(Generated {
        files: vec![SiteFile {
            name: format!("{}.conf", opts.name),
            context: Context::Http,
            contents,
        }],
        warnings,
    })
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
    if let Some(listener) = plan.listeners.iter().find(|l| serves_all(l)) {
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
struct Upstream {
    /// The upstream block's name.
    name: String,
    /// The listener's prefix, normalized: empty or `/auth` (no trailing `/`).
    prefix: String,
    /// The listener and bind, for the comment.
    about: String,
    /// `server` lines: the address, and whether it is a backup.
    servers: Vec<(String, bool)>,
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
            BindSpec::Unix { path, mode } => {
                check_socket_access(bind, path, mode.unwrap_or(0o660), opts, accounts)?;
                vec![(format!("unix:{}", path.display()), false)]
            }
            _ => tcp_servers(bind),
        };
        if let BindSpec::HostPort { host: None, port } = &bind.spec {
            warnings.push(format!(
                "{}: listener {} binds port {port} on every address, so clients can reach MAS without nginx; bind it to `host: localhost` or a Unix socket",
                bind.location, listener.label()
            ));
        }
        let is_tcp = !matches!(bind.spec, BindSpec::Unix { .. });
        if is_tcp && listener.proxy_protocol {
            let loopback_only = servers
                .iter()
                .all(|(s, _)| s.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback()));
            if !loopback_only || matches!(bind.spec, BindSpec::HostPort { host: None, .. }) {
                warnings.push(format!(
                    "{}: MAS believes the PROXY header of anyone who connects to listener {}, and it listens beyond loopback: anyone who reaches it can claim any client address; bind it to localhost or a Unix socket",
                    bind.location, listener.label()
                ));
            }
        }
        if is_tcp && !listener.proxy_protocol {
            for (server, _) in &servers {
                let Ok(addr) = server.parse::<SocketAddr>() else {
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
}

/// The bind nginx connects to: the first Unix socket, else the first TCP
/// bind on loopback, else the first TCP bind.
fn choose_bind(listener: &Listener) -> Option<&Bind> {
    let is_unix = |b: &&Bind| matches!(b.spec, BindSpec::Unix { .. });
    let is_tcp = |b: &&Bind| matches!(b.spec, BindSpec::HostPort { .. } | BindSpec::Address(_));
    let loopback = |b: &&Bind| {
        b.endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Tcp(a) if a.ip().is_loopback()))
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
/// loopback address of its port.
fn tcp_servers(bind: &Bind) -> Vec<(String, bool)> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for endpoint in &bind.endpoints {
        match endpoint {
            Endpoint::Tcp(addr) => addrs.push(*addr),
            Endpoint::AnyTcp(port) => {
                addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), *port));
                addrs.push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), *port));
            }
            Endpoint::Unix(_) => {}
        }
    }
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (a.to_string(), i > 0))
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
    // connect(2) on a Unix socket needs write permission on it.
    if mode & 0o002 != 0 {
        return Ok(());
    }
    let (user, group) = (&opts.nginx_user, &opts.socket_group);
    let refuse = |fix: String| {
        SiteError::SocketPermission {
        location: bind.location.clone(),
        message: format!(
            "the Unix socket {} is owned by group `{group}` with mode {mode:04o}, and nginx's user `{user}` is not allowed to connect, so nginx would answer 502 (permission denied); {fix}",
            path.display()
        ),
    }
    };
    if mode & 0o020 == 0 {
        return Err(refuse(format!(
            "give the bind `mode: \"660\"` and the sockets a group that `{user}` is in (generate-units and generate-nginx --socket-group, e.g. www-data)"
        )));
    }
    let member = accounts
        .is_member(user, group)
        .map_err(|reason| SiteError::UnknownAccount {
            user: user.clone(),
            path: path.display().to_string(),
            reason,
        })?;
    if member {
        return Ok(());
    }
    Err(refuse(format!(
        "give the sockets a group of nginx's (generate-units --socket-group www-data, and the same --socket-group here), or add the user to the group (usermod -aG {group} {user}, then restart nginx)"
    )))
}

fn check_public_base(plan: &Plan, auth: &Listener, opts: &SiteOptions, warnings: &mut Vec<String>) {
    let Some(base) = plan.public_base.as_deref() else {
        return;
    };
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
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
    if !host.eq_ignore_ascii_case(&opts.server_name) {
        warnings.push(format!(
            "public_base {base} names host `{host}`, not --server-name `{}`; MAS's links would lead elsewhere",
            opts.server_name
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

/// Whether a text can be written as one nginx word without quotes, escapes
/// or variables.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !"\"'\\;{}#$".contains(c))
}

fn validate_options(opts: &SiteOptions) -> Result<(), SiteError> {
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
        if m.server_name.eq_ignore_ascii_case(&opts.server_name) {
            return bad(
                "--matrix-server-name",
                &m.server_name,
                "is the auth host's name too; MAS and the Matrix host need a name each",
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
            "is not usable in file and upstream names; use letters, digits, `-`, `_` or `.`",
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
    }
    for listen in &opts.listen {
        if parse_listen(listen).is_none() {
            return bad("--listen", listen, "is not PORT, IPV4:PORT or [IPV6]:PORT");
        }
    }
    Ok(())
}

/// `PORT`, `IPV4:PORT` or `[IPV6]:PORT`, as nginx's `listen` writes them.
fn parse_listen(text: &str) -> Option<String> {
    let port_ok =
        |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0) && p.bytes().all(|b| b.is_ascii_digit());
    if port_ok(text) {
        return Some(text.to_owned());
    }
    let addr: SocketAddr = text.parse().ok()?;
    (addr.port() > 0).then(|| addr.to_string())
}

/// The homeserver as a `proxy_pass` target: `scheme://host[:port]`.
fn homeserver_target(url: &str) -> Result<String, SiteError> {
    let bad = || {
        SiteError::BadOption {
        option: "--homeserver",
        value: url.to_owned(),
        why: "is not http://HOST:PORT or https://HOST:PORT (no path: nginx passes the request's own path on)",
    }
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(bad());
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || !authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
    {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}

fn header(plan: &Plan) -> String {
    let files: Vec<String> = plan
        .files
        .iter()
        .map(|p| {
            p.display()
                .to_string()
                .replace(|c: char| c.is_control(), " ")
        })
        .collect();
    let from = if files.is_empty() {
        "MAS's built-in listeners".to_owned()
    } else {
        files.join(", ")
    };
    format!("# Generated by `mas-sockets generate-nginx` from {from}.\n# Regenerate it after changing the listeners.\n")
}

fn listen_lines(opts: &SiteOptions, params: &str) -> String {
    let defaults: &[&str] = if opts.tls.is_some() {
        &["443", "[::]:443"]
    } else {
        &["80", "[::]:80"]
    };
    let addrs: Vec<String> = if opts.listen.is_empty() {
        defaults.iter().map(|s| (*s).to_owned()).collect()
    } else {
        opts.listen.iter().filter_map(|l| parse_listen(l)).collect()
    };
    addrs
        .iter()
        .map(|a| format!("    listen {a}{params};\n"))
        .collect()
}

fn tls_lines(opts: &SiteOptions) -> String {
    match &opts.tls {
        None => String::new(),
        Some((cert, key)) => format!(
            "\n    ssl_certificate {};\n    ssl_certificate_key {};\n    ssl_protocols TLSv1.2 TLSv1.3;\n",
            cert.display(),
            key.display()
        ),
    }
}

fn upstream_block(up: &Upstream) -> String {
    let mut out = format!("upstream {} {{\n    # {}\n", up.name, one_line(&up.about));
    for (server, backup) in &up.servers {
        let server = if plain(server) {
            server.clone()
        } else {
            format!("\"{}\"", server.replace('\\', "\\\\").replace('"', "\\\""))
        };
        let _ = writeln!(
            out,
            "    server {server}{};",
            if *backup { " backup" } else { "" }
        );
    }
    out.push_str("}\n");
    out
}

/// The directives every proxied location shares, at server level so that
/// locations inherit them.
const PROXY_HEADERS: &str = "    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
";

fn http_file(
    header: &str,
    auth: &Upstream,
    compat: Option<&Upstream>,
    opts: &SiteOptions,
) -> String {
    let mut out = String::from(header);
    out.push_str("# A site for nginx's http module: include it in `http { }`, e.g. as\n# /etc/nginx/sites-enabled/");
    let _ = writeln!(out, "{}.conf.\n", opts.name);
    out.push_str(&upstream_block(auth));
    if let Some(c) = compat.filter(|c| c.name != auth.name) {
        out.push('\n');
        out.push_str(&upstream_block(c));
    }
    let params = if opts.tls.is_some() { " ssl http2" } else { "" };
    let listen = listen_lines(opts, params);
    let tls = tls_lines(opts);
    let p = &auth.prefix;

    let _ = write!(
        out,
        "\n# The authentication service.\nserver {{\n{listen}    server_name {};\n{tls}\n{PROXY_HEADERS}",
        opts.server_name
    );
    if let Some(dir) = &opts.assets_dir {
        let dir = dir.display().to_string();
        let dir = format!("{}/", dir.trim_end_matches('/'));
        let _ = write!(
            out,
            "\n    # MAS's assets, from nginx itself: the pre-compressed .gz files when\n    # the client takes gzip, cached for a year.\n    location ^~ {p}/assets/ {{\n        alias {dir};\n        gzip_static on;\n        gzip_vary on;\n        add_header Cache-Control \"public, max-age=31536000, immutable\";\n    }}\n"
        );
    }
    let _ = write!(
        out,
        "\n    location {p}/ {{\n        proxy_pass http://{};\n    }}\n",
        auth.name
    );
    if !p.is_empty() {
        out.push_str("\n    # MAS serves nothing outside its prefix.\n    location / {\n        return 404;\n    }\n");
    }
    out.push_str("}\n");

    if let (Some(m), Some(c)) = (&opts.matrix, compat) {
        let hs = homeserver_target(&m.homeserver).expect("validated with the options");
        let compat_pass = if c.prefix.is_empty() {
            format!("http://{}", c.name)
        } else {
            // A regex location takes a URI in proxy_pass only with variables.
            format!("http://{}{}$request_uri", c.name, c.prefix)
        };
        let _ = write!(
            out,
            "\n# The Matrix homeserver's host: MAS answers the login, logout and refresh\n# endpoints, the homeserver everything else under /_matrix/ and /_synapse/client/.\nserver {{\n{listen}    server_name {};\n{tls}\n{PROXY_HEADERS}\n    location ~ {COMPAT_LOCATION} {{\n        proxy_pass {compat_pass};\n    }}\n",
            m.server_name
        );
        for path in ["/_matrix/", "/_synapse/client/"] {
            let _ = write!(
                out,
                "\n    location {path} {{\n        proxy_pass {hs};\n        client_max_body_size 50M;\n    }}\n"
            );
        }
        out.push_str("\n    location / {\n        return 404;\n    }\n}\n");
    }
    out
}

fn stream_file(header: &str, auth: &Upstream, opts: &SiteOptions) -> String {
    let mut out = String::from(header);
    let _ = write!(
        out,
        "# For nginx's stream module (Debian: libnginx-mod-stream): include it in\n# `stream {{ }}` in the main context of nginx.conf, e.g. as /etc/nginx/streams-enabled/{}-stream.conf.\n\n",
        opts.name
    );
    out.push_str(&upstream_block(auth));
    let params = if opts.tls.is_some() { " ssl" } else { "" };
    let _ = write!(
        out,
        "\n# The authentication service, {}: MAS learns each client's address from\n# the PROXY protocol header, which only nginx's stream module sends.\nserver {{\n{}{}\n    proxy_pass {};\n    proxy_protocol on;\n}}\n",
        opts.server_name,
        listen_lines(opts, params),
        tls_lines(opts),
        auth.name
    );
    out
}

/// Collapses control characters, so a value cannot start a new line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
