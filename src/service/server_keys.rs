//! The server's ed25519 signing key: generated on first start, stored in the database, used to
//! sign every event this server creates (and, with federation, published to other servers).

use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::ServerName;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, PublicKeyMap, PublicKeySet};

use crate::error::{Error, Result};
use crate::storage::{Engine, Tree};

const KEY_DER: &[u8] = b"signing_key_der";
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

    /// This server's verify key as ruma's signature checks take it, under `server`.
    pub fn public_key_map(&self, server: &ServerName) -> PublicKeyMap {
        let keys = PublicKeySet::from([(
            self.key_id(),
            Base64::new(self.key_pair.public_key().to_vec()),
        )]);
        PublicKeyMap::from([(server.to_string(), keys)])
    }
}
