//! A JSON answer assembled from parts, some of them already serialised: events are rendered
//! straight from their stored form into text, and a sync answer is not first built as a
//! `serde_json::Value` tree (one allocation per string, number and object) to be serialised
//! afterwards. With `json!`, every `Value` handed in would also be copied once more.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON document under construction.
pub enum Json {
    Value(Value),
    /// Already-serialised JSON, copied into the output as it is.
    Raw(Box<RawValue>),
    /// Members in the order given (the caller keeps keys unique).
    Object(Vec<(Cow<'static, str>, Json)>),
    Array(Vec<Json>),
}

impl Json {
    /// `{}`.
    pub fn empty_object() -> Self {
        Json::Object(Vec::new())
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Self {
        Json::Value(value)
    }
}

impl From<Box<RawValue>> for Json {
    fn from(raw: Box<RawValue>) -> Self {
        Json::Raw(raw)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Value(value) => value.serialize(serializer),
            Json::Raw(raw) => raw.serialize(serializer),
            Json::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key.as_ref(), value)?;
                }
                map.end()
            }
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// An object of fixed member names.
pub fn object<const N: usize>(members: [(&'static str, Json); N]) -> Json {
    Json::Object(
        members
            .into_iter()
            .map(|(key, value)| (Cow::Borrowed(key), value))
            .collect(),
    )
}

/// `{"events": [...]}` of events built as values.
pub fn events(events: Vec<Value>) -> Json {
    object([("events", Json::Value(Value::Array(events)))])
}

/// An array of rendered events.
pub fn raw_array(events: Vec<Box<RawValue>>) -> Json {
    Json::Array(events.into_iter().map(Json::Raw).collect())
}

/// `{"events": [...]}` of rendered events.
pub fn raw_events(events: Vec<Box<RawValue>>) -> Json {
    object([("events", raw_array(events))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values_raw_parts_objects_and_arrays() {
        let raw = RawValue::from_string(r#"{"b":[1,2],"a":"x"}"#.to_owned()).unwrap();
        let doc = object([
            ("raw", Json::Raw(raw)),
            ("value", Json::Value(serde_json::json!({"k": null}))),
            (
                "list",
                Json::Array(vec![Json::empty_object(), Json::Value(Value::Bool(true))]),
            ),
        ]);
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"raw":{"b":[1,2],"a":"x"},"value":{"k":null},"list":[{},true]}"#
        );
    }
}
