//! What a request body must be before an endpoint's parser sees it: the one rule every
//! endpoint shares, as Synapse applies it (`parse_json_object_from_request`).
//!
//! - An endpoint that takes a body needs a JSON object. No body at all is `M_NOT_JSON`, except
//!   on the endpoints where Synapse reads it as `{}` (membership changes, as matrix-nio sends
//!   them, and device deletion); text that is not JSON is `M_NOT_JSON`; JSON that is not an object is `M_BAD_JSON`.
//! - An endpoint that takes no body ignores whatever is sent.
//!
//! The check is strict where ruma's parser is lenient: ruma skips the fields it does not know
//! without decoding them, so a lone UTF-16 surrogate, invalid UTF-8 or nesting thousands of
//! levels deep inside an unknown field would otherwise be accepted and, in a stored event,
//! served back to other clients.

use std::any::TypeId;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// What an endpoint adds to the rule, fixed when it is registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rule {
    /// No body reads as `{}`.
    pub empty_is_object: bool,
    /// Fields that must be present as strings, checked before ruma's parser, which panics
    /// without them (`LoginInfo` indexes `type`).
    pub string_fields: &'static [&'static str],
}

impl Rule {
    pub fn of<Req: 'static>() -> Rule {
        use ruma::api::client::device::{delete_device, delete_devices};
        use ruma::api::client::membership::{
            ban_user, invite_user, join_room_by_id, join_room_by_id_or_alias, kick_user,
            leave_room, unban_user,
        };
        use ruma::api::client::session::login;
        let id = TypeId::of::<Req>();
        // Synapse's `allow_empty_body` (membership, the admin API's log in as a user), and its
        // fallback for older clients that delete devices without a body: matrix-nio joins and
        // leaves rooms without one.
        let empty_is_object = [
            TypeId::of::<join_room_by_id::v3::Request>(),
            TypeId::of::<join_room_by_id_or_alias::v3::Request>(),
            TypeId::of::<leave_room::v3::Request>(),
            TypeId::of::<invite_user::v3::Request>(),
            TypeId::of::<kick_user::v3::Request>(),
            TypeId::of::<ban_user::v3::Request>(),
            TypeId::of::<unban_user::v3::Request>(),
            TypeId::of::<delete_device::v3::Request>(),
            TypeId::of::<delete_devices::v3::Request>(),
            TypeId::of::<crate::api::synapse_admin::endpoints::login_as::Request>(),
        ]
        .contains(&id);
        let string_fields: &[&str] = if id == TypeId::of::<login::v3::Request>() {
            &["type"]
        } else {
            &[]
        };
        Rule {
            empty_is_object,
            string_fields,
        }
    }

    /// The first of [`Rule::string_fields`] that `body` (a JSON object) lacks as a string.
    pub fn missing_string_field(&self, body: &[u8]) -> Option<&'static str> {
        if self.string_fields.is_empty() {
            return None;
        }
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).unwrap_or_default();
        self.string_fields
            .iter()
            .find(|field| {
                !object
                    .get(**field)
                    .is_some_and(serde_json::Value::is_string)
            })
            .copied()
    }
}

/// What a request body is, by the rule above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A well-formed JSON object.
    Object,
    /// Nothing at all (whitespace included).
    Empty,
    /// Not well-formed JSON (or nested deeper than serde_json's limit of 128).
    NotJson,
    /// Well-formed JSON, but an array, string, number, `true`, `false` or `null`.
    NotObject,
}

/// Classifies `body`, decoding every string and number in it.
pub fn shape(body: &[u8]) -> Shape {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Shape::Empty;
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    if Strict.deserialize(&mut deserializer).is_err() || deserializer.end().is_err() {
        return Shape::NotJson;
    }
    if *first == b'{' {
        Shape::Object
    } else {
        Shape::NotObject
    }
}

