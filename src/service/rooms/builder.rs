//! Building events: every event this server creates is a full PDU of its room version —
//! `prev_events` from the room's forward extremities, `auth_events` chosen by the version's
//! rules, content hash, signature, reference-hash event ID — and must pass the version's
//! authorization rules against the current state before it is stored.

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::events::TimelineEventType;
use ruma::room_version_rules::{
    EventIdFormatVersion, EventsReferenceFormatVersion, RoomVersionRules,
};
use ruma::signatures::{JsonError, hash_and_sign_event, reference_hash};
use ruma::state_res::{auth_types_for_event, check_pdu_format};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, DeviceId, EventId, OwnedDeviceId, OwnedEventId,
    RoomId, UserId,
};
use serde_json::{Value, json};

use super::Service;
use super::pdu::PduEvent;
use super::state::StateMap;
use crate::error::{Error, ErrorCode, Result};
use crate::service::now_millis;

/// Largest PDU the spec allows, in bytes of canonical JSON.
pub const MAX_PDU_BYTES: usize = 65_536;

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
        let mut event =
            self.event_template(builder, sender, room_id, rules, state, prev_events, depth)?;
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
        let object = match CanonicalJsonValue::try_from(event) {
            Ok(CanonicalJsonValue::Object(object)) => object,
            Ok(_) => return Err(Error::internal("event is not an object")),
            Err(e) => return Err(Error::bad_json(format!("Event is not canonical JSON: {e}"))),
        };
        self.sign_pdu(object, rules)
    }

    /// The event before its hashes, signatures and (room versions 1 and 2) ID: what the
    /// resident server of a room answers to `make_join`, for the joining server to sign.
    #[allow(clippy::too_many_arguments)]
    pub fn event_template(
        &self,
        builder: &PduBuilder,
        sender: &UserId,
        room_id: Option<&RoomId>,
        rules: &RoomVersionRules,
        state: &StateMap,
        prev_events: Vec<OwnedEventId>,
        depth: u64,
    ) -> Result<Value> {
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
        if let Some(room_id) = room_id {
            event["room_id"] = json!(room_id);
        }
        if let Some(state_key) = &builder.state_key {
            event["state_key"] = json!(state_key);
        }
        if let Some(redacts) = &builder.redacts {
            event["redacts"] = json!(redacts);
        }
        Ok(event)
    }

    /// Hashes and signs an event of ours (a template filled in, with its `event_id` in room
    /// versions 1 and 2), and derives its event ID: the stored object and its parsed form.
    pub fn sign_pdu(
        &self,
        mut object: CanonicalJsonObject,
        rules: &RoomVersionRules,
    ) -> Result<(CanonicalJsonObject, PduEvent)> {
        let legacy_event_id = match object.get("event_id") {
            Some(CanonicalJsonValue::String(id))
                if rules.event_id_format == EventIdFormatVersion::V1 =>
            {
                Some(id.clone())
            }
            _ => None,
        };
        hash_and_sign_event(
            self.server_name.as_str(),
            &*self.keys.key_pair(),
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
}
