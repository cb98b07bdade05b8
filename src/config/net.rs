//! IP networks as MAS's `http.trusted_proxies` writes them (`127.0.0.1/8`,
//! `::1/128`, or a bare address for a single host), and the list MAS uses
//! when the key is absent.
//!
//! MAS reads each entry with the `ipnetwork` crate: an address, optionally
//! followed by `/` and a prefix length no longer than the address; host bits
//! may be set (`127.0.0.1/8` is the network 127.0.0.0/8). This module only
//! answers "does this network hold that address", which is all mas-sockets
//! needs to tell whether MAS will believe nginx's `X-Forwarded-For`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// A network; `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`) counts as its IPv4 address, as MAS compares
    /// canonical addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNet {
    type Err = ();

    fn from_str(text: &str) -> Result<IpNet, ()> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| ())?
            }
            Some(_) => return Err(()),
        };
        IpNet::new(addr, prefix).ok_or(())
    }
}

/// MAS's `trusted_proxies` when the config does not set it: the private
/// ranges and loopback.
pub fn default_trusted_proxies() -> Vec<IpNet> {
    let v4 = |a, b, c, d, p| IpNet::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), p);
    [
        v4(192, 168, 0, 0, 16),
        v4(172, 16, 0, 0, 12),
        v4(10, 0, 0, 0, 10),
        v4(127, 0, 0, 1, 8),
        IpNet::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0)), 8),
        IpNet::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    ]
    .into_iter()
    .map(|net| net.expect("the built-in networks are valid"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|()| panic!("{text} should parse"))
    }

    #[test]
    fn networks_parse_as_mas_writes_them() {
        assert_eq!(net("127.0.0.1/8").to_string(), "127.0.0.1/8");
        assert_eq!(net("::1").to_string(), "::1/128");
        assert_eq!(net("10.1.2.3").to_string(), "10.1.2.3/32");
        for bad in [
            "127.0.0.1/33",
            "::1/129",
            "localhost/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn contains_ignores_host_bits_and_maps_ipv4_in_ipv6() {
        let lo = net("127.0.0.1/8");
        assert!(lo.contains("127.9.9.9".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("128.0.0.1".parse().unwrap()));
        assert!(!lo.contains("::1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
        assert!(net("::/0").contains("2001:db8::1".parse().unwrap()));
        assert!(net("::1/128").contains("::1".parse().unwrap()));
    }

    #[test]
    fn defaults_trust_loopback_and_private_ranges_only() {
        let trusted = default_trusted_proxies();
        let trusts = |ip: &str| trusted.iter().any(|n| n.contains(ip.parse().unwrap()));
        assert!(trusts("127.0.0.1") && trusts("::1") && trusts("10.2.3.4"));
        assert!(trusts("192.168.1.1") && trusts("172.31.0.1") && trusts("fd12::1"));
        assert!(!trusts("203.0.113.7") && !trusts("2001:db8::1") && !trusts("10.64.0.1"));
    }
}
