//! MAS's config files: reading, merging, and the listeners of the `http` section.
//!
//! Reading is in two stages, as MAS does it. [`load_files`] parses each file
//! and merges them in order with figment's *admerge*: mappings merge key by
//! key, sequences are concatenated, and any other later value wins. A file
//! that does not exist reads as empty, as figment's file provider makes it
//! for MAS. Then [`listeners`] reads `http.listeners` with MAS's serde shapes
//! and tolerance: unknown keys anywhere are fine, and binds are an *untagged*
//! enum tried in MAS's order, so `{}` or `{adress: ...}` mean "fd 0, tcp".
//!
//! Not done here: the search of parent directories that figment does for
//! relative paths, config values from `MAS_*` variables, and everything a
//! listener carries besides its name and binds (resources are only checked to
//! be non-empty, as MAS checks them). Binds are turned into sockets in
//! `listen.rs`.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_norway::{Mapping, Value};

/// Reads and merges the config files, in order.
///
/// # Errors
///
/// A file that exists but cannot be read, is not YAML, or whose top level is
/// not a mapping.
pub(crate) fn load_files(paths: &[PathBuf]) -> anyhow::Result<Value> {
    let mut merged = Value::Mapping(Mapping::new());
    for path in paths {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                log!(
                    "config file {} does not exist; read as empty, as MAS does",
                    path.display()
                );
                continue;
            }
            Err(err) => {
                return Err(err).with_context(|| format!("reading config file {}", path.display()))
            }
        };
        let document = parse_document(&text, path)?;
        merged = admerge(merged, document);
    }
    Ok(merged)
}

/// Parses one config file; an empty document is an empty mapping.
fn parse_document(text: &str, path: &Path) -> anyhow::Result<Value> {
    let value = serde_norway::from_str::<Figment>(text)
        .map(|v| v.0)
        .with_context(|| format!("config file {}: fix its YAML", path.display()))?;
    match value {
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        Value::Mapping(_) => Ok(value),
        _ => bail!(
            "config file {}: the top level must be a mapping of sections like `http:`",
            path.display()
        ),
    }
}

/// A YAML value read as figment reads it: serde_norway's own `Value` refuses
/// an integer beyond 64 bits, which figment keeps as a 128-bit number. No
/// setting the stand-in reads can hold one (a `port` or `fd` that large is
/// out of range for MAS too), so it is kept as its digits, a string.
struct Figment(Value);

impl<'de> Deserialize<'de> for Figment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FigmentVisitor).map(Figment)
    }
}

struct FigmentVisitor;

impl<'de> serde::de::Visitor<'de> for FigmentVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_i128<E: serde::de::Error>(self, i: i128) -> Result<Value, E> {
        Ok(Value::String(i.to_string()))
    }

    fn visit_u128<E: serde::de::Error>(self, u: u128) -> Result<Value, E> {
        Ok(Value::String(u.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Figment::deserialize(d).map(|v| v.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Figment(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // figment lets a repeated key's last value win.
        let mut mapping = Mapping::new();
        while let Some((Figment(k), Figment(v))) = map.next_entry()? {
            mapping.insert(k, v);
        }
        Ok(Value::Mapping(mapping))
    }

    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use serde::de::VariantAccess;
        let (tag, contents) = data.variant::<String>()?;
        let Figment(value) = contents.newtype_variant()?;
        Ok(Value::Tagged(Box::new(serde_norway::value::TaggedValue {
            tag: serde_norway::value::Tag::new(tag),
            value,
        })))
    }
}

/// Merges `later` into `earlier` with figment's *admerge* rules: mappings
/// merge recursively, sequences are concatenated, anything else (including a
/// change of type, and `null`) is replaced by the later value.
pub(crate) fn admerge(earlier: Value, later: Value) -> Value {
    match (earlier, later) {
        (Value::Mapping(mut merged), Value::Mapping(later)) => {
            for (key, later_value) in later {
                match merged.get_mut(&key) {
                    Some(slot) => {
                        let earlier_value = std::mem::take(slot);
                        *slot = admerge(earlier_value, later_value);
                    }
                    None => {
                        merged.insert(key, later_value);
                    }
                }
            }
            Value::Mapping(merged)
        }
        (Value::Sequence(mut merged), Value::Sequence(later)) => {
            merged.extend(later);
            Value::Sequence(merged)
        }
        (_, later) => later,
    }
}

/// One HTTP listener: what the responses name it, what it binds, and what
/// it serves.
#[derive(Debug, PartialEq)]
pub(crate) struct Listener {
    /// The listener's `name`, or its index in `http.listeners` when unnamed.
    pub(crate) label: String,
    pub(crate) binds: Vec<Bind>,
    /// The `name` of each resource, in order.
    pub(crate) resources: Vec<String>,
    /// `prefix` as MAS normalizes it: without the trailing `/`, empty for none.
    pub(crate) prefix: String,
    /// Whether every connection starts with a PROXY protocol v1 header.
    pub(crate) proxy_protocol: bool,
}

/// One entry of a listener's `binds`.
#[derive(Debug, PartialEq)]
pub(crate) struct Bind {
    /// Where it sits in the config, like `http.listeners[0].binds[1]`.
    pub(crate) key: String,
    pub(crate) form: BindForm,
}

/// A bind as MAS reads it: an untagged enum, tried in this order.
///
/// Values are kept raw: MAS parses an address or a mode only when it binds,
/// after its start-up work, and so does the stand-in.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum BindForm {
    /// `{host?, port}`: resolve, then bind the first address that works.
    HostPort { host: Option<String>, port: u16 },
    /// `{address}`: a socket address literal such as `[::]:8080`.
    Address { address: String },
    /// `{socket, mode?}`: a Unix socket path, `mode` an octal string.
    Socket {
        socket: PathBuf,
        mode: Option<String>,
    },
    /// `{fd?, kind?}`: an inherited socket, by position in `LISTEN_FDS`.
    Fd {
        #[serde(default)]
        fd: usize,
        #[serde(default)]
        kind: FdKind,
    },
}

/// The `kind` of an `fd` bind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FdKind {
    #[default]
    Tcp,
    Unix,
}

