//! Event relations (`m.relates_to`): an index from each event to the events relating to it,
//! for `/relations`, threads, and the aggregations bundled into events sent to clients.

use ruma::{EventId, OwnedEventId, RoomId, UserId};
use serde_json::value::RawValue as RawJsonValue;
use serde_json::{Map, Value, json};

use super::Service;
use super::count::PduCount;
use super::pdu::{ClientParts, PduEvent};
use crate::error::Result;
use crate::storage::{Batch, Key};

/// One relating event.
#[derive(Debug, Clone)]
pub struct Relation {
    pub count: PduCount,
    pub rel_type: String,
    pub event_type: String,
    pub event_id: OwnedEventId,
}

/// The `m.relates_to` of an event's content, if well-formed.
pub fn relates_to(content: &Value) -> Option<(String, OwnedEventId)> {
    let relates_to = content.get("m.relates_to")?;
    let rel_type = relates_to.get("rel_type")?.as_str()?.to_owned();
    let target = EventId::parse(relates_to.get("event_id")?.as_str()?).ok()?;
    Some((rel_type, target))
}

/// Marker in the `global` tree: `eventid_hasrelations` covers every relation.
const RELATION_MARKERS_BUILT: &[u8] = b"relation_markers_built";

impl Service {
    /// Indexes a new event's relation (in the caller's batch).
    pub(super) fn index_relation(
        &self,
        room_id: &RoomId,
        pdu: &PduEvent,
        count: PduCount,
        batch: &mut Batch,
    ) -> Result<()> {
        let Some((rel_type, target)) = relates_to(&pdu.content_value()) else {
            return Ok(());
        };
        let value = (
            rel_type.as_str(),
            pdu.kind.to_string().as_str(),
            pdu.event_id.as_str(),
        )
            .encode();
        batch.put(
            &self.relatestoeventid_relation,
            &(target.as_str(), count).encode(),
            &value,
        )?;
        batch.put(&self.eventid_hasrelations, target.as_bytes(), &[])?;
        if rel_type == "m.thread" {
            batch.put(
                &self.roomid_threadroot,
                &(room_id.as_str(), target.as_str()).encode(),
                &[],
            )?;
        }
        Ok(())
    }

    /// Removes a redacted event's relation from the index.
    pub(super) fn unindex_relation(&self, content: &Value, event_id: &EventId) -> Result<()> {
        let Some((_, target)) = relates_to(content) else {
            return Ok(());
        };
        let Some((_, count)) = self.pdu_position(event_id)? else {
            return Ok(());
        };
        self.relatestoeventid_relation
            .remove(&(target.as_str(), count).encode())
    }

    /// Events relating to `target`, oldest first.
    pub fn relations(&self, target: &EventId) -> Result<Vec<Relation>> {
        if !self.eventid_hasrelations.contains(target.as_bytes())? {
            return Ok(Vec::new());
        }
        self.relatestoeventid_relation
            .scan_prefix((target.as_str(),).prefix())
            .map(|entry| {
                let (key, value) = entry?;
                let (_, count) = <(&str, PduCount)>::decode(&key)?;
                let (rel_type, event_type, event_id) =
                    <(String, String, OwnedEventId)>::decode(&value)?;
                Ok(Relation {
                    count,
                    rel_type,
                    event_type,
                    event_id,
                })
            })
            .collect()
    }

    /// Marks every event with relations, once, in databases written before the markers.
    pub(crate) fn build_relation_markers(&self) -> Result<()> {
        let global = self.engine.tree("global");
        if global.contains(RELATION_MARKERS_BUILT)? {
            return Ok(());
        }
        let mut batch = Batch::default();
        for entry in self.relatestoeventid_relation.scan_prefix(Vec::new()) {
            let (key, _) = entry?;
            let (target, _) = <(&str, PduCount)>::decode(&key)?;
            batch.put(&self.eventid_hasrelations, target.as_bytes(), &[])?;
        }
        batch.put(&global, RELATION_MARKERS_BUILT, &[])?;
        self.engine.write(batch)
    }

    /// Thread roots of a room.
    pub fn thread_roots(&self, room_id: &RoomId) -> Result<Vec<OwnedEventId>> {
        self.roomid_threadroot.second_parts(room_id.as_str())
    }

