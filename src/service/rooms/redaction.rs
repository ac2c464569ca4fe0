//! Applying a redaction: the redacted event's stored JSON is replaced by its redacted form
//! (per the room version's algorithm) and the old bytes are purged from disk.

use ruma::canonical_json::{RedactedBecause, redact};
use ruma::{CanonicalJsonObject, EventId, RoomId};

use super::Service;
use crate::error::{Error, Result};

impl Service {
    /// Redacts `target` because of the redaction event `because` (its client-format JSON).
    pub fn apply_redaction(
        &self,
        room_id: &RoomId,
        target: &EventId,
        because: CanonicalJsonObject,
    ) -> Result<()> {
        let Some(pduid) = self.eventid_pduid.get(target.as_bytes())? else {
            return Ok(());
        };
        let Some(json) = self.pduid_pdu.get(&pduid)? else {
            return Ok(());
        };
        let object: CanonicalJsonObject = serde_json::from_slice(&json)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
        // The relation lives in the content, which is about to go.
        let original = super::pdu::PduEvent::from_json(&json)?;
        self.unindex_relation(&original.content_value(), target)?;
        if let Some((shortroomid, count)) = self.pdu_position(target)? {
            self.unindex_words(shortroomid, count, &original)?;
        }
        let version = self.room_version(room_id)?;
        let rules = version
            .rules()
            .ok_or_else(|| Error::internal("room version without rules"))?;
        let redacted = redact(
            object,
            &rules.redaction,
            Some(RedactedBecause::from_json(because)),
        )
        .map_err(|e| Error::internal(format!("cannot redact event: {e}")))?;
        let json = serde_json::to_vec(&redacted).map_err(Error::internal)?;
        // Looked up first: nothing may fail between the write and dropping the cached form.
        let shorteventid = self.shorteventid(target)?;
        self.pduid_pdu.insert(&pduid, &json)?;
        self.forget_cached_event(shorteventid);
        // Cached state snapshots only hold IDs, and the event cache has just dropped it, so
        // nothing else keeps the old content.
        self.engine.purge_old_versions(&self.pduid_pdu, &pduid)
    }
}
