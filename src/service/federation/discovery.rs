//! Server-name resolution (spec: "Resolving server names"): an IP literal or a name with an
//! explicit port is used as it is; otherwise `/.well-known/matrix/server` may delegate to
//! another host (cached, failures too); otherwise port 8448 of the name.
//!
//! Not done yet: SRV records (`_matrix-fed._tcp`, then `_matrix._tcp`), which the spec tries
//! before falling back to 8448.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ruma::ServerName;

/// How long a well-known answer is kept (the spec's default when the answer gives none).
const WELL_KNOWN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a failed well-known lookup is kept, so a host without one is not asked each time.
const WELL_KNOWN_FAILURE_TTL: Duration = Duration::from_secs(60 * 60);

/// Where requests for a server go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `https://host:port`, the host being what the TLS certificate must name.
    pub base: String,
    /// The `Host` header: the server name, or the delegated name after a well-known.
    pub host: String,
}

impl Destination {
    fn direct(host: &str, port: u16) -> Self {
        let literal = host
            .parse::<IpAddr>()
            .map(|ip| ip.is_ipv6())
            .unwrap_or(false);
        let (bracketed, authority) = if literal && !host.starts_with('[') {
            (format!("[{host}]"), format!("[{host}]:{port}"))
        } else {
            (host.to_owned(), format!("{host}:{port}"))
        };
        Self {
            base: format!("https://{bracketed}:{port}"),
            host: authority,
        }
    }
}

/// What a server name says by itself, before any lookup.
#[derive(Debug, PartialEq, Eq)]
pub enum Literal {
    /// An IP literal or a name with a port: no lookup.
    Direct(Destination),
    /// A bare host name: well-known (then SRV, then 8448) decide.
    Name(String),
}

pub fn literal(server: &ServerName) -> Literal {
    let host = server.host();
    let is_ip = server.is_ip_literal();
    match server.port() {
        Some(port) => Literal::Direct(Destination {
            host: server.as_str().to_owned(),
            ..Destination::direct(host, port)
        }),
        None if is_ip => Literal::Direct(Destination {
            host: server.as_str().to_owned(),
            ..Destination::direct(host.trim_start_matches('[').trim_end_matches(']'), 8448)
        }),
        None => Literal::Name(host.to_owned()),
    }
}

/// Where a delegated `m.server` value (`host[:port]`) leads.
pub fn delegated(value: &str) -> Option<Destination> {
    let server = <&ServerName>::try_from(value).ok()?;
    let host = server.host().trim_start_matches('[').trim_end_matches(']');
    let port = server.port().unwrap_or(8448);
    Some(Destination {
        host: match server.port() {
            Some(_) => value.to_owned(),
            None => server.host().to_owned(),
        },
        ..Destination::direct(host, port)
    })
}

/// Well-known answers by host name, with when they expire.
#[derive(Default)]
pub struct WellKnownCache {
    entries: Mutex<HashMap<String, (Option<Destination>, Instant)>>,
}

impl WellKnownCache {
    /// `Some(answer)` while cached: `Some(None)` for a cached failure.
    pub fn get(&self, host: &str) -> Option<Option<Destination>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(host)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(destination, _)| destination.clone())
    }

    pub fn put(&self, host: &str, destination: Option<Destination>) {
        let ttl = if destination.is_some() {
            WELL_KNOWN_TTL
        } else {
            WELL_KNOWN_FAILURE_TTL
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(host.to_owned(), (destination, Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &ServerName {
        <&ServerName>::try_from(s).unwrap()
    }

    #[test]
    fn literals_and_ports_are_used_as_they_are() {
        let direct = |base: &str, host: &str| {
            Literal::Direct(Destination {
                base: base.to_owned(),
                host: host.to_owned(),
            })
        };
        assert_eq!(
            literal(name("127.0.0.11:8448")),
            direct("https://127.0.0.11:8448", "127.0.0.11:8448")
        );
        assert_eq!(
            literal(name("10.1.2.3")),
            direct("https://10.1.2.3:8448", "10.1.2.3")
        );
        assert_eq!(
            literal(name("[::1]:8449")),
            direct("https://[::1]:8449", "[::1]:8449")
        );
        assert_eq!(
            literal(name("chat.example.com:443")),
            direct("https://chat.example.com:443", "chat.example.com:443")
        );
        assert_eq!(
            literal(name("example.com")),
            Literal::Name("example.com".to_owned())
        );
        assert_eq!(
            delegated("matrix.example.com"),
            Some(Destination {
                base: "https://matrix.example.com:8448".to_owned(),
                host: "matrix.example.com".to_owned(),
            })
        );
        assert_eq!(
            delegated("matrix.example.com:443").map(|d| d.base),
            Some("https://matrix.example.com:443".to_owned())
        );
        assert_eq!(delegated("not a host"), None);
    }

    #[test]
    fn failures_are_cached_too() {
        let cache = WellKnownCache::default();
        assert_eq!(cache.get("example.com"), None);
        cache.put("example.com", None);
        assert_eq!(cache.get("example.com"), Some(None));
    }
}
