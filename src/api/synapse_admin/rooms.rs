//! Rooms in Synapse's admin API: the list (paged, sorted, searched), one room's details and
//! its members.

use std::sync::Arc;

use ruma::RoomId;
use serde_json::{Value, json};

use super::endpoints::*;
use super::users::require_admin;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;

/// Synapse's room object.
fn room_json(services: &Services, room_id: &RoomId) -> Result<Value> {
    let rooms = &services.rooms;
    let summary = rooms.summary(room_id)?;
    let members = rooms.members(room_id)?;
    let joined: Vec<_> = members.iter().filter(|(_, m)| m == "join").collect();
    let local = joined
        .iter()
        .filter(|(user, _)| user.server_name() == services.server_name())
        .count();
    let creator = rooms
        .current_state_event(room_id, "m.room.create", "")?
        .map(|create| create.sender.to_string());
    let state_events = rooms.current_state(room_id)?.len();
    Ok(json!({
        "room_id": room_id,
        "name": summary.name,
        "topic": summary.topic,
        "avatar": summary.avatar_url,
        "canonical_alias": summary.canonical_alias,
        "joined_members": joined.len(),
        "joined_local_members": local,
        "joined_local_devices": null,
        "version": summary.room_version,
        "creator": creator,
        "encryption": summary.encryption,
        "federatable": true,
        "public": rooms.is_public(room_id)?,
        "join_rules": summary.join_rule,
        "guest_access": if summary.guest_can_join { "can_join" } else { "forbidden" },
        "history_visibility": rooms.history_visibility(room_id)?,
        "state_events": state_events,
        "room_type": summary.room_type,
        "blocked": rooms.is_blocked(room_id)?,
    }))
}

pub async fn list(services: Arc<Services>, request: Ruma<list_rooms::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let needle = query.search_term.as_deref().map(str::to_lowercase);
    let mut found = Vec::new();
    for room_id in services.rooms.room_ids()? {
        let room = room_json(&services, &room_id)?;
        if let Some(needle) = &needle {
            let matches = |field: &str| {
                room[field]
                    .as_str()
                    .is_some_and(|text| text.to_lowercase().contains(needle))
            };
            if !matches("name") && !matches("canonical_alias") && !matches("room_id") {
                continue;
            }
        }
        found.push(room);
    }
    // Synapse's default: by name; `size`/`joined_members` and `state_events` biggest first.
    let order_by = query.order_by.as_deref().unwrap_or("name");
    let key = match order_by {
        "name" | "canonical_alias" | "room_id" | "version" | "creator" | "join_rules"
        | "history_visibility" => order_by,
        "size" | "joined_members" => "joined_members",
        "joined_local_members" | "state_events" => order_by,
        other => {
            return Err(Error::invalid_param(format!(
                "Unknown value for order_by: {other}"
            )));
        }
    };
    found.sort_by(|a, b| match (&a[key], &b[key]) {
        (Value::Number(x), Value::Number(y)) => y.as_u64().cmp(&x.as_u64()),
        (x, y) => x.as_str().unwrap_or("").cmp(y.as_str().unwrap_or("")),
    });
    match query.dir.as_deref() {
        None | Some("f") => {}
        Some("b") => found.reverse(),
        Some(_) => return Err(Error::invalid_param("Unknown direction: use f or b")),
    }
    let total = found.len();
    let page: Vec<Value> = found.into_iter().skip(from).take(limit).collect();
    let mut answer = json!({ "rooms": page, "offset": from, "total_rooms": total });
    if from + limit < total {
        answer["next_batch"] = json!(from + limit);
    }
    if from > 0 {
        answer["prev_batch"] = json!(from.saturating_sub(limit));
    }
    Ok(RawJson(answer))
}

fn known_room(services: &Services, room_id: &RoomId) -> Result<()> {
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Room not found"));
    }
    Ok(())
}

pub async fn details(
    services: Arc<Services>,
    request: Ruma<room_details::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    known_room(&services, &request.body.room_id)?;
    Ok(RawJson(room_json(&services, &request.body.room_id)?))
}

pub async fn members(
    services: Arc<Services>,
    request: Ruma<room_members::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    known_room(&services, &request.body.room_id)?;
    let members: Vec<String> = services
        .rooms
        .members(&request.body.room_id)?
        .into_iter()
        .filter(|(_, membership)| membership == "join")
        .map(|(user, _)| user.to_string())
        .collect();
    Ok(RawJson(
        json!({ "total": members.len(), "members": members }),
    ))
}
