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
//! address is listed twice (`Upstream::with_retry`). A stream
//! configuration keeps its one entry: nginx's stream proxy moves on to a
//! next server only when it cannot connect, never once MAS has accepted.
//!
//! The output depends only on the plan and the options (and, for the socket
//! permission check, on the host's users and groups), so the same input gives
//! the same bytes. Only listener names, paths, addresses and the options are
//! written: no secret of the config reaches the site.
//!
//! This file holds the files that come out and [`generate`], which picks the
//! layout: a stream configuration for a listener that expects the PROXY
//! protocol, else an http site. Which listener serves each host is chosen in
//! `listeners`; how nginx reaches a listener (the `upstream` block) in
//! `upstream`, with the check that nginx's user may open a Unix socket in
//! `access`; the warnings about `public_base` and `matrix.endpoint` come from
//! `urls`, and the text itself from `nginx::render`.

pub use self::access::{Accounts, SystemAccounts};
pub use self::error::SiteError;
use self::listeners::{pick_auth_listener, pick_compat_listener, warn_of_unreached_proxy_protocol};
pub(super) use self::upstream::{ServerRole, Upstream};
use self::urls::{check_matrix_endpoint, check_public_base};
use super::options::validate_options;
pub use super::options::{MatrixHost, RedirectMode, SiteOptions};
use super::render;
use crate::config::Plan;

mod access;
mod error;
mod listeners;
mod upstream;
mod urls;

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
                serves: if auth.resources.iter().any(|r| r == "assets") {
                    " (MAS serves its assets)"
                } else {
                    " and add `- name: assets` to the listener's resources, so that MAS serves its assets"
                },
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

#[cfg(test)]
mod tests;
