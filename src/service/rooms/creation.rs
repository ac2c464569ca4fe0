//! Creating a room as `POST /createRoom` asks (the create event, the creator's join, power
//! levels, alias, preset events, `initial_state`, name, topic and invites — in the order the
//! spec lists), for clients and for the server's own rooms (the admin room).

use ruma::api::client::room::{Visibility, create_room};
use ruma::events::TimelineEventType;
use ruma::room::RoomType;
use ruma::room_version_rules::RoomVersionRules;
use ruma::{OwnedRoomId, RoomAliasId, UserId};
use serde_json::{Map, Value, json};

use super::PduBuilder;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

fn raw_object<T>(raw: &ruma::serde::Raw<T>) -> Result<Map<String, Value>> {
    match serde_json::from_str(raw.json().get()) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(Error::bad_json("Expected a JSON object")),
    }
}

/// Creates the room `body` describes, with `sender` as its creator.
pub async fn create_room(
    services: &Services,
    sender: &UserId,
    body: &create_room::v3::Request,
) -> Result<OwnedRoomId> {
    let rooms = &services.rooms;
    let version = body
        .room_version
        .clone()
        .unwrap_or_else(|| services.config.default_room_version.clone());
    let rules = super::rules_of(&version)?;

    // Check everything that can fail before the room exists.
    let alias = match &body.room_alias_name {
        Some(name) => {
            let alias = RoomAliasId::parse(format!("#{name}:{}", services.server_name()))
                .map_err(|_| Error::invalid_param("Invalid room_alias_name"))?;
            services.appservices.check_alias_free(&alias, sender)?;
            if rooms.resolve_alias(&alias)?.is_some() {
                return Err(Error::new(
                    ErrorCode::RoomInUse,
                    "The room alias is already taken",
                ));
            }
            Some(alias)
        }
        None => None,
    };
    for invitee in &body.invite {
        if invitee.server_name() != services.server_name() {
            // Another server's user: invited over federation once the room exists.
            if !services.config.allow_federation {
                return Err(Error::forbidden(format!(
                    "Cannot invite {invitee}: federation is off on this server"
                )));
            }
            services
                .federation
                .partners()
                .check(invitee.server_name())?;
        } else if !services.users.exists(invitee)? {
            return Err(Error::not_found(format!(
                "Cannot invite {invitee}: no such user on this server"
            )));
        }
    }

    let mut create_content = match &body.creation_content {
        Some(raw) => raw_object(raw)?,
        None => Map::new(),
    };
    create_content.insert("room_version".into(), json!(version));
    // Room version 11 dropped `creator`: the create event's sender is the creator.
    if !rules.authorization.use_room_create_sender {
        create_content.insert("creator".into(), json!(sender));
    } else {
        create_content.remove("creator");
    }
    if let Some(kind) = create_content.get("type")
        && !kind.is_string()
    {
        return Err(Error::bad_json("creation_content.type must be a string"));
    }
    let is_space =
        create_content.get("type").and_then(Value::as_str) == Some(RoomType::Space.as_str());

    let preset = body
        .preset
        .clone()
        .map(|p| p.to_string())
        .unwrap_or_else(|| match body.visibility {
            Visibility::Public => "public_chat".to_owned(),
            _ => "private_chat".to_owned(),
        });
    let power_levels = power_levels(sender, &rules, &preset, body, is_space)?;

    let (room_id, guard) = rooms
        .create_room(sender, &version, Value::Object(create_content))
        .await?;
    if let Some(alias) = &alias {
        rooms.set_alias(alias, &room_id, sender)?;
    }
    let send = |builder: PduBuilder| rooms.build_and_append(builder, sender, &room_id, &guard);

    send(PduBuilder::state(
        TimelineEventType::RoomMember,
        sender.as_str(),
        member_content(services, sender, "join")?,
    ))?;
    send(PduBuilder::state(
        TimelineEventType::RoomPowerLevels,
        "",
        power_levels,
    ))?;
    if let Some(alias) = &alias {
        send(PduBuilder::state(
            TimelineEventType::RoomCanonicalAlias,
            "",
            json!({ "alias": alias }),
        ))?;
    }

    // Preset events, replaced by `initial_state` entries of the same type and state key.
    let mut state: Vec<((String, String), Value)> = Vec::new();
    let join_rule = if preset == "public_chat" {
        "public"
    } else {
        "invite"
    };
    state.push((
        ("m.room.join_rules".into(), String::new()),
        json!({ "join_rule": join_rule }),
    ));
    state.push((
        ("m.room.history_visibility".into(), String::new()),
        json!({ "history_visibility": "shared" }),
    ));
    if preset != "public_chat" {
        state.push((
            ("m.room.guest_access".into(), String::new()),
            json!({ "guest_access": "can_join" }),
        ));
    }
    for raw in &body.initial_state {
        let event = raw_object(raw)?;
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::bad_json("initial_state event without type"))?;
        if matches!(
            kind,
            "m.room.create" | "m.room.member" | "m.room.power_levels"
        ) {
            return Err(Error::bad_json(format!(
                "{kind} cannot be set through initial_state"
            )));
        }
        let state_key = event
            .get("state_key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let content = event.get("content").cloned().unwrap_or_else(|| json!({}));
        let key = (kind.to_owned(), state_key);
        state.retain(|(existing, _)| *existing != key);
        state.push((key, content));
    }
    for ((kind, state_key), content) in state {
        send(PduBuilder::state(kind.as_str(), state_key, content))?;
    }

    if let Some(name) = &body.name {
        send(PduBuilder::state(
            TimelineEventType::RoomName,
            "",
            json!({ "name": name }),
        ))?;
    }
    if let Some(topic) = &body.topic {
        send(PduBuilder::state(
            TimelineEventType::RoomTopic,
            "",
            json!({ "topic": topic, "m.topic": { "m.text": [{ "body": topic }] } }),
        ))?;
    }
    let (local_invitees, remote_invitees): (Vec<_>, Vec<_>) = body
        .invite
        .iter()
        .partition(|invitee| invitee.server_name() == services.server_name());
    for invitee in local_invitees {
        let mut content = member_content(services, invitee, "invite")?;
        if body.is_direct {
            content["is_direct"] = json!(true);
        }
        send(PduBuilder::state(
            TimelineEventType::RoomMember,
            invitee.as_str(),
            content,
        ))?;
    }
    drop(guard);
    // Their servers countersign the invites (see `federation::membership::invite`).
    for invitee in remote_invitees {
        crate::service::federation::membership::invite(
            services,
            sender,
            &room_id,
            invitee,
            None,
            body.is_direct,
        )
        .await?;
    }

    if body.visibility == Visibility::Public {
        rooms.set_public(&room_id, true)?;
    }
    tracing::info!(%room_id, %sender, %version, "room created");
    Ok(room_id)
}

