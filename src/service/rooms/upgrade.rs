//! Upgrading a room: a new room of the requested version that carries over the old room's
//! important state, a tombstone pointing to it, and the old room locked down.

use ruma::events::TimelineEventType;
use ruma::room_version_rules::{RoomVersionRules, StateResolutionVersion};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::creation::member_content;
use super::{PduBuilder, rules_of};
use crate::error::{Error, Result};
use crate::service::Services;

/// State copied to the replacement room.
const CARRIED_STATE: &[&str] = &[
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.canonical_alias",
];

/// `sender` replaces `old_room` with a new room of `new_version`: the new room carries over the
/// old one's important state and members' power, the old one gets a tombstone pointing to it
/// and is locked down, and its local aliases and directory listing move over.
pub async fn upgrade_room(
    services: &Services,
    sender: &UserId,
    old_room: &RoomId,
    new_version: &RoomVersionId,
    additional_creators: &[OwnedUserId],
) -> Result<OwnedRoomId> {
    let rooms = &services.rooms;
    if !rooms.exists(old_room)? {
        return Err(Error::not_found("Unknown room"));
    }
    if !rooms.is_joined(sender, old_room)? {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    let new_rules = rules_of(new_version)?;
    // Upgrading to a room version older than state resolution v2 makes no sense.
    if new_rules.state_res == StateResolutionVersion::V1 {
        return Err(Error::new(
            crate::error::ErrorCode::UnsupportedRoomVersion,
            format!("Cannot upgrade a room to version {new_version}"),
        ));
    }
    // Only those who may send the tombstone may upgrade.
    let levels = rooms.power_levels(old_room)?;
    let tombstone_level = levels
        .get("events")
        .and_then(|e| e.get("m.room.tombstone"))
        .or_else(|| levels.get("state_default"))
        .and_then(Value::as_i64)
        .unwrap_or(50);
    if rooms.user_power(old_room, sender)?
        < crate::service::rooms::power::Power::Level(tombstone_level)
    {
        return Err(Error::forbidden("You may not upgrade this room"));
    }

    let old_create = rooms
        .current_state_event(old_room, "m.room.create", "")?
        .ok_or_else(|| Error::internal("room without create event"))?
        .content_value();
    let mut create = Map::new();
    for key in ["type", "m.federate"] {
        if let Some(value) = old_create.get(key) {
            create.insert(key.into(), value.clone());
        }
    }
    create.insert("room_version".into(), json!(new_version));
    create.insert("predecessor".into(), json!({ "room_id": old_room }));
    if new_rules.authorization.additional_room_creators {
        if !additional_creators.is_empty() {
            create.insert("additional_creators".into(), json!(additional_creators));
        }
    } else if !new_rules.authorization.use_room_create_sender {
        create.insert("creator".into(), json!(sender));
    }

    let old_guard = rooms.lock_room(old_room).await;
    let (new_room, guard) = rooms
        .create_room(sender, new_version, Value::Object(create))
        .await?;
    let send_new = |builder: PduBuilder| rooms.build_and_append(builder, sender, &new_room, &guard);
    send_new(PduBuilder::state(
        TimelineEventType::RoomMember,
        sender.as_str(),
        member_content(services, sender, "join")?,
    ))?;
    send_new(PduBuilder::state(
        TimelineEventType::RoomPowerLevels,
        "",
        new_power_levels(&levels, sender, &new_rules),
    ))?;
    for kind in CARRIED_STATE {
        if let Some(pdu) = rooms.current_state_event(old_room, kind, "")? {
            send_new(PduBuilder::state(*kind, "", pdu.content_value()))?;
        }
    }
    // Bans carry over so a banned user cannot simply join the new room.
    for (member, membership) in rooms.members(old_room)? {
        if membership == "ban" {
            send_new(PduBuilder::state(
                TimelineEventType::RoomMember,
                member.as_str(),
                json!({ "membership": "ban" }),
            ))?;
        }
    }
    drop(guard);

    let send_old =
        |builder: PduBuilder| rooms.build_and_append(builder, sender, old_room, &old_guard);
    send_old(PduBuilder::state(
        TimelineEventType::RoomTombstone,
        "",
        json!({ "body": "This room has been replaced", "replacement_room": new_room }),
    ))?;
    // Lock the old room: ordinary members may no longer talk or invite there.
    let mut restricted = levels.clone();
    let users_default = levels
        .get("users_default")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let locked = std::cmp::max(50, users_default + 1);
    for key in ["events_default", "invite"] {
        let current = restricted.get(key).and_then(Value::as_i64).unwrap_or(0);
        restricted[key] = json!(current.max(locked));
    }
    if restricted != levels {
        send_old(PduBuilder::state(
            TimelineEventType::RoomPowerLevels,
            "",
            restricted,
        ))?;
    }
    drop(old_guard);

    // Local aliases and the directory listing move to the new room.
    for alias in rooms.local_aliases(old_room)? {
        if let Some((_, creator)) = rooms.alias_entry(&alias)? {
            rooms.remove_alias(&alias)?;
            rooms.set_alias(&alias, &new_room, &creator)?;
        }
    }
    if rooms.is_public(old_room)? {
        rooms.set_public(old_room, false)?;
        rooms.set_public(&new_room, true)?;
    }
    tracing::info!(%old_room, %new_room, %new_version, "room upgraded");
    Ok(new_room)
}

/// The old room's power levels for the new one. In room version 12 the upgrader, as the new
/// room's creator, has unlimited power and must not be listed; before it, they need 100 to be
/// sure they can set the carried-over state.
fn new_power_levels(old: &Value, sender: &UserId, rules: &RoomVersionRules) -> Value {
    let mut levels = if old.is_object() {
        old.clone()
    } else {
        json!({})
    };
    let users = levels
        .as_object_mut()
        .map(|o| o.entry("users").or_insert_with(|| json!({})));
    if let Some(Value::Object(users)) = users {
        if rules.authorization.explicitly_privilege_room_creators {
            users.remove(sender.as_str());
        } else {
            let current = users
                .get(sender.as_str())
                .and_then(Value::as_i64)
                .unwrap_or(0);
            users.insert(sender.to_string(), json!(current.max(100)));
        }
    }
    levels
}