    /// The client form of a stored event with its bundled aggregations (`unsigned.m.relations`):
    /// the latest edit by the original sender, the thread summary, and references.
    pub fn client_event_bundled(
        &self,
        json: &[u8],
        room_id: &RoomId,
        viewer: &UserId,
    ) -> Result<ruma::serde::Raw<ruma::events::AnyTimelineEvent>> {
        Ok(ruma::serde::Raw::from_json(self.render_client_event(
            json,
            room_id,
            viewer,
            |_, _| Ok(None),
        )?))
    }

    /// [`Self::client_event_bundled`], with `unsigned.transaction_id` when `transaction_id`
    /// (given the event's ID and sender) finds one.
    pub fn render_client_event(
        &self,
        json: &[u8],
        room_id: &RoomId,
        viewer: &UserId,
        transaction_id: impl FnOnce(&EventId, &UserId) -> Result<Option<String>>,
    ) -> Result<Box<RawJsonValue>> {
        let parts = ClientParts::parse(json)?;
        let mut unsigned = Map::new();
        let event_id = parts
            .str_field("event_id")
            .and_then(|id| EventId::parse(id.as_ref()).ok());
        let sender = parts
            .str_field("sender")
            .and_then(|id| UserId::parse(id.as_ref()).ok());
        let kind = parts.str_field("type");
        if let Some(event_id) = &event_id
            && let Some(bundle) = self.relations_bundle(
                event_id,
                sender.as_deref(),
                kind.as_deref(),
                room_id,
                viewer,
            )?
        {
            unsigned.insert("m.relations".to_owned(), bundle);
        }
        if let (Some(event_id), Some(sender)) = (&event_id, &sender)
            && let Some(txn_id) = transaction_id(event_id, sender)?
        {
            unsigned.insert("transaction_id".to_owned(), Value::String(txn_id));
        }
        parts.render(room_id, unsigned)
    }

    /// The `m.relations` bundle of an event (of type `kind`, sent by `sender`), if anything
    /// relates to it.
    fn relations_bundle(
        &self,
        event_id: &EventId,
        sender: Option<&UserId>,
        kind: Option<&str>,
        room_id: &RoomId,
        viewer: &UserId,
    ) -> Result<Option<Value>> {
        let relations = self.relations(event_id)?;
        if relations.is_empty() {
            return Ok(None);
        }
        let mut bundle = Map::new();
        let mut latest_edit: Option<Value> = None;
        let mut thread_count = 0u64;
        let mut thread_latest: Option<OwnedEventId> = None;
        let mut participated = sender == Some(viewer);
        let mut references = Vec::new();
        for relation in &relations {
            match relation.rel_type.as_str() {
                "m.replace" => {
                    if let Some(edit_json) = self.get_pdu_json(&relation.event_id)? {
                        let edit = PduEvent::from_json(&edit_json)?;
                        if Some(edit.sender.as_ref()) == sender
                            && Some(edit.kind.to_string().as_str()) == kind
                        {
                            latest_edit =
                                Some(super::pdu::client_event_value(&edit_json, room_id)?);
                        }
                    }
                }
                "m.thread" => {
                    thread_count += 1;
                    thread_latest = Some(relation.event_id.clone());
                    if !participated && let Some(reply) = self.get_pdu(&relation.event_id)? {
                        participated = reply.sender == viewer;
                    }
                }
                "m.reference" => references.push(json!({ "event_id": relation.event_id })),
                _ => {}
            }
        }
        if let Some(edit) = latest_edit {
            bundle.insert("m.replace".into(), edit);
        }
        if let Some(latest) = thread_latest
            && let Some(latest_json) = self.get_pdu_json(&latest)?
        {
            let latest = super::pdu::client_event_value(&latest_json, room_id)?;
            bundle.insert(
                "m.thread".into(),
                json!({ "latest_event": latest, "count": thread_count, "current_user_participated": participated }),
            );
        }
        if !references.is_empty() {
            bundle.insert("m.reference".into(), json!({ "chunk": references }));
        }
        Ok((!bundle.is_empty()).then_some(Value::Object(bundle)))
    }
}