/// A listener as MAS deserializes it, less the fields the stand-in ignores.
#[derive(Deserialize)]
struct RawListener {
    name: Option<String>,
    resources: Vec<Value>,
    binds: Vec<Value>,
    prefix: Option<String>,
    #[serde(default)]
    proxy_protocol: bool,
}

/// The `http` section as MAS deserializes it, less what the stand-in ignores.
#[derive(Deserialize)]
struct RawHttp {
    #[serde(default)]
    listeners: Vec<Value>,
    /// Required by MAS whenever `http` is given; unused here.
    #[serde(rename = "public_base")]
    _public_base: String,
}

/// The listeners of the merged config, or MAS's two default listeners when
/// there is no `http` section at all.
///
/// # Errors
///
/// A malformed `http` section or listener, a bind that matches none of MAS's
/// forms, or a listener without resources or binds. The message names the key.
pub(crate) fn listeners(root: &Value) -> anyhow::Result<Vec<Listener>> {
    let Some(http) = root.get("http") else {
        return Ok(default_listeners());
    };
    let http: RawHttp = serde_norway::from_value(http.clone())
        .context("http: fix the section (MAS needs at least `public_base`)")?;
    http.listeners
        .into_iter()
        .enumerate()
        .map(|(index, raw)| read_listener(index, raw))
        .collect()
}

/// Reads `http.listeners[index]`.
fn read_listener(index: usize, raw: Value) -> anyhow::Result<Listener> {
    let key = format!("http.listeners[{index}]");
    let raw: RawListener =
        serde_norway::from_value(raw).with_context(|| format!("{key}: fix the listener"))?;
    if raw.resources.is_empty() {
        bail!("{key}: listener has no resources; list at least one, like `- name: health`");
    }
    if raw.binds.is_empty() {
        bail!("{key}: listener does not bind to any address; add an entry to `binds`");
    }
    let binds = raw
        .binds
        .into_iter()
        .enumerate()
        .map(|(bind_index, value)| {
            let key = format!("{key}.binds[{bind_index}]");
            let form = read_bind(&value).with_context(|| {
                format!(
                    "{key}: {} matches none of MAS's bind forms \
                     ({{host?, port}}, {{address}}, {{socket, mode?}}, {{fd?, kind?: tcp|unix}}); fix the entry",
                    inline(&value)
                )
            })?;
            Ok(Bind { key, form })
        })
        .collect::<anyhow::Result<_>>()?;
    let resources = raw
        .resources
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    Ok(Listener {
        label: raw.name.unwrap_or_else(|| index.to_string()),
        binds,
        resources,
        prefix: raw
            .prefix
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned(),
        proxy_protocol: raw.proxy_protocol,
    })
}

/// Classifies one bind exactly as MAS's untagged enum does.
pub(crate) fn read_bind(value: &Value) -> Result<BindForm, serde_norway::Error> {
    serde_norway::from_value(value.clone())
}

