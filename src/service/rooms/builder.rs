//! Building events: every event this server creates is a full PDU of its room version —
//! `prev_events` from the room's forward extremities, `auth_events` chosen by the version's
//! rules, content hash, signature, reference-hash event ID — and must pass the version's
//! authorization rules against the current state before it is stored.

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::events::TimelineEventType;
use ruma::room_version_rules::{
    EventIdFormatVersion, EventsReferenceFormatVersion, RoomIdFormatVersion, RoomVersionRules,
};
use ruma::signatures::{JsonError, hash_and_sign_event, reference_hash};
use ruma::state_res::{auth_types_for_event, check_pdu_format};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, DeviceId, EventId, OwnedDeviceId, OwnedEventId,
    OwnedRoomId, RoomId, RoomVersionId, UserId,
};
use serde_json::{Value, json};

use super::authorise::AuthOutcome;
use super::fanout::Appended;
use super::pdu::PduEvent;
use super::state::StateMap;
use super::{RoomGuard, Service, rules_of};
use crate::error::{Error, ErrorCode, Result};
use crate::service::now_millis;
use crate::storage::{Batch, Key, OwnedWriteGuard};

/// Largest PDU the spec allows, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;
/// Most `prev_events` referenced by one event.
const MAX_PREV_EVENTS: usize = 20;

/// What a caller wants to send; the builder supplies everything else.
#[derive(Debug, Clone)]
pub struct PduBuilder {
    pub event_type: TimelineEventType,
    pub content: Value,
    pub state_key: Option<String>,
    pub redacts: Option<OwnedEventId>,
    /// `origin_server_ts` to use instead of the current time.
    pub timestamp: Option<u64>,
    /// The sending device and its transaction ID, recorded in the event's own batch: a retry
    /// after a crash then finds the event rather than sending it twice.
    pub transaction: Option<(OwnedDeviceId, String)>,
}

impl PduBuilder {
    pub fn state(
        event_type: impl Into<TimelineEventType>,
        state_key: impl Into<String>,
        content: Value,
    ) -> Self {
        Self {
            event_type: event_type.into(),
            content,
            state_key: Some(state_key.into()),
            redacts: None,
            timestamp: None,
            transaction: None,
        }
    }

    /// Records the event as `device`'s transaction `txn_id` (see [`Service::txn_event`]).
    pub fn in_transaction(mut self, device: &DeviceId, txn_id: &str) -> Self {
        self.transaction = Some((device.to_owned(), txn_id.to_owned()));
        self
    }

    pub fn timeline(event_type: impl Into<TimelineEventType>, content: Value) -> Self {
        Self {
            event_type: event_type.into(),
            content,
            state_key: None,
            redacts: None,
            timestamp: None,
            transaction: None,
        }
    }
}

fn json_error(error: JsonError) -> Error {
    match error {
        JsonError::PduTooLarge => too_large(),
        other => Error::bad_json(format!("Event cannot be signed: {other}")),
    }
}

fn too_large() -> Error {
    Error::new(ErrorCode::TooLarge, "Event is larger than 65536 bytes")
}

