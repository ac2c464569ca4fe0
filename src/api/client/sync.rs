//! `GET /sync`, and the ephemeral inputs it reports: typing, receipts, read markers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ruma::api::client::filter::FilterDefinition;
use ruma::api::client::read_marker::set_read_marker;
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::sync::sync_events;
use ruma::api::client::typing::create_typing_event;
use ruma::{DeviceId, EventId, RoomId, UserId};
use serde_json::json;

use super::membership::ensure_joined;
use super::message::parse_stream_token;
use crate::api::Ruma;
use crate::api::router::{JsonBody, RawJson};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::federation::edus;
use crate::service::rooms::PduCount;
use crate::service::sync::json::Json;
use crate::service::sync::{SyncRequest, sync_once};

/// Longest a /sync may wait for news.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

type Wake = Pin<Box<dyn Future<Output = ()> + Send>>;

pub async fn sync(
    services: Arc<Services>,
    request: Ruma<sync_events::v3::Request>,
) -> Result<JsonBody<Json>> {
    let user_id = request.user()?;
    let body = &request.body;
    let (since, since_to_device) = match body.since.as_deref() {
        Some(token) => {
            let (since, to_device) = parse_sync_token(token)?;
            (Some(since), to_device)
        }
        None => (None, None),
    };
    let filter = match &body.filter {
        None => FilterDefinition::default(),
        Some(sync_events::v3::Filter::FilterDefinition(filter)) => filter.clone(),
        Some(sync_events::v3::Filter::FilterId(id)) => {
            let stored = services
                .account_data
                .filter(user_id, id)?
                .ok_or_else(|| Error::invalid_param("Unknown filter ID"))?;
            serde_json::from_value(stored)?
        }
        Some(_) => return Err(Error::invalid_param("Unsupported filter")),
    };
    let sync = SyncRequest {
        user_id,
        device_id: request.device()?,
        since,
        since_to_device,
        full_state: body.full_state,
        filter,
        ignored: services.account_data.ignored_users(user_id)?,
    };
    let timeout = body.timeout.unwrap_or_default().min(MAX_TIMEOUT);
    // Syncing marks the user active unless the client says otherwise.
    if services.config.allow_presence {
        let state = body.set_presence.to_string();
        if state != "offline" {
            crate::service::federation::edus::set_presence(&services, user_id, &state, None)?;
        }
    }

    // Register for wake-ups before reading, so nothing written meanwhile is missed.
    let waits = (since.is_some() && !timeout.is_zero())
        .then(|| wake_ups(&services, user_id, sync.device_id))
        .transpose()?;
    let response = sync_once(&services, &sync)?;
    let Some(waits) = waits else {
        return Ok(JsonBody(response.body));
    };
    if response.has_updates || body.full_state {
        return Ok(JsonBody(response.body));
    }
    let _waiting = services
        .metrics
        .as_ref()
        .map(|metrics| metrics.sync_waiting());
    let _ = tokio::time::timeout(timeout, futures_util::future::select_all(waits)).await;
    Ok(JsonBody(sync_once(&services, &sync)?.body))
}

/// Futures that resolve when something the user's sync would report changes.
pub(crate) fn wake_ups(
    services: &Services,
    user_id: &UserId,
    device_id: &DeviceId,
) -> Result<Vec<Wake>> {
    let mut stopping = services.shutdown.subscribe();
    let mut waits: Vec<Wake> = vec![
        Box::pin(services.rooms.watch_user_rooms(user_id)),
        Box::pin(services.account_data.watch(user_id)),
        Box::pin(services.to_device.watch(user_id, device_id)),
        Box::pin(services.keys.watch_device_lists(user_id)),
        Box::pin(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        }),
    ];
    for room_id in services.rooms.rooms_with_membership(user_id, "join")? {
        waits.push(Box::pin(services.typing.watch(&room_id)));
        waits.push(Box::pin(services.receipts.watch(&room_id)));
    }
    Ok(waits)
}

