//! A stored PDU in the form other servers receive and check it.
//!
//! The stored JSON is the signed event plus what this server keeps beside it: the event ID
//! (from room version 3 on it is the hash of the rest, so it is not part of the signed event)
//! and `unsigned`, which no signature covers. Both are taken off before an event leaves; what
//! remains is exactly what was hashed and signed, so a remote server's checks pass on it.

use ruma::CanonicalJsonObject;
use ruma::room_version_rules::RoomVersionRules;

use crate::error::{Error, Result};

/// The federation form of the stored PDU `stored`.
pub fn wire_object(stored: &[u8], rules: &RoomVersionRules) -> Result<CanonicalJsonObject> {
    let mut object: CanonicalJsonObject = serde_json::from_slice(stored)
        .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
    object.remove("unsigned");
    if !rules.event_format.require_event_id {
        object.remove("event_id");
    }
    Ok(object)
}