impl Service {
    /// Creates a room with its create event and returns the room locked for the remaining
    /// initial events. `create_content` must hold the create event's content.
    pub async fn create_room(
        &self,
        sender: &UserId,
        version: &RoomVersionId,
        create_content: Value,
    ) -> Result<(OwnedRoomId, RoomGuard)> {
        self.check_not_suspended(
            &PduBuilder::state(TimelineEventType::RoomCreate, "", Value::Null),
            sender,
        )?;
        let writing = self.engine.begin_write_owned();
        let rules = rules_of(version)?;
        let mut builder = PduBuilder::state(TimelineEventType::RoomCreate, "", create_content);
        let empty = StateMap::new();
        let mut attempts = 0;
        let (room_id, object, pdu, guard) = loop {
            // Room IDs derived from the create event's hash: two identical create events (same
            // creator and content within one millisecond) would be one room. Every create event
            // of this server gets its own timestamp.
            builder.timestamp = Some(self.unique_create_timestamp());
            let (room_id, object, pdu) = match rules.room_id_format {
                RoomIdFormatVersion::V1 => {
                    let room_id = RoomId::new_v1(&self.server_name);
                    let (object, pdu) = self.build_pdu(
                        &builder,
                        sender,
                        Some(&room_id),
                        &rules,
                        &empty,
                        Vec::new(),
                        1,
                    )?;
                    (room_id, object, pdu)
                }
                _ => {
                    // The room ID is the create event's reference hash.
                    let (object, pdu) =
                        self.build_pdu(&builder, sender, None, &rules, &empty, Vec::new(), 1)?;
                    let hash = pdu.event_id.as_str().trim_start_matches('$');
                    let room_id = RoomId::new_v2(hash).map_err(Error::internal)?;
                    (room_id, object, pdu)
                }
            };
            let guard = self.lock_room(&room_id).await;
            if !self.exists(&room_id)? {
                break (room_id, object, pdu, guard);
            }
            // Only after a clock step backwards: try again with the next timestamp.
            attempts += 1;
            if attempts >= 5 {
                return Err(Error::internal("room ID collision"));
            }
            drop(guard);
        };
        if let AuthOutcome::Reject(reason) | AuthOutcome::SoftFail(reason) =
            self.authorise(&rules, &pdu, &empty, None)?
        {
            return Err(Error::forbidden(format!(
                "The create event is not allowed: {reason}"
            )));
        }

        let mut batch = Batch::default();
        batch.put(
            &self.roomid_roomversion,
            room_id.as_bytes(),
            version.as_str().as_bytes(),
        )?;
        let shortroomid = self.get_or_create_shortroomid(&room_id, &mut batch)?;
        let (_, _, appended) = self.append_pdu(
            &room_id,
            shortroomid,
            &pdu,
            object,
            &empty,
            None,
            &mut batch,
        )?;
        self.engine.write(batch)?;
        self.after_write(&room_id, &pdu, appended, writing, &guard);
        Ok((room_id, guard))
    }

    /// A suspended user may still leave rooms and redact their own events; nothing else they
    /// send is accepted (MSC3823). Checked here, where every event a user sends passes.
    fn check_not_suspended(&self, builder: &PduBuilder, sender: &UserId) -> Result<()> {
        let services = self.services()?;
        if !services.users.is_suspended(sender) {
            return Ok(());
        }
        let leaving = builder.event_type == TimelineEventType::RoomMember
            && builder.state_key.as_deref() == Some(sender.as_str())
            && builder.content["membership"] == "leave";
        let redacts = builder.redacts.clone().or_else(|| {
            builder.content["redacts"]
                .as_str()
                .and_then(|id| id.try_into().ok())
        });
        let target = match redacts {
            Some(target) if builder.event_type == TimelineEventType::RoomRedaction => {
                self.get_pdu(&target)?
            }
            _ => None,
        };
        let own_redaction = target.is_some_and(|target| target.sender == sender);
        if leaving || own_redaction {
            return Ok(());
        }
        services.users.ensure_not_suspended(sender)
    }

    /// The current time in milliseconds, or one more than the last one handed out.
    fn unique_create_timestamp(&self) -> u64 {
        let now = now_millis();
        let previous = self
            .last_create_timestamp
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |last| Some(now.max(last + 1)),
            )
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Builds, authorises and stores one event in an existing room. The caller holds the
    /// room's lock, so the room cannot change between reading its state and appending.
    pub fn build_and_append(
        &self,
        builder: PduBuilder,
        sender: &UserId,
        room_id: &RoomId,
        guard: &RoomGuard,
    ) -> Result<OwnedEventId> {
        let mut prev_events = self.forward_extremities(room_id)?;
        prev_events.truncate(MAX_PREV_EVENTS);
        self.build_and_append_after(builder, sender, room_id, guard, prev_events)
    }

