//! Room state: read all of it, read one entry, set one entry.

use std::sync::Arc;

use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};
use ruma::events::TimelineEventType;
use serde_json::Value;

use super::membership::ensure_joined;
use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::pdu::client_event;

pub async fn get_all(
    services: Arc<Services>,
    request: Ruma<get_state_events::v3::Request>,
) -> Result<get_state_events::v3::Response> {
    let room_id = &request.body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    let state = services.rooms.current_state(room_id)?;
    let mut events = Vec::with_capacity(state.len());
    for shorteventid in state.values() {
        let event_id = services.rooms.event_id_of_short(*shorteventid)?;
        if let Some(json) = services.rooms.get_pdu_json(&event_id)? {
            events.push(client_event(&json, room_id)?.cast_unchecked());
        }
    }
    Ok(get_state_events::v3::Response::new(events))
}

pub async fn get_one(
    services: Arc<Services>,
    request: Ruma<get_state_event_for_key::v3::Request>,
) -> Result<get_state_event_for_key::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    let pdu = services
        .rooms
        .current_state_event(room_id, &body.event_type.to_string(), &body.state_key)?
        .ok_or_else(|| Error::not_found("No such state event"))?;
    let raw = match body.format {
        get_state_event_for_key::v3::StateEventFormat::Event => {
            let json = services
                .rooms
                .get_pdu_json(&pdu.event_id)?
                .ok_or_else(|| Error::not_found("No such state event"))?;
            client_event(&json, room_id)?.into_json()
        }
        _ => pdu.content.clone(),
    };
    Ok(get_state_event_for_key::v3::Response::new(raw))
}

pub async fn set(
    services: Arc<Services>,
    request: Ruma<send_state_event::v3::Request>,
) -> Result<send_state_event::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    let room_id = &body.room_id;
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let content: Value =
        serde_json::from_str(body.body.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    let event_type = body.event_type.to_string();
    if event_type == "m.room.create" {
        return Err(Error::forbidden("The create event cannot be replaced"));
    }
    if event_type == "m.room.canonical_alias" {
        validate_canonical_alias(&services, room_id, &content)?;
    }
    let guard = services.rooms.lock_room(room_id).await;
    let builder = PduBuilder::state(
        TimelineEventType::from(event_type.as_str()),
        body.state_key.clone(),
        content,
    );
    let event_id = services
        .rooms
        .build_and_append(builder, sender, room_id, &guard)?;
    guard.release().await;
    Ok(send_state_event::v3::Response::new(event_id))
}

/// A canonical alias (and each alternative) must be a valid alias that points to this room.
fn validate_canonical_alias(
    services: &Services,
    room_id: &ruma::RoomId,
    content: &Value,
) -> Result<()> {
    let bad = |message: String| Error::new(ErrorCode::BadAlias, message);
    let mut aliases: Vec<&Value> = content
        .get("alias")
        .into_iter()
        .filter(|v| !v.is_null())
        .collect();
    match content.get("alt_aliases") {
        Some(Value::Array(alt)) => aliases.extend(alt),
        Some(Value::Null) | None => {}
        Some(_) => return Err(Error::invalid_param("alt_aliases must be a list")),
    }
    for alias in aliases {
        let alias = alias
            .as_str()
            .and_then(|a| ruma::RoomAliasId::parse(a).ok())
            .ok_or_else(|| Error::invalid_param("Invalid room alias"))?;
        if alias.server_name() != services.server_name() {
            return Err(bad(format!("{alias} cannot be checked without federation")));
        }
        if services.rooms.resolve_alias(&alias)?.as_deref() != Some(room_id) {
            return Err(bad(format!("{alias} does not point to this room")));
        }
    }
    Ok(())
}
