//! This server's own signing keys: the current one (generated on first start, stored in the
//! database, signing every event and request) and the ones it replaced. A replaced key stays
//! published in `old_verify_keys` with the moment it stopped being used, so that events
//! signed before a rotation keep verifying on every server — and nothing signed with it
//! afterwards does (from room version 5).

use std::sync::{Arc, RwLock};

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::serde::Base64;
use ruma::serde::base64::Standard;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, PublicKeySet, sign_json};
use ruma::{CanonicalJsonObject, ServerName};
use serde::{Deserialize, Serialize};

use super::Service;
use crate::error::{Error, Result};
use crate::storage::{Batch, Engine, Tree};

const KEY_DER: &[u8] = b"signing_key_der";
const KEY_VERSION: &[u8] = b"signing_key_version";
/// The replaced keys, a JSON list of [`OldKey`].
const OLD_KEYS: &[u8] = b"signing_keys_old";
/// How far ahead published keys are valid (Synapse publishes a week too).
const PUBLISHED_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// A key this server signed with before a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldKey {
    /// `ed25519:<version>`.
    pub key_id: String,
    /// The public key, unpadded base64.
    pub key: String,
    /// When it was replaced (ms): nothing signed later is valid.
    pub expired_ts: u64,
}

pub(super) struct OwnKeys {
    global: Tree,
    current: RwLock<Arc<Ed25519KeyPair>>,
    old: RwLock<Vec<OldKey>>,
}

impl OwnKeys {
    pub(super) fn load_or_create(engine: &Arc<Engine>) -> Result<Self> {
        let global: Tree = engine.tree("global");
        let current = match (global.get(KEY_DER)?, global.get(KEY_VERSION)?) {
            (Some(der), Some(version)) => {
                let version = String::from_utf8(version)
                    .map_err(|_| Error::Database("signing key version is not UTF-8".into()))?;
                Ed25519KeyPair::from_der(&der, version).map_err(|e| {
                    Error::Database(format!("stored signing key is unreadable: {e}"))
                })?
            }
            _ => {
                let mut batch = Batch::default();
                let key_pair = generate(&[], &global, &mut batch)?;
                engine.write(batch)?;
                tracing::info!(key_id = %key_id(&key_pair), "generated the server signing key");
                key_pair
            }
        };
        let old = match global.get(OLD_KEYS)? {
            Some(json) => serde_json::from_slice(&json)
                .map_err(|e| Error::Database(format!("replaced signing keys unreadable: {e}")))?,
            None => Vec::new(),
        };
        Ok(Self {
            global,
            current: RwLock::new(Arc::new(current)),
            old: RwLock::new(old),
        })
    }
}

/// A new key pair, its version distinct from `taken`, written (PKCS#8 DER and version) into
/// `batch` as the current key.
fn generate(taken: &[OldKey], global: &Tree, batch: &mut Batch) -> Result<Ed25519KeyPair> {
    loop {
        let der = Ed25519KeyPair::generate();
        let version: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        if taken
            .iter()
            .any(|old| old.key_id == format!("ed25519:{version}"))
        {
            continue;
        }
        let key_pair = Ed25519KeyPair::from_der(&der, version).map_err(Error::internal)?;
        batch.put(global, KEY_DER, &der)?;
        batch.put(global, KEY_VERSION, key_pair.version().as_bytes())?;
        return Ok(key_pair);
    }
}

fn key_id(key_pair: &Ed25519KeyPair) -> String {
    format!("ed25519:{}", key_pair.version())
}

fn public_key(key_pair: &Ed25519KeyPair) -> String {
    Base64::<Standard>::new(key_pair.public_key().to_vec()).encode()
}

impl Service {
    /// The key every event and request is signed with now.
    pub fn key_pair(&self) -> Arc<Ed25519KeyPair> {
        Arc::clone(&self.own.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// `ed25519:<version>`, the ID other servers know the current key by.
    pub fn key_id(&self) -> String {
        key_id(&self.key_pair())
    }

    /// The keys this server signed with before, oldest first.
    pub fn old_keys(&self) -> Vec<OldKey> {
        self.own
            .old
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The answer to `GET /_matrix/key/v2/server`: the verify key, valid for a week from now
    /// (other servers cache it until then, and ask again), the replaced keys with when they
    /// expired, signed with the current key.
    pub fn published_keys(&self, server: &ServerName) -> Result<CanonicalJsonObject> {
        let valid_until = crate::service::now_millis() + PUBLISHED_VALIDITY_MS;
        let current = self.key_pair();
        let old: serde_json::Map<String, serde_json::Value> = self
            .old_keys()
            .into_iter()
            .map(|old| {
                let entry = serde_json::json!({ "key": old.key, "expired_ts": old.expired_ts });
                (old.key_id, entry)
            })
            .collect();
        let value = serde_json::json!({
            "server_name": server,
            "verify_keys": { key_id(&current): { "key": public_key(&current) } },
            "old_verify_keys": old,
            "valid_until_ts": valid_until,
        });
        let mut object: CanonicalJsonObject =
            serde_json::from_value(value).map_err(Error::internal)?;
        sign_json(server.as_str(), &*current, &mut object).map_err(Error::internal)?;
        Ok(object)
    }

    /// This server's verify keys as ruma's signature checks take them, under `server`: the
    /// current key, and each replaced key that was still in use at `valid_at` (ms; 0 for
    /// every one).
    pub fn public_key_map(&self, server: &ServerName, valid_at: u64) -> PublicKeyMap {
        let current = self.key_pair();
        let mut keys =
            PublicKeySet::from([(key_id(&current), Base64::new(current.public_key().to_vec()))]);
        for old in self.old_keys() {
            if old.expired_ts >= valid_at
                && let Ok(key) = Base64::parse(&old.key)
            {
                keys.insert(old.key_id, key);
            }
        }
        PublicKeyMap::from([(server.to_string(), keys)])
    }

    /// Replaces the signing key (a key that may have leaked, or a routine rotation): a new
    /// key signs from now on, the old one is published as expired now. Returns the new key
    /// ID and the replaced key.
    pub fn rotate_signing_key(&self) -> Result<(String, OldKey)> {
        let mut current = self.own.current.write().unwrap_or_else(|e| e.into_inner());
        let mut old = self.own.old.write().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::default();
        let key_pair = generate(&old, &self.own.global, &mut batch)?;
        // Taken under the lock: an event signed with the old key got it before this moment,
        // and its timestamp was set before it was signed.
        let replaced = OldKey {
            key_id: key_id(&current),
            key: public_key(&current),
            expired_ts: crate::service::now_millis(),
        };
        let mut list = old.clone();
        list.push(replaced.clone());
        batch.put(
            &self.own.global,
            OLD_KEYS,
            &serde_json::to_vec(&list).map_err(Error::internal)?,
        )?;
        self.own.global.engine().write(batch)?;
        let new_id = key_id(&key_pair);
        tracing::warn!(old = %replaced.key_id, new = %new_id, "rotated the server signing key");
        *current = Arc::new(key_pair);
        *old = list;
        Ok((new_id, replaced))
    }
}
