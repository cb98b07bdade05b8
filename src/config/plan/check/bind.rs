//! One bind of one listener, read as exactly one of MAS's four forms
//! (`host`+`port`, `address`, `socket` with `mode`, `fd` with `kind`) into a
//! [`BindSpec`] and the [`Endpoint`]s it stands for, or refused with every
//! reason it cannot be: a stray key (and whether MAS would then read it as
//! `fd: 0`), a value of the wrong type or range, a socket path MAS or systemd
//! would not take, forms mixed, or a part missing.
//!
//! Host names are resolved here through the [`Resolver`](crate::config::plan::Resolver)
//! the checks were given, with `localhost` taken as both loopback addresses.
//! Whether two binds claim one socket is a check over all the binds, made
//! elsewhere; what a listener holds besides its binds is its own check.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde_norway::{Mapping, Value};

use super::{scalar_text, Checker};
use crate::config::plan::{
    BindSpec, ConfigError, Endpoint, ErrorKind, FdKind, BIND_KEYS, MAX_UNIX_PATH,
};
use crate::config::raw::{big_int, kind_of};

/// A bind read from the config, before it gets its location.
struct ReadBind {
    spec: BindSpec,
    endpoints: Vec<Endpoint>,
    /// Things to say about it: the key path after the bind's, and the text.
    warnings: Vec<(&'static str, String)>,
}

impl Checker<'_> {
    /// Classifies one bind, or records every reason it cannot be.
    ///
    /// Each stray key and each value that is wrong by itself is reported.
    /// What a bind lacks (`host` without `port`, `mode` without `socket`,
    /// `kind` without `fd`) is reported only when it has no stray key, which
    /// may be the missing one misspelt, and does not mix forms.
    pub(super) fn bind(
        &mut self,
        listener: usize,
        index: usize,
        value: &Value,
        default: bool,
    ) -> Option<(BindSpec, Vec<Endpoint>)> {
        let mut problems: Vec<(String, ErrorKind)> = Vec::new();
        let parsed = self.read_bind(value, &mut problems);
        let rest = format!(".binds[{index}]");
        for (key, kind) in problems {
            let location = self.listener_location(listener, &format!("{rest}{key}"), default);
            self.errors.push(ConfigError { location, kind });
        }
        let read = parsed?;
        for (key, text) in read.warnings {
            let location = self.listener_location(listener, &format!("{rest}{key}"), default);
            self.warnings.push(format!("{location}: {text}"));
        }
        Some((read.spec, read.endpoints))
    }

