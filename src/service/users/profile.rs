//! Profiles: `displayname`, `avatar_url` and custom fields, one entry per field.

use ruma::UserId;
use serde_json::{Map, Value};

use super::Service;
use crate::error::Result;
use crate::storage::Key;

impl Service {
    pub fn profile_field(&self, user_id: &UserId, field: &str) -> Result<Option<Value>> {
        self.useridprofilekey_value
            .get_json(&(user_id.as_str(), field).encode())
    }

    /// Sets a field, or removes it when `value` is `None` or JSON null.
    pub fn set_profile_field(
        &self,
        user_id: &UserId,
        field: &str,
        value: Option<&Value>,
    ) -> Result<()> {
        let key = (user_id.as_str(), field).encode();
        match value {
            Some(value) if !value.is_null() => self
                .useridprofilekey_value
                .insert(&key, value.to_string().as_bytes()),
            _ => self.useridprofilekey_value.remove(&key),
        }
    }

    /// All profile fields of a user.
    pub fn profile(&self, user_id: &UserId) -> Result<Map<String, Value>> {
        self.useridprofilekey_value
            .scan_prefix((user_id.as_str(),).prefix())
            .map(|entry| {
                let (key, value) = entry?;
                let (_, field) = <(&str, String)>::decode(&key)?;
                Ok((field, serde_json::from_slice(&value)?))
            })
            .collect()
    }

    /// Total size of a profile as JSON; the spec caps profiles at 64 KiB.
    pub fn profile_size_with(&self, user_id: &UserId, field: &str, value: &Value) -> Result<usize> {
        let mut profile = self.profile(user_id)?;
        profile.insert(field.to_owned(), value.clone());
        Ok(Value::Object(profile).to_string().len())
    }
}
