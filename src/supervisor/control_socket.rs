//! The supervisor's end of the control socket (`control.sock` in the runtime
//! directory): binding it owner-only, accepting connections within bounds
//! that keep a flood of clients from taking our fds, and turning each
//! connection's request line into a [`Request`] for the event loop, whose
//! outcome goes back as the answer.
//!
//! The wire format and the client side belong to [`crate::control`]; what a
//! request does is the event loop's business ([`super::run`]), and removing
//! the socket file when the supervisor ends is `run`'s too.

use std::io;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{Request, SuperviseError, WRITABLE_DIR};
use crate::control::{self, Command};

/// Binds the control socket, owner-only, replacing a stale one.
pub(super) fn bind_control(dir: &std::path::Path) -> Result<UnixListener, SuperviseError> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(control::SOCKET_NAME);
    let fail = |error| SuperviseError::Socket {
        path: path.clone(),
        error,
        fix: WRITABLE_DIR,
    };
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        return Err(SuperviseError::Socket {
            path: path.clone(),
            error: io::Error::new(io::ErrorKind::AddrInUse, "another supervisor answers there"),
            fix: "give each service its own runtime directory",
        });
    }
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}

/// The longest request line read from a control connection.
const MAX_REQUEST: u64 = 64;

/// How many control connections may be open at once that have not sent
/// their request yet: each holds an fd for up to [`REQUEST_TIMEOUT`], and
/// they must not take all of ours.
const MAX_UNREAD_CONTROL: usize = 32;

/// How many control connections may be open at once, those waiting for a
/// restart's outcome included.
const MAX_CONTROL: usize = 256;

/// How long a control client may take to send its request line; ours send
/// it right after connecting.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long accepting on the control socket pauses after it failed: an
/// error such as EMFILE leaves the connection in the backlog, so the socket
/// stays readable and accepting again at once would only spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Accepts control connections until the task is aborted, each answered on
/// a task of its own; more than [`MAX_UNREAD_CONTROL`] or [`MAX_CONTROL`]
/// at once are told so and closed. A failed accept is logged once until
/// one works again, and the next waits [`ACCEPT_PAUSE`].
pub(super) async fn accept_control(listener: UnixListener, requests: mpsc::Sender<Request>) {
    use std::sync::Arc;
    use tokio::sync::Semaphore;
    let unread = Arc::new(Semaphore::new(MAX_UNREAD_CONTROL));
    let open = Arc::new(Semaphore::new(MAX_CONTROL));
    let mut failures = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if failures > 0 {
                    info!("accepting on the control socket works again, after {failures} failed attempt(s)");
                    failures = 0;
                }
                let permits = Arc::clone(&open)
                    .try_acquire_owned()
                    .ok()
                    .zip(Arc::clone(&unread).try_acquire_owned().ok());
                match permits {
                    Some(permits) => serve_control(stream, requests.clone(), permits),
                    None => {
                        // What the client sent already is read, so that the
                        // close does not reset the connection (which can
                        // lose the answer); never waits.
                        let _ = stream.try_read(&mut [0; MAX_REQUEST as usize]);
                        // Fits in an empty socket buffer: never blocks.
                        let _ = stream.try_write(
                            format!("{} the supervisor has as many control connections as it takes at once ({MAX_UNREAD_CONTROL} that have not sent their request, or {MAX_CONTROL} in all); try again in a moment\n", control::BUSY)
                                .as_bytes(),
                        );
                    }
                }
            }
            Err(e) => {
                if failures == 0 {
                    warn!(
                        "accepting on the control socket failed: {e}; trying again every {ACCEPT_PAUSE:?}, logged again once it works ({} control connection(s) open)",
                        MAX_CONTROL - open.available_permits()
                    );
                }
                failures += 1;
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Answers one control connection on a task of its own.
///
/// The stream is closed only by being dropped once the answer is written, and
/// clients read up to that close: so a `reload` that returned has left no
/// connection open here (a shutdown of the write side first would let the
/// client go while the supervisor still holds the socket).
/// `permits` count it among the open connections and, until its request
/// is read, among those that have not sent one.
fn serve_control(
    mut stream: tokio::net::UnixStream,
    requests: mpsc::Sender<Request>,
    permits: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
) {
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
        // Held until the task ends, which is when the connection closes.
        let (_open, unread) = permits;
        // Only our own user (or root) may control us; the directory is
        // private already, this is the second lock.
        let allowed = stream.peer_cred().is_ok_and(|c| {
            let uid = c.uid();
            uid == 0 || uid == nix::unistd::geteuid().as_raw()
        });
        if !allowed {
            let _ = stream.write_all(b"error permission denied\n").await;
            return;
        }
        let mut bytes = Vec::new();
        // A request is one short word; a client that sends more gets no
        // say over how much the supervisor reads and keeps.
        let read = tokio::time::timeout(
            REQUEST_TIMEOUT,
            BufReader::new((&mut stream).take(MAX_REQUEST)).read_until(b'\n', &mut bytes),
        )
        .await;
        drop(unread);
        // Bytes that are not UTF-8 are shown replaced in the refusal.
        let line = String::from_utf8_lossy(&bytes);
        let answer = match (read, Command::parse(&line)) {
            (Ok(Ok(_)), Some(Command::Status)) => {
                let (tx, rx) = oneshot::channel();
                if requests.send(Request::Status(tx)).await.is_err() {
                    return;
                }
                rx.await.unwrap_or_default()
            }
            (Ok(Ok(_)), Some(command)) => {
                let (tx, rx) = oneshot::channel();
                let request = match command {
                    Command::SignalOnly => Request::SignalOnly(tx),
                    _ => Request::Restart(Some(tx)),
                };
                if requests.send(request).await.is_err() {
                    return;
                }
                let outcome = rx
                    .await
                    .unwrap_or_else(|_| Err("the supervisor is stopping".to_owned()));
                control::encode_outcome(&outcome)
            }
            _ => control::encode_outcome(&Err(format!(
                "unknown request {:?}; send restart, signal-only or status",
                line.trim().chars().take(32).collect::<String>()
            ))),
        };
        let _ = stream.write_all(answer.as_bytes()).await;
    });
}
