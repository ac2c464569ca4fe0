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
