//! Registration tokens (`m.login.registration_token`): the one from the configuration, and
//! stored ones with a limited number of uses, such as the one-time token created on first start.

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Service;
use crate::error::{Error, Result};
use crate::service::now_millis;
use crate::storage::Batch;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationTokenInfo {
    /// `None` means unlimited.
    pub uses_allowed: Option<u32>,
    pub completed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time_ms: Option<u64>,
}

impl RegistrationTokenInfo {
    pub fn usable(&self) -> bool {
        self.uses_allowed
            .is_none_or(|allowed| self.completed < allowed)
            && self
                .expiry_time_ms
                .is_none_or(|expiry| expiry > now_millis())
    }
}

pub(super) const BOOTSTRAP_KEY: &[u8] = b"bootstrap_registration_token";

impl Service {
    /// Whether `token` would currently be accepted for registration.
    pub fn registration_token_valid(&self, token: &str) -> Result<bool> {
        if self.is_config_token(token) {
            return Ok(true);
        }
        Ok(self
            .registrationtoken_info
            .get_json::<RegistrationTokenInfo>(token.as_bytes())?
            .is_some_and(|info| info.usable()))
    }

    fn is_config_token(&self, token: &str) -> bool {
        self.config_registration_token
            .as_deref()
            .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(token.as_bytes())))
    }

    /// Counts one completed registration against the token, in the caller's batch.
    pub(super) fn consume_registration_token(&self, token: &str, batch: &mut Batch) -> Result<()> {
        if self.is_config_token(token) {
            return Ok(());
        }
        let mut info = self
            .registrationtoken_info
            .get_json::<RegistrationTokenInfo>(token.as_bytes())?
            .filter(RegistrationTokenInfo::usable)
            .ok_or_else(|| {
                Error::forbidden("The registration token is not valid or already used")
            })?;
        info.completed += 1;
        batch.put(
            &self.registrationtoken_info,
            token.as_bytes(),
            &serde_json::to_vec(&info)?,
        )?;
        if self.global.get(BOOTSTRAP_KEY)?.as_deref() == Some(token.as_bytes()) {
            batch.delete(&self.global, BOOTSTRAP_KEY)?;
        }
        Ok(())
    }

    /// Retires the first-start token once the first account exists however it was made (say,
    /// from the console), in the caller's batch: it must not open registration later.
    pub(super) fn retire_bootstrap_token(&self, batch: &mut Batch) -> Result<()> {
        if let Some(token) = self.global.get(BOOTSTRAP_KEY)? {
            batch.delete(&self.registrationtoken_info, &token)?;
            batch.delete(&self.global, BOOTSTRAP_KEY)?;
        }
        Ok(())
    }

    /// Creates a stored registration token.
    pub fn create_registration_token(&self, uses_allowed: Option<u32>) -> Result<String> {
        let token: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        self.put_registration_token(&token, uses_allowed, None)?;
        Ok(token)
    }

    /// Stores a registration token an administrator issued (or chose): `uses_allowed` `None`
    /// for unlimited, `expiry_time_ms` `None` for never. The spec's grammar is checked.
    pub fn put_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<u32>,
        expiry_time_ms: Option<u64>,
    ) -> Result<()> {
        if token.is_empty()
            || token.len() > 64
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
        {
            return Err(Error::invalid_param(
                "A registration token is 1-64 characters of A-Z a-z 0-9 . _ ~ -",
            ));
        }
        if self.registrationtoken_info.contains(token.as_bytes())? {
            return Err(Error::invalid_param(
                "That registration token exists already",
            ));
        }
        let info = RegistrationTokenInfo {
            uses_allowed,
            completed: 0,
            expiry_time_ms,
        };
        self.registrationtoken_info
            .insert(token.as_bytes(), &serde_json::to_vec(&info)?)
    }

    /// One stored registration token.
    pub fn registration_token(&self, token: &str) -> Result<Option<RegistrationTokenInfo>> {
        self.registrationtoken_info.get_json(token.as_bytes())
    }

    /// Changes a stored token's allowed uses or expiry (`None` leaves one as it is); `None` if
    /// there is no such token.
    pub fn update_registration_token(
        &self,
        token: &str,
        uses_allowed: Option<Option<u32>>,
        expiry_time_ms: Option<Option<u64>>,
    ) -> Result<Option<RegistrationTokenInfo>> {
        let Some(mut info) = self.registration_token(token)? else {
            return Ok(None);
        };
        if let Some(uses) = uses_allowed {
            info.uses_allowed = uses;
        }
        if let Some(expiry) = expiry_time_ms {
            info.expiry_time_ms = expiry;
        }
        self.registrationtoken_info
            .insert(token.as_bytes(), &serde_json::to_vec(&info)?)?;
        Ok(Some(info))
    }

    /// Every stored registration token.
    pub fn registration_tokens(&self) -> Result<Vec<(String, RegistrationTokenInfo)>> {
        self.registrationtoken_info
            .iter_from(&[], rocksdb::Direction::Forward)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    serde_json::from_slice(&value)?,
                ))
            })
            .collect()
    }

    /// Deletes a stored registration token; false if there was none.
    pub fn revoke_registration_token(&self, token: &str) -> Result<bool> {
        if !self.registrationtoken_info.contains(token.as_bytes())? {
            return Ok(false);
        }
        self.registrationtoken_info.remove(token.as_bytes())?;
        Ok(true)
    }

    /// Whether some stored token still admits a registration: then closed registration still
    /// offers the token stage (the first-start token, and those administrators issue).
    pub fn stored_token_usable(&self) -> Result<bool> {
        for entry in self
            .registrationtoken_info
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let (_, value) = entry?;
            if serde_json::from_slice::<RegistrationTokenInfo>(&value)?.usable() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// On a server without accounts, the one-time token that lets the operator create the first
    /// (administrator) account although registration is closed. Created on first call and kept
    /// until used, so a restart before the first registration shows the same token.
    pub fn bootstrap_registration_token(&self) -> Result<Option<String>> {
        if self.has_any_user()? {
            return Ok(None);
        }
        if let Some(token) = self.global.get(BOOTSTRAP_KEY)? {
            let token = String::from_utf8(token)
                .map_err(|_| Error::Database("bootstrap token is not UTF-8".into()))?;
            if self.registration_token_valid(&token)? {
                return Ok(Some(token));
            }
        }
        let token = self.create_registration_token(Some(1))?;
        self.global.insert(BOOTSTRAP_KEY, token.as_bytes())?;
        Ok(Some(token))
    }

    /// The bootstrap token, if it exists and no account has been created yet.
    pub fn pending_bootstrap_token(&self) -> Result<Option<String>> {
        if self.has_any_user()? {
            return Ok(None);
        }
        let token = self.global.get(BOOTSTRAP_KEY)?;
        Ok(token.and_then(|token| String::from_utf8(token).ok()))
    }
}
