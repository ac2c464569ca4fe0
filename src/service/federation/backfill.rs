//! Asking the room's other servers for history from before the oldest event held, when a
//! client pages back past it (`/messages`).

use ruma::{CanonicalJsonObject, OwnedEventId, RoomId};

use super::incoming::{self, Checked, signed, utf8_percent_encode};
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::error::PduError;
use crate::service::rooms::receive::Received;

/// Most events asked for in one request.
const MAX_BACKFILL: usize = 100;

/// Fetches up to `limit` events before the room's oldest held event from one of its other
/// servers and places them; answers how many were placed.
pub async fn backfill(services: &Services, room_id: &RoomId, limit: usize) -> Result<usize> {
    let rooms = &services.rooms;
    let Some((_, oldest)) = rooms.backfill_point(room_id)? else {
        return Ok(0);
    };
    let mut from: Vec<OwnedEventId> = Vec::new();
    for prev in &oldest.prev_events {
        if !rooms.is_in_timeline(prev)? {
            from.push(prev.clone());
        }
    }
    if from.is_empty() {
        return Ok(0);
    }
    let rules = rooms.rules(room_id)?;
    let limit = limit.clamp(1, MAX_BACKFILL);
    let servers = rooms.remote_servers(room_id)?;
    for server in servers.iter() {
        let query: Vec<String> = from
            .iter()
            .map(|id| format!("v={}", utf8_percent_encode(id.as_str())))
            .collect();
        let path = format!(
            "/_matrix/federation/v1/backfill/{}?limit={limit}&{}",
            utf8_percent_encode(room_id.as_str()),
            query.join("&")
        );
        let answer = match signed(services, http::Method::GET, server, &path, None, 16 << 20).await
        {
            Ok(answer) => answer,
            Err(error) => {
                tracing::info!(%server, %room_id, %error, "backfill failed");
                continue;
            }
        };
        let mut events: Vec<Checked> = Vec::new();
        for value in answer["pdus"].as_array().into_iter().flatten() {
            let Ok(object) = serde_json::from_value::<CanonicalJsonObject>(value.clone()) else {
                continue;
            };
            match incoming::check_pdu(services, &rules, object).await {
                Ok(checked) if belongs_to(&checked, room_id) => events.push(checked),
                Ok(_) => {}
                Err(error) => {
                    tracing::info!(%server, %error, "a backfilled event failed its checks")
                }
            }
        }
        // Newest first: each event's child is placed before it.
        events.sort_by_key(|c| std::cmp::Reverse(u64::from(c.pdu.depth)));
        let mut placed_ids: Vec<(OwnedEventId, Vec<OwnedEventId>)> =
            vec![(oldest.event_id.clone(), oldest.prev_events.clone())];
        let mut placed = 0;
        for checked in events {
            let id = checked.pdu.event_id.clone();
            let child = placed_ids
                .iter()
                .find(|(_, prevs)| prevs.contains(&id))
                .map(|(child, _)| child.clone());
            let mut budget = MAX_BACKFILL;
            let missing = rooms.missing_auth_events(&rules, &checked.pdu)?;
            if !missing.is_empty()
                && let Err(error) =
                    incoming::fetch_auth_events(services, server, &rules, missing, &mut budget)
                        .await
            {
                tracing::info!(%server, event_id = %id, %error, "auth events of a backfilled event missing");
                continue;
            }
            let guard = rooms.lock_room(room_id).await;
            let result = rooms.place_backfilled(
                &guard,
                room_id,
                &rules,
                &checked.pdu,
                checked.object,
                child.as_ref(),
            );
            guard.release().await;
            match result {
                Ok((Received::Timeline, purge)) => {
                    super::incoming::purge_later(services, purge);
                    placed += 1;
                    placed_ids.push((id, checked.pdu.prev_events.clone()));
                }
                Ok(_) => {}
                Err(PduError::Storage(error)) => return Err(error),
                Err(error) => {
                    tracing::info!(%server, event_id = %id, %error, "a backfilled event was not placed")
                }
            }
        }
        return Ok(placed);
    }
    Ok(0)
}

/// Whether a fetched event is of `room_id`. The create event of a room version 12 room names
/// no room: the room's ID is made from the create event's.
fn belongs_to(checked: &Checked, room_id: &RoomId) -> bool {
    match checked.pdu.room_id.as_deref() {
        Some(room) => room == room_id,
        None => {
            checked.pdu.kind == ruma::events::TimelineEventType::RoomCreate
                && checked.pdu.event_id.as_str().get(1..) == room_id.as_str().get(1..)
        }
    }
}
