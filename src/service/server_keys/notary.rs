//! Notaries (spec: "Querying Keys Through Another Server"). As a notary this server answers
//! for other servers' keys with the documents they signed, countersigned by us; as a client
//! it asks the `trusted_servers` for a server's keys when that server cannot be reached, and
//! keeps only documents signed both by the server itself and by the notary.

use ruma::signatures::sign_json;
use ruma::{CanonicalJsonObject, ServerName};
use serde_json::{Value, json};

use super::{RemoteKey, Service, verified_key_document};
use crate::error::{Error, Result};
use crate::service::federation::FederationClient;

impl Service {
    /// The key documents of `server` valid at least until `minimum_valid_until_ts`, with
    /// this server's signature added: ours as published, another's from the cache or fetched
    /// from it. Empty when none can be had.
    pub async fn notary_documents(
        &self,
        client: &FederationClient,
        ours: &ServerName,
        server: &ServerName,
        minimum_valid_until_ts: u64,
    ) -> Result<Vec<CanonicalJsonObject>> {
        if server == ours {
            return Ok(vec![self.published_keys(ours)?]);
        }
        let cached = self
            .documents
            .get(server.as_bytes())?
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .filter(|doc| {
                doc["valid_until_ts"]
                    .as_u64()
                    .is_some_and(|until| until >= minimum_valid_until_ts)
            });
        let document = match cached {
            Some(document) => document,
            None => {
                if self.fetch_remote_keys(client, server).await.is_err() {
                    return Ok(Vec::new());
                }
                match self.documents.get(server.as_bytes())? {
                    Some(bytes) => serde_json::from_slice(&bytes)
                        .map_err(|e| Error::Database(format!("key document unreadable: {e}")))?,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let mut object: CanonicalJsonObject =
            serde_json::from_value(document).map_err(Error::internal)?;
        sign_json(ours.as_str(), &*self.key_pair(), &mut object).map_err(Error::internal)?;
        Ok(vec![object])
    }

    /// Asks `notary` for `server`'s keys (`POST /_matrix/key/v2/query`) and keeps those of a
    /// document signed by `server` itself and by the notary (whose own key is fetched from
    /// it directly).
    pub(super) async fn fetch_through_notary(
        &self,
        client: &FederationClient,
        notary: &ServerName,
        server: &ServerName,
    ) -> Result<Vec<(String, RemoteKey)>> {
        let notary_keys = self.fetch_remote_keys(client, notary).await?;
        let body = json!({ "server_keys": { server.as_str(): {} } });
        let answer = client
            .post_public(notary, "/_matrix/key/v2/query", &body)
            .await?;
        let documents = answer["server_keys"]
            .as_array()
            .ok_or_else(|| Error::Internal(format!("{notary} answered no server_keys")))?;
        for document in documents {
            if document["server_name"].as_str() != Some(server.as_str()) {
                continue;
            }
            // The server's own signatures, as for a document fetched from it…
            let mut own = document.clone();
            if let Some(signatures) = own["signatures"].as_object_mut() {
                signatures.retain(|name, _| name == server.as_str());
            }
            let server_keys = verified_key_document(&own, server)?;
            // …and the notary's, which vouches for it: both must check out.
            let mut map = ruma::signatures::PublicKeyMap::new();
            for (entity, keys) in [(server, &server_keys), (notary, &notary_keys)] {
                let mut set = ruma::signatures::PublicKeySet::new();
                for (key_id, key) in keys {
                    if let Ok(public) = ruma::serde::Base64::parse(&key.key) {
                        set.insert(key_id.clone(), public);
                    }
                }
                map.insert(entity.to_string(), set);
            }
            // Other servers' signatures (a notary that asked another) are not ours to check.
            let mut both = document.clone();
            if let Some(signatures) = both["signatures"].as_object_mut() {
                signatures.retain(|name, _| name == server.as_str() || name == notary.as_str());
            }
            let vouched = both["signatures"].get(notary.as_str()).is_some()
                && serde_json::from_value::<CanonicalJsonObject>(both)
                    .is_ok_and(|object| ruma::signatures::verify_json(&map, &object).is_ok());
            if !vouched {
                return Err(Error::Internal(format!(
                    "{notary}'s answer for {server} is not signed by both {server} and {notary}"
                )));
            }
            return self.keep_document(server, &own);
        }
        Err(Error::Internal(format!(
            "{notary} knows no keys of {server}"
        )))
    }
}
