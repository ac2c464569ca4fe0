//! Events and state other servers ask for: one event, the state at an event, auth chains,
//! missing events and backfill — each only what the room's history visibility lets the
//! asking server see.

use std::sync::Arc;

use ruma::api::federation::authorization::get_event_authorization;
use ruma::api::federation::backfill::get_backfill;
use ruma::api::federation::event::{
    get_event, get_missing_events, get_room_state, get_room_state_ids,
};
use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, RoomId, ServerName};
use serde_json::value::RawValue;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;

/// Most events answered by backfill or missing events.
const MAX_EVENTS: usize = 100;

fn not_found() -> Error {
    Error::not_found("Event not found")
}

/// The origin must have had a member in the room (or the room be world-readable) to ask
/// about it; which events it sees is then decided event by event (a server whose users left
/// or were banned still receives the history up to then, to place its own leave or ban).
fn ensure_may_ask(services: &Services, origin: &ServerName, room_id: &RoomId) -> Result<()> {
    let rooms = &services.rooms;
    if !rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    rooms.check_server_acl(room_id, origin)?;
    if rooms.server_ever_in_room(origin, room_id)?
        || rooms.history_visibility(room_id)? == "world_readable"
    {
        return Ok(());
    }
    Err(Error::forbidden("Your server is not in this room"))
}

/// Stored events in their federation form (those not stored left out).
pub(super) fn wire_list(services: &Services, ids: &[OwnedEventId]) -> Result<Vec<Box<RawValue>>> {
    let mut list = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((_, raw)) = services.rooms.wire_pdu(id)? {
            list.push(raw);
        }
    }
    Ok(list)
}

/// `GET /_matrix/federation/v1/event/{eventId}`.
pub async fn event(
    services: Arc<Services>,
    request: Ruma<get_event::v1::Request>,
) -> Result<get_event::v1::Response> {
    let origin = request.origin()?;
    let event_id = &request.body.event_id;
    let (pdu, raw) = services.rooms.wire_pdu(event_id)?.ok_or_else(not_found)?;
    let room_id = match &pdu.room_id {
        Some(room_id) => room_id.clone(),
        None => RoomId::parse(format!("!{}", event_id.as_str().trim_start_matches('$')))
            .map_err(Error::internal)?,
    };
    ensure_may_ask(&services, origin, &room_id)?;
    if !services
        .rooms
        .server_visibility(origin, &room_id)?
        .can_see(event_id)?
    {
        return Err(not_found());
    }
    Ok(get_event::v1::Response::new(
        services.server_name().to_owned(),
        MilliSecondsSinceUnixEpoch::now(),
        raw,
    ))
}

