//! An outgoing transaction's body, built once as canonical JSON: the same bytes are signed
//! (`X-Matrix`) and sent, without parsing and re-serialising the body to sign it. An event
//! sent to many servers is put into its federation form once, not once per destination.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use ruma::{CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::Services;

/// Events kept in their federation form; emptied when full (the events of the last few
/// seconds are what every destination's worker asks for).
const CACHED_PDUS: usize = 1024;

/// Recent events in their federation form (canonical JSON), shared by the destinations'
/// workers. Each is tied to a fingerprint of the stored event, so one changed since (a
/// redaction) is rebuilt rather than sent as it was.
#[derive(Default)]
pub struct WirePdus {
    cached: Mutex<HashMap<OwnedEventId, (u64, Arc<str>)>>,
    fingerprints: std::collections::hash_map::RandomState,
}

/// What the federation form needs of a stored event beyond its JSON.
#[derive(serde::Deserialize)]
struct RoomOf {
    room_id: Option<OwnedRoomId>,
}

impl WirePdus {
    /// The event as other servers get it (canonical JSON), or `None` if it is not stored or
    /// has no room.
    pub fn get(&self, services: &Services, event_id: &EventId) -> Result<Option<Arc<str>>> {
        let Some(stored) = services.rooms.get_pdu_json(event_id)? else {
            return Ok(None);
        };
        let fingerprint = self.fingerprints.hash_one(&stored);
        {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((known, wire)) = cached.get(event_id)
                && *known == fingerprint
            {
                return Ok(Some(Arc::clone(wire)));
            }
        }
        let Some(room_id) = serde_json::from_slice::<RoomOf>(&stored)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?
            .room_id
        else {
            return Ok(None);
        };
        let rules = services.rooms.rules(&room_id)?;
        let object = crate::service::rooms::wire::wire_object(&stored, &rules)?;
        let wire: Arc<str> = serde_json::to_string(&object)
            .map_err(Error::internal)?
            .into();
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if cached.len() >= CACHED_PDUS {
            cached.clear();
        }
        cached.insert(event_id.to_owned(), (fingerprint, Arc::clone(&wire)));
        Ok(Some(wire))
    }
}

/// A transaction's body as canonical JSON: its keys in order (`edus`, `origin`,
/// `origin_server_ts`, `pdus`), each PDU already canonical.
pub fn body(origin: &str, now_millis: u64, pdus: &[Arc<str>], edus: &[Value]) -> Result<String> {
    let mut body = String::from("{\"edus\":[");
    for (i, edu) in edus.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let canonical = CanonicalJsonValue::try_from(edu.clone())
            .map_err(|e| Error::Internal(format!("an EDU is not canonical JSON: {e}")))?;
        body.push_str(&serde_json::to_string(&canonical).map_err(Error::internal)?);
    }
    body.push_str("],\"origin\":");
    body.push_str(&serde_json::to_string(origin).map_err(Error::internal)?);
    body.push_str(",\"origin_server_ts\":");
    body.push_str(&now_millis.to_string());
    body.push_str(",\"pdus\":[");
    for (i, pdu) in pdus.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(pdu);
    }
    body.push_str("]}");
    Ok(body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_body_is_the_canonical_json_of_the_transaction() {
        let pdu = json!({ "type": "m.room.message", "content": { "body": "é \"q\"", "n": 1 },
                          "room_id": "!r:x", "depth": 3 });
        let canonical_pdu: Arc<str> =
            serde_json::to_string(&CanonicalJsonValue::try_from(pdu.clone()).unwrap())
                .unwrap()
                .into();
        let edu =
            json!({ "edu_type": "m.typing", "content": { "user_id": "@a:x", "typing": true } });
        let built = body(
            "x.example",
            17,
            &[canonical_pdu],
            std::slice::from_ref(&edu),
        )
        .unwrap();
        let expected = CanonicalJsonValue::try_from(json!({
            "origin": "x.example", "origin_server_ts": 17, "pdus": [pdu], "edus": [edu],
        }))
        .unwrap();
        assert_eq!(built, serde_json::to_string(&expected).unwrap());
        assert_eq!(
            body("x", 1, &[], &[]).unwrap(),
            r#"{"edus":[],"origin":"x","origin_server_ts":1,"pdus":[]}"#
        );
    }
}