/// MAS's listeners when the config has no `http` section.
fn default_listeners() -> Vec<Listener> {
    let listener = |label: &str, form, resources: &[&str]| Listener {
        label: label.to_owned(),
        binds: vec![Bind {
            key: format!("default listener {label}"),
            form,
        }],
        resources: resources.iter().map(|r| (*r).to_owned()).collect(),
        prefix: String::new(),
        proxy_protocol: false,
    };
    vec![
        listener(
            "web",
            BindForm::Address {
                address: "[::]:8080".to_owned(),
            },
            &["discovery", "human", "oauth", "compat", "graphql", "assets"],
        ),
        listener(
            "internal",
            BindForm::HostPort {
                host: Some("localhost".to_owned()),
                port: 8081,
            },
            &["health"],
        ),
    ]
}

/// The networks MAS believes `X-Forwarded-For` from: `http.trusted_proxies`
/// (entries that are not networks are skipped), else MAS's default list.
pub(crate) fn trusted_proxies(root: &Value) -> Vec<Net> {
    match root.get("http").and_then(|h| h.get("trusted_proxies")) {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str().and_then(Net::parse))
            .collect(),
        _ => [
            "192.168.0.0/16",
            "172.16.0.0/12",
            "10.0.0.0/10",
            "127.0.0.1/8",
            "fd00::/8",
            "::1/128",
        ]
        .iter()
        .filter_map(|n| Net::parse(n))
        .collect(),
    }
}

/// An IP network of `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Net {
    addr: std::net::IpAddr,
    bits: u32,
}

