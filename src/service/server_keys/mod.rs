//! Server keys: this server's own signing keys ([`own`]) and other servers' verify keys,
//! fetched from them or through notaries ([`notary`]), checked and cached per key ID with
//! their validity.

use std::sync::Arc;

use ruma::serde::Base64;
use ruma::signatures::{PublicKeyMap, PublicKeySet, verify_json};
use ruma::{CanonicalJsonObject, ServerName};

use crate::error::{Error, Result};
use crate::service::federation::FederationClient;
use crate::storage::{Batch, Engine, Key, Tree};

pub mod notary;
mod own;

pub use own::OldKey;

pub struct Service {
    /// This server's signing key and the keys it replaced (see [`own`]).
    own: own::OwnKeys,
    /// Other servers' verify keys (`serverkeyid_verifykey`).
    remote: Tree,
    /// Other servers' key documents as they signed them (`servername_keydocument`), served
    /// again when this server acts as a notary.
    documents: Tree,
    /// Notaries asked for a server's keys when it cannot be reached (`trusted_servers`).
    trusted: Vec<ruma::OwnedServerName>,
    /// Servers whose key fetch failed lately, and when: not asked again for a while, so that
    /// requests naming an unreachable origin cannot make this server call it each time.
    failed: std::sync::Mutex<std::collections::HashMap<ruma::OwnedServerName, std::time::Instant>>,
}

/// How long a server whose keys could not be fetched is not asked again.
const FETCH_FAILURE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Service {
    pub fn load_or_create(
        engine: &Arc<Engine>,
        trusted: Vec<ruma::OwnedServerName>,
    ) -> Result<Self> {
        Ok(Self {
            own: own::OwnKeys::load_or_create(engine)?,
            remote: engine.tree("serverkeyid_verifykey"),
            documents: engine.tree("servername_keydocument"),
            trusted,
            failed: std::sync::Mutex::default(),
        })
    }
}

/// A verify key of another server, and until when it may be used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteKey {
    pub key: String,
    pub valid_until_ts: u64,
}

impl Service {
    /// `server`'s key `key_id`, valid at least until `valid_at` (ms): from the cache, else
    /// fetched from the server itself and checked (see [`Self::fetch_remote_keys`]).
    pub async fn remote_key(
        &self,
        client: &FederationClient,
        server: &ServerName,
        key_id: &str,
        valid_at: u64,
    ) -> Result<Option<RemoteKey>> {
        let cached = self.cached_remote_key(server, key_id)?;
        if let Some(key) = cached.filter(|key| key.valid_until_ts >= valid_at) {
            return Ok(Some(key));
        }
        let wanted = |keys: Vec<(String, RemoteKey)>| {
            keys.into_iter()
                .find(|(id, key)| id == key_id && key.valid_until_ts >= valid_at)
                .map(|(_, key)| key)
        };
        let direct = self.fetch_remote_keys(client, server).await;
        let error = match direct {
            Ok(keys) => match wanted(keys) {
                Some(key) => return Ok(Some(key)),
                None => None,
            },
            Err(error) => Some(error),
        };
        // The server itself cannot be reached or does not list the key: ask the notaries.
        for notary in &self.trusted {
            match self.fetch_through_notary(client, notary, server).await {
                Ok(keys) => {
                    if let Some(key) = wanted(keys) {
                        return Ok(Some(key));
                    }
                }
                Err(error) => {
                    tracing::info!(%notary, %server, %error, "a notary did not vouch for the keys")
                }
            }
        }
        match error {
            Some(error) => Err(error),
            None => Ok(None),
        }
    }

