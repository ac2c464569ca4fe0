//! Queries other servers make about this one's users and rooms.

use std::sync::Arc;

use ruma::api::federation::query::{get_profile_information, get_room_information};
use ruma::profile::UserProfile;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;

/// `GET /_matrix/federation/v1/query/profile`: a local user's profile, or one field of it.
pub async fn profile(
    services: Arc<Services>,
    request: Ruma<get_profile_information::v1::Request>,
) -> Result<get_profile_information::v1::Response> {
    request.origin()?;
    let body = &request.body;
    let user_id = &body.user_id;
    if user_id.server_name() != services.server_name()
        || !services.users.exists(user_id)?
        || services.users.is_deactivated(user_id)?
    {
        return Err(Error::not_found("Profile not found"));
    }
    let mut profile = UserProfile::new();
    for (field, value) in services.users.profile(user_id)? {
        if body
            .field
            .as_ref()
            .is_none_or(|wanted| wanted.as_str() == field)
        {
            profile.set(field, value);
        }
    }
    let mut response = get_profile_information::v1::Response::new();
    response.data = profile;
    Ok(response)
}

/// `GET /_matrix/federation/v1/query/directory`: the room one of our aliases names, and the
/// servers of its members (ours first), which may be asked to join it.
pub async fn directory(
    services: Arc<Services>,
    request: Ruma<get_room_information::v1::Request>,
) -> Result<get_room_information::v1::Response> {
    request.origin()?;
    let alias = &request.body.room_alias;
    let room_id = if alias.server_name() == services.server_name() {
        services.rooms.resolve_alias(alias)?
    } else {
        None
    }
    .ok_or_else(|| Error::not_found("Unknown room alias"))?;
    let servers = services.rooms.resident_servers(&room_id)?;
    Ok(get_room_information::v1::Response::new(room_id, servers))
}
