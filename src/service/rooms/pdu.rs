//! A stored event (PDU) as the server works with it, and its client-facing form.

use ruma::events::TimelineEventType;
use ruma::serde::Raw;
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
};
use std::borrow::Cow;

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

    /// An event received from another server: like [`Self::from_json`], but a failure is
    /// the sender's, described as such.
    pub fn from_incoming(json: &[u8]) -> std::result::Result<Self, String> {
        Self::from_json(json).map_err(|error| match error {
            Error::Database(message) => message.replace("stored PDU unreadable", "unreadable"),
            other => other.to_string(),
        })
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
    Ok(Raw::from_json(client_event_text(json, room_id)?))
}

/// [`client_event`] as rendered JSON text, for answers assembled from rendered parts.
pub fn client_event_text(json: &[u8], room_id: &RoomId) -> Result<Box<RawJsonValue>> {
    ClientParts::parse(json)?.render(room_id, Map::new())
}

/// [`client_event`] as a JSON value, for answers assembled as values.
pub fn client_event_value(json: &[u8], room_id: &RoomId) -> Result<Value> {
    serde_json::from_str(client_event_text(json, room_id)?.get()).map_err(Error::internal)
}

/// A stored PDU's top-level fields in stored order, the federation-only ones skipped and the
/// values left as unparsed text: an event is rendered for clients by copying its values, not
/// by building a tree of them and serialising it again.
pub struct ClientParts<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawJsonValue)>,
}

impl<'a> ClientParts<'a> {
    pub fn parse(json: &'a [u8]) -> Result<Self> {
        serde_json::from_slice(json)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))
    }

    /// A top-level string field (`event_id`, `sender`, `type`).
    pub fn str_field(&self, key: &str) -> Option<Cow<'a, str>> {
        let (_, value) = self.fields.iter().find(|(k, _)| k == key)?;
        serde_json::from_str(value.get()).ok()
    }

    /// The client event: the fields as stored, `room_id` added if absent (room version 12's
    /// create event has none), and `unsigned` with the stored entries, `age`, and `extra`.
    pub fn render(
        &self,
        room_id: &RoomId,
        mut extra: Map<String, Value>,
    ) -> Result<Box<RawJsonValue>> {
        let size = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>();
        let mut out = String::with_capacity(size + room_id.as_str().len() + 64);
        out.push('{');
        let mut has_room_id = false;
        let mut stored_unsigned = None;
        for (key, value) in &self.fields {
            match key.as_ref() {
                "unsigned" => {
                    stored_unsigned = Some(*value);
                    continue;
                }
                "room_id" => has_room_id = true,
                "origin_server_ts" => {
                    if let Ok(ts) = value.get().parse::<u64>() {
                        let age = crate::service::now_millis().saturating_sub(ts);
                        extra.entry("age").or_insert_with(|| age.into());
                    }
                }
                _ => {}
            }
            push_member(&mut out, key, value.get())?;
        }
        if !has_room_id {
            push_member(
                &mut out,
                "room_id",
                &serde_json::to_string(room_id.as_str())?,
            )?;
        }
        let unsigned = match stored_unsigned {
            // Anything but an object (which no server should send) is dropped.
            Some(stored) => match serde_json::from_str(stored.get()) {
                Ok(Value::Object(mut unsigned)) => {
                    unsigned.append(&mut extra);
                    unsigned
                }
                _ => extra,
            },
            None => extra,
        };
        if !unsigned.is_empty() {
            push_member(&mut out, "unsigned", &serde_json::to_string(&unsigned)?)?;
        }
        if out.ends_with(',') {
            out.pop();
        }
        out.push('}');
        RawJsonValue::from_string(out).map_err(Error::internal)
    }
}

/// Appends `"key":value,` to an object being written.
fn push_member(out: &mut String, key: &str, value: &str) -> Result<()> {
    out.push_str(&serde_json::to_string(key)?);
    out.push(':');
    out.push_str(value);
    out.push(',');
    Ok(())
}

