//! End-to-end encryption keys: device identity keys, one-time and fallback keys, cross-signing
//! keys and their signatures, and the per-user log of whose keys changed (`device_lists`).
//!
//! The server never sees plaintext. It stores what devices publish, checks that every key is
//! signed by the key that vouches for it, and hands each one-time key out exactly once.

pub mod across_servers;
mod cross_signing;
mod device_lists;
pub mod remote_devices;
pub mod signed;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ruma::{DeviceId, OwnedDeviceId, UserId};
use serde_json::{Map, Value, json};

pub use self::cross_signing::{KeyKind, SignatureFailure, public_key_of};
pub use self::device_lists::{
    Changed, DeviceListChanges, announce_change, announce_to_own_devices, on_membership_change,
};
use crate::error::{Error, Result};
use crate::storage::{Batch, Engine, Key, Tree};

/// Most one-time keys one upload may carry, and one device may hold.
pub const MAX_ONE_TIME_KEYS_PER_UPLOAD: usize = 1000;
pub const MAX_ONE_TIME_KEYS_PER_DEVICE: usize = 10_000;

pub struct Service {
    engine: Arc<Engine>,
    userdeviceid_devicekeys: Tree,
    userdevicekeyid_onetimekey: Tree,
    userdevicealgorithm_fallbackkey: Tree,
    useridkind_crosssigningkey: Tree,
    targetsigner_signatures: Tree,
    useridcount_devicelistchange: Tree,
    userid_remotedevicelist: Tree,
    userserver_devicestreamid: Tree,
    /// Remote users whose device list is being fetched.
    remote_fetches: remote_devices::Fetches,
    /// Serialises announcing our users' device changes, so each server gets them in the
    /// order of their stream IDs, each naming the one before.
    announce_lock: Mutex<()>,
    /// Serialises one-time key uploads and claims, so a key is handed out once, ever.
    one_time_key_lock: Mutex<()>,
}

