//! Typed settings of the `http` section besides the binds: the URLs
//! `public_base` and `issuer`, a listener's `tls`, and the fields of the
//! `graphql` and `assets` resources.
//!
//! MAS deserializes these into typed fields (`url::Url`, `bool`, paths and
//! strings; `crates/config/src/sections/http.rs`) and refuses the whole config
//! when one does not fit, and `HttpConfig::validate` adds the rules of `tls`.
//! This module checks the same, on the merged YAML value, and says how to
//! write each value; it parses URLs with the `url` crate MAS uses, so that it
//! refuses exactly what MAS refuses. Where a problem sits in the file, and
//! what the rest of the listener means, is for [`super::plan`].

use serde_norway::{Mapping, Value};
use url::Url;

use super::names;
use super::plan::ErrorKind;
use super::raw::kind_of;

/// The keys of a listener's `tls` (MAS's `TlsConfig`), all strings or paths.
pub const TLS_KEYS: &[&str] = &[
    "certificate",
    "certificate_file",
    "key",
    "key_file",
    "password",
    "password_file",
];

/// Checks `key` (`public_base` or `issuer`) as MAS's `url::Url` reads it.
///
/// Returns a warning for a URL that MAS accepts but whose scheme is neither
/// http nor https (`auth.example.com:8443` reads as the scheme
/// `auth.example.com`).
///
/// # Errors
///
/// A value that is not a string, or a string `Url::parse` refuses.
pub fn check_url(key: &'static str, value: &Value) -> Result<Option<String>, ErrorKind> {
    let text = match value {
        Value::String(text) => text,
        // A custom tag is left to MAS; a null is for the caller (a missing
        // `public_base`, no `issuer`).
        Value::Null | Value::Tagged(_) => return Ok(None),
        other => {
            return Err(ErrorKind::WrongType {
                key,
                found: kind_of(other),
                expected: "a URL",
                fix: "write the full URL, like `https://auth.example.com/`",
            })
        }
    };
    match Url::parse(text) {
        // MAS's UrlBuilder asserts these of the base of its links.
        Ok(url) if key == "public_base" => {
            let mut clean = url.clone();
            clean.set_query(None);
            clean.set_fragment(None);
            let _ = clean.set_username("");
            let _ = clean.set_password(None);
            let unusable = |what, assertion, example: String| {
                Err(ErrorKind::UnusablePublicBase {
                    value: text.clone(),
                    what,
                    assertion,
                    example,
                })
            };
            if !matches!(url.scheme(), "http" | "https") {
                unusable(
                    "is not an http or https URL",
                    "base URL must be HTTP/HTTPS",
                    url_example(text),
                )
            } else if url.query().is_some() {
                unusable(
                    "has a query (`?...`)",
                    "base URL must not contain a query",
                    clean.to_string(),
                )
            } else if url.fragment().is_some() {
                unusable(
                    "has a fragment (`#...`)",
                    "base URL must not contain a fragment",
                    clean.to_string(),
                )
            } else if !url.username().is_empty() || url.password().is_some() {
                unusable(
                    "has credentials (`user:password@`)",
                    "base URL must not contain credentials",
                    clean.to_string(),
                )
            } else {
                Ok(None)
            }
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(None),
        Ok(url) => Ok(Some(format!(
            "`{key}: {text}` is a URL to MAS, but of the scheme `{}`, not http or https, and MAS builds its links from it; write the full URL, like `{key}: {}`",
            url.scheme(),
            url_example(text)
        ))),
        Err(e) => Err(ErrorKind::BadUrl {
            key,
            value: text.clone(),
            reason: e.to_string(),
            example: url_example(text),
        }),
    }
}

/// A full URL for what an operator probably meant by `text`: a host name
/// gets `https://` and a path gets a host before it.
fn url_example(text: &str) -> String {
    let text = text.trim();
    let guess = if text.starts_with('/') {
        format!("https://auth.example.com{text}")
    } else if let Some((_, rest)) = text.split_once("://") {
        format!("https://{rest}")
    } else {
        format!("https://{text}")
    };
    match Url::parse(&guess) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) => url.to_string(),
        _ => "https://auth.example.com/".to_owned(),
    }
}

