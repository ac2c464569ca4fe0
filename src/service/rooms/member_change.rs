//! Changing a user's membership in a room (join, invite, leave, kick, ban), for clients and
//! for the server itself (the admin room, admin commands).

use ruma::events::TimelineEventType;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use super::PduBuilder;
use super::creation::member_content;
use crate::error::{Error, Result};
use crate::service::Services;

/// Rooms live on this server only until federation exists: an unknown room is not found.
pub fn ensure_room(services: &Services, room_id: &RoomId) -> Result<()> {
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    Ok(())
}

/// Sends a membership event for `target` with `membership`, plus an optional reason.
pub async fn set_membership(
    services: &Services,
    sender: &UserId,
    room_id: &RoomId,
    target: &UserId,
    membership: &str,
    reason: Option<&str>,
) -> Result<()> {
    ensure_room(services, room_id)?;
    if matches!(membership, "join" | "invite" | "knock") && services.rooms.is_blocked(room_id)? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    let mut content = if matches!(membership, "join" | "invite" | "knock") {
        member_content(services, target, membership)?
    } else {
        json!({ "membership": membership })
    };
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    let guard = services.rooms.lock_room(room_id).await;
    if membership == "join" && sender == target {
        authorise_restricted_join(services, sender, room_id, &mut content)?;
    }
    let builder = PduBuilder::state(TimelineEventType::RoomMember, target.as_str(), content);
    services
        .rooms
        .build_and_append(builder, sender, room_id, &guard)?;
    guard.release().await;
    Ok(())
}

/// For `restricted` and `knock_restricted` rooms: a user who is not invited may join if they
/// are in one of the allowed rooms; the join then names a member of ours who may invite
/// (`join_authorised_via_users_server`), as the authorization rules require.
pub fn authorise_restricted_join(
    services: &Services,
    user: &UserId,
    room_id: &RoomId,
    content: &mut Value,
) -> Result<()> {
    let rooms = &services.rooms;
    let join_rule = rooms
        .current_state_event(room_id, "m.room.join_rules", "")?
        .and_then(|pdu| {
            pdu.content_value()
                .get("join_rule")
                .and_then(Value::as_str)
                .map(ToOwned::to_owned)
        });
    if !matches!(
        join_rule.as_deref(),
        Some("restricted" | "knock_restricted")
    ) {
        return Ok(());
    }
    if matches!(
        rooms.membership(user, room_id)?.as_deref(),
        Some("join" | "invite")
    ) {
        return Ok(());
    }
    let mut qualifies = false;
    for allowed in rooms.join_rule_allowed_rooms(room_id)? {
        if rooms.is_joined(user, &allowed)? {
            qualifies = true;
            break;
        }
    }
    if !qualifies {
        return Err(Error::forbidden(
            "You are not a member of any room that gives access to this one",
        ));
    }
    match rooms.local_inviter(room_id)? {
        Some(member) => {
            content["join_authorised_via_users_server"] = json!(member);
            Ok(())
        }
        None => Err(Error::forbidden(
            "No member of this room can authorise your join",
        )),
    }
}
