//! Joining, inviting, leaving, kicking, banning, and listing rooms and members.

use std::collections::BTreeMap;
use std::sync::Arc;

use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::{
    ban_user, forget_room, get_member_events, invite_user, join_room_by_id,
    join_room_by_id_or_alias, joined_members, joined_rooms, kick_user, leave_room, unban_user,
};
use ruma::{OwnedRoomId, OwnedServerName, RoomId, RoomOrAliasId, UserId};
use serde_json::Value;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::federation::membership;
use crate::service::rooms::member_change::{ensure_room, set_membership};
use crate::service::rooms::pdu::{PduEvent, client_event};

/// Joins a room: here when one of our users is in it, else through one of the room's other
/// servers (`via`, the server of a remote invite, the room ID's server).
async fn join(
    services: &Arc<Services>,
    sender: &UserId,
    room_id: &RoomId,
    via: &[OwnedServerName],
    reason: Option<&str>,
) -> Result<()> {
    let rooms = &services.rooms;
    let resident = rooms.exists(room_id)? && rooms.has_local_member(room_id)?;
    if resident || !services.config.allow_federation {
        return set_membership(services, sender, room_id, sender, "join", reason).await;
    }
    if rooms.is_blocked(room_id)? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    services.users.ensure_not_suspended(sender)?;
    let mut servers = via.to_vec();
    if let Some(invite) = rooms.remote_invite(sender, room_id)?
        && let Some(inviter) = invite.event["sender"]
            .as_str()
            .and_then(|s| UserId::parse(s).ok())
    {
        servers.push(inviter.server_name().to_owned());
    }
    // A room we were in: the servers its members were on when we left.
    if rooms.exists(room_id)? {
        servers.extend(rooms.remote_servers(room_id)?.iter().cloned());
    }
    let servers = membership::candidate_servers(services, room_id, &servers);
    if servers.is_empty() {
        // A room of ours that everyone left: joined here, if its rules allow.
        return set_membership(services, sender, room_id, sender, "join", reason).await;
    }
    membership::join_remote(services, sender, room_id, &servers, reason).await
}

pub async fn join_by_id(
    services: Arc<Services>,
    request: Ruma<join_room_by_id::v3::Request>,
) -> Result<join_room_by_id::v3::Response> {
    let room_id = &request.body.room_id;
    join(
        &services,
        request.user()?,
        room_id,
        &[],
        request.body.reason.as_deref(),
    )
    .await?;
    Ok(join_room_by_id::v3::Response::new(room_id.clone()))
}

/// The room an ID or alias names, with the servers that may be asked to join it (for an
/// alias of another server, those its server answers).
async fn resolve_room(
    services: &Services,
    room: &RoomOrAliasId,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    let alias = match <&RoomId>::try_from(room) {
        Ok(room_id) => return Ok((room_id.to_owned(), Vec::new())),
        Err(alias) => alias,
    };
    if alias.server_name() == services.server_name() {
        let room_id = services
            .appservices
            .resolve_alias(services, alias)
            .await?
            .ok_or_else(|| Error::not_found("Unknown room alias"))?;
        return Ok((room_id, Vec::new()));
    }
    let answer = super::directory::remote_alias(services, alias).await?;
    Ok((answer.room_id, answer.servers))
}