    /// Like [`Self::build_and_append`] with explicit `prev_events`. When they carry different
    /// states, the state before the event is their resolution.
    pub fn build_and_append_after(
        &self,
        builder: PduBuilder,
        sender: &UserId,
        room_id: &RoomId,
        guard: &RoomGuard,
        prev_events: Vec<OwnedEventId>,
    ) -> Result<OwnedEventId> {
        self.check_not_suspended(&builder, sender)?;
        // Stream positions taken below are not reported by /sync until the batch and the
        // members' indexes land.
        let writing = self.engine.begin_write_owned();
        let version = self.room_version(room_id)?;
        let rules = rules_of(&version)?;
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let (statehash_before, state) = self.state_before_events(room_id, &rules, &prev_events)?;
        let mut depth = 0u64;
        for prev in &prev_events {
            if let Some(json) = self.get_pdu_json(prev)? {
                depth = depth.max(super::pdu::depth_of(&json)?);
            }
        }
        let (object, pdu) = self.build_pdu(
            &builder,
            sender,
            Some(room_id),
            &rules,
            &state,
            prev_events,
            depth + 1,
        )?;

        // Built on every extremity, so the state before it is the current state.
        match self.authorise(&rules, &pdu, &state, None)? {
            AuthOutcome::Accept => {}
            AuthOutcome::SoftFail(reason) | AuthOutcome::Reject(reason) => {
                return Err(Error::forbidden(format!("Event not allowed: {reason}")));
            }
        }

        // The state event this one replaces: clients show changes (a new display name rather
        // than another join) from `unsigned.prev_content`. `unsigned` is outside the hashes and
        // signatures, and is not sent over federation.
        let previous = match &pdu.state_key {
            Some(state_key) => self.state_event_in(&state, &pdu.kind.to_string(), state_key)?,
            None => None,
        };
        let was_joined = pdu.kind == TimelineEventType::RoomMember
            && previous
                .as_ref()
                .is_some_and(|previous| previous.content_value()["membership"] == "join");
        let mut object = object;
        if let Some(previous) = &previous {
            let unsigned = json!({
                "replaces_state": previous.event_id,
                "prev_content": previous.content_value(),
                "prev_sender": previous.sender,
            });
            object.insert(
                "unsigned".to_owned(),
                serde_json::from_value(unsigned).map_err(Error::internal)?,
            );
        }
        let mut batch = Batch::default();
        let event_id = pdu.event_id.clone();
        let (count, json, appended) = self.append_pdu(
            room_id,
            shortroomid,
            &pdu,
            object,
            &state,
            statehash_before,
            &mut batch,
        )?;
        if let Some((device, txn_id)) = &builder.transaction {
            self.put_txn_event(
                sender,
                device.as_str(),
                txn_id,
                txn_id,
                &event_id,
                &mut batch,
            )?;
        }
        self.engine.write(batch)?;
        self.after_write(room_id, &pdu, appended, writing, guard);
        // Stored: what follows may only be skipped while the server stops, and says so.
        match self.services.upgrade() {
            Some(services) => {
                let room_id = room_id.to_owned();
                let pdu = pdu.clone();
                guard.defer(move || {
                    after_append(&services, &room_id, &pdu, count, &json, was_joined);
                });
            }
            None => {
                tracing::warn!(event_id = %pdu.event_id, "stopping: no push or device-list work for this event")
            }
        }
        Ok(event_id)
    }

    /// What follows an event's batch under the room's lock: its members' indexes are queued
    /// and written once the room is unlocked (see [`super::fanout`]), after the cached members
    /// are dropped if it changed them.
    fn after_write(
        &self,
        room_id: &RoomId,
        pdu: &PduEvent,
        mut appended: Appended,
        floor: OwnedWriteGuard,
        guard: &RoomGuard,
    ) {
        if pdu.kind == TimelineEventType::RoomMember {
            self.forget_members(room_id);
        }
        appended.floor = Some(floor);
        self.queue_fanout(room_id, appended);
        match self.services.upgrade() {
            Some(services) => {
                services.admin.observe(room_id, pdu);
                let room_id = room_id.to_owned();
                guard.defer(move || services.rooms.flush_fanout(&room_id));
            }
            None => self.flush_fanout(room_id),
        }
    }

