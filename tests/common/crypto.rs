//! Real ed25519 keys and signatures for the E2EE tests: what a client's crypto library would
//! upload, built with ruma's signing code.

use ruma::CanonicalJsonObject;
use ruma::serde::Base64;
use ruma::signatures::{Ed25519KeyPair, sign_json};
use serde_json::{Value, json};

/// An ed25519 signing key whose key ID is `ed25519:<name>`.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub public: String,
}

impl SigningKey {
    /// A key named after a device (`ed25519:DEVICEID`).
    pub fn for_device(device_id: &str) -> SigningKey {
        let der = Ed25519KeyPair::generate();
        let pair = Ed25519KeyPair::from_der(&der, device_id.to_owned()).expect("parse key");
        let public = Base64::<ruma::serde::base64::Standard, _>::new(pair.public_key()).encode();
        SigningKey { pair, public }
    }

    /// A cross-signing key, named after its own public key.
    pub fn cross_signing() -> SigningKey {
        let der = Ed25519KeyPair::generate();
        let probe = Ed25519KeyPair::from_der(&der, "probe".into()).expect("parse key");
        let public = Base64::<ruma::serde::base64::Standard, _>::new(probe.public_key()).encode();
        let pair = Ed25519KeyPair::from_der(&der, public.clone()).expect("parse key");
        SigningKey { pair, public }
    }

    /// `object` with this key's signature (as `user_id`) added.
    pub fn sign(&self, user_id: &str, object: &Value) -> Value {
        let mut canonical: CanonicalJsonObject =
            serde_json::from_value(object.clone()).expect("canonical JSON");
        sign_json(user_id, &self.pair, &mut canonical).expect("sign");
        serde_json::to_value(canonical).expect("JSON")
    }

    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair_version())
    }

    fn pair_version(&self) -> &str {
        self.pair.version()
    }
}

/// A device's identity keys, self-signed, as `/keys/upload` takes them.
pub fn device_keys(user_id: &str, device_id: &str, key: &SigningKey) -> Value {
    key.sign(
        user_id,
        &json!({
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                format!("curve25519:{device_id}"): format!("curve-{device_id}"),
                format!("ed25519:{device_id}"): key.public,
            },
        }),
    )
}

/// A cross-signing key object of `usage`, signed by `signer` (the master key) if given.
pub fn cross_signing_key(
    user_id: &str,
    usage: &str,
    key: &SigningKey,
    signer: Option<&SigningKey>,
) -> Value {
    let object = json!({
        "user_id": user_id,
        "usage": [usage],
        "keys": { format!("ed25519:{}", key.public): key.public },
    });
    match signer {
        Some(signer) => signer.sign(user_id, &object),
        None => object,
    }
}

/// `n` signed one-time keys of a device, IDs `signed_curve25519:<prefix><i>`.
pub fn one_time_keys(user_id: &str, key: &SigningKey, prefix: &str, n: usize) -> Value {
    let mut keys = serde_json::Map::new();
    for i in 0..n {
        keys.insert(
            format!("signed_curve25519:{prefix}{i}"),
            key.sign(user_id, &json!({ "key": format!("otk-{prefix}{i}") })),
        );
    }
    Value::Object(keys)
}