pub async fn join_by_id_or_alias(
    services: Arc<Services>,
    request: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<join_room_by_id_or_alias::v3::Response> {
    let (room_id, mut servers) = resolve_room(&services, &request.body.room_id_or_alias).await?;
    servers.splice(0..0, request.body.via.iter().cloned());
    join(
        &services,
        request.user()?,
        &room_id,
        &servers,
        request.body.reason.as_deref(),
    )
    .await?;
    Ok(join_room_by_id_or_alias::v3::Response::new(room_id))
}

pub async fn invite(
    services: Arc<Services>,
    request: Ruma<invite_user::v3::Request>,
) -> Result<invite_user::v3::Response> {
    let invite_user::v3::InvitationRecipient::UserId(recipient) = &request.body.recipient else {
        return Err(Error::forbidden("Third-party invites are not supported"));
    };
    let target = &recipient.user_id;
    let sender = request.user()?;
    if target.server_name() != services.server_name() {
        if !services.config.allow_federation {
            return Err(Error::forbidden("Federation is off on this server"));
        }
        ensure_room(&services, &request.body.room_id)?;
        if services.rooms.is_blocked(&request.body.room_id)? {
            return Err(Error::forbidden(
                "This room has been blocked on this server",
            ));
        }
        membership::invite(
            &services,
            sender,
            &request.body.room_id,
            target,
            recipient.reason.as_deref(),
            false,
        )
        .await?;
        return Ok(invite_user::v3::Response::new());
    }
    if !services.appservices.user_exists(&services, target).await? {
        return Err(Error::not_found("No such user on this server"));
    }
    set_membership(
        &services,
        sender,
        &request.body.room_id,
        target,
        "invite",
        recipient.reason.as_deref(),
    )
    .await?;
    Ok(invite_user::v3::Response::new())
}

pub async fn leave(
    services: Arc<Services>,
    request: Ruma<leave_room::v3::Request>,
) -> Result<leave_room::v3::Response> {
    let sender = request.user()?;
    let room_id = &request.body.room_id;
    let reason = request.body.reason.as_deref();
    // An invite to a room this server is not in is rejected through the inviter's server;
    // unreachable, it is rejected here only (as Synapse does).
    if !services.rooms.exists(room_id)?
        && let Some(invite) = services.rooms.remote_invite(sender, room_id)?
    {
        let inviter_server = invite.event["sender"]
            .as_str()
            .and_then(|s| UserId::parse(s).ok())
            .map(|inviter| inviter.server_name().to_owned());
        let servers = membership::candidate_servers(
            &services,
            room_id,
            &inviter_server.into_iter().collect::<Vec<_>>(),
        );
        if let Err(error) =
            membership::leave_remote(&services, sender, room_id, &servers, reason).await
        {
            tracing::info!(%room_id, %error, "the invite is rejected here only");
        }
        services.rooms.end_remote_invite(sender, room_id, "leave")?;
        return Ok(leave_room::v3::Response::new());
    }
    set_membership(&services, sender, room_id, sender, "leave", reason).await?;
    Ok(leave_room::v3::Response::new())
}

pub async fn forget(
    services: Arc<Services>,
    request: Ruma<forget_room::v3::Request>,
) -> Result<forget_room::v3::Response> {
    let sender = request.user()?;
    let room_id = &request.body.room_id;
    match services.rooms.membership(sender, room_id)?.as_deref() {
        Some("join") | Some("invite") | Some("knock") => Err(Error::with_status(
            crate::error::ErrorCode::Unknown,
            http::StatusCode::BAD_REQUEST,
            "Leave the room before forgetting it",
        )),
        Some(_) => {
            services.rooms.forget(sender, room_id)?;
            Ok(forget_room::v3::Response::new())
        }
        None => Err(Error::not_found("You were never in this room")),
    }
}

pub async fn kick(
    services: Arc<Services>,
    request: Ruma<kick_user::v3::Request>,
) -> Result<kick_user::v3::Response> {
    let body = &request.body;
    set_membership(
        &services,
        request.user()?,
        &body.room_id,
        &body.user_id,
        "leave",
        body.reason.as_deref(),
    )
    .await?;
    Ok(kick_user::v3::Response::new())
}

pub async fn ban(
    services: Arc<Services>,
    request: Ruma<ban_user::v3::Request>,
) -> Result<ban_user::v3::Response> {
    let body = &request.body;
    set_membership(
        &services,
        request.user()?,
        &body.room_id,
        &body.user_id,
        "ban",
        body.reason.as_deref(),
    )
    .await?;
    Ok(ban_user::v3::Response::new())
}

pub async fn unban(
    services: Arc<Services>,
    request: Ruma<unban_user::v3::Request>,
) -> Result<unban_user::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    if services
        .rooms
        .membership(&body.user_id, room_id)?
        .as_deref()
        != Some("ban")
    {
        return Err(Error::forbidden("The user is not banned"));
    }
    set_membership(
        &services,
        request.user()?,
        room_id,
        &body.user_id,
        "leave",
        body.reason.as_deref(),
    )
    .await?;
    Ok(unban_user::v3::Response::new())
}