    /// Assembles, hashes and signs the PDU, and derives its event ID.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build_pdu(
        &self,
        builder: &PduBuilder,
        sender: &UserId,
        room_id: Option<&RoomId>,
        rules: &RoomVersionRules,
        state: &StateMap,
        prev_events: Vec<OwnedEventId>,
        depth: u64,
    ) -> Result<(CanonicalJsonObject, PduEvent)> {
        if !builder.content.is_object() {
            return Err(Error::bad_json("Event content must be a JSON object"));
        }
        if builder.event_type == TimelineEventType::RoomMember
            && builder
                .state_key
                .as_deref()
                .is_none_or(|key| UserId::parse(key).is_err())
        {
            return Err(Error::invalid_param(
                "The state key of a member event must be a user ID",
            ));
        }
        let content_raw =
            serde_json::value::to_raw_value(&builder.content).map_err(Error::internal)?;
        let auth_types = auth_types_for_event(
            &builder.event_type,
            sender,
            builder.state_key.as_deref(),
            &content_raw,
            &rules.authorization,
        )
        .map_err(|reason| Error::bad_json(format!("Event content is invalid: {reason}")))?;
        let mut auth_events = Vec::new();
        for (kind, state_key) in auth_types {
            if let Some(pdu) = self.state_event_in(state, &kind.to_string(), &state_key)? {
                auth_events.push(pdu.event_id.clone());
            }
        }

        let mut event = json!({
            "type": builder.event_type.to_string(),
            "content": builder.content,
            "sender": sender,
            "origin_server_ts": builder.timestamp.unwrap_or_else(now_millis),
            "depth": depth,
            "prev_events": self.event_references(&prev_events, rules)?,
            "auth_events": self.event_references(&auth_events, rules)?,
        });
        // Room versions 1 and 2: the event ID is chosen by its server and part of the event.
        let legacy_event_id = (rules.event_id_format == EventIdFormatVersion::V1).then(|| {
            let opaque: String = rand::rng()
                .sample_iter(Alphanumeric)
                .take(18)
                .map(char::from)
                .collect();
            format!("${opaque}:{}", self.server_name)
        });
        if let Some(event_id) = &legacy_event_id {
            event["event_id"] = json!(event_id);
        }
        if let Some(room_id) = room_id {
            event["room_id"] = json!(room_id);
        }
        if let Some(state_key) = &builder.state_key {
            event["state_key"] = json!(state_key);
        }
        if let Some(redacts) = &builder.redacts {
            event["redacts"] = json!(redacts);
        }
        let mut object = match CanonicalJsonValue::try_from(event) {
            Ok(CanonicalJsonValue::Object(object)) => object,
            Ok(_) => return Err(Error::internal("event is not an object")),
            Err(e) => return Err(Error::bad_json(format!("Event is not canonical JSON: {e}"))),
        };

        hash_and_sign_event(
            self.server_name.as_str(),
            self.keys.key_pair(),
            &mut object,
            &rules.redaction,
        )
        .map_err(json_error)?;
        let event_id = match legacy_event_id {
            Some(event_id) => EventId::parse(event_id).map_err(Error::internal)?,
            None => {
                let hash = reference_hash(&object, rules).map_err(json_error)?;
                EventId::parse(format!("${hash}")).map_err(Error::internal)?
            }
        };
        check_pdu_format(&object, &rules.event_format).map_err(|reason| {
            if reason.contains("larger than") {
                too_large()
            } else {
                Error::bad_json(reason)
            }
        })?;

        let mut with_id = object.clone();
        with_id.insert(
            "event_id".to_owned(),
            CanonicalJsonValue::String(event_id.to_string()),
        );
        let json = serde_json::to_vec(&with_id).map_err(Error::internal)?;
        if json.len() > MAX_PDU_BYTES {
            return Err(too_large());
        }
        let pdu = PduEvent::from_json(&json)?;
        Ok((with_id, pdu))
    }

    /// Stores an authorised PDU with all its indexes in `batch`: timeline entry, event ID
    /// lookups, the state after it, forward extremities and membership.
    #[allow(clippy::too_many_arguments)]
    fn append_pdu(
        &self,
        room_id: &RoomId,
        shortroomid: u64,
        pdu: &PduEvent,
        object: CanonicalJsonObject,
        state_before: &StateMap,
        statehash_before: Option<u64>,
        batch: &mut Batch,
    ) -> Result<(u64, Vec<u8>, Appended)> {
        let json = serde_json::to_vec(&object).map_err(Error::internal)?;
        let shorteventid = self.create_shorteventid(&pdu.event_id, batch)?;
        let count = self.engine.next_count()?;
        let pduid = (shortroomid, count).encode();
        batch.put(&self.pduid_pdu, &pduid, &json)?;
        batch.put(&self.eventid_pduid, pdu.event_id.as_bytes(), &pduid)?;
        batch.put(
            &self.senderpduid_empty,
            &(pdu.sender.as_str(), shortroomid, count).encode(),
            &[],
        )?;

        let statehash_after = match &pdu.state_key {
            Some(state_key) => {
                let shortstatekey =
                    self.get_or_create_shortstatekey(&pdu.kind.to_string(), state_key)?;
                let mut state = state_before.clone();
                state.insert(shortstatekey, shorteventid);
                self.save_state(statehash_before, state, batch)?
            }
            None => statehash_before
                .ok_or_else(|| Error::internal("timeline event in a room without state"))?,
        };
        // The room's current state is the state after its newest event (which differs from the
        // state before it for a timeline event too, when the event merged forks).
        batch.put(
            &self.roomid_shortstatehash,
            room_id.as_bytes(),
            &statehash_after.to_be_bytes(),
        )?;
        batch.put(
            &self.shorteventid_shortstatehash,
            &shorteventid.to_be_bytes(),
            &statehash_after.to_be_bytes(),
        )?;

        // Appends to a room are serialised by its lock, so reading the leaves here is safe.
        let mut leaves = self.forward_extremities(room_id)?;
        leaves.retain(|leaf| !pdu.prev_events.contains(leaf));
        leaves.push(pdu.event_id.clone());
        let mut value = Vec::new();
        for (i, leaf) in leaves.iter().enumerate() {
            if i > 0 {
                value.push(crate::storage::codec::SEP);
            }
            value.extend_from_slice(leaf.as_bytes());
        }
        batch.put(&self.roomid_pduleaves, room_id.as_bytes(), &value)?;

        self.index_relation(room_id, pdu, count, batch)?;
        self.index_words(shortroomid, count, pdu, batch)?;
        let bump = is_bump(&pdu.kind);
        if bump {
            batch.put(
                &self.roomid_bumpcount,
                room_id.as_bytes(),
                &count.to_be_bytes(),
            )?;
        }
        let membership = match (&pdu.kind, pdu.state_key.as_deref()) {
            (TimelineEventType::RoomMember, Some(target)) => {
                self.index_membership(room_id, target, &pdu.content_value(), batch)?
            }
            _ => None,
        };
        let appended = Appended {
            count,
            bump,
            membership,
            floor: None,
        };
        Ok((count, json, appended))
    }

    /// How an event names other events: plain IDs, or in room versions 1 and 2 pairs of ID
    /// and the referenced event's reference hash.
    fn event_references(&self, events: &[OwnedEventId], rules: &RoomVersionRules) -> Result<Value> {
        if rules.events_reference_format != EventsReferenceFormatVersion::V1 {
            return Ok(json!(events));
        }
        let mut references = Vec::with_capacity(events.len());
        for event_id in events {
            let json = self
                .get_pdu_json(event_id)?
                .ok_or_else(|| Error::internal(format!("unknown event {event_id}")))?;
            let object: CanonicalJsonObject =
                serde_json::from_slice(&json).map_err(Error::internal)?;
            let hash = reference_hash(&object, rules).map_err(json_error)?;
            references.push(json!([event_id, { "sha256": hash }]));
        }
        Ok(Value::Array(references))
    }

    /// The room's forward extremities.
    pub fn forward_extremities(&self, room_id: &RoomId) -> Result<Vec<OwnedEventId>> {
        let Some(value) = self.roomid_pduleaves.get(room_id.as_bytes())? else {
            return Ok(Vec::new());
        };
        value
            .split(|&b| b == crate::storage::codec::SEP)
            .map(crate::storage::decode_id)
            .collect()
    }
}

