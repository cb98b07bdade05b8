//! nginx in front of MAS: the sites `generate-nginx` writes and the checks
//! `check --nginx` makes of a site written by hand.
//!
//! - [`syntax`]: nginx's configuration syntax, tokenized and parsed into a tree.
//! - [`site`]: which listener nginx reaches for each host, and the refusals;
//!   `render` writes the text.
//! - [`compare`]: a parsed site held against the config: PROXY protocol on
//!   one side only, `proxy_pass` to a socket or port that no bind has, or to
//!   a listener without the resources its location needs; `routes` lists
//!   the paths MAS serves for each resource.
//! - `idn`: host names in the ASCII form nginx and browsers compare.
//!
//! What nginx can do decides the shape of the sites: its http proxy speaks
//! HTTP/1.x to MAS with forwarded headers but cannot send the PROXY protocol;
//! only its stream module can (`proxy_protocol on`), and a stream server sees
//! bytes, not paths. So a listener with `proxy_protocol: true` is reached from
//! a stream server, and everything that needs paths (nginx serving the
//! assets, the Matrix host's split between MAS and the homeserver) needs a
//! listener without it.

pub mod compare;
mod idn;
mod options;
mod render;
mod routes;
pub mod site;
pub mod syntax;