/// Walks a JSON value, making serde_json decode (and so validate) everything in it.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are strings in JSON; deserialising them as `Strict` decodes them too.
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Where in `body` (a well-formed JSON object) serde_json stopped with an error at
/// `line`/`column`: the path of the value it was reading, as `auth.identifier.type` or
/// `devices[2]`. `None` at the top level. Ruma's errors name the field only when it is missing;
/// this names the one of the wrong type.
pub fn path_at(body: &[u8], line: usize, column: usize) -> Option<String> {
    let line_start = if line <= 1 {
        0
    } else {
        body.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    let offset = (line_start + column.saturating_sub(1)).min(body.len());

    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut expecting_key = false;
    let mut i = 0;
    while i < offset {
        match body[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                expecting_key = true;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                expecting_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expecting_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(key)) => {
                    *key = None;
                    expecting_key = true;
                }
                None => {}
            },
            b'"' => {
                let end = string_end(body, i)?;
                if expecting_key && let Some(Frame::Object(key)) = stack.last_mut() {
                    *key = serde_json::from_slice::<String>(&body[i..=end]).ok();
                    expecting_key = false;
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object(None) => break,
            Frame::Array(index) => path.push_str(&format!("[{index}]")),
        }
    }
    (!path.is_empty()).then_some(path)
}

/// The index of the quote closing the JSON string that opens at `start`.
fn string_end(body: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Shape, path_at, shape};

    /// The path serde_json's error for `body` parsed as `T` points at.
    fn error_path<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> Option<String> {
        let error = serde_json::from_str::<T>(body).unwrap_err();
        path_at(body.as_bytes(), error.line(), error.column())
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        kind: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: Option<String>,
        auth: Option<Inner>,
        list: Option<Vec<Inner>>,
    }

    #[test]
    fn paths_of_errors() {
        assert_eq!(
            error_path::<Outer>(r#"{"name": 42}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            error_path::<Outer>(r#"{"x": "a,\"b", "auth": {"kind": []}}"#).as_deref(),
            Some("auth.kind")
        );
        assert_eq!(
            error_path::<Outer>("{\n \"list\": [{\"kind\": \"a\"},\n {\"kind\": 1}]}").as_deref(),
            Some("list[1].kind")
        );
        // A missing field: the message names it; the path is the object that lacks it.
        assert_eq!(
            error_path::<Outer>(r#"{"auth": {}}"#).as_deref(),
            Some("auth")
        );
        assert_eq!(error_path::<Inner>(r#"{}"#), None);
    }

    #[test]
    fn shapes() {
        assert_eq!(shape(b""), Shape::Empty);
        assert_eq!(shape(b" \n"), Shape::Empty);
        assert_eq!(shape(b"{}"), Shape::Object);
        assert_eq!(shape(br#" {"a": [1, "b", null]} "#), Shape::Object);
        assert_eq!(shape(b"[]"), Shape::NotObject);
        assert_eq!(shape(b"null"), Shape::NotObject);
        assert_eq!(shape(b"\"str\""), Shape::NotObject);
        assert_eq!(shape(b"12"), Shape::NotObject);
        assert_eq!(shape(b"{"), Shape::NotJson);
        assert_eq!(shape(b"{} {}"), Shape::NotJson);
        assert_eq!(shape(b"{\"a\": \xff}"), Shape::NotJson);
        assert_eq!(shape(b"{\"a\": \"\xff\"}"), Shape::NotJson);
        // A lone surrogate, in a value and in a key.
        assert_eq!(shape(br#"{"\u0000": "\ud800"}"#), Shape::NotJson);
        assert_eq!(shape(br#"{"\udc00": 1}"#), Shape::NotJson);
        // A NUL in a key is legal JSON.
        assert_eq!(shape(br#"{"\u0000": "x"}"#), Shape::Object);
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(shape(deep.as_bytes()), Shape::NotJson);
        let fine = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(shape(fine.as_bytes()), Shape::Object);
    }
}