/// A /sync token: `s<position>`, with `_<position>` appended when to-device messages were held
/// back (where the device's queue stands).
fn parse_sync_token(token: &str) -> Result<(u64, Option<u64>)> {
    let (main, to_device) = match token.split_once('_') {
        Some((main, to_device)) => (main, Some(to_device)),
        None => (token, None),
    };
    let since = parse_stream_token(main)?;
    let to_device = to_device
        .map(|d| {
            d.parse::<u64>()
                .map_err(|_| Error::invalid_param("Invalid sync token"))
        })
        .transpose()?
        .map(|d| d.min(since));
    Ok((since, to_device))
}

pub async fn typing(
    services: Arc<Services>,
    request: Ruma<create_typing_event::v3::Request>,
) -> Result<create_typing_event::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    if body.user_id != sender {
        return Err(Error::forbidden("You can only set your own typing state"));
    }
    ensure_joined(&services, sender, &body.room_id)?;
    let timeout = match &body.state {
        create_typing_event::v3::Typing::Yes(info) => Some(info.timeout),
        _ => None,
    };
    services.typing.set(&body.room_id, sender, timeout)?;
    services
        .appservices
        .queue
        .typing_changed(&services, &body.room_id);
    edus::send_typing(&services, &body.room_id, sender, timeout.is_some())?;
    Ok(create_typing_event::v3::Response::new())
}

/// The event must be one of the room's.
fn ensure_event_in_room(services: &Services, room_id: &RoomId, event_id: &EventId) -> Result<()> {
    let shortroomid = services.rooms.shortroomid(room_id)?;
    match services.rooms.pdu_position(event_id)? {
        Some((room, _)) if Some(room) == shortroomid => Ok(()),
        _ => Err(Error::not_found("Event not found in this room")),
    }
}

fn set_fully_read(
    services: &Services,
    user_id: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<()> {
    services.account_data.set(
        user_id,
        Some(room_id),
        "m.fully_read",
        &json!({ "event_id": event_id }),
    )
}

pub async fn receipt(
    services: Arc<Services>,
    request: Ruma<create_receipt::v3::Request>,
) -> Result<create_receipt::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    ensure_joined(&services, sender, &body.room_id)?;
    ensure_event_in_room(&services, &body.room_id, &body.event_id)?;
    let kind = body.receipt_type.to_string();
    match kind.as_str() {
        "m.fully_read" => set_fully_read(&services, sender, &body.room_id, &body.event_id)?,
        "m.read" | "m.read.private" => {
            services.receipts.set(
                &body.room_id,
                sender,
                &kind,
                &body.event_id,
                body.thread.as_str(),
            )?;
            services.pushers.delivery.badge_changed(&services, sender)?;
            if kind == "m.read" {
                services.appservices.queue.receipt(
                    &services,
                    &body.room_id,
                    sender,
                    &body.event_id,
                    body.thread.as_str(),
                );
                edus::send_receipt(
                    &services,
                    &body.room_id,
                    sender,
                    &body.event_id,
                    body.thread.as_str(),
                )?;
            }
        }
        _ => return Err(Error::invalid_param("Unknown receipt type")),
    }
    Ok(create_receipt::v3::Response::new())
}

pub async fn read_markers(
    services: Arc<Services>,
    request: Ruma<set_read_marker::v3::Request>,
) -> Result<set_read_marker::v3::Response> {
    let sender = request.user()?;
    let body = &request.body;
    let room_id = &body.room_id;
    ensure_joined(&services, sender, room_id)?;
    if let Some(event_id) = &body.fully_read {
        ensure_event_in_room(&services, room_id, event_id)?;
        set_fully_read(&services, sender, room_id, event_id)?;
    }
    for (kind, event_id) in [
        ("m.read", &body.read_receipt),
        ("m.read.private", &body.private_read_receipt),
    ] {
        if let Some(event_id) = event_id {
            ensure_event_in_room(&services, room_id, event_id)?;
            services
                .receipts
                .set(room_id, sender, kind, event_id, None)?;
            services.pushers.delivery.badge_changed(&services, sender)?;
            if kind == "m.read" {
                edus::send_receipt(&services, room_id, sender, event_id, None)?;
            }
        }
    }
    Ok(set_read_marker::v3::Response::new())
}