impl Net {
    /// `addr` or `addr/bits`.
    pub(crate) fn parse(text: &str) -> Option<Net> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse().ok().filter(|b| *b <= max)?,
            None => max,
        };
        Some(Net { addr, bits })
    }

    /// Whether `ip` (in canonical form) lies in the network.
    pub(crate) fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip.to_canonical()) {
            (V4(n), V4(i)) => {
                let mask = u32::MAX.checked_shl(32 - self.bits).unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (V6(n), V6(i)) => {
                let mask = u128::MAX.checked_shl(128 - self.bits).unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// Shows a YAML value on one line, in flow style, for error messages.
pub(crate) fn inline(value: &Value) -> String {
    let mut out = String::new();
    write_inline(&mut out, value);
    out
}

/// Appends `value` to `out` in flow style.
fn write_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(&b.to_string()),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            let _ = write!(out, "{s:?}");
        }
        Value::Sequence(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_inline(out, item);
            }
            out.push(']');
        }
        Value::Mapping(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match key {
                    Value::String(s) => out.push_str(s),
                    other => write_inline(out, other),
                }
                out.push_str(": ");
                write_inline(out, item);
            }
            out.push('}');
        }
        Value::Tagged(tagged) => {
            let _ = write!(out, "{} ", tagged.tag);
            write_inline(out, &tagged.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        parse_document(text, Path::new("test.yaml")).unwrap()
    }

    fn bind(text: &str) -> Result<BindForm, serde_norway::Error> {
        read_bind(&serde_norway::from_str(text).unwrap())
    }

    fn fd(fd: usize, kind: FdKind) -> BindForm {
        BindForm::Fd { fd, kind }
    }

    #[test]
    fn admerge_merges_maps_recursively_and_later_scalars_win() {
        let merged = admerge(
            yaml("http: {public_base: a, issuer: x}\ndatabase: {uri: db}"),
            yaml("http: {public_base: b}\nemail: {from: me}"),
        );
        let want =
            yaml("http: {public_base: b, issuer: x}\ndatabase: {uri: db}\nemail: {from: me}");
        assert_eq!(merged, want);
    }

    #[test]
    fn admerge_concatenates_sequences() {
        let merged = admerge(
            yaml("http: {listeners: [{name: a}]}"),
            yaml("http: {listeners: [{name: b}]}"),
        );
        assert_eq!(merged, yaml("http: {listeners: [{name: a}, {name: b}]}"));
    }

    #[test]
    fn admerge_takes_the_later_value_when_types_differ() {
        assert_eq!(
            admerge(yaml("a: [1]"), yaml("a: {b: 1}")),
            yaml("a: {b: 1}")
        );
        assert_eq!(admerge(yaml("a: {b: 1}"), yaml("a: 2")), yaml("a: 2"));
        assert_eq!(admerge(yaml("a: {b: 1}"), yaml("a: null")), yaml("a: null"));
    }

    #[test]
    fn empty_document_is_an_empty_mapping_and_a_list_is_an_error() {
        assert_eq!(yaml("# only a comment\n"), Value::Mapping(Mapping::new()));
        let err = parse_document("- a\n", Path::new("x.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("config file x.yaml: "), "{err}");
    }

    #[test]
    fn binds_are_tried_in_mas_order() {
        let host_port = |host: Option<&str>, port| BindForm::HostPort {
            host: host.map(str::to_owned),
            port,
        };
        assert_eq!(
            bind("{host: localhost, port: 8080}").unwrap(),
            host_port(Some("localhost"), 8080)
        );
        assert_eq!(bind("{port: 8080}").unwrap(), host_port(None, 8080));
        // The first form that fits wins, whatever else the entry holds.
        assert_eq!(
            bind("{port: 80, address: '[::]:81', fd: 2}").unwrap(),
            host_port(None, 80)
        );
        assert_eq!(
            bind("{address: '[::]:8080'}").unwrap(),
            BindForm::Address {
                address: "[::]:8080".to_owned()
            }
        );
        assert_eq!(
            bind("{socket: /run/mas.sock, mode: '660'}").unwrap(),
            BindForm::Socket {
                socket: PathBuf::from("/run/mas.sock"),
                mode: Some("660".to_owned())
            }
        );
        assert_eq!(bind("{fd: 2, kind: unix}").unwrap(), fd(2, FdKind::Unix));
    }

    #[test]
    fn near_misses_silently_become_fd_0_tcp() {
        for text in [
            "{}",
            "{adress: '[::]:8080'}",
            "{host: localhost}",
            "{port: '80'}",
            "{port: 70000}",
            // A mode written as a number is not a string: the socket form fails.
            "{socket: /run/mas.sock, mode: 660}",
        ] {
            assert_eq!(bind(text).unwrap(), fd(0, FdKind::Tcp), "{text}");
        }
    }

    #[test]
    fn unknown_fd_kind_is_rejected() {
        assert!(bind("{fd: 1, kind: udp}").is_err());
        assert!(bind("{fd: -1}").is_err());
    }

    #[test]
    fn no_http_section_gives_mas_default_listeners() {
        let listeners = listeners(&yaml("database: {uri: x}")).unwrap();
        let labels: Vec<&str> = listeners.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["web", "internal"]);
        assert_eq!(
            listeners[1].binds[0].form,
            BindForm::HostPort {
                host: Some("localhost".to_owned()),
                port: 8081
            }
        );
    }

    #[test]
    fn listeners_are_labelled_by_name_or_index_and_keep_their_key() {
        let root = yaml(concat!(
            "unknown_section: {x: 1}\n",
            "http:\n",
            "  public_base: https://auth.example.com/\n",
            "  trusted_proxies: []\n",
            "  listeners:\n",
            "    - name: web\n",
            "      resources: [{name: human}]\n",
            "      binds: [{fd: 1}]\n",
            "    - resources: [{name: health}]\n",
            "      binds: [{port: 8081}, {socket: /run/a.sock}]\n",
        ));
        let listeners = listeners(&root).unwrap();
        assert_eq!(listeners[0].label, "web");
        assert_eq!(listeners[0].binds[0].form, fd(1, FdKind::Tcp));
        assert_eq!(listeners[1].label, "1");
        assert_eq!(listeners[1].binds[1].key, "http.listeners[1].binds[1]");
    }

    #[test]
    fn listener_errors_name_the_key() {
        let err = |text: &str| format!("{:#}", listeners(&yaml(text)).unwrap_err());
        let bad_kind = err("http: {public_base: x, listeners: [{resources: [{name: health}], binds: [{fd: 1, kind: udp}]}]}");
        assert!(
            bad_kind.starts_with("http.listeners[0].binds[0]: {fd: 1, kind: \"udp\"} matches none"),
            "{bad_kind}"
        );
        let no_binds =
            err("http: {public_base: x, listeners: [{resources: [{name: health}], binds: []}]}");
        assert!(
            no_binds.starts_with("http.listeners[0]: listener does not bind"),
            "{no_binds}"
        );
        let no_resources =
            err("http: {public_base: x, listeners: [{resources: [], binds: [{fd: 0}]}]}");
        assert!(no_resources.contains("no resources"), "{no_resources}");
        let no_base = err("http: {listeners: []}");
        assert!(no_base.contains("public_base"), "{no_base}");
    }
}