impl<'de> Deserialize<'de> for ClientParts<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ClientParts<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a PDU object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ClientParts<'de>, A::Error> {
                let mut fields = Vec::with_capacity(12);
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    if FEDERATION_ONLY.contains(&key.as_ref()) {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        fields.push((key, map.next_value::<&'de RawJsonValue>()?));
                    }
                }
                Ok(ClientParts { fields })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// What a timeline window filters a stored event on, read without the rest of it.
#[derive(Deserialize)]
pub struct EventHead<'a> {
    #[serde(borrow)]
    pub event_id: Cow<'a, str>,
    #[serde(borrow)]
    pub sender: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// Present on state events only.
    #[serde(default, borrow)]
    pub state_key: Option<Cow<'a, str>>,
}

impl<'a> EventHead<'a> {
    pub fn parse(json: &'a [u8]) -> Result<Self> {
        serde_json::from_slice(json)
            .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))
    }

    pub fn event_id(&self) -> Result<OwnedEventId> {
        ruma::EventId::parse(self.event_id.as_ref())
            .map_err(|e| Error::Database(format!("stored PDU has a bad event ID: {e}")))
    }
}

/// The depth of a stored PDU, read without building the rest (a new event's depth follows
/// its parents').
pub fn depth_of(json: &[u8]) -> Result<u64> {
    #[derive(Deserialize)]
    struct Depth {
        depth: UInt,
    }
    serde_json::from_slice::<Depth>(json)
        .map(|pdu| u64::from(pdu.depth))
        .map_err(|e| Error::Database(format!("stored PDU unreadable: {e}")))
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(stored: &Value, extra: Map<String, Value>) -> Value {
        let bytes = serde_json::to_vec(stored).unwrap();
        let room_id = <&RoomId>::try_from("!room:example.org").unwrap();
        let rendered = ClientParts::parse(&bytes)
            .unwrap()
            .render(room_id, extra)
            .unwrap();
        serde_json::from_str(rendered.get()).unwrap()
    }

    #[test]
    fn client_form_drops_federation_fields_and_merges_unsigned() {
        let stored = json!({
            "auth_events": ["$a"], "prev_events": ["$p"], "depth": 3,
            "hashes": {"sha256": "x"}, "signatures": {"example.org": {}},
            "origin": "example.org",
            "content": {"body": "hi \"there\"", "nested": {"k": [1, 2]}},
            "event_id": "$e", "origin_server_ts": 1, "sender": "@a:example.org",
            "type": "m.room.message",
            "unsigned": {"prev_content": {"x": 1}},
        });
        let mut extra = Map::new();
        extra.insert("transaction_id".into(), json!("t1"));
        let event = render(&stored, extra);
        for gone in [
            "auth_events",
            "prev_events",
            "depth",
            "hashes",
            "signatures",
            "origin",
        ] {
            assert!(event.get(gone).is_none(), "{gone} is still there: {event}");
        }
        assert_eq!(event["content"], stored["content"]);
        assert_eq!(event["room_id"], "!room:example.org");
        assert_eq!(event["unsigned"]["prev_content"], json!({"x": 1}));
        assert_eq!(event["unsigned"]["transaction_id"], "t1");
        assert!(event["unsigned"]["age"].as_u64().unwrap() > 0);
    }

    #[test]
    fn client_form_keeps_its_room_id_escaped_keys_and_odd_unsigned() {
        let stored = json!({
            "event_id": "$e", "room_id": "!other:example.org", "sender": "@a:example.org",
            "type": "m.room.message", "content": {},
            "we\"ird\\key": true, "unsigned": null,
        });
        let event = render(&stored, Map::new());
        assert_eq!(event["room_id"], "!other:example.org");
        assert_eq!(event["we\"ird\\key"], true);
        // No timestamp, nothing to add: no `unsigned` at all rather than a null one.
        assert!(event.get("unsigned").is_none(), "{event}");
    }
}
