//! The client listener's own TLS (`[global.tls]`, Conduit's key names) and the metrics
//! listener (`[global.metrics]`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[global.tls]`: with both files the client listener speaks HTTPS itself (re-reading both
/// on SIGHUP), so a small site needs no reverse proxy; with neither, plain HTTP behind one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain (the server's certificate first).
    pub certs: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// `[global.metrics]`: Prometheus metrics on a listener of their own, off by default, on
/// loopback unless the operator says otherwise (they tell about the server's use, not its
/// users' data, but are nobody else's business).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub address: IpAddr,
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 9148,
        }
    }
}

impl MetricsConfig {
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}
