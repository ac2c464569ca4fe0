//! The server's ed25519 signing key: generated on first start, stored in the database, used to
//! sign every event this server creates (and, with federation, published to other servers).

use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::serde::Base64;
use ruma::serde::base64::Standard;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, PublicKeySet, sign_json};
use ruma::{CanonicalJsonObject, ServerName};

use crate::error::{Error, Result};
use crate::storage::{Engine, Tree};

const KEY_DER: &[u8] = b"signing_key_der";
/// How far ahead published keys are valid (Synapse publishes a week too).
const PUBLISHED_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;
const KEY_VERSION: &[u8] = b"signing_key_version";

pub struct Service {
    key_pair: Ed25519KeyPair,
}

impl Service {
    pub fn load_or_create(engine: &Arc<Engine>) -> Result<Self> {
        let global: Tree = engine.tree("global");
        let (der, version) = match (global.get(KEY_DER)?, global.get(KEY_VERSION)?) {
            (Some(der), Some(version)) => (
                der,
                String::from_utf8(version)
                    .map_err(|_| Error::Database("signing key version is not UTF-8".into()))?,
            ),
            _ => {
                let der = Ed25519KeyPair::generate();
                let version: String = rand::rng()
                    .sample_iter(Alphanumeric)
                    .take(8)
                    .map(char::from)
                    .collect();
                global.insert(KEY_DER, &der)?;
                global.insert(KEY_VERSION, version.as_bytes())?;
                tracing::info!(key_id = %format!("ed25519:{version}"), "generated the server signing key");
                (der.to_vec(), version)
            }
        };
        let key_pair = Ed25519KeyPair::from_der(&der, version)
            .map_err(|e| Error::Database(format!("stored signing key is unreadable: {e}")))?;
        Ok(Self { key_pair })
    }

    pub fn key_pair(&self) -> &Ed25519KeyPair {
        &self.key_pair
    }

    /// `ed25519:<version>`, the ID other servers know the key by.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.key_pair.version())
    }

    /// The answer to `GET /_matrix/key/v2/server`: the verify key, valid for a week from now
    /// (other servers cache it until then, and ask again), signed with itself.
    pub fn published_keys(&self, server: &ServerName) -> Result<CanonicalJsonObject> {
        let valid_until = crate::service::now_millis() + PUBLISHED_VALIDITY_MS;
        let key = Base64::<Standard>::new(self.key_pair.public_key().to_vec()).encode();
        let value = serde_json::json!({
            "server_name": server,
            "verify_keys": { self.key_id(): { "key": key } },
            // No key has been replaced yet: rotation keeps the old ones listed here.
            "old_verify_keys": {},
            "valid_until_ts": valid_until,
        });
        let mut object: CanonicalJsonObject =
            serde_json::from_value(value).map_err(Error::internal)?;
        sign_json(server.as_str(), &self.key_pair, &mut object).map_err(Error::internal)?;
        Ok(object)
    }

    /// This server's verify key as ruma's signature checks take it, under `server`.
    pub fn public_key_map(&self, server: &ServerName) -> PublicKeyMap {
        let keys = PublicKeySet::from([(
            self.key_id(),
            Base64::new(self.key_pair.public_key().to_vec()),
        )]);
        PublicKeyMap::from([(server.to_string(), keys)])
    }
}