    fn cached_remote_key(&self, server: &ServerName, key_id: &str) -> Result<Option<RemoteKey>> {
        self.remote
            .get(&(server.as_str(), key_id).encode())?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Database(format!("cached server key unreadable: {e}")))
            })
            .transpose()
    }

    /// Asks `server` for its keys (`GET /_matrix/key/v2/server`) and keeps those that the
    /// answer proves: it names `server`, and it is signed by every key it lists.
    pub async fn fetch_remote_keys(
        &self,
        client: &FederationClient,
        server: &ServerName,
    ) -> Result<Vec<(String, RemoteKey)>> {
        let recently_failed = self
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .is_some_and(|at| at.elapsed() < FETCH_FAILURE_TTL);
        if recently_failed {
            return Err(Error::Internal(format!(
                "{server}'s keys could not be fetched a moment ago; not asking again yet"
            )));
        }
        let fetched = match client.get_public(server, "/_matrix/key/v2/server").await {
            Ok(answer) => self.keep_document(server, &answer),
            Err(error) => Err(error),
        };
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        match &fetched {
            Ok(_) => {
                failed.remove(server);
            }
            Err(_) => {
                if failed.len() >= 10_000 {
                    failed.retain(|_, at| at.elapsed() < FETCH_FAILURE_TTL);
                }
                failed.insert(server.to_owned(), std::time::Instant::now());
            }
        }
        fetched
    }

    /// Keeps the keys of a document shown to be `server`'s, and the document itself.
    fn keep_document(
        &self,
        server: &ServerName,
        answer: &serde_json::Value,
    ) -> Result<Vec<(String, RemoteKey)>> {
        let keys = verified_key_document(answer, server)?;
        let mut batch = Batch::default();
        let document = serde_json::to_vec(answer).map_err(Error::internal)?;
        batch.put(&self.documents, server.as_bytes(), &document)?;
        for (key_id, key) in &keys {
            let value = serde_json::to_vec(key).map_err(Error::internal)?;
            batch.put(
                &self.remote,
                &(server.as_str(), key_id.as_str()).encode(),
                &value,
            )?;
        }
        self.remote.engine().write(batch)?;
        Ok(keys)
    }
}

/// The keys of a `/_matrix/key/v2/server` answer, once it is shown to be `server`'s own: its
/// `server_name`, and a valid signature by `server` with each key it lists.
pub fn verified_key_document(
    answer: &serde_json::Value,
    server: &ServerName,
) -> Result<Vec<(String, RemoteKey)>> {
    let invalid = |why: &str| Error::Internal(format!("{server}'s key answer {why}"));
    if answer["server_name"].as_str() != Some(server.as_str()) {
        return Err(invalid("names another server"));
    }
    let valid_until_ts = answer["valid_until_ts"]
        .as_u64()
        .ok_or_else(|| invalid("has no valid_until_ts"))?;
    let listed = answer["verify_keys"]
        .as_object()
        .filter(|keys| !keys.is_empty())
        .ok_or_else(|| invalid("lists no verify_keys"))?;
    let mut keys = Vec::new();
    let mut set = PublicKeySet::new();
    for (key_id, entry) in listed {
        let text = entry["key"]
            .as_str()
            .ok_or_else(|| invalid("has a key without its value"))?;
        let key = Base64::parse(text).map_err(|_| invalid("has a key that is not base64"))?;
        set.insert(key_id.clone(), key);
        keys.push((
            key_id.clone(),
            RemoteKey {
                key: text.to_owned(),
                valid_until_ts,
            },
        ));
    }
    let object: CanonicalJsonObject =
        serde_json::from_value(answer.clone()).map_err(|_| invalid("is not canonical JSON"))?;
    // Signed by each key it lists: a key the server cannot sign with is not its key.
    for key_id in set.keys() {
        let one = PublicKeySet::from([(key_id.clone(), set[key_id].clone())]);
        let map = PublicKeyMap::from([(server.to_string(), one)]);
        verify_json(&map, &object)
            .map_err(|e| invalid(&format!("is not signed by {key_id}: {e}")))?;
    }
    // Keys it replaced: they cannot sign the document, but the current keys vouch for them,
    // each valid for what was signed until it expired.
    for (key_id, entry) in answer["old_verify_keys"].as_object().into_iter().flatten() {
        if set.contains_key(key_id) {
            continue;
        }
        let (Some(text), Some(expired_ts)) = (entry["key"].as_str(), entry["expired_ts"].as_u64())
        else {
            return Err(invalid("has an old key without its value or expiry"));
        };
        Base64::<ruma::serde::base64::Standard>::parse(text)
            .map_err(|_| invalid("has an old key that is not base64"))?;
        keys.push((
            key_id.clone(),
            RemoteKey {
                key: text.to_owned(),
                valid_until_ts: expired_ts.min(valid_until_ts),
            },
        ));
    }
    Ok(keys)
}
