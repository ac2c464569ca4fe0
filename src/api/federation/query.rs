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
        services.appservices.resolve_alias(&services, alias).await?
    } else {
        None
    }
    .ok_or_else(|| Error::not_found("Unknown room alias"))?;
    let servers = services.rooms.resident_servers(&room_id)?;
    Ok(get_room_information::v1::Response::new(room_id, servers))
}

/// `GET /_matrix/federation/v1/publicRooms`: our room directory, for another server's users.
pub async fn public_rooms(
    services: Arc<Services>,
    request: Ruma<ruma::api::federation::directory::get_public_rooms::v1::Request>,
) -> Result<crate::api::router::RawJson> {
    let body = &request.body;
    Ok(crate::api::router::RawJson(
        crate::api::client::directory::directory_page(
            &services,
            body.limit,
            body.since.as_deref(),
            None,
            &body.room_network,
        )?,
    ))
}

/// `POST /_matrix/federation/v1/publicRooms`: the same, with a search term.
pub async fn public_rooms_filtered(
    services: Arc<Services>,
    request: Ruma<ruma::api::federation::directory::get_public_rooms_filtered::v1::Request>,
) -> Result<crate::api::router::RawJson> {
    let body = &request.body;
    Ok(crate::api::router::RawJson(
        crate::api::client::directory::directory_page(
            &services,
            body.limit,
            body.since.as_deref(),
            body.filter.generic_search_term.as_deref(),
            &body.room_network,
        )?,
    ))
}

/// `GET /_matrix/federation/v1/openid/userinfo`: the user an OpenID token proves (asked by a
/// third party, so not signed).
pub async fn openid_userinfo(
    services: Arc<Services>,
    request: Ruma<ruma::api::federation::openid::get_openid_userinfo::v1::Request>,
) -> Result<ruma::api::federation::openid::get_openid_userinfo::v1::Response> {
    match services.openid.user_of(&request.body.access_token)? {
        Some(user_id) => {
            Ok(ruma::api::federation::openid::get_openid_userinfo::v1::Response::new(user_id))
        }
        None => Err(Error::new(
            crate::error::ErrorCode::UnknownToken { soft_logout: false },
            "Unknown or expired OpenID token",
        )),
    }
}
