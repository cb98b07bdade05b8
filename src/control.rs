//! The control socket: how `mas-sockets reload` and `mas-sockets status` talk
//! to a running supervisor.
//!
//! A Unix stream socket `control.sock` in the supervisor's private runtime
//! directory (mode 0700, the socket 0600), so only the service's user (and
//! root) can reach it; the peer's uid is checked as well. One request per
//! connection, one line each way, except `status`, which answers with several
//! `key: value` lines:
//!
//! ```text
//! restart      -> ok <what happened> | error <why>
//! signal-only  -> ok <what happened> | error <why>
//! status       -> generation: 3\nchild: 1234\n...
//! ```
//!
//! The connection stays open until the outcome is known, so a restart that
//! takes MAS's whole start-up is answered only then. The supervisor closes
//! it after answering, and clients read up to that close.

use std::io::{self, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socket's name in the runtime directory.
pub const SOCKET_NAME: &str = "control.sock";

/// What a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Replace MAS with a new process, without a gap.
    Restart,
    /// Pass SIGHUP to MAS, which reloads its templates.
    SignalOnly,
    /// Describe the supervisor's state.
    Status,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Restart => "restart",
            Command::SignalOnly => "signal-only",
            Command::Status => "status",
        }
    }

    pub fn parse(line: &str) -> Option<Command> {
        match line.trim() {
            "restart" => Some(Command::Restart),
            "signal-only" => Some(Command::SignalOnly),
            "status" => Some(Command::Status),
            _ => None,
        }
    }
}

/// An answer to `restart` or `signal-only`, as it goes over the wire.
pub fn encode_outcome(outcome: &Result<String, String>) -> String {
    let (word, text) = match outcome {
        Ok(text) => ("ok", text),
        Err(text) => ("error", text),
    };
    format!("{word} {}\n", text.replace('\n', " "))
}

/// Reads an answer written by [`encode_outcome`].
pub fn decode_outcome(line: &str) -> Result<String, String> {
    let line = line.trim_end();
    match line.split_once(' ') {
        Some(("ok", text)) => Ok(text.to_owned()),
        Some(("error", text)) => Err(text.to_owned()),
        _ if line == "ok" => Ok(String::new()),
        _ => Err(format!("unexpected answer from the supervisor: {line:?}")),
    }
}

/// Why a client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the supervisor at {path}: {error}; is the service running, and is this its runtime directory (--runtime-dir, or --name for /run/mas-sockets/NAME)?", path = path.display())]
    Connect { path: PathBuf, error: io::Error },
    #[error("cannot reach the supervisor at {path}: {error}; this user may not open it: {hint}", path = path.display())]
    Denied {
        path: PathBuf,
        error: io::Error,
        hint: String,
    },
    #[error("the supervisor at {path} did not answer: {error}; look at the service's journal (e.g. journalctl -u mas)", path = path.display())]
    Exchange { path: PathBuf, error: io::Error },
    #[error("the supervisor at {path} gave no answer within {secs} s; it may be stopped (SIGSTOP) or stuck: look at `systemctl status` and the journal of the service, and restart it if it stays so", path = path.display(), secs = timeout.as_secs())]
    NoAnswer { path: PathBuf, timeout: Duration },
    #[error("the supervisor at {path} is busy: {text}", path = path.display())]
    Busy { path: PathBuf, text: String },
}

/// The word that starts the supervisor's answer to a connection it does not
/// take, because too many are open.
pub const BUSY: &str = "busy";

