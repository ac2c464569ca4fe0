//! Cross-signing: each user's master, self-signing and user-signing keys, and the signatures
//! that tie devices and other users' master keys to them.

use ruma::UserId;
use serde_json::{Map, Value, json};

use super::Service;
use super::signed::{self, has_valid_signature, merge_signatures, signed_part};
use crate::error::{Error, Result};
use crate::storage::Key;

/// The three cross-signing keys a user may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Master,
    SelfSigning,
    UserSigning,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::SelfSigning => "self_signing",
            Self::UserSigning => "user_signing",
        }
    }
}

/// Why one signature of a `/keys/signatures/upload` was not stored: reported per key in
/// `failures`, the rest of the upload still applies.
#[derive(Debug)]
pub struct SignatureFailure {
    pub status: u16,
    pub errcode: &'static str,
    pub message: String,
}

impl SignatureFailure {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            errcode: "M_INVALID_SIGNATURE",
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: 404,
            errcode: "M_NOT_FOUND",
            message: message.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "status": self.status, "errcode": self.errcode, "error": self.message })
    }
}

impl Service {
    /// A stored cross-signing key of the user, with the owner's signatures on it.
    pub fn cross_signing_key(&self, user_id: &UserId, kind: KeyKind) -> Result<Option<Value>> {
        self.useridkind_crosssigningkey
            .get_json(&(user_id.as_str(), kind.as_str()).encode())
    }

    /// The user's master key as `viewer` sees it: with the signature the viewer's own
    /// user-signing key made on it, which nobody else is shown.
    pub fn master_key_for(&self, user_id: &UserId, viewer: &UserId) -> Result<Option<Value>> {
        let Some(mut key) = self.cross_signing_key(user_id, KeyKind::Master)? else {
            return Ok(None);
        };
        self.add_viewer_signatures(&mut key, user_id, viewer)?;
        Ok(Some(key))
    }

    /// Adds to `user_id`'s master key the signatures `viewer` made on it (which only the
    /// viewer is shown).
    pub fn add_viewer_signatures(
        &self,
        master_key: &mut Value,
        user_id: &UserId,
        viewer: &UserId,
    ) -> Result<()> {
        if viewer != user_id
            && let Some(signatures) = self
                .targetsigner_signatures
                .get_json::<Map<String, Value>>(&(user_id.as_str(), viewer.as_str()).encode())?
        {
            merge_signatures(master_key, viewer, &signatures);
        }
        Ok(())
    }

