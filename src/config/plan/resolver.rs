//! How the host names of binds become addresses: the [`Resolver`] trait,
//! which [`build`](super::build) takes as a parameter so that tests need no
//! DNS, and the [`SystemResolver`] the commands use (getaddrinfo(3), through
//! std).
//!
//! What is done with the addresses is for the bind checks: `localhost` is
//! taken as both loopback addresses without asking, and a name resolved
//! here gets a warning that the units hold its addresses as they are now.

use std::net::{SocketAddr, ToSocketAddrs};

/// How host names are turned into addresses; a parameter so tests need no DNS.
pub trait Resolver {
    /// The addresses `host` has, each with `port`, or why it has none.
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String>;
}

/// The system resolver (getaddrinfo through std).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        (host, port)
            .to_socket_addrs()
            .map(|addrs| addrs.collect())
            .map_err(|e| e.to_string())
    }
}
