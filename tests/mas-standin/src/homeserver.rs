//! `homeserver-standin`: a test-only stand-in for a Matrix homeserver
//! (Synapse) behind nginx, next to the MAS stand-in.
//!
//! `homeserver-standin --listen ADDR` serves HTTP/1.1 on ADDR until SIGTERM
//! or SIGINT. Every path under `/_matrix/` or `/_synapse/` gets 200
//! `homeserver path=<path>\n`; anything else 404. Every response names the
//! server (`x-standin-name: homeserver`) and carries `x-standin-pid`, so a
//! test can tell which server nginx sent a request to. It logs one line,
//! `listening on ADDR`, once it accepts connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: homeserver-standin --listen ADDR";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let addr = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--listen"), Some(addr), None) => addr,
        _ => {
            eprintln!("homeserver-standin: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("homeserver-standin: `{addr}` is not an address like 127.0.0.1:8008; {USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("homeserver-standin: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeserver-standin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    eprintln!(
        "homeserver-standin[{}]: listening on {}",
        std::process::id(),
        listener.local_addr()?
    );
    loop {
        let (stream, _) = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("homeserver-standin: accept failed: {e}");
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            let service = service_fn(respond);
            // A failed connection is the client's doing.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let (status, body) = if path.starts_with("/_matrix/") || path.starts_with("/_synapse/") {
        (StatusCode::OK, format!("homeserver path={path}\n"))
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("homeserver: no {path} here\n"),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-standin-name", HeaderValue::from_static("homeserver"));
    headers.insert("x-standin-pid", HeaderValue::from(std::process::id()));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
