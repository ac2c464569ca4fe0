//! Sending events and reading the timeline: `/send`, `/messages`, `/event`, `/context`,
//! `/timestamp_to_event`.

use std::sync::Arc;

use ruma::api::Direction;
use ruma::api::client::context::get_context;
use ruma::api::client::filter::RoomEventFilter;
use ruma::api::client::message::{get_message_events, send_message_event};
use ruma::api::client::room::{get_event_by_timestamp, get_room_event};
use ruma::events::TimelineEventType;
use ruma::{RoomId, UserId};
use serde_json::Value;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::pdu::{PduEvent, client_event};
use crate::service::rooms::{PduBuilder, PduCount, StoredEvent};

/// Most events one page returns.
const MAX_LIMIT: usize = 1000;

pub async fn send(
    services: Arc<Services>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<send_message_event::v3::Response> {
    let sender = request.user()?;
    let device = request.txn_device()?;
    let device = &*device;
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
    let builder = PduBuilder::timeline(TimelineEventType::from(event_type.as_str()), content)
        .in_transaction(device, txn_id);
    let event_id = services
        .rooms
        .build_and_append(builder, sender, room_id, &guard)?;
    guard.release().await;
    Ok(send_message_event::v3::Response::new(event_id))
}

/// Reading a room's history needs membership now or before, or a world-readable room.
pub fn ensure_may_read(services: &Services, user: &UserId, room_id: &RoomId) -> Result<()> {
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    if !services.rooms.may_read_room(user, room_id)? {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    Ok(())
}

pub async fn get_event(
    services: Arc<Services>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<get_room_event::v3::Response> {
    let body = &request.body;
    let user = request.user()?;
    ensure_may_read(&services, user, &body.room_id)?;
    let not_found = || Error::not_found("Event not found");
    let json = services
        .rooms
        .get_timeline_pdu_json(&body.event_id)?
        .ok_or_else(not_found)?;
    let pdu = PduEvent::from_json(&json)?;
    if pdu
        .room_id
        .as_deref()
        .is_some_and(|room| room != body.room_id)
    {
        return Err(not_found());
    }
    if !services
        .rooms
        .visibility(user, &body.room_id)?
        .can_see(&pdu.event_id)?
    {
        return Err(not_found());
    }
    Ok(get_room_event::v3::Response::new(
        services
            .rooms
            .client_event_bundled(&json, &body.room_id, user)?,
    ))
}

/// Pagination tokens are timeline positions: a token `c` sits just after the event at `c`,
/// so paginating backwards from it returns that event first. Backfilled history has negative
/// positions (`t-5`).
pub fn parse_token(token: &str) -> Result<PduCount> {
    // `t` tokens come from /messages, `s` tokens from /sync: both are positions (a sync token
    // may carry a to-device position after `_`, which does not matter here).
    let token = token.split('_').next().unwrap_or(token);
    let invalid = || Error::invalid_param("Invalid pagination token");
    if let Some(stream) = token.strip_prefix('s') {
        return stream.parse().map(PduCount::normal).map_err(|_| invalid());
    }
    PduCount::parse(token.strip_prefix('t').unwrap_or(token)).ok_or_else(invalid)
}

/// A stream position from a token (`s` from /sync, `t` from /messages): for endpoints that
/// count stream positions (sync, key changes, notifications), where backfilled history has
/// no place.
pub fn parse_stream_token(token: &str) -> Result<u64> {
    let token = token.split('_').next().unwrap_or(token);
    token
        .strip_prefix('t')
        .or_else(|| token.strip_prefix('s'))
        .unwrap_or(token)
        .parse()
        .map_err(|_| Error::invalid_param("Invalid token"))
}

pub fn token(count: PduCount) -> String {
    count.token()
}

/// Whether an event passes the type and sender parts of a room event filter.
fn passes(filter: &RoomEventFilter, pdu: &PduEvent) -> bool {
    let kind = pdu.kind.to_string();
    let contains_url = pdu.content_value().get("url").is_some();
    !(filter
        .types
        .as_ref()
        .is_some_and(|types| !types.iter().any(|t| type_matches(t, &kind)))
        || filter.not_types.iter().any(|t| type_matches(t, &kind))
        || filter
            .senders
            .as_ref()
            .is_some_and(|s| !s.contains(&pdu.sender))
        || filter.not_senders.contains(&pdu.sender)
        || filter.url_filter.as_ref().is_some_and(|f| {
            matches!(f, ruma::api::client::filter::UrlFilter::EventsWithUrl) != contains_url
        }))
}

/// A page of filtered events from `from` in one direction that `user` may see (every event
/// for `None`: an administrator), and the token after it (`None` when the timeline, or `to`,
/// was reached).
#[allow(clippy::too_many_arguments)]
pub(crate) fn page(
    services: &Services,
    user: Option<&UserId>,
    room_id: &RoomId,
    from: PduCount,
    to: Option<PduCount>,
    backwards: bool,
    limit: usize,
    filter: Option<&RoomEventFilter>,
) -> Result<(Vec<StoredEvent>, Option<PduCount>)> {
    let mut visibility = user
        .map(|user| services.rooms.visibility(user, room_id))
        .transpose()?;
    let ignored = match user {
        Some(user) => services.account_data.ignored_users(user)?,
        None => Default::default(),
    };
    let mut events = Vec::new();
    let mut cursor = from;
    loop {
        let start = if backwards { cursor.next() } else { cursor };
        let batch = services
            .rooms
            .timeline_page(room_id, start, backwards, limit)?;
        if batch.is_empty() {
            return Ok((events, None));
        }
        for (count, json) in batch {
            if to.is_some_and(|to| if backwards { count <= to } else { count > to }) {
                return Ok((events, None));
            }
            cursor = if backwards { count.prev() } else { count };
            let pdu = PduEvent::from_json(&json)?;
            let visible = match &mut visibility {
                Some(visibility) => visibility.can_see_at(count, &pdu.event_id)?,
                None => true,
            };
            let hidden = ignored.hides(pdu.sender.as_str(), pdu.state_key.is_some());
            if filter.is_some_and(|f| !passes(f, &pdu)) || hidden || !visible {
                continue;
            }
            events.push((count, json));
            if events.len() >= limit {
                return Ok((events, Some(cursor)));
            }
        }
    }
}

/// How long a client's `/messages` waits for history from another server.
const BACKFILL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pages of history (100 events each) `timestamp_to_event` asks other servers for, at most.
const TIMESTAMP_BACKFILL_PAGES: usize = 10;

pub async fn messages(
    services: Arc<Services>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<get_message_events::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    let user = request.user()?;
    ensure_may_read(&services, user, room_id)?;
    let backwards = body.dir == Direction::Backward;
    let from = match &body.from {
        Some(token) => parse_token(token)?,
        None if backwards => services.rooms.latest_count(room_id)?,
        None => PduCount::MIN,
    };
    let to = body.to.as_deref().map(parse_token).transpose()?;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(MAX_LIMIT)
        .clamp(1, MAX_LIMIT);
    let read = || {
        page(
            &services,
            Some(user),
            room_id,
            from,
            to,
            backwards,
            limit,
            Some(&body.filter),
        )
    };
    let (mut events, mut next) = read()?;
    // Paging back past the oldest event held (a room joined through another server): the
    // room's other servers are asked for what came before.
    if backwards && next.is_none() && events.len() < limit && to.is_none() {
        let wanted = limit - events.len();
        let fetched = tokio::time::timeout(
            BACKFILL_WAIT,
            crate::service::federation::backfill::backfill(&services, room_id, wanted.max(10)),
        )
        .await;
        match fetched {
            Ok(Ok(placed)) if placed > 0 => (events, next) = read()?,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::info!(%room_id, %error, "backfill failed"),
            Err(_) => tracing::info!(%room_id, "backfill took too long; answering what is here"),
        }
    }

    let mut response = get_message_events::v3::Response::new();
    response.start = token(from);
    response.end = next.map(token);
    for (_, json) in &events {
        response
            .chunk
            .push(services.rooms.client_event_bundled(json, room_id, user)?);
    }
    if !body.filter.lazy_load_options.is_disabled() {
        response.state =
            member_events_for(&services, room_id, events.iter().map(|(_, json)| json))?;
    }
    Ok(response)
}

/// The current member events of the senders of `events` (for lazy-loading clients).
fn member_events_for<'a>(
    services: &Services,
    room_id: &RoomId,
    events: impl Iterator<Item = &'a Vec<u8>>,
) -> Result<Vec<ruma::serde::Raw<ruma::events::AnyStateEvent>>> {
    let mut senders = std::collections::BTreeSet::new();
    for json in events {
        senders.insert(PduEvent::from_json(json)?.sender);
    }
    let mut state = Vec::new();
    for sender in senders {
        if let Some(member) =
            services
                .rooms
                .current_state_event(room_id, "m.room.member", sender.as_str())?
            && let Some(json) = services.rooms.get_pdu_json(&member.event_id)?
        {
            state.push(client_event(&json, room_id)?.cast_unchecked());
        }
    }
    Ok(state)
}

pub async fn context(
    services: Arc<Services>,
    request: Ruma<get_context::v3::Request>,
) -> Result<get_context::v3::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    let user = request.user()?;
    ensure_may_read(&services, user, room_id)?;
    let not_found = || Error::not_found("Event not found");
    let (shortroomid, count) = services
        .rooms
        .pdu_position(&body.event_id)?
        .ok_or_else(not_found)?;
    if services.rooms.shortroomid(room_id)? != Some(shortroomid)
        || !services
            .rooms
            .visibility(user, room_id)?
            .can_see(&body.event_id)?
    {
        return Err(not_found());
    }
    let json = services
        .rooms
        .get_timeline_pdu_json(&body.event_id)?
        .ok_or_else(not_found)?;
    let limit = usize::try_from(u64::from(body.limit))
        .unwrap_or(10)
        .min(MAX_LIMIT);
    // Half the limit on each side, as Synapse does.
    let before_limit = limit / 2;
    let after_limit = limit - before_limit;
    let filter = Some(&body.filter);
    let (before, before_next) = if before_limit > 0 {
        page(
            &services,
            Some(user),
            room_id,
            count.prev(),
            None,
            true,
            before_limit,
            filter,
        )?
    } else {
        (Vec::new(), Some(count.prev()))
    };
    let (after, after_next) = if after_limit > 0 {
        page(
            &services,
            Some(user),
            room_id,
            count,
            None,
            false,
            after_limit,
            filter,
        )?
    } else {
        (Vec::new(), Some(count))
    };

    let mut response = get_context::v3::Response::new();
    response.event = Some(services.rooms.client_event_bundled(&json, room_id, user)?);
    response.start = Some(token(before_next.unwrap_or(PduCount::MIN)));
    response.end = Some(token(
        after_next.unwrap_or_else(|| after.last().map_or(count, |(c, _)| *c)),
    ));
    for (_, json) in &before {
        response
            .events_before
            .push(services.rooms.client_event_bundled(json, room_id, user)?);
    }
    for (_, json) in &after {
        response
            .events_after
            .push(services.rooms.client_event_bundled(json, room_id, user)?);
    }
    // The room state at the context's end.
    let last = after
        .last()
        .map(|(_, json)| PduEvent::from_json(json))
        .transpose()?;
    let anchor = last.map_or_else(|| body.event_id.clone(), |pdu| pdu.event_id);
    let state = match services.rooms.shorteventid(&anchor)? {
        Some(short) => services.rooms.state_after_event(short)?,
        None => None,
    }
    .unwrap_or_default();
    for shorteventid in state.values() {
        let event_id = services.rooms.event_id_of_short(*shorteventid)?;
        if let Some(json) = services.rooms.get_pdu_json(&event_id)? {
            response
                .state
                .push(client_event(&json, room_id)?.cast_unchecked());
        }
    }
    Ok(response)
}

pub async fn timestamp_to_event(
    services: Arc<Services>,
    request: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<get_event_by_timestamp::v1::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    let user = request.user()?;
    ensure_may_read(&services, user, room_id)?;
    let forwards = body.dir == Direction::Forward;
    let ts = u64::from(body.ts.get());
    let near = || -> Result<Option<crate::service::rooms::pdu::PduEvent>> {
        let mut visibility = services.rooms.visibility(user, room_id)?;
        services
            .rooms
            .event_near(room_id, ts, forwards, |_, event_id| {
                visibility.can_see(event_id)
            })
    };
    let mut found = near()?;
    // History from before the oldest event held (a room joined through another server) is
    // asked of the room's other servers, a page at a time, while the answer may lie there.
    let deadline = tokio::time::Instant::now() + BACKFILL_WAIT;
    for _ in 0..TIMESTAMP_BACKFILL_PAGES {
        let oldest = services.rooms.backfill_point(room_id)?;
        let may_be_older = match (&found, &oldest) {
            (_, None) => false,
            (None, Some(_)) => !forwards,
            (Some(pdu), Some((_, oldest))) => {
                forwards
                    && pdu.event_id == oldest.event_id
                    && u64::from(pdu.origin_server_ts.get()) > ts
            }
        };
        if !may_be_older {
            break;
        }
        let page = crate::service::federation::backfill::backfill(&services, room_id, 100);
        match tokio::time::timeout_at(deadline, page).await {
            Ok(Ok(placed)) if placed > 0 => found = near()?,
            Ok(Ok(_)) => break,
            Ok(Err(error)) => {
                tracing::info!(%room_id, %error, "backfill failed");
                break;
            }
            Err(_) => break,
        }
    }
    match found {
        Some(pdu) => Ok(get_event_by_timestamp::v1::Response::new(
            pdu.event_id,
            pdu.origin_server_ts,
        )),
        None => Err(Error::not_found("No event found in that direction")),
    }
}

/// Filter type patterns may end in `*`.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}
