//! The paths MAS serves for the resources the auth host needs, so that
//! `check --nginx` can route them through a site's locations and learn
//! which resources each location carries.
//!
//! From MAS 1.22: the routes are those of its `crates/router`, and which
//! resource of a listener mounts each one is decided in `crates/cli`'s
//! server (`human` also serves `/authorize`, `/complete-compat-sso/` and
//! `/.well-known/change-password`; `assets` is everything under
//! `/assets/`). The paths are relative to the listener's `prefix`; a
//! placeholder (`/consent/{grant_id}`) is written as `x`. `compat`,
//! `health`, `prometheus`, `adminapi` and `connection-info` are not listed:
//! the auth host does not need them.

/// Each route as (resource, sample path), the resources in the order
/// messages name them and, per resource, the path to show first.
pub(crate) const AUTH_ROUTES: &[(&str, &str)] = &[
    ("discovery", "/.well-known/openid-configuration"),
    ("discovery", "/.well-known/webfinger"),
    ("human", "/login"),
    ("human", "/"),
    ("human", "/logout"),
    ("human", "/register"),
    ("human", "/register/password"),
    ("human", "/account/"),
    ("human", "/recover"),
    ("human", "/authorize"),
    ("human", "/consent/x"),
    ("human", "/link"),
    ("human", "/device/x"),
    ("human", "/upstream/callback/x"),
    ("human", "/complete-compat-sso/x"),
    ("human", "/.well-known/change-password"),
    ("oauth", "/oauth2/token"),
    ("oauth", "/oauth2/keys.json"),
    ("oauth", "/oauth2/userinfo"),
    ("oauth", "/oauth2/introspect"),
    ("oauth", "/oauth2/revoke"),
    ("oauth", "/oauth2/registration"),
    ("oauth", "/oauth2/device"),
    ("graphql", "/graphql"),
    ("assets", "/assets/"),
];

/// A sample of the compatibility endpoints, the Matrix host's paths for
/// `compat` (its login, logout and refresh, under any client API version).
pub(crate) const COMPAT_SAMPLE: &str = "/_matrix/client/v3/login";
