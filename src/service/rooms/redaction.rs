//! Applying a redaction: the redacted event's stored JSON is replaced by its redacted form
//! (per the room version's algorithm) and the old bytes are purged from disk. A state event's
//! content is also copied into the `unsigned.prev_content` of the event that replaced it; that
//! copy is redacted too.

use ruma::canonical_json::{RedactedBecause, redact};
use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, DeviceId, EventId, OwnedEventId, RoomId, UserId,
};
use serde_json::json;

use super::{PduBuilder, Service};
use crate::error::{Error, Result};
use crate::storage::Purge;

/// An `m.room.redaction` of `target` for a room of `version`.
pub fn redaction_event(
    rules: &RoomVersionRules,
    target: &EventId,
    reason: Option<&str>,
) -> PduBuilder {
    let mut content = json!({});
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    let mut builder = PduBuilder::timeline(TimelineEventType::RoomRedaction, content);
    // Room version 11 moved `redacts` from the top level into the content.
    if rules.redaction.content_field_redacts {
        builder.content["redacts"] = json!(target);
    } else {
        builder.redacts = Some(target.to_owned());
    }
    builder
}

/// A device's redaction transaction, so that a retry answers the first redaction.
pub struct RedactionTxn<'a> {
    pub device: &'a DeviceId,
    pub txn_id: &'a str,
}

impl RedactionTxn<'_> {
    /// Kept under its own prefix beside message transactions, and echoed to the device as it
    /// was sent.
    fn key(&self) -> String {
        format!("redact/{}", self.txn_id)
    }
}

impl Service {
    /// `sender` redacts `target` in `room_id`: the rights check (anyone their own events,
    /// others' with the `redact` power level), the redaction event, and the target rewritten —
    /// for every caller (the client API, erasure). Answers the redaction's ID and the keys whose
    /// old versions the caller purges once it may wait ([`crate::storage::Engine::purge_old_versions`]).
    pub async fn redact(
        &self,
        sender: &UserId,
        room_id: &RoomId,
        target: &EventId,
        reason: Option<&str>,
        txn: Option<RedactionTxn<'_>>,
    ) -> Result<(OwnedEventId, Purge)> {
        if let Some(txn) = &txn
            && let Some(event_id) = self.txn_event(sender, txn.device.as_str(), &txn.key())?
        {
            return Ok((event_id, Purge::default()));
        }
        if !self.exists(room_id)? {
            return Err(Error::not_found("Unknown room"));
        }
        let found = self
            .get_pdu(target)?
            .filter(|pdu| pdu.room_id.as_deref().is_none_or(|room| room == room_id))
            .ok_or_else(|| Error::not_found("Event not found"))?;
        let builder = redaction_event(&self.rules(room_id)?, target, reason);

        let guard = self.lock_room(room_id).await;
        // Checked again under the lock: a concurrent retry may have finished meanwhile. (The
        // transaction is recorded only once the target is redacted, so a crash in between makes
        // a retry redact again rather than report a redaction that was never applied.)
        if let Some(txn) = &txn
            && let Some(event_id) = self.txn_event(sender, txn.device.as_str(), &txn.key())?
        {
            return Ok((event_id, Purge::default()));
        }
        // Power is read under the lock, from the state the redaction is built on.
        if found.sender != sender && !self.has_power(room_id, sender, "redact", 50)? {
            return Err(Error::forbidden(
                "You may not redact other users' events in this room",
            ));
        }
        let event_id = self.build_and_append(builder, sender, room_id, &guard)?;
        let because = self.redacted_because(room_id, &event_id)?;
        let purge = self.apply_redaction(room_id, target, because)?;
        if let Some(txn) = &txn {
            self.set_txn_event(
                sender,
                txn.device.as_str(),
                &txn.key(),
                txn.txn_id,
                &event_id,
            )?;
        }
        guard.release().await;
        Ok((event_id, purge))
    }

    /// The stored redaction event `redaction`, in the client format that a redacted event
    /// carries in `unsigned.redacted_because`.
    pub fn redacted_because(
        &self,
        room_id: &RoomId,
        redaction: &EventId,
    ) -> Result<CanonicalJsonObject> {
        let json = self
            .get_pdu_json(redaction)?
            .ok_or_else(|| Error::internal("redaction vanished"))?;
        let because: serde_json::Value =
            serde_json::from_str(super::pdu::client_event(&json, room_id)?.json().get())
                .map_err(Error::internal)?;
        serde_json::from_value(because).map_err(Error::internal)
    }

