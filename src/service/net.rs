//! Where outgoing requests may go. URL previews and federation both connect to addresses that
//! other people choose (a link in a message, a server name in an event), so both pass a policy
//! here: ranges denied (by default everything that is not the public internet) and the
//! operator's exceptions. Names are checked after resolution, by [`PolicyResolver`], so that
//! a public name pointing at a private address is refused too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Option<IpRange> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpRange { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
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

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are judged as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Ranges that are not the public internet: loopback, private, link-local, shared, multicast,
/// documentation and reserved blocks, in both families.
const NON_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// Whether a preview may connect to `ip`: public addresses, or ones the operator allowed.
pub fn may_fetch_from(ip: IpAddr, allowed: &[IpRange]) -> bool {
    IpPolicy::public_only(allowed.to_vec()).permits(ip)
}

/// Ranges an outgoing request may not reach, and exceptions to them.
#[derive(Debug, Clone)]
pub struct IpPolicy {
    deny: Vec<IpRange>,
    allow: Vec<IpRange>,
}

impl IpPolicy {
    /// Denies every range that is not the public internet, except `allow`.
    pub fn public_only(allow: Vec<IpRange>) -> Self {
        let deny = NON_PUBLIC
            .iter()
            .filter_map(|range| IpRange::parse(range))
            .collect();
        Self { deny, allow }
    }

    /// From the operator's CIDR lists (validated when the configuration is loaded).
    pub fn from_lists(deny: &[String], allow: &[String]) -> Self {
        let parse = |list: &[String]| list.iter().filter_map(|r| IpRange::parse(r)).collect();
        Self {
            deny: parse(deny),
            allow: parse(allow),
        }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|range| range.contains(ip))
            || !self.deny.iter().any(|range| range.contains(ip))
    }

    /// Whether a URL's host is an IP literal the policy refuses (names are checked when they
    /// are resolved).
    pub fn refuses_literal(&self, url: &reqwest::Url) -> bool {
        let ip: Option<IpAddr> = url
            .host_str()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|host| host.parse().ok());
        ip.is_some_and(|ip| !self.permits(ip))
    }
}

/// A DNS resolver for reqwest that drops the addresses a policy refuses, and fails when none
/// is left.
pub struct PolicyResolver {
    pub policy: Arc<IpPolicy>,
    /// Host names to look up under another name: the target of a server's SRV record, while
    /// the URL (and so the TLS certificate checked) keeps the server's own name.
    pub targets: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl PolicyResolver {
    pub fn new(policy: Arc<IpPolicy>) -> Self {
        Self {
            policy,
            targets: Arc::default(),
        }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let target = self
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name.as_str())
            .cloned();
        Box::pin(async move {
            let host = target.unwrap_or_else(|| name.as_str().to_owned());
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| policy.permits(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A name that resolves only to refused addresses.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to addresses this server may not connect to",
            self.0
        )
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_are_refused_unless_allowed() {
        let none: Vec<IpRange> = Vec::new();
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fe80::1",
            "fd12::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(
                !may_fetch_from(refused.parse().unwrap(), &none),
                "{refused}"
            );
        }
        for allowed in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(may_fetch_from(allowed.parse().unwrap(), &none), "{allowed}");
        }
        let intranet = [IpRange::parse("10.20.0.0/16").unwrap()];
        assert!(may_fetch_from("10.20.5.6".parse().unwrap(), &intranet));
        assert!(!may_fetch_from("10.21.5.6".parse().unwrap(), &intranet));
        assert!(IpRange::parse("10.0.0.0/33").is_none());
        assert!(IpRange::parse("nonsense").is_none());
    }
}
