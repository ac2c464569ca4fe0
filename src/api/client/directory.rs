//! Room aliases and the public room directory.

use std::sync::Arc;

use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::{Visibility, aliases};
use ruma::directory::RoomNetwork;
use ruma::{RoomAliasId, UInt, UserId};
use serde_json::{Value, json};

use super::membership::ensure_joined;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::rooms::summary::RoomSummary;

fn ensure_local_alias(services: &Services, alias: &RoomAliasId) -> Result<()> {
    if alias.server_name() != services.server_name() {
        return Err(Error::invalid_param(
            "Aliases of other servers cannot be managed here",
        ));
    }
    Ok(())
}

pub async fn create(
    services: Arc<Services>,
    request: Ruma<create_alias::v3::Request>,
) -> Result<create_alias::v3::Response> {
    let body = &request.body;
    let sender = request.user()?;
    ensure_local_alias(&services, &body.room_alias)?;
    services
        .appservices
        .check_alias_free(&body.room_alias, sender)?;
    ensure_joined(&services, sender, &body.room_id)?;
    if services.rooms.resolve_alias(&body.room_alias)?.is_some() {
        return Err(Error::with_status(
            ErrorCode::Unknown,
            http::StatusCode::CONFLICT,
            "The room alias already exists",
        ));
    }
    services
        .rooms
        .set_alias(&body.room_alias, &body.room_id, sender)?;
    Ok(create_alias::v3::Response::new())
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_alias::v3::Request>,
) -> Result<delete_alias::v3::Response> {
    let alias = &request.body.room_alias;
    let sender = request.user()?;
    ensure_local_alias(&services, alias)?;
    let (room_id, creator) = services
        .rooms
        .alias_entry(alias)?
        .ok_or_else(|| Error::not_found("Unknown room alias"))?;
    // The alias's creator, a server admin, or someone who may change the canonical alias.
    let allowed = creator == sender
        || services.users.is_admin(sender)?
        || (services.rooms.is_joined(sender, &room_id)?
            && may_send_state(&services, &room_id, sender, "m.room.canonical_alias")?);
    if !allowed {
        return Err(Error::forbidden("You may not remove this alias"));
    }
    services.rooms.remove_alias(alias)?;
    Ok(delete_alias::v3::Response::new())
}

/// Whether the user's power level allows sending the given state event type.
fn may_send_state(
    services: &Services,
    room_id: &ruma::RoomId,
    user: &UserId,
    kind: &str,
) -> Result<bool> {
    let levels = services.rooms.power_levels(room_id)?;
    let needed = levels
        .get("events")
        .and_then(|events| events.get(kind))
        .or_else(|| levels.get("state_default"))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(50);
    Ok(services.rooms.user_power(room_id, user)?
        >= crate::service::rooms::power::Power::Level(needed))
}

