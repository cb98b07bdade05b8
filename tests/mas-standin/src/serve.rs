//! HTTP/1.1 on the opened sockets, with hyper, and its graceful shutdown.
//!
//! Every response carries `x-standin-name: mas`, `x-standin-pid`,
//! `x-standin-listener` (the listener's name, or its index when unnamed),
//! `x-standin-client` (the client's address as MAS infers it) and
//! `x-standin-peer` (the socket's peer: an address, or `unix`); on a listener
//! with `proxy_protocol: true` also `x-standin-proxy` (the source address the
//! PROXY header gave, or `unknown`). Routes, under the listener's `prefix`
//! (anything outside it is 404, as MAS's fallback):
//!
//! - the paths of each of MAS's resources ([`resource_of`]): 200 with
//!   `x-standin-resource: <name>` when the listener has that resource, 404
//!   when it does not, as MAS would; `GET /health` answers `ok\n`;
//! - `/slow/<ms>`: logs that it holds the request, waits, then answers like
//!   any other path (the log line tells tests a request is in flight);
//! - anything else: 200 `pid=<pid> listener=<label> path=<path>\n`.
//!
//! The client's address follows MAS (`infer_client_ip` in its `crates/cli`):
//! a PROXY header's source wins; otherwise the socket peer's address (none on
//! a Unix socket) followed by each `X-Forwarded-For` entry that parses as an
//! address (split on `,` and not trimmed, as MAS does), and the client is the
//! last of those that `trusted_proxies` does not hold, else the first.
//!
//! The `request_delay` switch makes every request wait first, and
//! `first_read_delay` every connection before its first read (so that a
//! shutdown that starts meanwhile closes it unanswered, see below).
//! Connections are kept alive as hyper's HTTP/1.1 server does by default.
//!
//! Shutdown follows hyper's graceful shutdown in the order MAS's server
//! (`mas-listener`) uses: the stop is looked at before anything else, so the
//! accept loops take no connection once it has come, and each connection
//! starts its graceful shutdown before it is polled again. Idle keep-alive
//! connections are closed; a connection in the middle of a request finishes
//! its response and then closes; and, as in MAS, a connection accepted but
//! not yet read from is closed unanswered (hyper closes a connection that has
//! seen no byte yet). The listening sockets stay open until the process
//! exits, so new connections wait in the backlog instead of being refused.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::config::Net;
use crate::listen::{Opened, Socket};
use crate::proxy::{self, Header, Rewind};

const PID_HEADER: HeaderName = HeaderName::from_static("x-standin-pid");
const LISTENER_HEADER: HeaderName = HeaderName::from_static("x-standin-listener");
const NAME_HEADER: HeaderName = HeaderName::from_static("x-standin-name");
const RESOURCE_HEADER: HeaderName = HeaderName::from_static("x-standin-resource");
const CLIENT_HEADER: HeaderName = HeaderName::from_static("x-standin-client");
const PEER_HEADER: HeaderName = HeaderName::from_static("x-standin-peer");
const PROXY_HEADER: HeaderName = HeaderName::from_static("x-standin-proxy");

/// How long an accept loop waits after a failed `accept(2)` (say, out of fds)
/// before it tries again, so a persistent error does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// The running HTTP server.
pub(crate) struct Server {
    /// Flipped to `true` once, to start the graceful shutdown.
    stop: watch::Sender<bool>,
    /// Our handle on the drain count: every accept loop and connection task
    /// holds a clone, so `active_rx` yields `None` once all of them are gone.
    /// Dropped when the shutdown starts.
    active_tx: Option<mpsc::Sender<()>>,
    active_rx: mpsc::Receiver<()>,
    /// The listening sockets, kept open until the process exits.
    _sockets: Vec<Arc<Socket>>,
}

/// What a connection needs to answer: who we are and which listener this is.
#[derive(Clone)]
struct Site {
    label: Arc<str>,
    label_header: HeaderValue,
    pid_header: HeaderValue,
    request_delay: Duration,
    first_read_delay: Duration,
    resources: Arc<[String]>,
    prefix: Arc<str>,
    proxy_protocol: bool,
    trusted: Arc<[Net]>,
}

/// What is known of a connection's client before any request.
#[derive(Clone, Copy)]
struct Peer {
    /// The socket's peer address; `None` on a Unix socket.
    addr: Option<SocketAddr>,
    /// What the PROXY header said, on a listener that requires one.
    proxy: Option<Header>,
}