/// The event a room's request names must be in that room, and visible to the origin.
fn ensure_visible_in_room(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<()> {
    ensure_may_ask(services, origin, room_id)?;
    let pdu = services.rooms.get_pdu(event_id)?.ok_or_else(not_found)?;
    if pdu.room_id.as_deref().is_some_and(|room| room != room_id)
        || !services
            .rooms
            .server_visibility(origin, room_id)?
            .can_see(event_id)?
    {
        return Err(not_found());
    }
    Ok(())
}

/// The federation form of those of `events` the origin may see.
fn visible_wire(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    events: Vec<crate::service::rooms::pdu::PduEvent>,
) -> Result<Vec<Box<RawValue>>> {
    let mut visibility = services.rooms.server_visibility(origin, room_id)?;
    let mut out = Vec::with_capacity(events.len());
    for pdu in events {
        if visibility.can_see(&pdu.event_id)?
            && let Some((_, raw)) = services.rooms.wire_pdu(&pdu.event_id)?
        {
            out.push(raw);
        }
    }
    Ok(out)
}

/// The state before an event and its auth chain, as `/state` and `/state_ids` answer.
fn state_and_chain(
    services: &Services,
    event_id: &EventId,
) -> Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)> {
    let state = services
        .rooms
        .state_ids_before(event_id)?
        .ok_or_else(|| Error::not_found("The state at this event is not known here"))?;
    let auth_chain = services.rooms.auth_chain_ids(&state)?;
    Ok((state, auth_chain))
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`.
pub async fn state_ids(
    services: Arc<Services>,
    request: Ruma<get_room_state_ids::v1::Request>,
) -> Result<get_room_state_ids::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_visible_in_room(&services, origin, &body.room_id, &body.event_id)?;
    let (state, auth_chain) = state_and_chain(&services, &body.event_id)?;
    Ok(get_room_state_ids::v1::Response::new(auth_chain, state))
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=`.
pub async fn state(
    services: Arc<Services>,
    request: Ruma<get_room_state::v1::Request>,
) -> Result<get_room_state::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_visible_in_room(&services, origin, &body.room_id, &body.event_id)?;
    let (state, auth_chain) = state_and_chain(&services, &body.event_id)?;
    Ok(get_room_state::v1::Response::new(
        wire_list(&services, &auth_chain)?,
        wire_list(&services, &state)?,
    ))
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`.
pub async fn event_auth(
    services: Arc<Services>,
    request: Ruma<get_event_authorization::v1::Request>,
) -> Result<get_event_authorization::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_visible_in_room(&services, origin, &body.room_id, &body.event_id)?;
    let chain = services
        .rooms
        .auth_chain_ids(std::slice::from_ref(&body.event_id))?;
    Ok(get_event_authorization::v1::Response::new(wire_list(
        &services, &chain,
    )?))
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`: the events before
/// `latest_events` back to `earliest_events`, oldest first.
pub async fn missing_events(
    services: Arc<Services>,
    request: Ruma<get_missing_events::v1::Request>,
) -> Result<get_missing_events::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_may_ask(&services, origin, &body.room_id)?;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(MAX_EVENTS)
        .min(MAX_EVENTS);
    let min_depth = u64::from(body.min_depth);
    let mut found = services.rooms.walk_back(
        &body.room_id,
        &body.latest_events,
        &body.earliest_events,
        false,
        limit,
    )?;
    found.retain(|pdu| u64::from(pdu.depth) >= min_depth);
    found.reverse();
    let events = visible_wire(&services, origin, &body.room_id, found)?;
    Ok(get_missing_events::v1::Response::new(events))
}

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`: events from `v` backwards.
pub async fn backfill(
    services: Arc<Services>,
    request: Ruma<get_backfill::v1::Request>,
) -> Result<get_backfill::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_may_ask(&services, origin, &body.room_id)?;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(MAX_EVENTS)
        .min(MAX_EVENTS);
    let found = services
        .rooms
        .walk_back(&body.room_id, &body.v, &[], true, limit)?;
    let pdus = visible_wire(&services, origin, &body.room_id, found)?;
    Ok(get_backfill::v1::Response::new(
        services.server_name().to_owned(),
        MilliSecondsSinceUnixEpoch::now(),
        pdus,
    ))
}

/// `GET /_matrix/federation/v1/timestamp_to_event/{roomId}`: the event closest to a time in
/// the given direction, among those the asking server may see.
pub async fn timestamp_to_event(
    services: Arc<Services>,
    request: Ruma<ruma::api::federation::event::get_event_by_timestamp::v1::Request>,
) -> Result<ruma::api::federation::event::get_event_by_timestamp::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_may_ask(&services, origin, &body.room_id)?;
    let mut visibility = services.rooms.server_visibility(origin, &body.room_id)?;
    let forwards = body.dir == ruma::api::Direction::Forward;
    match services.rooms.event_near(
        &body.room_id,
        u64::from(body.ts.get()),
        forwards,
        |_, event_id| visibility.can_see(event_id),
    )? {
        Some(pdu) => Ok(
            ruma::api::federation::event::get_event_by_timestamp::v1::Response::new(
                pdu.event_id,
                pdu.origin_server_ts,
            ),
        ),
        None => Err(Error::not_found("No event found in that direction")),
    }
}
