//! Checking the ed25519 signatures clients put on their key objects.

use ruma::serde::{Base64, base64::Standard};
use ruma::signatures::{SigningKeyAlgorithm, verify_canonical_json_bytes};
use ruma::{CanonicalJsonObject, UserId};
use serde_json::{Map, Value};

/// Whether `object` carries a valid signature by `signer`'s key `key_id` (e.g.
/// `ed25519:DEVICEID`), whose public key is `public_key` (unpadded base64).
pub fn has_valid_signature(
    object: &Value,
    signer: &UserId,
    key_id: &str,
    public_key: &str,
) -> bool {
    let Some(signature) = object
        .get("signatures")
        .and_then(|s| s.get(signer.as_str()))
        .and_then(|s| s.get(key_id))
        .and_then(Value::as_str)
    else {
        return false;
    };
    verify(object, signature, public_key)
}

/// Whether `signature` (unpadded base64) signs `object` (minus `signatures` and `unsigned`)
/// with `public_key`.
pub fn verify(object: &Value, signature: &str, public_key: &str) -> bool {
    let (Ok(signature), Ok(public_key)) = (
        Base64::<Standard>::parse(signature),
        Base64::<Standard>::parse(public_key),
    ) else {
        return false;
    };
    let Ok(canonical) = serde_json::from_value::<CanonicalJsonObject>(object.clone()) else {
        return false;
    };
    let Ok(signed_bytes) = ruma::signatures::to_canonical_json_string_for_signing(&canonical)
    else {
        return false;
    };
    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        public_key.as_bytes(),
        signature.as_bytes(),
        signed_bytes.as_bytes(),
    )
    .is_ok()
}

/// The object without its `signatures` and `unsigned`: what signatures cover, for comparing
/// an upload with what is stored.
pub fn signed_part(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("signatures");
        map.remove("unsigned");
    }
    object
}

/// Adds `signer`'s signatures from `from` to `into`'s `signatures`.
pub fn merge_signatures(into: &mut Value, signer: &UserId, signatures: &Map<String, Value>) {
    let Some(object) = into.as_object_mut() else {
        return;
    };
    let all = object
        .entry("signatures")
        .or_insert_with(|| Value::Object(Map::new()));
    if !all.is_object() {
        *all = Value::Object(Map::new());
    }
    let mine = all
        .as_object_mut()
        .expect("made an object above")
        .entry(signer.as_str())
        .or_insert_with(|| Value::Object(Map::new()));
    if !mine.is_object() {
        *mine = Value::Object(Map::new());
    }
    let mine = mine.as_object_mut().expect("made an object above");
    for (key_id, signature) in signatures {
        mine.insert(key_id.clone(), signature.clone());
    }
}
