//! Why no site can be written: one variant per refusal, each with the input
//! it is about (a listener, a bind, an option) and the fix.
//!
//! What only deserves a warning is not here: those are texts in
//! [`Generated::warnings`](super::Generated).

use std::net::{IpAddr, SocketAddr};

use crate::config::Location;

/// Why no site can be written for this config and these options.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("no listener serves all of {needed} that the auth host needs from one listener ({found}); put them in one listener{assets_hint}")]
    NoListener {
        needed: String,
        found: String,
        assets_hint: String,
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
    #[error("{location}: listener {listener} expects the PROXY protocol, which nginx sends only from its stream module, and a stream server cannot serve files; leave out --assets-dir{serves}, or set `proxy_protocol: false` (nginx then passes the client's address in X-Forwarded-For)")]
    AssetsBehindProxyProtocol {
        listener: String,
        location: Location,
        /// How MAS then serves its assets: it does, or it must be told to.
        serves: &'static str,
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
