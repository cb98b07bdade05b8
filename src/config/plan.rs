//! The second stage of reading a MAS config: the merged `http.listeners`
//! checked and turned into a [`Plan`] that the rest of mas-sockets acts on.
//!
//! MAS reads each bind as an untagged enum whose last variant (`fd`) has a
//! default for every field and tolerates unknown keys, so a bind that fits no
//! other form silently becomes "fd 0, tcp" (mas-facts.md). Here every bind must
//! match exactly one form, with no stray keys; anything MAS would misread is an
//! error that says what MAS would have done and how to write what was meant.
//!
//! Nothing here opens a socket. Host names are resolved, because a systemd
//! socket needs literal addresses and supervise must recognise the sockets.
//!
//! This file holds what a plan is: [`Plan`], its [`Listener`]s and [`Bind`]s
//! and how a bind was written ([`BindSpec`]). The rest is in `plan/`:
//! `check` builds the plan ([`build`]), `error` words what it refuses
//! ([`ConfigError`]), `endpoint` says which sockets a bind stands for and
//! when two clash ([`Endpoint`]), `resolver` resolves host names
//! ([`Resolver`]), and `defaults` holds MAS's listeners for a config without
//! `http`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::net::IpNet;

pub use self::check::{build, parse_mode};
use self::defaults::default_http_value;
pub use self::endpoint::{same_path, Endpoint, MAX_UNIX_PATH};
pub use self::error::{escape_controls, ConfigError, ErrorKind, Location, Refused};
pub use self::resolver::{Resolver, SystemResolver};

mod check;
mod defaults;
mod endpoint;
mod error;
mod resolver;

/// Whether an `fd:` bind expects a TCP or a Unix socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    Tcp,
    Unix,
}

impl fmt::Display for FdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FdKind::Tcp => "tcp",
            FdKind::Unix => "unix",
        })
    }
}

/// A bind as the config wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    HostPort { host: Option<String>, port: u16 },
    Address(SocketAddr),
    Unix { path: PathBuf, mode: Option<u32> },
    Fd { index: usize, kind: FdKind },
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindSpec::HostPort {
                host: Some(host),
                port,
            } => write!(f, "host {host} port {port}"),
            BindSpec::HostPort { host: None, port } => write!(f, "port {port}"),
            BindSpec::Address(addr) => write!(f, "address {addr}"),
            BindSpec::Unix {
                path,
                mode: Some(mode),
            } => write!(f, "socket {} mode {mode:03o}", path.display()),
            BindSpec::Unix { path, mode: None } => write!(f, "socket {}", path.display()),
            BindSpec::Fd { index, kind } => write!(f, "fd {index} ({kind})"),
        }
    }
}

/// Keys a bind may carry, across all four forms.
const BIND_KEYS: &[&str] = &["host", "port", "address", "socket", "mode", "fd", "kind"];

/// One bind of one listener, checked.
#[derive(Debug, Clone)]
pub struct Bind {
    /// Index of the listener in the merged `http.listeners`.
    pub listener: usize,
    /// Index of the bind in its listener's `binds`.
    pub index: usize,
    pub spec: BindSpec,
    /// The sockets that satisfy this bind; any one of them does. Empty for `fd:` binds.
    pub endpoints: Vec<Endpoint>,
    pub location: Location,
}

/// One listener, checked.
#[derive(Debug, Clone)]
pub struct Listener {
    pub index: usize,
    pub name: Option<String>,
    pub binds: Vec<Bind>,
    pub resources: Vec<String>,
    pub proxy_protocol: bool,
    /// Where `proxy_protocol` is set, or the listener itself when it is not.
    pub proxy_protocol_location: Location,
    /// The path prefix MAS mounts the resources on (`prefix:`), as written.
    pub prefix: Option<String>,
    /// Whether the listener terminates TLS itself (`tls:`).
    pub tls: bool,
    pub location: Location,
}

impl Bind {
    /// Whether the bind takes connections from beyond loopback: a TCP socket
    /// on every address or on an address other than loopback.
    pub fn reaches_beyond_loopback(&self) -> bool {
        self.endpoints.iter().any(|e| match e {
            Endpoint::AnyTcp(_) => true,
            Endpoint::Tcp(addr) => !addr.ip().is_loopback(),
            Endpoint::Unix(_) => false,
        })
    }

    /// The warning for a bind of a PROXY-protocol `listener` that
    /// [reaches beyond loopback](Bind::reaches_beyond_loopback).
    pub fn proxy_protocol_exposed(&self, listener: &Listener) -> String {
        format!(
            "{}: MAS believes the PROXY header of anyone who connects to listener {}, and it listens beyond loopback: anyone who reaches it can claim any client address; bind it to localhost or a Unix socket",
            self.location,
            listener.label()
        )
    }
}

impl Listener {
    /// The name to show for this listener: its `name`, or `#<index>`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("#{}", self.index),
        }
    }
}

/// The validated config: everything mas-sockets needs to act.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config files, in merge order, as given.
    pub files: Vec<PathBuf>,
    /// The merged config, untouched, for the child's rewritten copy.
    pub merged: Value,
    /// Whether the listeners are MAS's built-in defaults (no `http` section).
    pub http_is_default: bool,
    pub listeners: Vec<Listener>,
    /// `http.public_base`, as written (MAS's default without an `http` section).
    pub public_base: Option<String>,
    /// The networks MAS believes `X-Forwarded-For` from: `http.trusted_proxies`,
    /// or MAS's default list when the key is absent.
    pub trusted_proxies: Vec<IpNet>,
    /// Where `http.trusted_proxies` is set; `None` when MAS's default applies.
    pub trusted_proxies_location: Option<Location>,
    /// `matrix.endpoint`, where MAS reaches the homeserver, when the config
    /// sets it (MAS's default is `http://localhost:8008/`), and where.
    pub matrix_endpoint: Option<(String, Location)>,
    /// Things worth saying that do not stop anything (resolved host names, ...).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Every bind of every listener, in order.
    pub fn binds(&self) -> impl Iterator<Item = &Bind> {
        self.listeners.iter().flat_map(|l| l.binds.iter())
    }

    /// The merged config with each listener's `binds` replaced by `binds[i]`.
    ///
    /// When the listeners were MAS's defaults, an `http` section is written with
    /// the same listeners and the same `public_base` default MAS would use.
    pub fn rewrite(&self, binds: &[Vec<Value>]) -> Value {
        let mut merged = self.merged.clone();
        if self.http_is_default {
            let http = default_http_value();
            if let Value::Mapping(root) = &mut merged {
                root.insert(Value::from("http"), http);
            }
        }
        if let Some(listeners) = merged
            .get_mut("http")
            .and_then(|h| h.get_mut("listeners"))
            .and_then(Value::as_sequence_mut)
        {
            for (listener, new_binds) in listeners.iter_mut().zip(binds) {
                if let Value::Mapping(listener) = listener {
                    listener.insert(Value::from("binds"), Value::Sequence(new_binds.clone()));
                }
            }
        }
        merged
    }
}

/// An `fd:` bind as MAS's config writes it.
pub fn fd_bind_value(index: usize, kind: FdKind) -> Value {
    let mut m = Mapping::new();
    m.insert(Value::from("fd"), Value::from(index as u64));
    m.insert(Value::from("kind"), Value::from(kind.to_string()));
    Value::Mapping(m)
}
