//! What is wrong with a config, and where: a [`ConfigError`] pairs a
//! [`Location`] (file:line:column and key path) with an [`ErrorKind`], and a
//! [`Refused`] carries every error found, with the warnings found beside them.
//!
//! The text of each such error lives here, once, with the input it names and
//! the fix. When each one applies is decided by the checks that build the plan
//! (and by [`fields`](crate::config::fields) and [`prefix`](crate::config::prefix)),
//! not here; warnings are plain strings, worded where they are found.

use std::fmt;
use std::path::PathBuf;

use super::{BIND_KEYS, MAX_UNIX_PATH};
use crate::config::merge;
use crate::config::names;
use crate::config::raw::Pos;

/// Where a value came from: a file position and the key path inside the merged config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `None` for MAS's built-in default listeners (no `http` section at all).
    pub file: Option<(PathBuf, Pos)>,
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some((path, pos)) => write!(
                f,
                "{}:{}:{}: {}",
                path.display(),
                pos.line,
                pos.column,
                self.key
            ),
            None => write!(f, "(MAS built-in default) {}", self.key),
        }
    }
}

/// A config that cannot be used: every error, and the warnings found on the
/// way, which `check` shows too, with what could be read of the listeners
/// (their binds that had no error), which `check` still warns about.
#[derive(Debug, Clone)]
pub struct Refused {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
    pub listeners: Vec<super::Listener>,
}

/// A problem with the config, at a location.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub location: Location,
    pub kind: ErrorKind,
}

impl fmt::Display for ConfigError {
    /// One line whatever the config holds: control characters in quoted
    /// values (a newline in a host name, say) are shown escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{}: {}", self.location, self.kind);
        f.write_str(&escape_controls(&text))
    }
}

impl std::error::Error for ConfigError {}