pub async fn list_joined(
    services: Arc<Services>,
    request: Ruma<joined_rooms::v3::Request>,
) -> Result<joined_rooms::v3::Response> {
    let rooms = services
        .rooms
        .rooms_with_membership(request.user()?, "join")?;
    Ok(joined_rooms::v3::Response::new(rooms))
}

/// Reading a room's members or state needs current membership.
pub fn ensure_joined(services: &Services, user: &UserId, room_id: &RoomId) -> Result<()> {
    ensure_room(services, room_id)?;
    if !services.rooms.is_joined(user, room_id)? {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    Ok(())
}

pub async fn members(
    services: Arc<Services>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<get_member_events::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    let rooms = &services.rooms;
    // `at` selects the state at a point of the timeline (a pagination token).
    let state = match &body.at {
        Some(at) => {
            let at = super::message::parse_token(at)?;
            let event = rooms.timeline_page(room_id, at.next(), true, 1)?;
            let event_id = match event.first() {
                Some((_, json)) => PduEvent::from_json(json)?.event_id,
                None => return Ok(get_member_events::v3::Response::new(Vec::new())),
            };
            let short = rooms
                .shorteventid(&event_id)?
                .ok_or_else(|| Error::internal("event without short ID"))?;
            rooms.state_after_event(short)?.unwrap_or_default()
        }
        None => rooms.current_state(room_id)?,
    };
    let wanted = body.membership.as_ref().map(ToString::to_string);
    let unwanted = body.not_membership.as_ref().map(ToString::to_string);
    let mut chunk = Vec::new();
    for (shortstatekey, shorteventid) in state.iter() {
        let (kind, _) = rooms.statekey_of_short(*shortstatekey)?;
        if kind != "m.room.member" {
            continue;
        }
        let event_id = rooms.event_id_of_short(*shorteventid)?;
        let Some(json) = rooms.get_pdu_json(&event_id)? else {
            continue;
        };
        let pdu = PduEvent::from_json(&json)?;
        let membership = pdu
            .content_value()
            .get("membership")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if wanted.as_ref().is_some_and(|w| *w != membership)
            || unwanted.as_ref() == Some(&membership)
        {
            continue;
        }
        chunk.push(client_event(&json, room_id)?.cast_unchecked());
    }
    Ok(get_member_events::v3::Response::new(chunk))
}

pub async fn joined(
    services: Arc<Services>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<joined_members::v3::Response> {
    let room_id = &request.body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    let mut joined = BTreeMap::new();
    for (user_id, membership) in services.rooms.members(room_id)? {
        if membership != "join" {
            continue;
        }
        let mut member = joined_members::v3::RoomMember::new();
        if let Some(pdu) =
            services
                .rooms
                .current_state_event(room_id, "m.room.member", user_id.as_str())?
        {
            let content = pdu.content_value();
            member.display_name = content
                .get("displayname")
                .and_then(Value::as_str)
                .map(ToOwned::to_owned);
            member.avatar_url = content
                .get("avatar_url")
                .and_then(Value::as_str)
                .map(Into::into);
        }
        joined.insert(user_id, member);
    }
    Ok(joined_members::v3::Response::new(joined))
}

pub async fn knock(
    services: Arc<Services>,
    request: Ruma<knock_room::v3::Request>,
) -> Result<knock_room::v3::Response> {
    let (room_id, mut servers) = resolve_room(&services, &request.body.room_id_or_alias).await?;
    let sender = request.user()?;
    let reason = request.body.reason.as_deref();
    let rooms = &services.rooms;
    let resident = rooms.exists(&room_id)? && rooms.has_local_member(&room_id)?;
    if !resident && services.config.allow_federation {
        servers.splice(0..0, request.body.via.iter().cloned());
        let servers = membership::candidate_servers(&services, &room_id, &servers);
        if !servers.is_empty() {
            if rooms.is_blocked(&room_id)? {
                return Err(Error::forbidden(
                    "This room has been blocked on this server",
                ));
            }
            services.users.ensure_not_suspended(sender)?;
            membership::knock_remote(&services, sender, &room_id, &servers, reason).await?;
            return Ok(knock_room::v3::Response::new(room_id));
        }
    }
    set_membership(&services, sender, &room_id, sender, "knock", reason).await?;
    Ok(knock_room::v3::Response::new(room_id))
}