    /// The bind of `value`; `None` when `problems` got at least one
    /// (each with the key path after the bind's).
    fn read_bind(
        &mut self,
        value: &Value,
        problems: &mut Vec<(String, ErrorKind)>,
    ) -> Option<ReadBind> {
        let Value::Mapping(map) = value else {
            problems.push((
                String::new(),
                ErrorKind::BindNotMapping {
                    found: kind_of(value),
                },
            ));
            return None;
        };
        if map.is_empty() {
            problems.push((String::new(), ErrorKind::EmptyBind));
            return None;
        }
        let mut keys: Vec<&'static str> = Vec::new();
        let mut unknown = false;
        let mut host: Option<String> = None;
        let mut port: Option<u16> = None;
        let mut address: Option<SocketAddr> = None;
        let mut socket: Option<PathBuf> = None;
        let mut mode: Option<(u32, String)> = None;
        let mut fd: Option<usize> = None;
        let mut kind = FdKind::Tcp;
        for (key, value) in map {
            let name = key
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{key:?}"));
            let Some(&key) = BIND_KEYS.iter().find(|k| **k == name) else {
                unknown = true;
                problems.push((
                    format!(".{name}#key"),
                    ErrorKind::UnknownBindKey {
                        key: name,
                        rest_is_a_bind: rest_is_a_bind(map),
                    },
                ));
                continue;
            };
            keys.push(key);
            let at = format!(".{key}");
            let mut problem = |kind: ErrorKind| problems.push((at.clone(), kind));
            match (key, value) {
                ("host", Value::Null) => {}
                ("host", Value::String(h)) => {
                    match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                        Some(bare) => problem(ErrorKind::BracketedHost {
                            host: h.clone(),
                            bare: bare.to_owned(),
                        }),
                        None => host = Some(h.clone()),
                    }
                }
                ("host", other) => problem(ErrorKind::WrongType {
                    key: "host",
                    found: kind_of(other),
                    expected: "a host name or IP address",
                    fix: "write one, e.g. `host: localhost` or `host: \"::1\"`",
                }),
                ("port", Value::Null) => {}
                ("port", Value::Number(n)) if n.is_f64() => problem(ErrorKind::PortNotNumber {
                    value: n.to_string(),
                    found: "not a whole number",
                    fix: "",
                }),
                ("port", Value::Number(n)) => {
                    match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
                        Some(0) => problem(ErrorKind::PortZero),
                        Some(p) => port = Some(p),
                        None => problem(ErrorKind::PortOutOfRange {
                            port: n.to_string(),
                        }),
                    }
                }
                ("port", other) if big_int(other).is_some() => problem(ErrorKind::PortOutOfRange {
                    port: scalar_text(other),
                }),
                // A number in quotes is MAS's string; other text is no number
                // at all, and is shown as written.
                ("port", Value::String(text)) if text.trim().parse::<u64>().is_err() => {
                    problem(ErrorKind::PortNotNumber {
                        value: text.clone(),
                        found: "not a number",
                        fix: "",
                    })
                }
                ("port", other) => problem(ErrorKind::PortNotNumber {
                    value: scalar_text(other),
                    found: kind_of(other),
                    fix: if matches!(other, Value::String(_)) {
                        " without quotes"
                    } else {
                        ""
                    },
                }),
                ("address", Value::String(text)) => match text.parse::<SocketAddr>() {
                    Ok(addr) if addr.port() == 0 => problem(ErrorKind::PortZero),
                    Ok(addr) => address = Some(addr),
                    Err(_) => problem(ErrorKind::BadAddress {
                        address: text.clone(),
                    }),
                },
                ("address", other) => problem(ErrorKind::BadAddress {
                    address: scalar_text(other),
                }),
                ("socket", Value::String(p)) if !p.is_empty() => {
                    if let Some(kind) = socket_path_problem(p) {
                        problem(kind);
                    } else if p.len() > MAX_UNIX_PATH {
                        problem(ErrorKind::SocketPathTooLong {
                            path: p.clone(),
                            len: p.len(),
                        });
                    } else {
                        socket = Some(PathBuf::from(p));
                    }
                }
                ("socket", Value::String(_) | Value::Null) => problem(ErrorKind::EmptySocketPath),
                ("socket", other) => problem(ErrorKind::WrongType {
                    key: "socket",
                    found: kind_of(other),
                    expected: "a path",
                    fix: "write the path, e.g. `socket: /run/mas/web.sock`",
                }),
                ("mode", Value::Null) => {}
                ("mode", Value::String(text)) => match parse_mode(text) {
                    Some(m) => mode = Some((m, text.clone())),
                    // MAS would apply them, but a setuid, setgid or sticky
                    // socket is a slip, not a permission.
                    None if u32::from_str_radix(text, 8).is_ok() => {
                        problem(ErrorKind::ModeBeyondPermissions {
                            value: text.clone(),
                        })
                    }
                    None => problem(ErrorKind::BadMode {
                        value: text.clone(),
                    }),
                },
                ("mode", other) => problem(ErrorKind::BadMode {
                    value: scalar_text(other),
                }),
                ("fd", Value::Number(n)) => {
                    match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                        Some(i) => fd = Some(i),
                        None => problem(ErrorKind::BadFd {
                            value: n.to_string(),
                        }),
                    }
                }
                ("fd", other) => problem(ErrorKind::BadFd {
                    value: scalar_text(other),
                }),
                ("kind", Value::String(k)) if k == "tcp" => kind = FdKind::Tcp,
                ("kind", Value::String(k)) if k == "unix" => kind = FdKind::Unix,
                ("kind", other) => problem(ErrorKind::BadKind {
                    value: scalar_text(other),
                }),
                _ => unreachable!("every bind key is matched above"),
            }
        }
        let has = |k: &str| keys.contains(&k);
        // A name is resolved even when the rest of the bind is wrong: an
        // unknown name is a problem of its own.
        let host_endpoints = match &host {
            Some(h) => match self.host_endpoints(h, port.unwrap_or(1)) {
                Ok(found) => Some(found),
                Err(kind) => {
                    problems.push((".host".into(), kind));
                    None
                }
            },
            None => None,
        };
        // Each form's keys; a key from another form is a mix.
        let form = |k: &str| match k {
            "host" | "port" => 0,
            "address" => 1,
            "socket" | "mode" => 2,
            _ => 3,
        };
        let mixed = keys
            .iter()
            .flat_map(|a| keys.iter().map(move |b| (*a, *b)))
            .find(|(a, b)| form(a) < form(b));
        let port_missing = matches!(map.get("port"), None | Some(Value::Null));
        if let Some((first, second)) = mixed {
            problems.push((String::new(), ErrorKind::MixedForms { first, second }));
        } else if !unknown {
            if matches!(map.get("port"), Some(Value::Null)) {
                problems.push((".port".into(), ErrorKind::PortNull));
            } else if (has("host") || has("port")) && port_missing {
                problems.push((
                    String::new(),
                    ErrorKind::HostWithoutPort {
                        host: host.clone().unwrap_or_default(),
                    },
                ));
            }
            if has("mode") && !has("socket") {
                problems.push((".mode".into(), ErrorKind::ModeWithoutSocket));
            }
            if has("kind") && !has("fd") {
                problems.push((".kind".into(), ErrorKind::KindWithoutFd));
            }
        }
        if !problems.is_empty() {
            return None;
        }
        let mut warnings = Vec::new();
        if has("host") || has("port") {
            let port = port.expect("a bind without a port is a problem above");
            let endpoints = match host_endpoints {
                Some((endpoints, warning)) => {
                    warnings.extend(warning.map(|w| (".host", w)));
                    endpoints
                }
                None => vec![Endpoint::AnyTcp(port)],
            };
            return Some(ReadBind {
                spec: BindSpec::HostPort { host, port },
                endpoints,
                warnings,
            });
        }
        if let Some(addr) = address {
            return Some(ReadBind {
                spec: BindSpec::Address(addr),
                endpoints: vec![Endpoint::Tcp(addr)],
                warnings,
            });
        }
        if let Some(path) = socket {
            let endpoints = vec![Endpoint::Unix(path.clone())];
            if let Some((m, text)) = &mode {
                if m & 0o002 != 0 {
                    warnings.push((".mode", format!("`mode: {text}` lets any local user connect to MAS (connecting to a Unix socket needs write permission, and this mode gives it to others); use e.g. `mode: \"660\"` and give the clients the socket's group (generate-units --socket-group)")));
                }
            }
            let mode = mode.map(|(m, _)| m);
            return Some(ReadBind {
                spec: BindSpec::Unix { path, mode },
                endpoints,
                warnings,
            });
        }
        let index = fd.expect("a bind of no other form has `fd`, or a problem above");
        Some(ReadBind {
            spec: BindSpec::Fd { index, kind },
            endpoints: Vec::new(),
            warnings,
        })
    }

    /// The endpoints of a bind with `host`, and a warning when they come
    /// from a name resolved now.
    fn host_endpoints(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(Vec<Endpoint>, Option<String>), ErrorKind> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![Endpoint::Tcp(SocketAddr::new(ip, port))], None));
        }
        if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
            // MAS binds whichever loopback address resolves first; a socket on
            // either one serves the bind, so a unit may hold both.
            let endpoints = vec![
                Endpoint::Tcp(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)),
                Endpoint::Tcp(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)),
            ];
            return Ok((endpoints, None));
        }
        let mut addrs =
            self.resolver
                .resolve(host, port)
                .map_err(|reason| ErrorKind::Unresolvable {
                    host: host.to_owned(),
                    reason,
                })?;
        if addrs.is_empty() {
            return Err(ErrorKind::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        let unique: BTreeSet<SocketAddr> = addrs.drain(..).collect();
        let addrs: Vec<SocketAddr> = unique.into_iter().collect();
        let warning = format!(
            "host `{host}` resolved to {}; the sockets use these addresses, so regenerate the units if its addresses change",
            addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        Ok((
            addrs.into_iter().map(Endpoint::Tcp).collect(),
            Some(warning),
        ))
    }
}

/// Whether MAS reads a bind's known keys as one of its forms, as it does when
/// it ignores an unknown key: `port` as a number, `address` or `socket` as a
/// string (with `mode`, if any, as a string), or an explicit `fd`. Any other
/// bind falls through to MAS's last form, whose defaults make it `fd: 0`.
fn rest_is_a_bind(map: &Mapping) -> bool {
    let port = map
        .get("port")
        .and_then(Value::as_u64)
        .is_some_and(|p| u16::try_from(p).is_ok());
    let host = matches!(map.get("host"), None | Some(Value::Null | Value::String(_)));
    let mode = matches!(map.get("mode"), None | Some(Value::Null | Value::String(_)));
    (port && host)
        || matches!(map.get("address"), Some(Value::String(_)))
        || (matches!(map.get("socket"), Some(Value::String(_))) && mode)
        || map.contains_key("fd")
}

/// Why MAS, or a socket unit, could not take the socket path `path` as it
/// is, if either could not: a trailing `/` (MAS fails at start-up), or an
/// absolute path with `//`, `.` or `..` (systemd refuses it in
/// `ListenStream=`). A relative path is warned about elsewhere, whole.
fn socket_path_problem(path: &str) -> Option<ErrorKind> {
    if path.ends_with('/') {
        let dir = path.trim_end_matches('/');
        let dir = if dir.is_empty() { "/run/mas" } else { dir };
        return Some(ErrorKind::SocketPathDirectory {
            path: path.to_owned(),
            example: format!("{dir}/web.sock"),
        });
    }
    let rest = path.strip_prefix('/')?;
    if rest
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..")
    {
        return None;
    }
    // The path as the kernel would read it where no directory is a symlink.
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Some(ErrorKind::SocketPathNotNormal {
        path: path.to_owned(),
        normal: format!("/{}", parts.join("/")),
    })
}

/// Parses a permission string as MAS does (`u32::from_str_radix(text, 8)`:
/// octal digits, an optional leading `+`, any leading zeros), limited to the
/// read, write and execute bits (0777) that mean something on a socket.
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o777)
}
