//! TURN for voice and video calls (Conduit's and Synapse's key names, at the top of
//! `[global]`): the relay servers clients are told of, and how their credentials are made.

use serde::{Deserialize, Serialize};

/// The TURN keys of `[global]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TurnConfig {
    /// The relays clients use, e.g. `turn:turn.example.com:3478?transport=udp`. Empty: no
    /// TURN (clients are told nothing and calls work only where peers reach each other).
    pub turn_uris: Vec<String>,
    /// coturn's `static-auth-secret` (`use-auth-secret`): each user gets credentials made
    /// from it that expire after `turn_ttl`. Preferred over a fixed user name and password.
    pub turn_secret: Option<String>,
    /// Fixed credentials, when coturn is not set up with a shared secret.
    pub turn_username: Option<String>,
    pub turn_password: Option<String>,
    /// How long credentials made from `turn_secret` are valid, in seconds.
    pub turn_ttl: u64,
    /// Whether guests get TURN credentials too.
    pub turn_allow_guests: bool,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            turn_uris: Vec::new(),
            turn_secret: None,
            turn_username: None,
            turn_password: None,
            turn_ttl: 24 * 60 * 60,
            turn_allow_guests: false,
        }
    }
}

/// `[global.push]`: where notifications for phones may be sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Address ranges (CIDR) push gateways may not be reached at. On-premise, the gateway
    /// (the company's Sygnal or ntfy) is usually on a private address, so only loopback,
    /// link-local and unspecified addresses are refused by default.
    pub ip_range_denylist: Vec<String>,
    /// Exceptions to the denylist.
    pub ip_range_allowlist: Vec<String>,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            ip_range_denylist: [
                "127.0.0.0/8",
                "0.0.0.0/8",
                "169.254.0.0/16",
                "::1/128",
                "::/128",
                "fe80::/10",
            ]
            .map(str::to_owned)
            .to_vec(),
            ip_range_allowlist: Vec::new(),
        }
    }
}
