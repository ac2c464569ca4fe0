//! Server-name resolution (spec: "Resolving server names"): an IP literal or a name with an
//! explicit port is used as it is; otherwise `/.well-known/matrix/server` may delegate to
//! another host (cached, failures too); a host name without a port (the server's own, or the
//! delegated one) is looked up as an SRV record, `_matrix-fed._tcp` then `_matrix._tcp`;
//! otherwise port 8448 of the name.

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

/// A delegated `m.server` value that is a host name without a port: its SRV records decide.
pub fn needs_srv(value: &str) -> Option<String> {
    let server = <&ServerName>::try_from(value).ok()?;
    (server.port().is_none() && !server.is_ip_literal()).then(|| server.host().to_owned())
}

/// One SRV record, as read from DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub target: String,
    pub port: u16,
}

/// The record to use: the lowest priority, then the highest weight (a target of `.` means
/// the service is not offered there).
pub fn pick_srv(records: &[SrvRecord]) -> Option<&SrvRecord> {
    records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .min_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)))
}

/// Where a name found through its SRV record leads: the name itself in the URL and `Host`
/// (the certificate must name it), at the record's port.
pub fn via_srv(name: &str, port: u16) -> Destination {
    Destination {
        host: name.to_owned(),
        ..Destination::direct(name, port)
    }
}

/// Resolved destinations by host name, with when they expire.
#[derive(Default)]
pub struct WellKnownCache {
    entries: Mutex<HashMap<String, (Destination, Instant)>>,
}

impl WellKnownCache {
    /// The destination while cached.
    pub fn get(&self, host: &str) -> Option<Destination> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(host)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(destination, _)| destination.clone())
    }

    /// Keeps a destination: a day after a well-known answer, an hour after none (so that a
    /// host without one is not asked each time, yet a new one is noticed).
    pub fn put(&self, host: &str, destination: Destination, well_known: bool) {
        let ttl = if well_known {
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
        let fallback = Destination::direct("example.com", 8448);
        cache.put("example.com", fallback.clone(), false);
        assert_eq!(cache.get("example.com"), Some(fallback));
    }

    #[test]
    fn srv_records_pick_the_lowest_priority_then_the_heaviest() {
        let record = |priority, weight, target: &str, port| SrvRecord {
            priority,
            weight,
            target: target.to_owned(),
            port,
        };
        let records = [
            record(20, 100, "backup.example.com", 8448),
            record(10, 5, "light.example.com", 8449),
            record(10, 50, "main.example.com", 443),
            record(0, 0, ".", 0),
        ];
        assert_eq!(
            pick_srv(&records).map(|r| r.target.as_str()),
            Some("main.example.com")
        );
        assert_eq!(pick_srv(&records[3..]), None, "`.`: no service");
        let destination = via_srv("example.com", 443);
        assert_eq!(destination.base, "https://example.com:443");
        assert_eq!(destination.host, "example.com");
        assert_eq!(
            needs_srv("matrix.example.com").as_deref(),
            Some("matrix.example.com")
        );
        assert_eq!(needs_srv("matrix.example.com:443"), None);
        assert_eq!(needs_srv("10.0.0.1"), None);
    }
}
