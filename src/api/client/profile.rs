//! Profiles: display name, avatar and custom fields (spec v1.16 extended profiles).

use std::sync::Arc;

use ruma::api::client::profile::{
    ProfileFieldName, ProfileFieldValue, UserProfile, delete_profile_field, get_avatar_url,
    get_display_name, get_profile, get_profile_field, set_avatar_url, set_display_name,
    set_profile_field,
};
use ruma::{OwnedMxcUri, UserId};
use serde_json::Value;

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// The spec caps a whole profile at 64 KiB and key names at 255 bytes.
const MAX_PROFILE_BYTES: usize = 64 * 1024;
const MAX_KEY_BYTES: usize = 255;

/// Profiles of unknown (or deactivated) users are not found; remote profiles need federation.
fn ensure_profile_exists(services: &Services, user_id: &UserId) -> Result<()> {
    if user_id.server_name() != services.server_name()
        || !services.users.exists(user_id)?
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

fn set_field(services: &Services, user_id: &UserId, field: &str, value: Option<Value>) -> Result<()> {
    if field.len() > MAX_KEY_BYTES {
        return Err(Error::new(ErrorCode::KeyTooLarge, "Profile key names are limited to 255 bytes"));
    }
    if let Some(value) = &value {
        if services.users.profile_size_with(user_id, field, value)? > MAX_PROFILE_BYTES {
            return Err(Error::new(ErrorCode::ProfileTooLarge, "Profiles are limited to 64 KiB"));
        }
    }
    services.users.set_profile_field(user_id, field, value.as_ref())
}

pub async fn get_profile(
    services: Arc<Services>,
    request: Ruma<get_profile::v3::Request>,
) -> Result<get_profile::v3::Response> {
    let user_id = &request.body.user_id;
    ensure_profile_exists(&services, user_id)?;
    let mut profile = UserProfile::new();
    for (field, value) in services.users.profile(user_id)? {
        profile.set(field, value);
    }
    let mut response = get_profile::v3::Response::new();
    response.data = profile;
    Ok(response)
}

pub async fn get_displayname(
    services: Arc<Services>,
    request: Ruma<get_display_name::v3::Request>,
) -> Result<get_display_name::v3::Response> {
    let user_id = &request.body.user_id;
    ensure_profile_exists(&services, user_id)?;
    let displayname = services.users.profile_field(user_id, "displayname")?;
    let displayname = displayname.and_then(|v| v.as_str().map(ToOwned::to_owned));
    Ok(get_display_name::v3::Response::new(displayname))
}

pub async fn set_displayname(
    services: Arc<Services>,
    request: Ruma<set_display_name::v3::Request>,
) -> Result<set_display_name::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    set_field(&services, &body.user_id, "displayname", body.displayname.clone().map(Value::String))?;
    Ok(set_display_name::v3::Response::new())
}

pub async fn get_avatar_url(
    services: Arc<Services>,
    request: Ruma<get_avatar_url::v3::Request>,
) -> Result<get_avatar_url::v3::Response> {
    let user_id = &request.body.user_id;
    ensure_profile_exists(&services, user_id)?;
    let avatar = services.users.profile_field(user_id, "avatar_url")?;
    let avatar_url = avatar.and_then(|v| v.as_str().map(OwnedMxcUri::from));
    Ok(get_avatar_url::v3::Response::new(avatar_url))
}

pub async fn set_avatar_url(
    services: Arc<Services>,
    request: Ruma<set_avatar_url::v3::Request>,
) -> Result<set_avatar_url::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let value = body.avatar_url.as_ref().map(|url| Value::String(url.to_string()));
    set_field(&services, &body.user_id, "avatar_url", value)?;
    Ok(set_avatar_url::v3::Response::new())
}

pub async fn get_field(
    services: Arc<Services>,
    request: Ruma<get_profile_field::v3::Request>,
) -> Result<get_profile_field::v3::Response> {
    let body = &request.body;
    ensure_profile_exists(&services, &body.user_id)?;
    let field = body.field.as_str();
    let value = services
        .users
        .profile_field(&body.user_id, field)?
        .ok_or_else(|| Error::not_found("Profile field not set"))?;
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
    set_field(&services, &body.user_id, field.as_str(), Some(body.value.value().into_owned()))?;
    Ok(set_profile_field::v3::Response::new())
}

pub async fn delete_field(
    services: Arc<Services>,
    request: Ruma<delete_profile_field::v3::Request>,
) -> Result<delete_profile_field::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let field: &ProfileFieldName = &body.field;
    services.users.set_profile_field(&body.user_id, field.as_str(), None)?;
    Ok(delete_profile_field::v3::Response::new())
}