/// The `m.room.member` content for `user` with their profile's name and avatar.
pub fn member_content(services: &Services, user: &UserId, membership: &str) -> Result<Value> {
    let mut content = json!({ "membership": membership });
    if let Some(name) = services.users.profile_field(user, "displayname")? {
        content["displayname"] = name;
    }
    if let Some(avatar) = services.users.profile_field(user, "avatar_url")? {
        content["avatar_url"] = avatar;
    }
    Ok(content)
}

/// Default power levels (as Synapse sets them), adjusted for the preset and the client's
/// override. From room version 12 the creator's power is implicit and must not be listed.
fn power_levels(
    sender: &UserId,
    rules: &RoomVersionRules,
    preset: &str,
    body: &create_room::v3::Request,
    is_space: bool,
) -> Result<Value> {
    let mut users = Map::new();
    if !rules.authorization.explicitly_privilege_room_creators {
        users.insert(sender.to_string(), json!(100));
    }
    if preset == "trusted_private_chat" {
        for invitee in &body.invite {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let invite = if preset == "public_chat" { 50 } else { 0 };
    let mut content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": if is_space { 100 } else { 0 },
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": invite,
        "historical": 100,
    });
    if let Some(raw) = &body.power_level_content_override {
        let overrides = raw_object(raw)?;
        if let Some(object) = content.as_object_mut() {
            object.extend(overrides);
        }
    }
    Ok(content)
}
