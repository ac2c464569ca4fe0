//! The server's ed25519 signing key: generated on first start, stored in the database, used to
//! sign every event this server creates (and, with federation, published to other servers).

use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::serde::Base64;
use ruma::serde::base64::Standard;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, PublicKeySet, sign_json, verify_json};
use ruma::{CanonicalJsonObject, ServerName};

use crate::error::{Error, Result};
use crate::service::federation::FederationClient;
use crate::storage::{Batch, Engine, Key, Tree};

const KEY_DER: &[u8] = b"signing_key_der";
/// How far ahead published keys are valid (Synapse publishes a week too).
const PUBLISHED_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;
const KEY_VERSION: &[u8] = b"signing_key_version";

pub mod notary;

pub struct Service {
    key_pair: Ed25519KeyPair,
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
        Ok(Self {
            key_pair,
            remote: engine.tree("serverkeyid_verifykey"),
            documents: engine.tree("servername_keydocument"),
            trusted,
            failed: std::sync::Mutex::default(),
        })
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
    Ok(keys)
}