    /// Whether storing these keys replaces keys the user already has: only then must the
    /// upload be authorised interactively (first-time setup needs no password).
    pub fn cross_signing_upload_replaces(
        &self,
        user_id: &UserId,
        uploads: &[(KeyKind, &Value)],
    ) -> Result<bool> {
        if self.cross_signing_key(user_id, KeyKind::Master)?.is_none() {
            return Ok(false);
        }
        for (kind, key) in uploads {
            let same = self
                .cross_signing_key(user_id, *kind)?
                .is_some_and(|stored| signed_part(&stored) == signed_part(key));
            if !same {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Checks and stores cross-signing keys. The self-signing and user-signing keys must be
    /// signed by the master key (the new one if uploaded with them). Returns whether anything
    /// changed.
    pub fn upload_cross_signing_keys(
        &self,
        user_id: &UserId,
        master: Option<&Value>,
        self_signing: Option<&Value>,
        user_signing: Option<&Value>,
    ) -> Result<bool> {
        let master_public = match master {
            Some(key) => Some(check_key(user_id, KeyKind::Master, key)?),
            None => self
                .cross_signing_key(user_id, KeyKind::Master)?
                .and_then(|key| public_key_of(&key)),
        };
        let mut checked = Vec::new();
        if let Some(key) = master {
            checked.push((KeyKind::Master, key));
        }
        for (kind, key) in [
            (KeyKind::SelfSigning, self_signing),
            (KeyKind::UserSigning, user_signing),
        ] {
            let Some(key) = key else { continue };
            check_key(user_id, kind, key)?;
            let Some(master_public) = &master_public else {
                return Err(Error::invalid_param(format!(
                    "A {} key needs a master key to sign it",
                    kind.as_str()
                )));
            };
            if !has_valid_signature(
                key,
                user_id,
                &format!("ed25519:{master_public}"),
                master_public,
            ) {
                return Err(Error::invalid_param(format!(
                    "The {} key is not signed by the master key",
                    kind.as_str()
                )));
            }
            checked.push((kind, key));
        }
        let mut batch = crate::storage::Batch::default();
        let mut changed = false;
        for (kind, key) in checked {
            let slot = (user_id.as_str(), kind.as_str()).encode();
            let stored: Option<Value> = self.useridkind_crosssigningkey.get_json(&slot)?;
            if stored.as_ref() == Some(key) {
                continue;
            }
            if kind == KeyKind::Master
                && stored.is_some_and(|stored| signed_part(&stored) != signed_part(key))
            {
                // Signatures others made on the old master key vouch for a key now gone.
                for entry in self
                    .targetsigner_signatures
                    .scan_prefix((user_id.as_str(),).prefix())
                {
                    let (entry_key, _) = entry?;
                    batch.delete(&self.targetsigner_signatures, &entry_key)?;
                }
            }
            let mut key = key.clone();
            if let Some(map) = key.as_object_mut() {
                map.remove("unsigned");
            }
            batch.put(
                &self.useridkind_crosssigningkey,
                &slot,
                &serde_json::to_vec(&key)?,
            )?;
            changed = true;
        }
        self.engine.write(batch)?;
        Ok(changed)
    }

    /// Applies one signed object of a `/keys/signatures/upload`: `signer` adds signatures to
    /// the key `key_id` (a device ID or a master key's public key) of `target`. Only valid
    /// signatures made by a key that may vouch for the target are stored.
    pub fn add_signatures(
        &self,
        signer: &UserId,
        target: &UserId,
        key_id: &str,
        object: &Value,
    ) -> Result<std::result::Result<(), SignatureFailure>> {
        let new_signatures = object
            .get("signatures")
            .and_then(|s| s.get(signer.as_str()))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if new_signatures.is_empty() {
            return Ok(Err(SignatureFailure::invalid(
                "The object carries no signature by the uploader",
            )));
        }
        if signer == target {
            if let Some(device_keys) = self.device_keys(target, key_id.into())? {
                return self.sign_own_device(signer, key_id, device_keys, object, &new_signatures);
            }
            if let Some(master) = self.cross_signing_key(target, KeyKind::Master)?
                && public_key_of(&master).as_deref() == Some(key_id)
            {
                return self.sign_own_master(signer, master, object, &new_signatures);
            }
            return Ok(Err(SignatureFailure::not_found(format!(
                "No device or master key {key_id} of {target}"
            ))));
        }
        // Another server's user: their master key as their server told us.
        let master = match self.cross_signing_key(target, KeyKind::Master)? {
            Some(master) => Some(master),
            None => self
                .remote_device_list(target)?
                .and_then(|list| list.master_key),
        };
        let Some(master) = master else {
            return Ok(Err(SignatureFailure::not_found(format!(
                "{target} has no master key"
            ))));
        };
        if public_key_of(&master).as_deref() != Some(key_id) || !same_key(&master, object) {
            return Ok(Err(SignatureFailure::invalid(
                "Only another user's current master key can be signed",
            )));
        }
        let Some(user_signing) = self.cross_signing_key(signer, KeyKind::UserSigning)? else {
            return Ok(Err(SignatureFailure::invalid(
                "A user-signing key is needed to sign other users' keys",
            )));
        };
        let valid = valid_signatures_by(object, signer, &new_signatures, &[user_signing]);
        let valid = match valid {
            Ok(valid) => valid,
            Err(failure) => return Ok(Err(failure)),
        };
        let slot = (target.as_str(), signer.as_str()).encode();
        let mut stored: Map<String, Value> = self
            .targetsigner_signatures
            .get_json(&slot)?
            .unwrap_or_default();
        stored.extend(valid);
        self.targetsigner_signatures
            .insert(&slot, &serde_json::to_vec(&stored)?)?;
        Ok(Ok(()))
    }

    /// The user's self-signing key vouches for one of their devices.
    fn sign_own_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        mut device_keys: Value,
        object: &Value,
        new_signatures: &Map<String, Value>,
    ) -> Result<std::result::Result<(), SignatureFailure>> {
        if !same_key(&device_keys, object) {
            return Ok(Err(SignatureFailure::invalid(
                "The signed device keys differ from the device's current keys",
            )));
        }
        let Some(self_signing) = self.cross_signing_key(user_id, KeyKind::SelfSigning)? else {
            return Ok(Err(SignatureFailure::invalid(
                "A self-signing key is needed to sign devices",
            )));
        };
        let already = existing_signatures(&device_keys, user_id);
        let fresh: Map<String, Value> = new_signatures
            .iter()
            .filter(|(id, sig)| already.get(*id) != Some(sig))
            .map(|(id, sig)| (id.clone(), sig.clone()))
            .collect();
        let valid = match valid_signatures_by(object, user_id, &fresh, &[self_signing]) {
            Ok(valid) => valid,
            Err(failure) => return Ok(Err(failure)),
        };
        merge_signatures(&mut device_keys, user_id, &valid);
        self.userdeviceid_devicekeys.insert(
            &(user_id.as_str(), device_id).encode(),
            &serde_json::to_vec(&device_keys)?,
        )?;
        Ok(Ok(()))
    }

    /// One of the user's devices vouches for their master key.
    fn sign_own_master(
        &self,
        user_id: &UserId,
        mut master: Value,
        object: &Value,
        new_signatures: &Map<String, Value>,
    ) -> Result<std::result::Result<(), SignatureFailure>> {
        if !same_key(&master, object) {
            return Ok(Err(SignatureFailure::invalid(
                "The signed master key differs from the stored one",
            )));
        }
        let already = existing_signatures(&master, user_id);
        let mut valid = Map::new();
        for (key_id, signature) in new_signatures {
            if already.get(key_id) == Some(signature) {
                continue;
            }
            let Some(device_id) = key_id.strip_prefix("ed25519:") else {
                return Ok(Err(SignatureFailure::invalid(format!(
                    "Unknown signing key {key_id}"
                ))));
            };
            let device_public = self
                .device_keys(user_id, device_id.into())?
                .and_then(|keys| keys.get("keys")?.get(key_id)?.as_str().map(str::to_owned));
            let (Some(device_public), Some(signature_str)) = (device_public, signature.as_str())
            else {
                return Ok(Err(SignatureFailure::invalid(format!(
                    "Unknown signing key {key_id}"
                ))));
            };
            if !signed::verify(object, signature_str, &device_public) {
                return Ok(Err(SignatureFailure::invalid(format!(
                    "Invalid signature by {key_id}"
                ))));
            }
            valid.insert(key_id.clone(), signature.clone());
        }
        merge_signatures(&mut master, user_id, &valid);
        self.useridkind_crosssigningkey.insert(
            &(user_id.as_str(), KeyKind::Master.as_str()).encode(),
            &serde_json::to_vec(&master)?,
        )?;
        Ok(Ok(()))
    }
}

/// Each signature in `signatures` must be a valid one by one of `keys` (cross-signing keys of
/// `signer`); returns them all, or the first failure.
fn valid_signatures_by(
    object: &Value,
    signer: &UserId,
    signatures: &Map<String, Value>,
    keys: &[Value],
) -> std::result::Result<Map<String, Value>, SignatureFailure> {
    let mut valid = Map::new();
    for (key_id, signature) in signatures {
        let public = keys
            .iter()
            .filter_map(public_key_of)
            .find(|public| *key_id == format!("ed25519:{public}"));
        let (Some(public), Some(signature_str)) = (public, signature.as_str()) else {
            return Err(SignatureFailure::invalid(format!(
                "{key_id} is not a key of {signer} that may sign this"
            )));
        };
        if !signed::verify(object, signature_str, &public) {
            return Err(SignatureFailure::invalid(format!(
                "Invalid signature by {key_id}"
            )));
        }
        valid.insert(key_id.clone(), signature.clone());
    }
    Ok(valid)
}

fn existing_signatures(object: &Value, signer: &UserId) -> Map<String, Value> {
    object
        .get("signatures")
        .and_then(|s| s.get(signer.as_str()))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether two key objects hold the same signed content.
fn same_key(stored: &Value, uploaded: &Value) -> bool {
    signed_part(stored) == signed_part(uploaded)
}

/// The public key (unpadded base64) of a cross-signing key: its one `ed25519:` key.
pub fn public_key_of(key: &Value) -> Option<String> {
    let keys = key.get("keys")?.as_object()?;
    let (_, public) = keys.iter().find(|(id, _)| id.starts_with("ed25519:"))?;
    public.as_str().map(str::to_owned)
}

/// A cross-signing key must belong to the uploader, say what it is for, and hold exactly one
/// ed25519 key whose ID is its public key. Returns the public key.
fn check_key(user_id: &UserId, kind: KeyKind, key: &Value) -> Result<String> {
    let name = kind.as_str();
    let object = key
        .as_object()
        .ok_or_else(|| Error::bad_json(format!("The {name} key must be an object")))?;
    if object.get("user_id").and_then(Value::as_str) != Some(user_id.as_str()) {
        return Err(Error::invalid_param(format!(
            "The {name} key must belong to the uploading user"
        )));
    }
    let has_usage = object
        .get("usage")
        .and_then(Value::as_array)
        .is_some_and(|usage| usage.iter().any(|u| u.as_str() == Some(name)));
    if !has_usage {
        return Err(Error::invalid_param(format!(
            "The {name} key's usage must include {name:?}"
        )));
    }
    let keys = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_json(format!("The {name} key has no keys")))?;
    if keys.len() != 1 {
        return Err(Error::invalid_param(format!(
            "The {name} key must hold exactly one key"
        )));
    }
    let (key_id, public) = keys.iter().next().expect("one entry");
    let public = public
        .as_str()
        .ok_or_else(|| Error::bad_json(format!("The {name} key must be a string")))?;
    if key_id != &format!("ed25519:{public}") {
        return Err(Error::invalid_param(format!(
            "The {name} key's ID must be ed25519:<its public key>"
        )));
    }
    Ok(public.to_owned())
}
