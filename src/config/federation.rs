//! `[global.federation]`: the listener other servers reach, its TLS, and how this server
//! calls them. Used only with `allow_federation = true`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[global.federation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FederationConfig {
    /// Interface of the federation listener; the client listener's `address` when unset.
    pub address: Option<IpAddr>,
    pub port: u16,
    /// PEM certificate chain of the federation listener. With `tls_private_key`, the listener
    /// speaks TLS itself (both files are read again on SIGHUP); with neither, plain HTTP for a
    /// reverse proxy in front.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_certificate`.
    pub tls_private_key: Option<PathBuf>,
    /// Check other servers' certificates when calling them. Off only for test PKIs, like
    /// Synapse's `federation_verify_certificates`.
    pub verify_certificates: bool,
    /// Extra trust roots (PEM) for partners on a private PKI.
    pub ca_file: Option<PathBuf>,
    /// Address ranges (CIDR) no outgoing federation request may reach: a room event must not
    /// make the server call its own network. Default: loopback, RFC 1918, link-local, CGNAT,
    /// unique-local and other non-public ranges.
    pub ip_range_denylist: Vec<String>,
    /// Exceptions to the denylist, e.g. partners on a VPN.
    pub ip_range_allowlist: Vec<String>,
    /// The partner policy: the only servers this one talks to (globs, `*` and `?`, matched
    /// against the server name with and without its port); empty = any server. The admin
    /// room adds more at runtime (`federation allow`).
    pub allowed_servers: Vec<String>,
    /// Servers this one never talks to, even when allowed (globs as above).
    pub denied_servers: Vec<String>,
    /// Requests one server may make (a token bucket per origin); past it, `429`.
    pub rate_limit: super::RateLimit,
    /// Requests of one server processed at once; more wait their turn.
    pub concurrent_requests: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            address: None,
            port: 8448,
            tls_certificate: None,
            tls_private_key: None,
            verify_certificates: true,
            ca_file: None,
            ip_range_denylist: [
                "127.0.0.0/8",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "169.254.0.0/16",
                "192.0.0.0/24",
                "192.0.2.0/24",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "224.0.0.0/4",
                "240.0.0.0/4",
                "0.0.0.0/8",
                "::1/128",
                "fe80::/10",
                "fc00::/7",
                "2001:db8::/32",
                "ff00::/8",
                "::/128",
            ]
            .map(String::from)
            .to_vec(),
            ip_range_allowlist: Vec::new(),
            allowed_servers: Vec::new(),
            denied_servers: Vec::new(),
            // Synapse rejects past 50 requests a second from one server; a join or a
            // catch-up comes in bursts.
            rate_limit: super::RateLimit {
                per_second: 50.0,
                burst: 300,
            },
            concurrent_requests: 8,
        }
    }
}
