//! Sending events and reading the timeline: `/send`, `/messages`, `/event`.

use std::sync::Arc;

use ruma::api::Direction;
use ruma::api::client::message::{get_message_events, send_message_event};
use ruma::api::client::room::get_room_event;
use ruma::events::TimelineEventType;
use serde_json::Value;

use super::membership::ensure_joined;
use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::pdu::{PduEvent, client_event};

/// Most events one `/messages` page returns.
const MAX_LIMIT: usize = 1000;

pub async fn send(
    services: Arc<Services>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<send_message_event::v3::Response> {
    let sender = request.user()?;
    let device = request.device()?;
    let body = &request.body;
    let txn_id = body.txn_id.as_str();
    // A retried transaction returns the event the first attempt created.
    if let Some(event_id) = services.rooms.txn_event(sender, device.as_str(), txn_id)? {
        return Ok(send_message_event::v3::Response::new(event_id));
    }
    let event_type = body.event_type.to_string();
    if event_type == "m.room.redaction" {
        return Err(Error::forbidden(
            "Use the /redact endpoint to redact events",
        ));
    }
    let content: Value =
        serde_json::from_str(body.body.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    let room_id = &body.room_id;
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let guard = services.rooms.lock_room(room_id).await;
    // Checked again under the lock: a concurrent retry may have finished meanwhile.
    if let Some(event_id) = services.rooms.txn_event(sender, device.as_str(), txn_id)? {
        return Ok(send_message_event::v3::Response::new(event_id));
    }
    let builder = PduBuilder::timeline(TimelineEventType::from(event_type.as_str()), content);
    let event_id = services
        .rooms
        .build_and_append(builder, sender, room_id, &guard)?;
    services
        .rooms
        .set_txn_event(sender, device.as_str(), txn_id, &event_id)?;
    Ok(send_message_event::v3::Response::new(event_id))
}

pub async fn get_event(
    services: Arc<Services>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<get_room_event::v3::Response> {
    let body = &request.body;
    ensure_joined(&services, request.user()?, &body.room_id)?;
    let json = services
        .rooms
        .get_pdu_json(&body.event_id)?
        .ok_or_else(|| Error::not_found("Event not found"))?;
    let pdu = PduEvent::from_json(&json)?;
    if pdu
        .room_id
        .as_deref()
        .is_some_and(|room| room != body.room_id)
    {
        return Err(Error::not_found("Event not found"));
    }
    Ok(get_room_event::v3::Response::new(client_event(
        &json,
        &body.room_id,
    )?))
}

/// Pagination tokens are stream counts: a token `c` sits just after the event numbered `c`,
/// so paginating backwards from it returns that event first.
fn parse_token(token: &str) -> Result<u64> {
    token
        .trim_start_matches('t')
        .parse()
        .map_err(|_| Error::invalid_param("Invalid pagination token"))
}

pub async fn messages(
    services: Arc<Services>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<get_message_events::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    ensure_joined(&services, request.user()?, room_id)?;
    let backwards = body.dir == Direction::Backward;
    let from = match &body.from {
        Some(token) => parse_token(token)?,
        None if backwards => services.rooms.latest_count(room_id)?,
        None => 0,
    };
    let to = body.to.as_deref().map(parse_token).transpose()?;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(MAX_LIMIT)
        .clamp(1, MAX_LIMIT);
    let filter = &body.filter;

    let mut chunk = Vec::new();
    let mut cursor = from;
    let mut exhausted = false;
    // Filtered-out events do not count towards the limit, so read in pages until full.
    while chunk.len() < limit {
        let start = if backwards {
            cursor.saturating_add(1)
        } else {
            cursor
        };
        let page = services
            .rooms
            .timeline_page(room_id, start, backwards, limit)?;
        if page.is_empty() {
            exhausted = true;
            break;
        }
        for (count, json) in page {
            if to.is_some_and(|to| if backwards { count <= to } else { count > to }) {
                exhausted = true;
                break;
            }
            cursor = if backwards { count - 1 } else { count };
            let pdu = PduEvent::from_json(&json)?;
            let kind = pdu.kind.to_string();
            if filter
                .types
                .as_ref()
                .is_some_and(|types| !types.iter().any(|t| type_matches(t, &kind)))
                || filter.not_types.iter().any(|t| type_matches(t, &kind))
                || filter
                    .senders
                    .as_ref()
                    .is_some_and(|s| !s.contains(&pdu.sender))
                || filter.not_senders.contains(&pdu.sender)
            {
                continue;
            }
            chunk.push(client_event(&json, room_id)?);
            if chunk.len() >= limit {
                break;
            }
        }
        if exhausted {
            break;
        }
    }
    let mut response = get_message_events::v3::Response::new();
    response.start = format!("t{from}");
    response.end = (!exhausted).then(|| format!("t{cursor}"));
    response.chunk = chunk;
    Ok(response)
}

/// Filter type patterns may end in `*`.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}
