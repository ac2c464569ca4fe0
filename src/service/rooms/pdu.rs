//! A stored event (PDU) as the server works with it, and its client-facing form.

use ruma::events::TimelineEventType;
use ruma::serde::Raw;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
};
use serde::Deserialize;
use serde_json::value::RawValue as RawJsonValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The fields of a PDU the server reads. The full signed JSON is kept alongside for
/// federation and for clients.
#[derive(Debug, Clone, Deserialize)]
pub struct PduEvent {
    pub event_id: OwnedEventId,
    /// Absent only on the create event of room version 12, whose ID is the room's.
    #[serde(default)]
    pub room_id: Option<OwnedRoomId>,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    pub kind: TimelineEventType,
    pub content: Box<RawJsonValue>,
    #[serde(default)]
    pub state_key: Option<String>,
    #[serde(default, deserialize_with = "event_references")]
    pub prev_events: Vec<OwnedEventId>,
    pub depth: UInt,
    #[serde(default, deserialize_with = "event_references")]
    pub auth_events: Vec<OwnedEventId>,
    #[serde(default)]
    pub redacts: Option<OwnedEventId>,
    #[serde(skip)]
    pub rejected: bool,
}

impl PduEvent {
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let mut pdu: Self = serde_json::from_slice(json)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
        // Room version 11 moved `redacts` into the content.
        if pdu.redacts.is_none() && pdu.kind == TimelineEventType::RoomRedaction {
            pdu.redacts = pdu
                .content_value()
                .get("redacts")
                .and_then(Value::as_str)
                .and_then(|id| ruma::EventId::parse(id).ok());
        }
        Ok(pdu)
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }
}

/// Reads `prev_events`/`auth_events` in either format: event IDs, or (room versions 1 and 2)
/// `[event ID, hashes]` pairs.
fn event_references<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<OwnedEventId>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reference {
        Id(OwnedEventId),
        WithHash(OwnedEventId, serde::de::IgnoredAny),
    }
    let references = Vec::<Reference>::deserialize(deserializer)?;
    Ok(references
        .into_iter()
        .map(|reference| match reference {
            Reference::Id(id) | Reference::WithHash(id, _) => id,
        })
        .collect())
}

/// Fields of a PDU that clients never see.
const FEDERATION_ONLY: &[&str] = &[
    "auth_events",
    "prev_events",
    "depth",
    "hashes",
    "signatures",
    "origin",
    "prev_state",
];

/// Turns stored PDU JSON into the client-server event format: federation fields dropped,
/// `room_id` present, `unsigned.age` computed.
pub fn client_event(json: &[u8], room_id: &RoomId) -> Result<Raw<ruma::events::AnyTimelineEvent>> {
    let raw = serde_json::value::to_raw_value(&client_event_value(json, room_id)?)
        .map_err(Error::internal)?;
    Ok(Raw::from_json(raw))
}

/// [`client_event`] as a JSON value, for answers assembled as values (no second parse).
pub fn client_event_value(json: &[u8], room_id: &RoomId) -> Result<Value> {
    let ClientFields(mut object) = serde_json::from_slice(json)
        .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))?;
    object
        .entry("room_id")
        .or_insert_with(|| Value::String(room_id.to_string()));
    if let Some(ts) = object.get("origin_server_ts").and_then(Value::as_u64) {
        let age = crate::service::now_millis().saturating_sub(ts);
        let unsigned = object
            .entry("unsigned")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(unsigned) = unsigned.as_object_mut() {
            unsigned.insert("age".to_owned(), age.into());
        }
    }
    Ok(Value::Object(object))
}

/// The sender of a stored PDU, read without building the rest.
pub fn sender_of(json: &[u8]) -> Result<OwnedUserId> {
    #[derive(Deserialize)]
    struct Sender {
        sender: OwnedUserId,
    }
    serde_json::from_slice::<Sender>(json)
        .map(|pdu| pdu.sender)
        .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))
}

/// A stored PDU's fields without the federation-only ones, which are skipped while parsing
/// rather than built and dropped (signatures and hashes are much of a PDU).
struct ClientFields(Map<String, Value>);

impl<'de> Deserialize<'de> for ClientFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ClientFields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a PDU object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ClientFields, A::Error> {
                let mut object = Map::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if FEDERATION_ONLY.contains(&key.as_ref()) {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        object.insert(key.into_owned(), map.next_value()?);
                    }
                }
                Ok(ClientFields(object))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

impl ruma::state_res::Event for PduEvent {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawJsonValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        self.rejected
    }
}
