//! Devices and their access and refresh tokens.
//!
//! Tokens are 256+ bits of randomness shown to the client once; the database keeps only their
//! SHA-256, and lookups go by that hash, so neither a database copy nor response timing reveals
//! a usable token.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Service;
use crate::error::{Error, Result};
use crate::service::now_millis;
use crate::storage::{Batch, Key};

/// What the server remembers about a device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ts: Option<u64>,
    /// The stream position when the device was created: it sent no event at or before it, so
    /// /sync need not look up transaction IDs of older events for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
}

/// How often a device's last-seen time is written.
const LAST_SEEN_INTERVAL: Duration = Duration::from_secs(60);

/// The value stored under a token hash.
#[derive(Debug, Serialize, Deserialize)]
struct TokenSession {
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    /// Set for access tokens issued alongside a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
    /// The refresh token this access token replaced; the spec keeps it valid until the new
    /// tokens are first used, so a client that lost the refresh response can retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    superseded_refresh: Option<Vec<u8>>,
}

/// Tokens handed to a client at login, registration or refresh.
pub struct IssuedTokens {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// The outcome of looking up an access token.
pub enum TokenLookup {
    Valid {
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
    },
    /// The token was real but has expired: the client should refresh (soft logout).
    Expired,
    Unknown,
}

fn random_token(prefix: &str) -> String {
    let random: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Service {
    /// Logs a device in: creates it (or reuses `device_id` if the user already has it, dropping
    /// its previous tokens) and issues fresh tokens.
    pub fn login_device(
        &self,
        user_id: &UserId,
        device_id: Option<OwnedDeviceId>,
        display_name: Option<String>,
        ip: Option<IpAddr>,
        with_refresh: bool,
    ) -> Result<IssuedTokens> {
        let device_id = device_id.unwrap_or_else(DeviceId::new);
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let mut batch = Batch::default();
        let mut device: StoredDevice =
            self.userdeviceid_device
                .get_json(&key)?
                .unwrap_or_else(|| StoredDevice {
                    display_name,
                    created_at: Some(self.engine.current_count()),
                    ..Default::default()
                });
        self.delete_tokens(&key, &mut batch)?;
        device.last_seen_ip = ip.map(|ip| ip.to_string());
        device.last_seen_ts = Some(now_millis());
        batch.put(
            &self.userdeviceid_device,
            &key,
            &serde_json::to_vec(&device)?,
        )?;
        let tokens = self.issue_tokens(user_id, &device_id, with_refresh, None, &mut batch)?;
        self.engine.write(batch)?;
        Ok(tokens)
    }

    /// A session for `user_id` on a hidden device: a token that works on the client API as that
    /// user, on a device ID that no device list shows (Synapse's admin "log in as user", whose
    /// token has no device). Expires at `expires_at_ms` when given. Logging out, or removing all
    /// of the user's devices, ends it.
    pub fn login_hidden(&self, user_id: &UserId, expires_at_ms: Option<u64>) -> Result<String> {
        let device_id = DeviceId::new();
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let access_token = random_token("cva_");
        let access_hash = token_hash(&access_token);
        let session = TokenSession {
            user_id: user_id.to_owned(),
            device_id,
            expires_at_ms,
            superseded_refresh: None,
        };
        let mut batch = Batch::default();
        batch.put(
            &self.tokenhash_session,
            &access_hash,
            &serde_json::to_vec(&session)?,
        )?;
        batch.put(&self.userdeviceid_tokenhash, &key, &access_hash)?;
        self.engine.write(batch)?;
        Ok(access_token)
    }

    /// The user's hidden devices: ones with an access token but no device record
    /// ([`Service::login_hidden`]).
    pub fn hidden_devices(&self, user_id: &UserId) -> Result<Vec<OwnedDeviceId>> {
        let mut hidden = Vec::new();
        for entry in self
            .userdeviceid_tokenhash
            .scan_prefix((user_id.as_str(),).prefix())
        {
            let (key, _) = entry?;
            if !self.userdeviceid_device.contains(&key)? {
                let (_, device_id) = <(&str, &str)>::decode(&key)?;
                hidden.push(device_id.into());
            }
        }
        Ok(hidden)
    }

    /// The stream position before which the device sent nothing (0 when unknown: devices
    /// created before positions were recorded).
    pub fn device_created_at(&self, user_id: &UserId, device_id: &DeviceId) -> Result<u64> {
        let device: Option<StoredDevice> = self
            .userdeviceid_device
            .get_json(&(user_id.as_str(), device_id.as_str()).encode())?;
        Ok(device.and_then(|d| d.created_at).unwrap_or(0))
    }

    fn issue_tokens(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        with_refresh: bool,
        superseded_refresh: Option<Vec<u8>>,
        batch: &mut Batch,
    ) -> Result<IssuedTokens> {
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let access_token = random_token("cva_");
        let access_hash = token_hash(&access_token);
        let expires_in_ms = with_refresh.then_some(self.refreshable_token_lifetime_ms);
        let session = TokenSession {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            expires_at_ms: expires_in_ms.map(|ttl| now_millis().saturating_add(ttl)),
            superseded_refresh,
        };
        batch.put(
            &self.tokenhash_session,
            &access_hash,
            &serde_json::to_vec(&session)?,
        )?;
        batch.put(&self.userdeviceid_tokenhash, &key, &access_hash)?;

        let refresh_token = if with_refresh {
            let refresh_token = random_token("cvr_");
            let refresh_hash = token_hash(&refresh_token);
            let session = TokenSession {
                expires_at_ms: None,
                ..session
            };
            batch.put(
                &self.refreshhash_session,
                &refresh_hash,
                &serde_json::to_vec(&session)?,
            )?;
            batch.put(&self.userdeviceid_refreshhash, &key, &refresh_hash)?;
            Some(refresh_token)
        } else {
            None
        };
        Ok(IssuedTokens {
            device_id: device_id.to_owned(),
            access_token,
            refresh_token,
            expires_in_ms,
        })
    }

    /// Deletes the current access and refresh tokens of a device (key: user, device).
    fn delete_tokens(&self, key: &[u8], batch: &mut Batch) -> Result<()> {
        if let Some(hash) = self.userdeviceid_tokenhash.get(key)? {
            if let Some(session) = self.tokenhash_session.get_json::<TokenSession>(&hash)?
                && let Some(old) = session.superseded_refresh
            {
                batch.delete(&self.refreshhash_session, &old)?;
            }
            batch.delete(&self.tokenhash_session, &hash)?;
            batch.delete(&self.userdeviceid_tokenhash, key)?;
        }
        if let Some(hash) = self.userdeviceid_refreshhash.get(key)? {
            batch.delete(&self.refreshhash_session, &hash)?;
            batch.delete(&self.userdeviceid_refreshhash, key)?;
        }
        Ok(())
    }

    /// Resolves an access token to its user and device.
    pub fn find_access_token(&self, token: &str, ip: IpAddr) -> Result<TokenLookup> {
        let hash = token_hash(token);
        let Some(mut session) = self.tokenhash_session.get_json::<TokenSession>(&hash)? else {
            return Ok(TokenLookup::Unknown);
        };
        if session
            .expires_at_ms
            .is_some_and(|expiry| expiry <= now_millis())
        {
            return Ok(TokenLookup::Expired);
        }
        if let Some(old_refresh) = session.superseded_refresh.take() {
            // First use of the new access token: the old refresh token is now retired.
            let mut batch = Batch::default();
            batch.delete(&self.refreshhash_session, &old_refresh)?;
            batch.put(
                &self.tokenhash_session,
                &hash,
                &serde_json::to_vec(&session)?,
            )?;
            self.engine.write(batch)?;
        }
        self.touch_device(&hash, &session.user_id, &session.device_id, ip)?;
        Ok(TokenLookup::Valid {
            user_id: session.user_id,
            device_id: session.device_id,
        })
    }

    /// Records when and from where a device was last used, at most once per
    /// [`LAST_SEEN_INTERVAL`] per token so ordinary requests stay read-only.
    fn touch_device(
        &self,
        token_hash: &[u8],
        user_id: &UserId,
        device_id: &DeviceId,
        ip: IpAddr,
    ) -> Result<()> {
        let now = Instant::now();
        {
            let mut touched = self.last_touched.lock().unwrap_or_else(|e| e.into_inner());
            if touched
                .get(token_hash)
                .is_some_and(|at| now.duration_since(*at) < LAST_SEEN_INTERVAL)
            {
                return Ok(());
            }
            if touched.len() >= 100_000 {
                touched.retain(|_, at| now.duration_since(*at) < LAST_SEEN_INTERVAL);
            }
            touched.insert(token_hash.to_vec(), now);
        }
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let Some(mut device) = self.userdeviceid_device.get_json::<StoredDevice>(&key)? else {
            return Ok(());
        };
        device.last_seen_ip = Some(ip.to_string());
        device.last_seen_ts = Some(now_millis());
        self.userdeviceid_device
            .insert(&key, &serde_json::to_vec(&device)?)
    }

    /// Exchanges a refresh token for new tokens. The old refresh token stays valid until the
    /// new tokens are first used (spec: refreshing access tokens).
    pub fn refresh(&self, refresh_token: &str) -> Result<Option<IssuedTokens>> {
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old_hash = token_hash(refresh_token);
        let Some(session) = self
            .refreshhash_session
            .get_json::<TokenSession>(&old_hash)?
        else {
            return Ok(None);
        };
        let key = (session.user_id.as_str(), session.device_id.as_str()).encode();
        if !self.userdeviceid_device.contains(&key)? {
            return Ok(None);
        }
        let mut batch = Batch::default();
        // Retire the previous generation: the device's current access token, and its current
        // refresh token unless that is the one being used now.
        if let Some(hash) = self.userdeviceid_tokenhash.get(&key)? {
            if let Some(current) = self.tokenhash_session.get_json::<TokenSession>(&hash)?
                && let Some(older) = current
                    .superseded_refresh
                    .filter(|older| *older != old_hash)
            {
                batch.delete(&self.refreshhash_session, &older)?;
            }
            batch.delete(&self.tokenhash_session, &hash)?;
        }
        if let Some(current_refresh) = self.userdeviceid_refreshhash.get(&key)?
            && current_refresh != old_hash
        {
            batch.delete(&self.refreshhash_session, &current_refresh)?;
        }
        // A refresh token that itself replaced an older one retires that one now.
        if let Some(older) = &session.superseded_refresh {
            batch.delete(&self.refreshhash_session, older)?;
        }
        let tokens = self.issue_tokens(
            &session.user_id,
            &session.device_id,
            true,
            Some(old_hash),
            &mut batch,
        )?;
        self.engine.write(batch)?;
        Ok(Some(tokens))
    }

    pub fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<StoredDevice>> {
        self.userdeviceid_device
            .get_json(&(user_id.as_str(), device_id.as_str()).encode())
    }

    pub fn devices(&self, user_id: &UserId) -> Result<Vec<(OwnedDeviceId, StoredDevice)>> {
        self.userdeviceid_device
            .scan_prefix((user_id.as_str(),).prefix())
            .map(|entry| {
                let (key, value) = entry?;
                let (_, device_id) = <(&str, &str)>::decode(&key)?;
                Ok((device_id.into(), serde_json::from_slice(&value)?))
            })
            .collect()
    }

    /// The IDs of the user's devices (where a to-device message for `*` goes).
    pub fn device_ids(&self, user_id: &UserId) -> Result<Vec<OwnedDeviceId>> {
        Ok(self
            .devices(user_id)?
            .into_iter()
            .map(|(device, _)| device)
            .collect())
    }

    pub fn set_device_display_name(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        display_name: Option<String>,
    ) -> Result<()> {
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let mut device: StoredDevice = self
            .userdeviceid_device
            .get_json(&key)?
            .ok_or_else(|| Error::not_found("Device not found"))?;
        device.display_name = display_name;
        self.userdeviceid_device
            .insert(&key, &serde_json::to_vec(&device)?)
    }

    /// Removes a device and revokes its tokens.
    pub fn remove_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        let key = (user_id.as_str(), device_id.as_str()).encode();
        let mut batch = Batch::default();
        self.delete_tokens(&key, &mut batch)?;
        batch.delete(&self.userdeviceid_device, &key)?;
        self.engine.write(batch)
    }

    /// Removes every device of the user except `keep`, hidden ones included.
    pub fn remove_all_devices(&self, user_id: &UserId, keep: Option<&DeviceId>) -> Result<()> {
        let listed = self.devices(user_id)?.into_iter().map(|(id, _)| id);
        for device_id in listed.chain(self.hidden_devices(user_id)?) {
            if Some(&*device_id) != keep {
                self.remove_device(user_id, &device_id)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_and_distinct() {
        let a = super::random_token("cva_");
        let b = super::random_token("cva_");
        assert!(a.len() >= 48);
        assert_ne!(a, b);
    }
}