impl Site {
    /// The body line of ordinary routes.
    fn describe(&self, path: &str) -> String {
        format!(
            "pid={} listener={} path={path}\n",
            std::process::id(),
            self.label
        )
    }
}

impl Server {
    /// Starts one accept loop per socket. Must run inside the tokio runtime.
    ///
    /// # Errors
    ///
    /// A listener name that cannot be sent as an HTTP header value.
    pub(crate) fn start(
        opened: Vec<Opened>,
        request_delay: Duration,
        first_read_delay: Duration,
        trusted: Vec<Net>,
    ) -> anyhow::Result<Self> {
        let trusted: Arc<[Net]> = trusted.into();
        let (stop, stop_rx) = watch::channel(false);
        let (active_tx, active_rx) = mpsc::channel(1);
        let pid_header = HeaderValue::from(std::process::id());
        let mut sockets = Vec::new();
        for Opened {
            label,
            socket,
            resources,
            prefix,
            proxy_protocol,
        } in opened
        {
            let label_header = HeaderValue::from_str(&label).map_err(|_| {
                anyhow!(
                    "listener name {label:?} cannot be sent in an HTTP header; use visible ASCII"
                )
            })?;
            let site = Site {
                label: label.into(),
                label_header,
                pid_header: pid_header.clone(),
                request_delay,
                first_read_delay,
                resources: resources.into(),
                prefix: prefix.into(),
                proxy_protocol,
                trusted: Arc::clone(&trusted),
            };
            let socket = Arc::new(socket);
            tokio::spawn(accept_loop(
                Arc::clone(&socket),
                site,
                stop_rx.clone(),
                active_tx.clone(),
            ));
            sockets.push(socket);
        }
        Ok(Self {
            stop,
            active_tx: Some(active_tx),
            active_rx,
            _sockets: sockets,
        })
    }

    /// Starts the graceful shutdown; see the module doc for what it does.
    pub(crate) fn begin_shutdown(&mut self) {
        self.stop.send_replace(true);
        self.active_tx = None;
    }

    /// Resolves once every accept loop and connection has finished. Call
    /// [`Server::begin_shutdown`] first, or this never resolves.
    pub(crate) async fn drained(&mut self) {
        while self.active_rx.recv().await.is_some() {}
    }
}

/// Resolves once the shutdown has started (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across awaits.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A connection accepted on either kind of socket.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Waits for the next connection on either kind of socket.
async fn accept(socket: &Socket) -> io::Result<(Stream, Option<SocketAddr>)> {
    match socket {
        Socket::Tcp(listener) => listener
            .accept()
            .await
            .map(|(s, a)| (Stream::Tcp(s), Some(a))),
        Socket::Unix(listener) => listener
            .accept()
            .await
            .map(|(s, _)| (Stream::Unix(s), None)),
    }
}

