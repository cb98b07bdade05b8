//! MAS's `http` section for a config that has none (its `HttpConfig::default`):
//! the `web` listener on `[::]:8080`, `internal` serving `health` on
//! `localhost:8081`, and the `public_base` that goes with them.
//!
//! This module holds the text only. The checks read these listeners as they
//! read written ones, and [`Plan::rewrite`](super::Plan::rewrite) writes them
//! into the child's config, so that their binds can become inherited fds.

use serde_norway::Value;

/// MAS's `http` section when the config has none (its `HttpConfig::default`).
pub(super) fn default_http_value() -> Value {
    serde_norway::from_str(DEFAULT_HTTP).expect("the built-in default http section is valid YAML")
}

/// MAS's `public_base` when the config has no `http` section.
pub(super) const DEFAULT_PUBLIC_BASE: &str = "http://[::]:8080/";

/// MAS's built-in listeners and public base, used when the config has no `http`.
const DEFAULT_HTTP: &str = r#"
public_base: "http://[::]:8080/"
listeners:
  - name: web
    resources:
      - name: discovery
      - name: human
      - name: oauth
      - name: compat
      - name: graphql
      - name: assets
    binds:
      - address: "[::]:8080"
  - name: internal
    resources:
      - name: health
    binds:
      - host: localhost
        port: 8081
"#;