/// Shows control characters as escapes (`\n`), so a message stays one line.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What is wrong, with the offending input and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("`http` is {found}, not a mapping; write `http:` followed by indented keys")]
    HttpNotMapping { found: &'static str },
    #[error("`listeners` is {found}, not a list; write each listener as a `- ` item")]
    ListenersNotList { found: &'static str },
    #[error("a mapping or list is used as a key here, which MAS cannot read; use plain keys")]
    ComplexKey,
    #[error("`http` has no `public_base`, which MAS requires; add e.g. `public_base: https://auth.example.com/`")]
    NoPublicBase,
    #[error("`{key}: {value}` is not a URL MAS can parse ({reason}), so MAS refuses the config; write the full URL, like `{key}: {example}`")]
    BadUrl {
        key: &'static str,
        value: String,
        /// The `url` crate's reason, which MAS shows too.
        reason: String,
        example: String,
    },
    #[error("`public_base: {value}` {what}, and MAS stops at start-up on such a base for its links (\"{assertion}\"); write it as `public_base: {example}`")]
    UnusablePublicBase {
        value: String,
        what: &'static str,
        /// MAS's own words when it stops.
        assertion: &'static str,
        example: String,
    },
    #[error("resource `{name}` is listed twice in this listener (first at {first}); MAS merges each resource's routes into one router and stops at start-up on routes given twice (\"Overlapping method route\"); list it once")]
    RepeatedResource { name: String, first: Location },
    #[error("`tls` sets both `{inline}` and `{file}`, and MAS refuses the config (only one of them may be set); remove one")]
    TlsBoth {
        inline: &'static str,
        file: &'static str,
    },
    #[error("`tls` has no {what}{hint}, and MAS refuses the config (\"TLS configuration is missing a {what}\"); add e.g. `{file}: /etc/mas/{example}.pem`, or remove `tls` for plain http", example = if *what == "certificate" { "cert" } else { "key" })]
    TlsMissing {
        /// "certificate" or "private key".
        what: &'static str,
        /// The key of the file form.
        file: &'static str,
        /// A misspelt key that may be meant, as ` (is `x` meant to be `y`?)`.
        hint: String,
    },
    #[error("{at} has `{key}` only through the merge key `<<`, which MAS does not apply (it reads YAML without merge keys), so it has no `{key}`, which MAS requires; write `{key}:` in {at} itself")]
    OnlyInMerge {
        /// "`http`", "the listener" or "the resource".
        at: &'static str,
        key: &'static str,
    },
    #[error("`http` has no `listeners`, so MAS would serve no HTTP at all (its built-in listeners apply only without an `http` section); add listeners under http.listeners, or write `listeners: []` if MAS is to serve none")]
    NoListeners,
    #[error("a listener is {found}, not a mapping; give it `resources:` and `binds:`")]
    ListenerNotMapping { found: &'static str },
    #[error("the listener has no binds; add at least one, e.g. `binds: [{{host: localhost, port: 8080}}]`")]
    NoBinds,
    #[error(
        "the listener has no resources; add at least one, e.g. `resources: [{{name: health}}]`"
    )]
    NoResources,
    #[error("`{key}` is {found}, not {expected}; {fix}")]
    WrongType {
        key: &'static str,
        found: &'static str,
        expected: &'static str,
        /// How to write the value, e.g. "write `true` or `false` without quotes".
        fix: &'static str,
    },
    #[error("the resource is {found}, not a mapping, and MAS refuses the config; write it as `- name: {name}`")]
    ResourceNotMapping { found: &'static str, name: String },
    #[error("the resource has no `name`{hint}, and MAS refuses a config with such a resource; write e.g. `- name: health`", hint = misspelt.as_ref().map(|k| format!(" (is `{k}` meant to be `name`?)")).unwrap_or_default())]
    ResourceWithoutName {
        /// A key of the resource that looks like a misspelt `name`.
        misspelt: Option<String>,
    },
    #[error("`prefix: {prefix}` does not start with `/`: MAS nests its routes under `{nested}`, and its router panics at start-up on a path without a leading `/`; write `prefix: {fixed}`")]
    PrefixNotAbsolute {
        prefix: String,
        nested: String,
        fixed: String,
    },
    #[error("`prefix: {prefix}` has the segment `{segment}`, and MAS's router panics at start-up on a segment that starts with `{first}` (the capture syntax of older axum); rename that segment")]
    PrefixOldCapture {
        prefix: String,
        segment: String,
        first: char,
    },
    #[error("`prefix: {prefix}` has braces that MAS's router cannot read (`{{name}}` captures the end of a segment, `{{{{` and `}}}}` are a brace, and a prefix cannot hold `{{*rest}}`), so MAS panics at start-up; write a plain path such as `prefix: /auth`")]
    PrefixBadBraces { prefix: String },
    #[error("a bind is {found}, not a mapping; write e.g. `{{host: localhost, port: 8080}}`")]
    BindNotMapping { found: &'static str },
    #[error("the bind is empty, and MAS would read it as `fd: 0`; write `host`+`port`, `address`, `socket` or an explicit `fd`")]
    EmptyBind,
    #[error("unknown key `{key}` in a bind{hint}; MAS would ignore it{misread}. Use only {allowed}", hint = if key == merge::MERGE_KEY { " (a YAML merge key, which MAS does not apply)".to_owned() } else { names::did_you_mean(key, BIND_KEYS) }, misread = if *rest_is_a_bind { "" } else { " and read the bind as `fd: 0`" }, allowed = BIND_KEYS.join(", "))]
    UnknownBindKey {
        key: String,
        /// Whether the other keys make a bind of their own, which MAS then
        /// reads as written; otherwise it falls back to `fd: 0`.
        rest_is_a_bind: bool,
    },
    #[error("`host: {host}` has no `port`, and MAS would read the bind as `fd: 0`; add `port:`")]
    HostWithoutPort { host: String },
    #[error("`port` is null (`~`, `null` or nothing after `port:`), and MAS would read the bind as `fd: 0`; write the port number, e.g. `port: 8080`")]
    PortNull,
    #[error("`port: {value}` is {found}, and MAS would read the bind as `fd: 0`; write a number from 1 to 65535{fix}")]
    PortNotNumber {
        value: String,
        found: &'static str,
        /// `" without quotes"` for a number in quotes.
        fix: &'static str,
    },
    #[error("port {port} is out of range, and MAS would read the bind as `fd: 0`; use 1 to 65535")]
    PortOutOfRange { port: String },
    #[error("port 0 asks the kernel for a random port, which no client or socket unit can know; choose a fixed port")]
    PortZero,
    #[error("the bind mixes `{first}` and `{second}`, which belong to different bind forms; split it into two binds or remove one")]
    MixedForms {
        first: &'static str,
        second: &'static str,
    },
    #[error("`host: {host}` has brackets; write the address without them: `host: \"{bare}\"`")]
    BracketedHost { host: String, bare: String },
    #[error("cannot resolve `host: {host}`: {reason}; use an IP address or a name this machine resolves")]
    Unresolvable { host: String, reason: String },
    #[error("`address: {address}` is not an IP address with a port; write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")]
    BadAddress { address: String },
    #[error("the Unix socket path is empty; give an absolute path such as /run/mas/web.sock")]
    EmptySocketPath,
    #[error("the Unix socket path `{path}` ends with `/`, as a directory does: MAS binds a socket beside it and fails at start-up to rename that onto the directory; give the socket's own file name, e.g. `{example}`")]
    SocketPathDirectory { path: String, example: String },
    #[error("the Unix socket path `{path}` is not normalized (it has `//`, `.` or `..`): systemd refuses such a path in a socket unit, so generate-units could not write it; write `{normal}`")]
    SocketPathNotNormal { path: String, normal: String },
    #[error("the Unix socket path `{path}` is {len} bytes, longer than the {max} a socket address holds; use a shorter path", max = MAX_UNIX_PATH)]
    SocketPathTooLong { path: String, len: usize },
    #[error(
        "`mode: {value}` is not an octal permission string; write it quoted, e.g. `mode: \"660\"`"
    )]
    BadMode { value: String },
    #[error("`mode: {value}` sets bits beyond 0777 (setuid, setgid, sticky), which mean nothing on a socket; give the permission bits only, e.g. `mode: \"660\"`")]
    ModeBeyondPermissions { value: String },
    #[error("`mode` applies only to a `socket` bind; remove it or add `socket:`")]
    ModeWithoutSocket,
    #[error(
        "`fd: {value}` is not a non-negative number; write the index into LISTEN_FDS, e.g. `fd: 0`"
    )]
    BadFd { value: String },
    #[error("`kind: {value}` is not tcp or unix; write `kind: tcp` or `kind: unix`")]
    BadKind { value: String },
    #[error("`kind` without `fd` makes MAS take fd 0 by accident; write `fd:` explicitly")]
    KindWithoutFd,
    #[error("`{value}` is not an IP network, and MAS would refuse the config; write e.g. `127.0.0.1/8` or `::1/128`")]
    BadTrustedProxy { value: String },
    #[error(
        "{this} is also bound by {other}, and both would take {shared}; each address may be bound once, so remove one of them"
    )]
    Duplicate {
        this: String,
        other: String,
        shared: String,
    },
}