/// Work that follows a stored event but must not undo it: push-rule evaluation, and
/// device-list tracking when someone joins or leaves. Runs once the room is unlocked.
fn after_append(
    services: &crate::service::Services,
    room_id: &RoomId,
    pdu: &PduEvent,
    count: u64,
    json: &[u8],
    was_joined: bool,
) {
    if pdu.kind == TimelineEventType::RoomMember
        && let Some(member) = pdu.state_key.as_deref().and_then(|m| UserId::parse(m).ok())
    {
        let is_joined = pdu.content_value()["membership"] == "join";
        if let Err(error) = crate::service::keys::on_membership_change(
            services, room_id, &member, was_joined, is_joined,
        ) {
            tracing::error!(%error, event_id = %pdu.event_id, "device-list tracking failed");
        }
    }
    if !crate::service::push::may_notify(&pdu.kind) {
        return;
    }
    if let Err(error) = services.push.on_event(services, room_id, pdu, count, json) {
        tracing::error!(%error, event_id = %pdu.event_id, "push-rule evaluation failed");
    }
}

/// Event kinds that move a room to the top of a room list (the set Synapse uses for
/// sliding sync's `bump_stamp`): messages and their kin, not reactions, edits of state or
/// receipts.
fn is_bump(kind: &TimelineEventType) -> bool {
    matches!(
        kind.to_string().as_str(),
        "m.room.create"
            | "m.room.message"
            | "m.room.encrypted"
            | "m.sticker"
            | "m.call.invite"
            | "m.poll.start"
            | "m.beacon_info"
    )
}
