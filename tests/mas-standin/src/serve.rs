//! HTTP/1.1 on the opened sockets, with hyper, and its graceful shutdown.
//!
//! Every response carries `x-standin-pid` and `x-standin-listener` (the
//! listener's name, or its index when unnamed). Routes:
//!
//! - `GET /health`: 200 `ok\n`, like MAS's `health` resource;
//! - `/slow/<ms>`: logs that it holds the request, waits, then answers like
//!   any other path (the log line tells tests a request is in flight);
//! - anything else: 200 `pid=<pid> listener=<label> path=<path>\n`.
//!
//! The `request_delay` switch makes every request wait first. Connections are
//! kept alive as hyper's HTTP/1.1 server does by default.
//!
//! Shutdown follows hyper's graceful shutdown, as MAS's server does: the accept
//! loops stop, idle keep-alive connections are closed, and a connection in the
//! middle of a request finishes its response and then closes. The listening
//! sockets stay open until the process exits, so new connections wait in the
//! backlog instead of being refused.

use std::convert::Infallible;
use std::io;
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

use crate::listen::{Opened, Socket};

const PID_HEADER: HeaderName = HeaderName::from_static("x-standin-pid");
const LISTENER_HEADER: HeaderName = HeaderName::from_static("x-standin-listener");

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
    pub(crate) fn start(opened: Vec<Opened>, request_delay: Duration) -> anyhow::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let (active_tx, active_rx) = mpsc::channel(1);
        let pid_header = HeaderValue::from(std::process::id());
        let mut sockets = Vec::new();
        for Opened { label, socket } in opened {
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
async fn accept(socket: &Socket) -> io::Result<Stream> {
    match socket {
        Socket::Tcp(listener) => listener.accept().await.map(|(s, _)| Stream::Tcp(s)),
        Socket::Unix(listener) => listener.accept().await.map(|(s, _)| Stream::Unix(s)),
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
            () = stopped(&mut stop) => return,
            accepted = accept(&socket) => accepted,
        };
        match accepted {
            Ok(Stream::Tcp(stream)) => {
                tokio::spawn(serve_connection(
                    stream,
                    site.clone(),
                    stop.clone(),
                    active.clone(),
                ));
            }
            Ok(Stream::Unix(stream)) => {
                tokio::spawn(serve_connection(
                    stream,
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
    stream: S,
    site: Site,
    mut stop: watch::Receiver<bool>,
    _active: mpsc::Sender<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| respond(request, site.clone()));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    // A failed connection is the client's doing (reset, malformed request)
    // and says nothing about the server's state: not an event worth a line.
    drop(result);
}

/// Answers one request; see the module doc for the routes.
async fn respond(
    request: Request<Incoming>,
    site: Site,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !site.request_delay.is_zero() {
        tokio::time::sleep(site.request_delay).await;
    }
    let path = request.uri().path();
    let (status, body) = if request.method() == Method::GET && path == "/health" {
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
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(PID_HEADER, site.pid_header.clone());
    headers.insert(LISTENER_HEADER, site.label_header.clone());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