/// `GET /notifications`: events that notified the user, newest first.
pub async fn notifications(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::push::get_notifications::v3::Request>,
) -> Result<RawJson> {
    let user_id = request.user()?;
    let body = &request.body;
    let before = match &body.from {
        Some(from) => parse_stream_token(from)?,
        None => u64::MAX,
    };
    let limit = body
        .limit
        .map_or(50, |l| usize::try_from(u64::from(l)).unwrap_or(50))
        .clamp(1, 1000);
    let only_highlight = body.only.as_deref() == Some("highlight");
    let mut notifications = Vec::new();
    let mut cursor = before;
    let mut next_token = None;
    'pages: loop {
        let page = services.push.notifications(user_id, cursor, limit)?;
        if page.is_empty() {
            break;
        }
        for (count, record) in page {
            cursor = count;
            let actions = record.get("actions").cloned().unwrap_or_else(|| json!([]));
            let highlight = actions.as_array().is_some_and(|a| {
                a.iter().any(|action| {
                    action.get("set_tweak") == Some(&json!("highlight"))
                        && action.get("value") != Some(&json!(false))
                })
            });
            if only_highlight && !highlight {
                continue;
            }
            let (Some(room_id), Some(event_id)) = (
                record
                    .get("room_id")
                    .and_then(|r| r.as_str())
                    .and_then(|r| ruma::RoomId::parse(r).ok()),
                record
                    .get("event_id")
                    .and_then(|e| e.as_str())
                    .and_then(|e| ruma::EventId::parse(e).ok()),
            ) else {
                continue;
            };
            let Some(json) = services.rooms.get_pdu_json(&event_id)? else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(
                crate::service::rooms::pdu::client_event(&json, &room_id)?
                    .json()
                    .get(),
            )?;
            let read = services
                .receipts
                .latest(&room_id, user_id, "m.read")?
                .and_then(|receipt| {
                    services
                        .rooms
                        .pdu_position(&receipt.event_id)
                        .ok()
                        .flatten()
                })
                .is_some_and(|(_, read_count)| read_count >= PduCount::normal(count));
            notifications.push(json!({
                "actions": actions,
                "event": event,
                "read": read,
                "room_id": room_id,
                "ts": record.get("ts").cloned().unwrap_or_else(|| json!(0)),
            }));
            if notifications.len() >= limit {
                next_token = Some(format!("t{count}"));
                break 'pages;
            }
        }
    }
    let mut response = json!({ "notifications": notifications });
    if let Some(next) = next_token {
        response["next_token"] = json!(next);
    }
    Ok(RawJson(response))
}

/// Whether `viewer` may see `user`'s presence: themselves, or someone sharing a room.
fn may_see_presence(services: &Services, viewer: &UserId, user: &UserId) -> Result<bool> {
    if viewer == user {
        return Ok(true);
    }
    let theirs = services.rooms.rooms_with_membership(user, "join")?;
    Ok(services
        .rooms
        .rooms_with_membership(viewer, "join")?
        .iter()
        .any(|room| theirs.contains(room)))
}

pub async fn get_presence(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::presence::get_presence::v3::Request>,
) -> Result<RawJson> {
    let viewer = request.user()?;
    let user = &request.body.user_id;
    // Another server's user: known here only as their server told us.
    let known = if user.server_name() == services.server_name() {
        services.users.exists(user)?
    } else {
        services.presence.get(user)?.is_some()
    };
    if !known {
        return Err(Error::not_found("Unknown user"));
    }
    if !services.config.allow_presence {
        return Ok(RawJson(json!({ "presence": "offline" })));
    }
    if !may_see_presence(&services, viewer, user)? {
        return Err(Error::forbidden("You do not share a room with this user"));
    }
    Ok(RawJson(
        services
            .presence
            .get(user)?
            .unwrap_or_else(|| json!({ "presence": "offline" })),
    ))
}

pub async fn set_presence(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::presence::set_presence::v3::Request>,
) -> Result<ruma::api::client::presence::set_presence::v3::Response> {
    let user = request.user()?;
    let body = &request.body;
    if body.user_id != user {
        return Err(Error::forbidden("You can only set your own presence"));
    }
    if services.config.allow_presence {
        crate::service::federation::edus::set_presence(
            &services,
            user,
            body.presence.as_ref(),
            Some(body.status_msg.clone()),
        )?;
    }
    Ok(ruma::api::client::presence::set_presence::v3::Response::new())
}