/// A fallback key as stored: the key and whether it was ever handed out.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredFallbackKey {
    key_id: String,
    key: Value,
    used: bool,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            userdeviceid_devicekeys: engine.tree("userdeviceid_devicekeys"),
            userdevicekeyid_onetimekey: engine.tree("userdevicekeyid_onetimekey"),
            userdevicealgorithm_fallbackkey: engine.tree("userdevicealgorithm_fallbackkey"),
            useridkind_crosssigningkey: engine.tree("useridkind_crosssigningkey"),
            targetsigner_signatures: engine.tree("targetsigner_signatures"),
            useridcount_devicelistchange: engine.tree("useridcount_devicelistchange"),
            userid_remotedevicelist: engine.tree("userid_remotedevicelist"),
            userserver_devicestreamid: engine.tree("userserver_devicestreamid"),
            remote_fetches: remote_devices::Fetches::default(),
            announce_lock: Mutex::new(()),
            one_time_key_lock: Mutex::new(()),
        }
    }

    /// Checks and stores a device's identity keys. Returns whether they changed (so the
    /// device list of the user must be announced).
    pub fn upload_device_keys(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        keys: &Value,
    ) -> Result<bool> {
        check_device_keys(user_id, device_id, keys)?;
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let mut stored = keys.clone();
        if let Some(map) = stored.as_object_mut() {
            map.remove("unsigned");
        }
        if let Some(existing) = self.userdeviceid_devicekeys.get_json::<Value>(&key)? {
            if signed::signed_part(&existing) == signed::signed_part(&stored) {
                // A re-upload of the same keys: keep signatures others added (cross-signing).
                let mut merged = existing.clone();
                if let Some(all) = stored.get("signatures").and_then(Value::as_object) {
                    for (signer, signatures) in all {
                        if let (Ok(signer), Some(signatures)) =
                            (UserId::parse(signer.as_str()), signatures.as_object())
                        {
                            signed::merge_signatures(&mut merged, &signer, signatures);
                        }
                    }
                }
                if merged == existing {
                    return Ok(false);
                }
                self.userdeviceid_devicekeys
                    .insert(&key, &serde_json::to_vec(&merged)?)?;
                return Ok(true);
            }
            tracing::warn!(%user_id, %device_id, "device replaced its identity keys");
        }
        self.userdeviceid_devicekeys
            .insert(&key, &serde_json::to_vec(&stored)?)?;
        Ok(true)
    }

    /// The stored identity keys of a device.
    pub fn device_keys(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<Value>> {
        self.userdeviceid_devicekeys
            .get_json(&(user_id.as_str(), device_id.as_str()).encode())
    }

    /// The identity keys of all the user's devices that published some.
    pub fn all_device_keys(&self, user_id: &UserId) -> Result<Vec<(OwnedDeviceId, Value)>> {
        let mut out = Vec::new();
        for entry in self
            .userdeviceid_devicekeys
            .scan_prefix((user_id.as_str(),).prefix())
        {
            let (key, value) = entry?;
            let (_, device): (&str, &str) = Key::decode(&key)?;
            out.push((device.into(), serde_json::from_slice(&value)?));
        }
        Ok(out)
    }

    /// Stores one-time keys. A key ID already used with other key material is refused (the
    /// client must never reuse one); the same key again is accepted.
    pub fn upload_one_time_keys(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        keys: &BTreeMap<String, Value>,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        if keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
            return Err(Error::invalid_param(format!(
                "Too many one-time keys in one upload (at most {MAX_ONE_TIME_KEYS_PER_UPLOAD})"
            )));
        }
        let _guard = self
            .one_time_key_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let held: usize = self.one_time_key_counts(user_id, device_id)?.values().sum();
        let mut batch = Batch::default();
        let mut added = 0;
        for (key_id, key) in keys {
            check_key_id(key_id)?;
            if !(key.is_string() || key.is_object()) {
                return Err(Error::bad_json(format!(
                    "One-time key {key_id} must be a string or a signed key object"
                )));
            }
            let slot = (user_id.as_str(), device_id.as_str(), key_id.as_str()).encode();
            match self.userdevicekeyid_onetimekey.get_json::<Value>(&slot)? {
                Some(existing) if existing == *key => continue,
                Some(_) => {
                    return Err(Error::invalid_param(format!(
                        "One-time key {key_id} already exists with different key material"
                    )));
                }
                None => {}
            }
            batch.put(
                &self.userdevicekeyid_onetimekey,
                &slot,
                &serde_json::to_vec(key)?,
            )?;
            added += 1;
        }
        if held + added > MAX_ONE_TIME_KEYS_PER_DEVICE {
            return Err(Error::invalid_param(format!(
                "A device may hold at most {MAX_ONE_TIME_KEYS_PER_DEVICE} one-time keys"
            )));
        }
        self.engine.write(batch)
    }

    /// Replaces the device's fallback key of each algorithm uploaded.
    pub fn upload_fallback_keys(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        keys: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let mut batch = Batch::default();
        for (key_id, key) in keys {
            let algorithm = check_key_id(key_id)?;
            if !(key.is_string() || key.is_object()) {
                return Err(Error::bad_json(format!(
                    "Fallback key {key_id} must be a string or a signed key object"
                )));
            }
            let slot = (user_id.as_str(), device_id.as_str(), algorithm).encode();
            if let Some(existing) = self
                .userdevicealgorithm_fallbackkey
                .get_json::<StoredFallbackKey>(&slot)?
                && existing.key_id == *key_id
                && existing.key == *key
            {
                continue;
            }
            let stored = StoredFallbackKey {
                key_id: key_id.clone(),
                key: key.clone(),
                used: false,
            };
            batch.put(
                &self.userdevicealgorithm_fallbackkey,
                &slot,
                &serde_json::to_vec(&stored)?,
            )?;
        }
        self.engine.write(batch)
    }

    /// How many unclaimed one-time keys of each algorithm the device holds.
    pub fn one_time_key_counts(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for entry in self
            .userdevicekeyid_onetimekey
            .scan_prefix((user_id.as_str(), device_id.as_str()).prefix())
        {
            let (key, _) = entry?;
            let (_, _, key_id): (&str, &str, &str) = Key::decode(&key)?;
            let algorithm = key_id.split_once(':').map_or(key_id, |(a, _)| a);
            *counts.entry(algorithm.to_owned()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The counts as clients receive them (`/keys/upload`, `/sync`, sliding sync):
    /// `signed_curve25519` always present, since clients top their keys up from 0.
    pub fn one_time_key_counts_json(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Value> {
        let mut counts: Map<String, Value> = self
            .one_time_key_counts(user_id, device_id)?
            .into_iter()
            .map(|(algorithm, n)| (algorithm, json!(n)))
            .collect();
        counts
            .entry("signed_curve25519")
            .or_insert_with(|| json!(0));
        Ok(Value::Object(counts))
    }

    /// Algorithms for which the device has a fallback key no one has claimed yet.
    pub fn unused_fallback_key_types(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in self
            .userdevicealgorithm_fallbackkey
            .scan_prefix((user_id.as_str(), device_id.as_str()).prefix())
        {
            let (key, value) = entry?;
            let stored: StoredFallbackKey = serde_json::from_slice(&value)?;
            if !stored.used {
                let (_, _, algorithm): (&str, &str, &str) = Key::decode(&key)?;
                out.push(algorithm.to_owned());
            }
        }
        Ok(out)
    }

    /// Hands out one one-time key of `algorithm` of the device, removing it; when none is
    /// left, the device's fallback key (which stays, marked used). `None` when it has neither.
    pub fn claim(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        algorithm: &str,
    ) -> Result<Option<(String, Value)>> {
        let _guard = self
            .one_time_key_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut prefix = (user_id.as_str(), device_id.as_str()).prefix();
        prefix.extend_from_slice(algorithm.as_bytes());
        prefix.push(b':');
        if let Some(entry) = self.userdevicekeyid_onetimekey.scan_prefix(prefix).next() {
            let (key, value) = entry?;
            let (_, _, key_id): (&str, &str, &str) = Key::decode(&key)?;
            let key_id = key_id.to_owned();
            // Removed before it is returned: a crash in between loses a key, never reuses one.
            self.userdevicekeyid_onetimekey.remove(&key)?;
            return Ok(Some((key_id, serde_json::from_slice(&value)?)));
        }
        let slot = (user_id.as_str(), device_id.as_str(), algorithm).encode();
        let Some(mut fallback) = self
            .userdevicealgorithm_fallbackkey
            .get_json::<StoredFallbackKey>(&slot)?
        else {
            return Ok(None);
        };
        if !fallback.used {
            fallback.used = true;
            self.userdevicealgorithm_fallbackkey
                .insert(&slot, &serde_json::to_vec(&fallback)?)?;
        }
        Ok(Some((fallback.key_id, fallback.key)))
    }

    /// Removes every key a deleted device published.
    pub fn remove_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        let _guard = self
            .one_time_key_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let prefix = (user_id.as_str(), device_id.as_str()).prefix();
        let mut batch = Batch::default();
        for tree in [
            &self.userdevicekeyid_onetimekey,
            &self.userdevicealgorithm_fallbackkey,
        ] {
            for entry in tree.scan_prefix(prefix.clone()) {
                let (key, _) = entry?;
                batch.delete(tree, &key)?;
            }
        }
        batch.delete(
            &self.userdeviceid_devicekeys,
            &(user_id.as_str(), device_id.as_str()).encode(),
        )?;
        self.engine.write(batch)
    }
}

/// A device's keys as `/keys/query` shows them: with its display name in `unsigned`.
pub fn with_display_name(mut keys: Value, display_name: Option<&str>) -> Value {
    if let Some(name) = display_name
        && let Some(map) = keys.as_object_mut()
    {
        map.insert("unsigned".into(), json!({ "device_display_name": name }));
    }
    keys
}

/// Checks an upload's shape before anything of it is stored, so a bad upload changes nothing.
pub fn check_upload(
    user_id: &UserId,
    device_id: &DeviceId,
    device_keys: Option<&Value>,
    one_time_keys: &BTreeMap<String, Value>,
    fallback_keys: &BTreeMap<String, Value>,
) -> Result<()> {
    if let Some(keys) = device_keys {
        check_device_keys(user_id, device_id, keys)?;
    }
    if one_time_keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
        return Err(Error::invalid_param(format!(
            "Too many one-time keys in one upload (at most {MAX_ONE_TIME_KEYS_PER_UPLOAD})"
        )));
    }
    for (key_id, key) in one_time_keys.iter().chain(fallback_keys) {
        check_key_id(key_id)?;
        if !(key.is_string() || key.is_object()) {
            return Err(Error::bad_json(format!(
                "Key {key_id} must be a string or a signed key object"
            )));
        }
    }
    Ok(())
}

/// A key ID is `algorithm:id`; returns the algorithm.
fn check_key_id(key_id: &str) -> Result<&str> {
    match key_id.split_once(':') {
        Some((algorithm, id)) if !algorithm.is_empty() && !id.is_empty() => Ok(algorithm),
        _ => Err(Error::bad_json(format!(
            "Key ID {key_id:?} is not of the form algorithm:id"
        ))),
    }
}

/// Device keys must name the uploading user and device, list their algorithms, and be signed
/// by the device's own ed25519 key.
fn check_device_keys(user_id: &UserId, device_id: &DeviceId, keys: &Value) -> Result<()> {
    let object = keys
        .as_object()
        .ok_or_else(|| Error::bad_json("device_keys must be an object"))?;
    if object.get("user_id").and_then(Value::as_str) != Some(user_id.as_str()) {
        return Err(Error::invalid_param(
            "device_keys.user_id must be the uploading user",
        ));
    }
    if object.get("device_id").and_then(Value::as_str) != Some(device_id.as_str()) {
        return Err(Error::invalid_param(
            "device_keys.device_id must be the uploading device",
        ));
    }
    if !object.get("algorithms").is_some_and(Value::is_array) {
        return Err(Error::bad_json("device_keys.algorithms must be a list"));
    }
    let key_map: &Map<String, Value> = object
        .get("keys")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::bad_json("device_keys.keys must be an object"))?;
    for (key_id, key) in key_map {
        check_key_id(key_id)?;
        if !key.is_string() {
            return Err(Error::bad_json(format!("Key {key_id} must be a string")));
        }
    }
    let signing_key_id = format!("ed25519:{device_id}");
    let ed25519 = key_map
        .get(&signing_key_id)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_json(format!("device_keys.keys has no {signing_key_id}")))?;
    if !signed::has_valid_signature(keys, user_id, &signing_key_id, ed25519) {
        return Err(Error::invalid_param(
            "device_keys must be signed by the device's own ed25519 key",
        ));
    }
    Ok(())
}