/// Accepts connections until the shutdown starts; the socket stays open.
async fn accept_loop(
    socket: Arc<Socket>,
    site: Site,
    mut stop: watch::Receiver<bool>,
    active: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            accepted = accept(&socket) => accepted,
        };
        match accepted {
            Ok((Stream::Tcp(stream), addr)) => {
                tokio::spawn(serve_connection(
                    stream,
                    addr,
                    site.clone(),
                    stop.clone(),
                    active.clone(),
                ));
            }
            Ok((Stream::Unix(stream), addr)) => {
                tokio::spawn(serve_connection(
                    stream,
                    addr,
                    site.clone(),
                    stop.clone(),
                    active.clone(),
                ));
            }
            Err(err) => {
                log!("listener {}: accept failed: {err}", site.label);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves one connection until the client leaves or the shutdown closes it.
async fn serve_connection<S>(
    mut stream: S,
    addr: Option<SocketAddr>,
    site: Site,
    mut stop: watch::Receiver<bool>,
    _active: mpsc::Sender<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !site.first_read_delay.is_zero() {
        tokio::time::sleep(site.first_read_delay).await;
    }
    let (proxy, pending) = if site.proxy_protocol {
        match tokio::time::timeout(proxy::HANDSHAKE_TIMEOUT, proxy::read_header(&mut stream)).await
        {
            Ok(Ok((header, pending))) => (Some(header), pending),
            Ok(Err(why)) => {
                log!(
                    "listener {}: PROXY protocol handshake failed, closing the connection: {why}",
                    site.label
                );
                return;
            }
            Err(_) => {
                log!(
                    "listener {}: no PROXY protocol header within 5 s, closing the connection",
                    site.label
                );
                return;
            }
        }
    } else {
        (None, Vec::new())
    };
    let peer = Peer { addr, proxy };
    let service = service_fn(move |request| respond(request, site.clone(), peer));
    let connection =
        http1::Builder::new().serve_connection(TokioIo::new(Rewind::new(pending, stream)), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        biased;
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        result = connection.as_mut() => result,
    };
    // A failed connection is the client's doing (reset, malformed request)
    // and says nothing about the server's state: not an event worth a line.
    drop(result);
}

/// Answers one request; see the module doc for the routes.
async fn respond(
    request: Request<Incoming>,
    site: Site,
    peer: Peer,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !site.request_delay.is_zero() {
        tokio::time::sleep(site.request_delay).await;
    }
    let full = request.uri().path();
    let under_prefix = if site.prefix.is_empty() {
        Some(full)
    } else {
        full.strip_prefix(&*site.prefix)
            .filter(|rest| rest.starts_with('/'))
    };
    let path = under_prefix.unwrap_or(full);
    let resource = resource_of(path);
    let served = resource
        .filter(|r| site.resources.iter().any(|have| have == r))
        .filter(|_| under_prefix.is_some());
    let (status, body) = if under_prefix.is_none() {
        (
            StatusCode::NOT_FOUND,
            format!(
                "{full} is not under the listener's prefix {}\n",
                site.prefix
            ),
        )
    } else if let (Some(r), None) = (resource, served) {
        (
            StatusCode::NOT_FOUND,
            format!("listener {} has no resource {r}\n", site.label),
        )
    } else if request.method() == Method::GET && served == Some("health") {
        (StatusCode::OK, "ok\n".to_owned())
    } else if let Some(ms) = path.strip_prefix("/slow/") {
        match ms.parse::<u64>() {
            Ok(ms) => {
                log!("listener {}: holding {path} for {ms} ms", site.label);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                (StatusCode::OK, site.describe(path))
            }
            Err(_) => (
                StatusCode::BAD_REQUEST,
                format!("{ms:?} is not a delay; use /slow/<milliseconds>\n"),
            ),
        }
    } else {
        (StatusCode::OK, site.describe(path))
    };
    let client = client_address(&peer, request.headers(), &site.trusted);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(NAME_HEADER, HeaderValue::from_static("mas"));
    headers.insert(PID_HEADER, site.pid_header.clone());
    headers.insert(LISTENER_HEADER, site.label_header.clone());
    if let Some(r) = served {
        headers.insert(RESOURCE_HEADER, HeaderValue::from_static(r));
    }
    let text = |v: String| HeaderValue::from_str(&v).expect("addresses are visible ASCII");
    headers.insert(
        CLIENT_HEADER,
        text(client.map_or_else(|| "none".to_owned(), |ip| ip.to_string())),
    );
    headers.insert(
        PEER_HEADER,
        text(
            peer.addr
                .map_or_else(|| "unix".to_owned(), |a| a.to_string()),
        ),
    );
    match peer.proxy {
        Some(Header::Inet { source }) => {
            headers.insert(PROXY_HEADER, text(source.to_string()));
        }
        Some(Header::Unknown) => {
            headers.insert(PROXY_HEADER, HeaderValue::from_static("unknown"));
        }
        None => {}
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The client's address as MAS infers it; see the module doc.
fn client_address(peer: &Peer, headers: &hyper::HeaderMap, trusted: &[Net]) -> Option<IpAddr> {
    if let Some(Header::Inet { source }) = peer.proxy {
        return Some(source.ip());
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.parse::<IpAddr>().ok());
    let list: Vec<IpAddr> = peer
        .addr
        .map(|a| a.ip())
        .into_iter()
        .chain(forwarded)
        .map(|ip| ip.to_canonical())
        .collect();
    list.iter()
        .rev()
        .find(|ip| !trusted.iter().any(|n| n.contains(**ip)))
        .or(list.first())
        .copied()
}

/// The resource of MAS that serves `path` (below the prefix), after the
/// routes of MAS's `crates/router`.
pub(crate) fn resource_of(path: &str) -> Option<&'static str> {
    const HUMAN: &[&str] = &[
        "/",
        "/login",
        "/logout",
        "/register",
        "/authorize",
        "/link",
        "/recover",
        "/.well-known/change-password",
    ];
    const HUMAN_UNDER: &[&str] = &[
        "/account/",
        "/register/",
        "/consent/",
        "/complete-compat-sso/",
        "/upstream/",
        "/device/",
        "/recover/",
    ];
    match path {
        "/.well-known/openid-configuration" | "/.well-known/webfinger" => Some("discovery"),
        "/health" => Some("health"),
        "/metrics" => Some("prometheus"),
        "/connection-info" => Some("connection-info"),
        "/graphql" | "/graphql/playground" => Some("graphql"),
        p if HUMAN.contains(&p) => Some("human"),
        p if p.starts_with("/oauth2/") => Some("oauth"),
        p if p.starts_with("/assets/") => Some("assets"),
        p if p.starts_with("/api/") => Some("adminapi"),
        p if is_compat(p) => Some("compat"),
        p if HUMAN_UNDER.iter().any(|h| p.starts_with(h)) => Some("human"),
        _ => None,
    }
}

/// `/_matrix/client/<version>/login`, `/logout`, `/refresh`, and what lies
/// under them (`login/sso/redirect/...`, `logout/all`).
fn is_compat(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/_matrix/client/") else {
        return false;
    };
    let Some((version, endpoint)) = rest.split_once('/') else {
        return false;
    };
    !version.is_empty()
        && ["login", "logout", "refresh"]
            .iter()
            .any(|e| endpoint == *e || endpoint.starts_with(&format!("{e}/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_mas_resources() {
        for (path, want) in [
            ("/.well-known/openid-configuration", Some("discovery")),
            ("/", Some("human")),
            ("/login", Some("human")),
            ("/account/sessions", Some("human")),
            ("/oauth2/token", Some("oauth")),
            ("/graphql", Some("graphql")),
            ("/assets/app.js", Some("assets")),
            ("/_matrix/client/v3/login", Some("compat")),
            ("/_matrix/client/r0/logout/all", Some("compat")),
            ("/_matrix/client/v3/refresh", Some("compat")),
            ("/_matrix/client/v3/sync", None),
            ("/_matrix/client/v3/login2", None),
            ("/api/admin/v1/users", Some("adminapi")),
            ("/health", Some("health")),
            ("/which", None),
        ] {
            assert_eq!(resource_of(path), want, "{path}");
        }
    }

    fn nets(list: &[&str]) -> Vec<Net> {
        list.iter().map(|n| Net::parse(n).unwrap()).collect()
    }

    fn client(peer: Option<&str>, proxy: Option<&str>, xff: Option<&str>) -> Option<IpAddr> {
        let mut headers = hyper::HeaderMap::new();
        if let Some(xff) = xff {
            headers.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        }
        let peer = Peer {
            addr: peer.map(|p| p.parse().unwrap()),
            proxy: proxy.map(|p| Header::Inet {
                source: p.parse().unwrap(),
            }),
        };
        client_address(
            &peer,
            &headers,
            &nets(&["127.0.0.1/8", "::1/128", "10.0.0.0/10"]),
        )
    }

    #[test]
    fn client_address_is_inferred_as_mas_does() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // The PROXY header wins over everything.
        assert_eq!(
            client(
                Some("127.0.0.1:1"),
                Some("203.0.113.5:9"),
                Some("198.51.100.1")
            ),
            ip("203.0.113.5")
        );
        // A trusted peer's header is believed; so is an untrusted peer's,
        // because MAS searches the list from its end.
        assert_eq!(
            client(Some("127.0.0.1:1"), None, Some("198.51.100.1")),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(Some("192.0.2.9:1"), None, Some("198.51.100.1")),
            ip("198.51.100.1")
        );
        assert_eq!(client(Some("192.0.2.9:1"), None, None), ip("192.0.2.9"));
        // A Unix socket has no peer address: the header alone counts.
        assert_eq!(client(None, None, Some("198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(client(None, None, None), None);
        // Entries after `, ` are skipped, as MAS does not trim them.
        assert_eq!(
            client(Some("127.0.0.1:1"), None, Some("198.51.100.66, 192.0.2.7")),
            ip("198.51.100.66")
        );
        assert_eq!(
            client(Some("127.0.0.1:1"), None, Some("198.51.100.66,192.0.2.7")),
            ip("192.0.2.7")
        );
        // All trusted: the first.
        assert_eq!(
            client(Some("127.0.0.1:1"), None, Some("10.0.0.1")),
            ip("127.0.0.1")
        );
    }
}