/// Checks a listener's `tls` (not null) as MAS reads and validates it; each
/// problem comes with the key path after the listener's.
pub fn check_tls(value: &Value) -> Vec<(String, ErrorKind)> {
    let Value::Mapping(tls) = value else {
        return vec![(
            ".tls".into(),
            ErrorKind::WrongType {
                key: "tls",
                found: kind_of(value),
                expected: "a mapping",
                fix: "write e.g. `tls: {certificate_file: /etc/mas/cert.pem, key_file: /etc/mas/key.pem}`, or remove it for plain http",
            },
        )];
    };
    let mut problems = Vec::new();
    // A null is no value to MAS (`Option<_>`).
    let set = |key: &str| !matches!(tls.get(key), None | Some(Value::Null));
    for &key in TLS_KEYS {
        match tls.get(key) {
            None | Some(Value::Null | Value::String(_) | Value::Tagged(_)) => {}
            Some(other) => problems.push((
                format!(".tls.{key}"),
                ErrorKind::WrongType {
                    key,
                    found: kind_of(other),
                    expected: "a string",
                    fix: if key.ends_with("_file") {
                        "write the path of the file"
                    } else {
                        "write the text, quoted if it looks like a number or a boolean"
                    },
                },
            )),
        }
    }
    for (inline, file, what) in [
        ("certificate", "certificate_file", Some("certificate")),
        ("key", "key_file", Some("private key")),
        ("password", "password_file", None),
    ] {
        match (set(inline), set(file), what) {
            (true, true, _) => problems.push((".tls".into(), ErrorKind::TlsBoth { inline, file })),
            (false, false, Some(what)) => problems.push((
                ".tls".into(),
                ErrorKind::TlsMissing {
                    what,
                    file,
                    hint: misspelt_in(tls, &[inline, file]),
                },
            )),
            _ => {}
        }
    }
    problems
}

/// ` (is `x` meant to be `y`?)` for a key of `map` that is a near miss of one
/// of `wanted`, or nothing.
fn misspelt_in(map: &Mapping, wanted: &[&str]) -> String {
    map.keys()
        .filter_map(Value::as_str)
        .find_map(|k| {
            wanted
                .iter()
                .find(|w| names::is_near(k, w))
                .map(|w| format!(" (is `{k}` meant to be `{w}`?)"))
        })
        .unwrap_or_default()
}

/// The fields of resource `name` besides `name`, and whether each is a
/// boolean (else a path).
pub fn fields_of(name: &str) -> &'static [(&'static str, bool)] {
    match name {
        "graphql" => &[("playground", true), ("undocumented_oauth2_access", true)],
        "assets" => &[("path", false)],
        _ => &[],
    }
}

/// Checks the fields of resource `name` beside its name: `graphql`'s
/// booleans and `assets`' path. Each problem comes with the key path after
/// the resource's.
pub fn check_resource(name: &str, resource: &Mapping) -> Vec<(String, ErrorKind)> {
    let mut problems = Vec::new();
    let fields = fields_of(name);
    for &(key, boolean) in fields {
        let Some(value) = resource.get(key) else {
            continue;
        };
        let wrong = match (boolean, value) {
            (true, Value::Bool(_)) | (false, Value::String(_)) | (_, Value::Tagged(_)) => false,
            // A written null is no default to MAS: it refuses it.
            _ => true,
        };
        if wrong {
            problems.push((
                format!(".{key}"),
                ErrorKind::WrongType {
                    key,
                    found: kind_of(value),
                    expected: if boolean { "true or false" } else { "a path" },
                    fix: if boolean {
                        "write `true` or `false` without quotes, or remove it for `false`"
                    } else {
                        "write the directory of MAS's assets, e.g. `path: /usr/share/mas/assets/`, or remove it for MAS's default"
                    },
                },
            ));
        }
    }
    problems
}
