//! OpenID tokens: a client asks for one (`/user/{userId}/openid/request_token`) to prove to
//! a third party — a widget, an integration manager — who its user is; the third party
//! hands it to this server (`/_matrix/federation/v1/openid/userinfo`), which answers the user
//! ID. Tokens are random, kept only as their SHA-256 with their expiry, and valid an hour.

use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::{OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::service::now_millis;
use crate::storage::{Engine, Tree};

/// How long a token proves its user.
pub const TOKEN_LIFETIME_MS: u64 = 60 * 60 * 1000;
/// Past this many stored tokens, expired ones are swept on the next issue.
const SWEEP_AT: usize = 10_000;

pub struct Service {
    /// Key: SHA-256 of the token. Value: [`Stored`] as JSON.
    tokenhash_openid: Tree,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    user_id: OwnedUserId,
    expires_ms: u64,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            tokenhash_openid: engine.tree("tokenhash_openid"),
        }
    }

    /// A new token for `user_id`, valid for [`TOKEN_LIFETIME_MS`].
    pub fn issue(&self, user_id: &UserId) -> Result<String> {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let stored = Stored {
            user_id: user_id.to_owned(),
            expires_ms: now_millis() + TOKEN_LIFETIME_MS,
        };
        self.tokenhash_openid
            .insert(&hash(&token), &serde_json::to_vec(&stored)?)?;
        self.sweep()?;
        Ok(token)
    }

    /// The user a token proves, while it is valid.
    pub fn user_of(&self, token: &str) -> Result<Option<OwnedUserId>> {
        let Some(stored) = self.tokenhash_openid.get_json::<Stored>(&hash(token))? else {
            return Ok(None);
        };
        Ok((stored.expires_ms > now_millis()).then_some(stored.user_id))
    }

    /// Drops expired tokens once there are many.
    fn sweep(&self) -> Result<()> {
        let mut expired = Vec::new();
        let mut count = 0usize;
        let now = now_millis();
        for entry in self.tokenhash_openid.scan_prefix(Vec::new()) {
            let (key, value) = entry?;
            count += 1;
            if serde_json::from_slice::<Stored>(&value).is_ok_and(|s| s.expires_ms <= now) {
                expired.push(key.to_vec());
            }
            if count > SWEEP_AT * 2 {
                break;
            }
        }
        if count >= SWEEP_AT {
            for key in expired {
                self.tokenhash_openid.remove(&key)?;
            }
        }
        Ok(())
    }
}
