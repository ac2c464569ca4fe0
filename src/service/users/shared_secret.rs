//! Synapse's shared-secret registration (`/_synapse/admin/v1/register`), as
//! `register_new_matrix_user` and provisioning scripts use it: the client fetches a nonce,
//! then sends the new account with a MAC keyed by `registration_shared_secret` over the nonce
//! and the account. Nonces live in memory, are single-use and expire after a minute, as in
//! Synapse.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// How long a nonce may be used (Synapse's `NONCE_TIMEOUT`).
pub const NONCE_LIFETIME: Duration = Duration::from_secs(60);
/// Most unused nonces kept at once: they cost memory and anyone may ask for one.
const MAX_NONCES: usize = 10_000;

/// Nonces handed out and not yet used.
#[derive(Default)]
pub struct Nonces {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Nonces {
    /// A fresh nonce (64 random bytes in hex, as Synapse's); `None` while too many are
    /// outstanding.
    pub fn issue(&self) -> Option<String> {
        let mut bytes = [0u8; 64];
        rand::rng().fill_bytes(&mut bytes);
        let nonce: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        if issued.len() >= MAX_NONCES {
            issued.retain(|_, at| now.duration_since(*at) <= NONCE_LIFETIME);
            if issued.len() >= MAX_NONCES {
                return None;
            }
        }
        issued.insert(nonce.clone(), now);
        Some(nonce)
    }

    /// Uses up a nonce: true when it was issued here less than [`NONCE_LIFETIME`] ago. It is
    /// gone afterwards either way.
    pub fn take(&self, nonce: &str) -> bool {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        issued
            .remove(nonce)
            .is_some_and(|at| at.elapsed() <= NONCE_LIFETIME)
    }
}

/// What the MAC of a shared-secret registration covers.
pub struct Registration<'a> {
    pub nonce: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub admin: bool,
    pub user_type: Option<&'a str>,
}

impl Registration<'_> {
    /// Synapse's MAC: HMAC-SHA1 keyed by the secret over
    /// `nonce \0 username \0 password \0 admin|notadmin` (then `\0 user_type` when one is given).
    fn mac(&self, secret: &str) -> Hmac<Sha1> {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(self.nonce.as_bytes());
        mac.update(b"\0");
        mac.update(self.username.as_bytes());
        mac.update(b"\0");
        mac.update(self.password.as_bytes());
        mac.update(b"\0");
        mac.update(if self.admin { b"admin" } else { b"notadmin" });
        if let Some(user_type) = self.user_type.filter(|t| !t.is_empty()) {
            mac.update(b"\0");
            mac.update(user_type.as_bytes());
        }
        mac
    }

    /// The MAC as lower-case hex, as clients send it.
    pub fn mac_hex(&self, secret: &str) -> String {
        self.mac(secret)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `mac_hex` (lower-case hex, as Synapse compares it) is this registration's MAC
    /// under `secret`; the bytes are compared in constant time.
    pub fn mac_matches(&self, secret: &str, mac_hex: &str) -> bool {
        let Some(sent) = decode_lower_hex(mac_hex) else {
            return false;
        };
        self.mac(secret).verify_slice(&sent).is_ok()
    }
}

fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(admin: bool) -> Registration<'static> {
        Registration {
            nonce: "abcd",
            username: "alice",
            password: "wonderland",
            admin,
            user_type: None,
        }
    }

    #[test]
    fn mac_is_synapses() {
        // Python: hmac.new(b"secret", b"abcd\0alice\0wonderland\0notadmin", hashlib.sha1)
        let expected = registration(false).mac_hex("secret");
        assert_eq!(expected, "c4d214bb1dd9c528d3c1e9f12128d90023b37bb8");
        assert!(registration(false).mac_matches("secret", &expected));
        assert!(!registration(true).mac_matches("secret", &expected));
        assert!(!registration(false).mac_matches("other", &expected));
        assert!(!registration(false).mac_matches("secret", &expected.to_uppercase()));
        assert!(!registration(false).mac_matches("secret", &expected[..38]));
        assert!(!registration(false).mac_matches("secret", "zz"));
    }

    #[test]
    fn nonces_are_single_use() {
        let nonces = Nonces::default();
        let nonce = nonces.issue().unwrap();
        assert_eq!(nonce.len(), 128);
        assert!(nonces.take(&nonce));
        assert!(!nonces.take(&nonce));
        assert!(!nonces.take("never-issued"));
    }
}