pub async fn get(
    services: Arc<Services>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<get_alias::v3::Response> {
    let alias = &request.body.room_alias;
    if alias.server_name() != services.server_name() {
        return remote_alias(&services, alias).await;
    }
    let room_id = services
        .appservices
        .resolve_alias(&services, alias)
        .await?
        .ok_or_else(|| Error::not_found("Unknown room alias"))?;
    let mut servers = services.rooms.resident_servers(&room_id)?;
    if servers.is_empty() {
        servers.push(services.server_name().to_owned());
    }
    Ok(get_alias::v3::Response::new(room_id, servers))
}

/// Another server's alias, asked of that server (`query/directory`, signed).
pub(super) async fn remote_alias(
    services: &Services,
    alias: &RoomAliasId,
) -> Result<get_alias::v3::Response> {
    if !services.config.allow_federation {
        return Err(Error::not_found("Unknown room alias"));
    }
    let path = format!(
        "/_matrix/federation/v1/query/directory?room_alias={}",
        percent_encoding::utf8_percent_encode(alias.as_str(), percent_encoding::NON_ALPHANUMERIC)
    );
    let answer = services
        .federation
        .get_signed(
            alias.server_name(),
            &path,
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await?;
    let room_id = answer["room_id"]
        .as_str()
        .and_then(|id| ruma::RoomId::parse(id).ok())
        .ok_or_else(|| Error::not_found("Unknown room alias"))?;
    let servers = answer["servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| ruma::ServerName::parse(s.as_str()?).ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(get_alias::v3::Response::new(room_id, servers))
}

pub async fn room_aliases(
    services: Arc<Services>,
    request: Ruma<aliases::v3::Request>,
) -> Result<aliases::v3::Response> {
    let room_id = &request.body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    Ok(aliases::v3::Response::new(
        services.rooms.local_aliases(room_id)?,
    ))
}

pub async fn get_visibility(
    services: Arc<Services>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<get_room_visibility::v3::Response> {
    let room_id = &request.body.room_id;
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let visibility = if services.rooms.is_public(room_id)? {
        Visibility::Public
    } else {
        Visibility::Private
    };
    Ok(get_room_visibility::v3::Response::new(visibility))
}

pub async fn set_visibility(
    services: Arc<Services>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<set_room_visibility::v3::Response> {
    let body = &request.body;
    let sender = request.user()?;
    ensure_joined(&services, sender, &body.room_id)?;
    // Publishing is a moderator's decision: the level needed to set the canonical alias.
    if !services.users.is_admin(sender)?
        && !may_send_state(&services, &body.room_id, sender, "m.room.canonical_alias")?
    {
        return Err(Error::forbidden(
            "You may not change this room's directory visibility",
        ));
    }
    let public = match body.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        _ => return Err(Error::invalid_param("Unknown visibility")),
    };
    services.rooms.set_public(&body.room_id, public)?;
    Ok(set_room_visibility::v3::Response::new())
}

/// A directory entry: the summary's public fields. `join_rule` is always present (the spec
/// would let `public` be implied; Synapse states it and clients read it).
fn chunk(summary: &RoomSummary) -> Value {
    let mut chunk = summary.to_json();
    if let Some(object) = chunk.as_object_mut() {
        for private in ["room_version", "encryption", "allowed_room_ids"] {
            object.remove(private);
        }
    }
    chunk
}

/// One page of the directory: rooms by member count, optionally filtered by a search term
/// (for our clients, and for other servers asking over federation).
pub(crate) fn directory_page(
    services: &Services,
    limit: Option<UInt>,
    since: Option<&str>,
    search: Option<&str>,
    network: &RoomNetwork,
) -> Result<Value> {
    let search = search.map(str::to_lowercase).filter(|s| !s.is_empty());
    let mut rooms = Vec::new();
    for (room_id, listed_in) in services.rooms.public_rooms_by_network()? {
        // This server's own directory, a bridge's network directory, or all of them.
        let wanted = match network {
            RoomNetwork::All => true,
            RoomNetwork::ThirdParty(instance) => listed_in.as_deref() == Some(instance.as_str()),
            _ => listed_in.is_none(),
        };
        if !wanted {
            continue;
        }
        let summary = services.rooms.summary(&room_id)?;
        if let Some(term) = &search {
            let alias = summary.canonical_alias.as_ref().map(|a| a.as_str());
            let haystack = [summary.name.as_deref(), summary.topic.as_deref(), alias];
            if !haystack
                .iter()
                .flatten()
                .any(|text| text.to_lowercase().contains(term))
            {
                continue;
            }
        }
        rooms.push(summary);
    }
    rooms.sort_by(|a, b| {
        b.num_joined_members
            .cmp(&a.num_joined_members)
            .then_with(|| a.room_id.cmp(&b.room_id))
    });
    let total = rooms.len();
    let offset = match since {
        Some(token) => token
            .trim_start_matches('p')
            .parse::<usize>()
            .map_err(|_| Error::invalid_param("Invalid since token"))?,
        None => 0,
    };
    let limit = limit
        .map_or(usize::MAX, |l| {
            usize::try_from(u64::from(l)).unwrap_or(usize::MAX)
        })
        .max(1);
    let end = offset.saturating_add(limit).min(total);
    let page: Vec<Value> = rooms
        .iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .map(chunk)
        .collect();
    let mut response = json!({ "chunk": page, "total_room_count_estimate": total });
    if end < total {
        response["next_batch"] = json!(format!("p{end}"));
    }
    if offset > 0 {
        response["prev_batch"] = json!(format!("p{}", offset.saturating_sub(limit)));
    }
    Ok(response)
}

/// Another server's directory, for a client's `server` parameter: asked over federation.
async fn remote_directory(
    services: &Services,
    server: &ruma::ServerName,
    limit: Option<UInt>,
    since: Option<&str>,
    search: Option<&str>,
) -> Result<RawJson> {
    if !services.config.allow_federation {
        return Err(Error::forbidden(
            "Other servers' directories need federation, which is off on this server",
        ));
    }
    let mut body = json!({});
    if let Some(limit) = limit {
        body["limit"] = json!(limit);
    }
    if let Some(since) = since {
        body["since"] = json!(since);
    }
    if let Some(search) = search {
        body["filter"] = json!({ "generic_search_term": search });
    }
    let answer = crate::service::federation::incoming::signed(
        services,
        http::Method::POST,
        server,
        "/_matrix/federation/v1/publicRooms",
        Some(&body),
        8 << 20,
    )
    .await?;
    if !answer["chunk"].is_array() {
        return Err(Error::Internal(format!(
            "{server} answered a directory without a chunk"
        )));
    }
    Ok(RawJson(answer))
}

pub async fn public_rooms(
    services: Arc<Services>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    if let Some(server) = body
        .server
        .as_deref()
        .filter(|s| *s != services.server_name())
    {
        return remote_directory(&services, server, body.limit, body.since.as_deref(), None).await;
    }
    Ok(RawJson(directory_page(
        &services,
        body.limit,
        body.since.as_deref(),
        None,
        &RoomNetwork::Matrix,
    )?))
}

pub async fn public_rooms_filtered(
    services: Arc<Services>,
    request: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let search = body.filter.generic_search_term.as_deref();
    if let Some(server) = body
        .server
        .as_deref()
        .filter(|s| *s != services.server_name())
    {
        return remote_directory(&services, server, body.limit, body.since.as_deref(), search)
            .await;
    }
    Ok(RawJson(directory_page(
        &services,
        body.limit,
        body.since.as_deref(),
        search,
        &body.room_network,
    )?))
}

/// `PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}`: an application
/// service publishes a room in its directory of a third-party network (found with
/// `third_party_instance_id` `<service id>|<network id>`), or takes it out.
pub async fn set_appservice_room_visibility(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::appservice::set_room_visibility::v3::Request>,
) -> Result<ruma::api::client::appservice::set_room_visibility::v3::Response> {
    let Some(service) = &request.appservice else {
        return Err(Error::forbidden(
            "Only application services have network directories",
        ));
    };
    let body = &request.body;
    if !services.rooms.exists(&body.room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let instance = format!("{}|{}", service.id(), body.network_id);
    services.rooms.set_public_in_network(
        &body.room_id,
        &instance,
        body.visibility == Visibility::Public,
    )?;
    Ok(ruma::api::client::appservice::set_room_visibility::v3::Response::new())
}