/// Sends `command` and returns the whole answer.
///
/// # Errors
///
/// The socket cannot be reached, or the exchange breaks off.
pub fn request(
    dir: &Path,
    command: Command,
    timeout: Option<Duration>,
) -> Result<String, ClientError> {
    let path = dir.join(SOCKET_NAME);
    let mut stream = UnixStream::connect(&path).map_err(|error| {
        if error.kind() == io::ErrorKind::PermissionDenied {
            ClientError::Denied {
                hint: who_may(dir, &path),
                path: path.clone(),
                error,
            }
        } else {
            ClientError::Connect {
                path: path.clone(),
                error,
            }
        }
    })?;
    let answer =
        exchange(&mut stream, command, timeout).map_err(|error| match (error.kind(), timeout) {
            // A read timeout shows as EAGAIN ("os error 11").
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(timeout)) => {
                ClientError::NoAnswer {
                    path: path.clone(),
                    timeout,
                }
            }
            _ => ClientError::Exchange {
                path: path.clone(),
                error,
            },
        })?;
    match answer.strip_prefix(BUSY).and_then(|t| t.strip_prefix(' ')) {
        Some(text) => Err(ClientError::Busy {
            path,
            text: text.trim_end().to_owned(),
        }),
        None => Ok(answer),
    }
}

/// Writes `command` on `stream` and reads the answer up to the close.
fn exchange(
    stream: &mut UnixStream,
    command: Command,
    timeout: Option<Duration>,
) -> io::Result<String> {
    stream.set_read_timeout(timeout)?;
    match stream
        .write_all(format!("{}\n", command.as_str()).as_bytes())
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
    {
        // A supervisor that does not take the connection (one that is
        // busy) may answer and close before the request is written:
        // its answer is still there to read.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        other => other?,
    }
    // Up to the supervisor's close, which comes once it is done with
    // the connection.
    let mut answer = String::new();
    match stream.read_to_string(&mut answer) {
        // A supervisor that closes without reading all of the request
        // (one that is busy) resets the connection after its answer.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset && answer.ends_with('\n') => {}
        other => {
            other?;
        }
    }
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed without an answer",
        ));
    }
    Ok(answer)
}

/// Who may use the control socket at `path` in `dir`: root, and the
/// service's user, which owns the socket and the runtime directory (when
/// this user may see either).
fn who_may(dir: &Path, path: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let owner = [path, dir]
        .into_iter()
        .find_map(|p| std::fs::metadata(p).ok().map(|m| (m.uid(), p)));
    match owner {
        Some((0, _)) => "run the command as root (e.g. with sudo)".to_owned(),
        Some((uid, owned)) => {
            let (user, word) = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                Ok(Some(u)) => (u.name.clone(), crate::supervisor::shell_word(Path::new(&u.name))),
                _ => (format!("uid {uid}"), format!("'#{uid}'")),
            };
            format!(
                "run the command as root or as {user}, the service's user, who owns {} (e.g. with sudo, or sudo -u {word})",
                owned.display()
            )
        }
        None => "run the command as root or as the service's user (its unit's User=; e.g. with sudo, or sudo -u mas)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        for outcome in [
            Ok("MAS pid 12 serves".to_owned()),
            Err("MAS exited: status 1".to_owned()),
        ] {
            assert_eq!(decode_outcome(&encode_outcome(&outcome)), outcome);
        }
        assert!(decode_outcome("garbage").is_err());
        assert_eq!(
            encode_outcome(&Err("two\nlines".into())),
            "error two lines\n"
        );
    }

    /// A supervisor that answers "busy" and closes before the client has
    /// written its request: the client gets the answer, not EPIPE.
    #[test]
    fn an_answer_sent_before_the_request_is_written_is_read() {
        let (mut client, mut supervisor) = UnixStream::pair().unwrap();
        supervisor.write_all(b"busy try again\n").unwrap();
        drop(supervisor);
        assert_eq!(
            exchange(&mut client, Command::Status, Some(Duration::from_secs(5))).unwrap(),
            "busy try again\n"
        );
    }

    #[test]
    fn commands_parse() {
        for c in [Command::Restart, Command::SignalOnly, Command::Status] {
            assert_eq!(Command::parse(&format!("{}\n", c.as_str())), Some(c));
        }
        assert_eq!(Command::parse("reboot"), None);
    }
}