    /// Redacts `target` because of the redaction event `because` (its client-format JSON).
    /// Answers the keys whose old versions still hold the content on disk: the caller purges
    /// them ([`crate::storage::Engine::purge_old_versions`]) once the room is unlocked, and
    /// may gather several redactions' into one purge.
    pub fn apply_redaction(
        &self,
        room_id: &RoomId,
        target: &EventId,
        because: CanonicalJsonObject,
    ) -> Result<Purge> {
        let mut purge = Purge::default();
        let Some(pduid) = self.eventid_pduid.get(target.as_bytes())? else {
            return Ok(purge);
        };
        let Some(json) = self.pduid_pdu.get(&pduid)? else {
            return Ok(purge);
        };
        let object: CanonicalJsonObject = serde_json::from_slice(&json)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
        // The relation lives in the content, which is about to go.
        let original = super::pdu::PduEvent::from_json(&json)?;
        self.unindex_relation(&original.content_value(), target)?;
        if let Some((shortroomid, count)) = self.pdu_position(target)? {
            self.unindex_words(shortroomid, count, &original, &mut purge)?;
        }
        let rules = self.rules(room_id)?;
        let redacted = redact(
            object,
            &rules.redaction,
            Some(RedactedBecause::from_json(because)),
        )
        .map_err(|e| Error::internal(format!("cannot redact event: {e}")))?;
        let redacted_content = redacted.get("content").cloned();
        let json = serde_json::to_vec(&redacted).map_err(Error::internal)?;
        // Looked up first: nothing may fail between the write and dropping the cached form.
        let shorteventid = self.shorteventid(target)?;
        self.pduid_pdu.insert(&pduid, &json)?;
        self.forget_cached_event(shorteventid);
        let mut purged = vec![pduid];
        if let (Some(state_key), Some(content)) = (original.state_key.as_deref(), redacted_content)
            && let Some(replacing) = self.rewrite_prev_content(
                room_id,
                &original.kind.to_string(),
                state_key,
                target,
                content,
            )?
        {
            purged.push(replacing);
        }
        // Cached state snapshots only hold IDs, and the event cache has just dropped it, so
        // nothing else keeps the old content.
        purge.extend(&self.pduid_pdu, purged);
        Ok(purge)
    }

    /// Finds the state event that replaced `target` (walking back from the current holder of
    /// the same type and state key along `unsigned.replaces_state`) and sets its stored
    /// `prev_content` to the redacted content. Returns its key in `pduid_pdu` if rewritten.
    fn rewrite_prev_content(
        &self,
        room_id: &RoomId,
        kind: &str,
        state_key: &str,
        target: &EventId,
        redacted_content: CanonicalJsonValue,
    ) -> Result<Option<Vec<u8>>> {
        let Some(mut holder) = self
            .current_state_event(room_id, kind, state_key)?
            .map(|pdu| pdu.event_id.clone())
        else {
            return Ok(None);
        };
        // Each step goes one change back; a room's history bounds the walk, and a cycle is
        // impossible (each event names an older one), but stop at a generous limit anyway.
        for _ in 0..100_000 {
            if holder == target {
                return Ok(None);
            }
            let Some(pduid) = self.eventid_pduid.get(holder.as_bytes())? else {
                return Ok(None);
            };
            let Some(json) = self.pduid_pdu.get(&pduid)? else {
                return Ok(None);
            };
            let mut object: CanonicalJsonObject = serde_json::from_slice(&json)
                .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
            let Some(CanonicalJsonValue::Object(unsigned)) = object.get_mut("unsigned") else {
                return Ok(None);
            };
            let replaces: Option<OwnedEventId> = match unsigned.get("replaces_state") {
                Some(CanonicalJsonValue::String(id)) => EventId::parse(id.as_str()).ok(),
                _ => None,
            };
            let Some(replaces) = replaces else {
                return Ok(None);
            };
            if replaces != target {
                holder = replaces;
                continue;
            }
            if unsigned.contains_key("prev_content") {
                unsigned.insert("prev_content".to_owned(), redacted_content);
                let json = serde_json::to_vec(&object).map_err(Error::internal)?;
                self.pduid_pdu.insert(&pduid, &json)?;
                return Ok(Some(pduid));
            }
            return Ok(None);
        }
        Ok(None)
    }
}
