//! Profiles: display name, avatar and custom fields (spec v1.16 extended profiles).
//!
//! `displayname` and `avatar_url` go through the generic field endpoints too: their paths
//! (`/profile/{user}/{field}`, r0 and v3) cover the older dedicated ones with the same JSON, and
//! one route per path keeps every method (GET, PUT, DELETE) reachable.

use std::sync::Arc;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ruma::UserId;
use ruma::api::client::profile::{
    ProfileFieldName, ProfileFieldValue, UserProfile, delete_profile_field, get_profile,
    get_profile_field, set_profile_field,
};
use serde_json::Value;

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// The spec caps a whole profile at 64 KiB and key names at 255 bytes.
const MAX_PROFILE_BYTES: usize = 64 * 1024;
const MAX_KEY_BYTES: usize = 255;

/// A remote user's profile, asked of their server (`query/profile`, signed), with federation
/// on; `field` narrows it to one field.
async fn remote_profile(
    services: &Services,
    user_id: &UserId,
    field: Option<&str>,
) -> Result<serde_json::Map<String, Value>> {
    if !services.config.allow_federation {
        return Err(Error::not_found("Profile not found"));
    }
    let mut path = format!(
        "/_matrix/federation/v1/query/profile?user_id={}",
        utf8_percent_encode(user_id.as_str(), NON_ALPHANUMERIC)
    );
    if let Some(field) = field {
        path.push_str(&format!(
            "&field={}",
            utf8_percent_encode(field, NON_ALPHANUMERIC)
        ));
    }
    let answer = services
        .federation
        .get_signed(
            user_id.server_name(),
            &path,
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await?;
    match answer {
        Value::Object(profile) => Ok(profile),
        _ => Err(Error::not_found("Profile not found")),
    }
}

/// Profiles of unknown (or deactivated) users are not found; an application service may
/// create one of its users when asked.
async fn ensure_profile_exists(services: &Services, user_id: &UserId) -> Result<()> {
    if user_id.server_name() != services.server_name()
        || !services.appservices.user_exists(services, user_id).await?
        || services.users.is_deactivated(user_id)?
    {
        return Err(Error::not_found("Profile not found"));
    }
    Ok(())
}

fn ensure_own(request_user: &UserId, target: &UserId) -> Result<()> {
    if request_user != target {
        return Err(Error::forbidden("You can only change your own profile"));
    }
    Ok(())
}

fn set_field(
    services: &Services,
    user_id: &UserId,
    field: &str,
    value: Option<Value>,
) -> Result<()> {
    services.users.ensure_not_suspended(user_id)?;
    if field.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorCode::KeyTooLarge,
            "Profile key names are limited to 255 bytes",
        ));
    }
    if let Some(value) = &value
        && services.users.profile_size_with(user_id, field, value)? > MAX_PROFILE_BYTES
    {
        return Err(Error::new(
            ErrorCode::ProfileTooLarge,
            "Profiles are limited to 64 KiB",
        ));
    }
    services
        .users
        .set_profile_field(user_id, field, value.as_ref())
}

pub async fn get_profile(
    services: Arc<Services>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<get_profile::v3::Response> {
    let user_id = &request.body.user_id;
    let fields = if user_id.server_name() == services.server_name() {
        ensure_profile_exists(&services, user_id).await?;
        services.users.profile(user_id)?
    } else {
        remote_profile(&services, user_id, None).await?
    };
    let mut profile = UserProfile::new();
    for (field, value) in fields {
        profile.set(field, value);
    }
    let mut response = get_profile::v3::Response::new();
    response.data = profile;
    Ok(response)
}

pub async fn get_field(
    services: Arc<Services>,
    request: Ruma<get_profile_field::v3::Request>,
) -> Result<get_profile_field::v3::Response> {
    let body = &request.body;
    let field = body.field.as_str();
    let value = if body.user_id.server_name() == services.server_name() {
        ensure_profile_exists(&services, &body.user_id).await?;
        services.users.profile_field(&body.user_id, field)?
    } else {
        remote_profile(&services, &body.user_id, Some(field))
            .await?
            .remove(field)
    };
    let value = value.ok_or_else(|| Error::not_found("Profile field not set"))?;
    let value = ProfileFieldValue::new(field, value)
        .map_err(|e| Error::Database(format!("stored profile field {field} unreadable: {e}")))?;
    Ok(get_profile_field::v3::Response::new(value))
}

pub async fn set_field_handler(
    services: Arc<Services>,
    request: Ruma<set_profile_field::v3::Request>,
) -> Result<set_profile_field::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let field = body.value.field_name();
    set_field(
        &services,
        &body.user_id,
        field.as_str(),
        Some(body.value.value().into_owned()),
    )?;
    Ok(set_profile_field::v3::Response::new())
}

pub async fn delete_field(
    services: Arc<Services>,
    request: Ruma<delete_profile_field::v3::Request>,
) -> Result<delete_profile_field::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let field: &ProfileFieldName = &body.field;
    services
        .users
        .set_profile_field(&body.user_id, field.as_str(), None)?;
    Ok(delete_profile_field::v3::Response::new())
}
