//! Acting on rooms through Synapse's admin API: reading a room's state and messages as an
//! administrator, deleting a room (at once, or in the background with a status to poll),
//! forward extremities, force-joining a user and making a user a room admin.

use std::sync::Arc;

use ruma::RoomId;
use serde_json::{Value, json};

use super::endpoints::*;
use super::users::{local_account, require_admin};
use crate::api::Ruma;
use crate::api::client::message::{page, parse_token, token};
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::moderation::{Deletion, Shutdown, ShutdownReport, ShutdownSummary};
use crate::service::rooms::pdu::client_event;

fn known_room(services: &Services, room_id: &RoomId) -> Result<()> {
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Room not found"));
    }
    Ok(())
}

pub async fn state(services: Arc<Services>, request: Ruma<room_state::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    known_room(&services, room_id)?;
    let mut events = Vec::new();
    for shorteventid in services.rooms.current_state(room_id)?.values() {
        let event_id = services.rooms.event_id_of_short(*shorteventid)?;
        if let Some(json) = services.rooms.get_pdu_json(&event_id)? {
            events.push(serde_json::from_str::<Value>(
                client_event(&json, room_id)?.json().get(),
            )?);
        }
    }
    Ok(RawJson(json!({ "state": events })))
}

/// Like the client's `/messages`, but every event is visible, and the direction defaults to
/// forwards (Synapse's admin defaults: `dir=f`, `limit=10`).
pub async fn messages(
    services: Arc<Services>,
    request: Ruma<room_messages::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    let room_id = &query.room_id;
    known_room(&services, room_id)?;
    let backwards = match query.dir.as_deref() {
        None | Some("f") => false,
        Some("b") => true,
        Some(_) => return Err(Error::invalid_param("Unknown direction: use f or b")),
    };
    let from = match query.from.as_deref() {
        Some(from) => parse_token(from)?,
        None if backwards => services.rooms.latest_count(room_id)?,
        None => crate::service::rooms::PduCount::MIN,
    };
    let to = query.to.as_deref().map(parse_token).transpose()?;
    let limit = query
        .limit
        .map_or(10, |l| usize::try_from(u64::from(l)).unwrap_or(1000))
        .clamp(1, 1000);
    let filter: Option<ruma::api::client::filter::RoomEventFilter> = query
        .filter
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| Error::invalid_param(format!("filter is not a room event filter: {e}")))?;
    let (events, next) = page(
        &services,
        None,
        room_id,
        from,
        to,
        backwards,
        limit,
        filter.as_ref(),
    )?;
    let mut chunk = Vec::with_capacity(events.len());
    for (_, json) in &events {
        chunk.push(serde_json::from_str::<Value>(
            client_event(json, room_id)?.json().get(),
        )?);
    }
    let mut answer = json!({ "chunk": chunk, "start": token(from) });
    if let Some(next) = next {
        answer["end"] = json!(token(next));
    }
    Ok(RawJson(answer))
}

pub async fn forward_extremities(
    services: Arc<Services>,
    request: Ruma<forward_extremities::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    known_room(&services, room_id)?;
    let mut results = Vec::new();
    for event_id in services.rooms.forward_extremities(room_id)? {
        let Some(pdu) = services.rooms.get_pdu(&event_id)? else {
            continue;
        };
        let state_group = match services.rooms.shorteventid(&event_id)? {
            Some(short) => services.rooms.state_hash_after(short)?,
            None => None,
        };
        results.push(json!({
            "event_id": event_id,
            "state_group": state_group,
            "depth": pdu.depth,
            "received_ts": pdu.origin_server_ts,
        }));
    }
    Ok(RawJson(
        json!({ "count": results.len(), "results": results }),
    ))
}

pub async fn delete_forward_extremities(
    services: Arc<Services>,
    request: Ruma<delete_forward_extremities::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    known_room(&services, room_id)?;
    let result = services.rooms.keep_newest_extremity(room_id).await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!("DELETE /_synapse/admin/v1/rooms/{room_id}/forward_extremities"),
        result.is_ok(),
    );
    Ok(RawJson(json!({ "deleted": result? })))
}

fn shutdown_options(body: &DeleteRoomBody) -> Shutdown {
    Shutdown {
        message: body.message.clone(),
        block: body.block.unwrap_or(false),
        purge: body.purge.unwrap_or(true),
        new_room_user: body.new_room_user_id.clone(),
        new_room_name: body.room_name.clone(),
    }
}

fn summary_json(summary: &ShutdownSummary) -> Value {
    json!({
        "kicked_users": summary.kicked_users,
        "failed_to_kick_users": summary.failed_to_kick_users,
        "local_aliases": summary.local_aliases,
        "new_room_id": summary.new_room_id,
    })
}

fn check_new_room_user(services: &Services, body: &DeleteRoomBody) -> Result<()> {
    if let Some(user) = &body.new_room_user_id {
        local_account(services, user)?;
    }
    Ok(())
}

/// `DELETE /v1/rooms/{room}`: shuts the room down (and purges it, by default) before
/// answering.
pub async fn delete_room(
    services: Arc<Services>,
    request: Ruma<delete_room::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    known_room(&services, room_id)?;
    let body = &request.body.body;
    check_new_room_user(&services, body)?;
    let result = services
        .shutdown_room(room_id, &shutdown_options(body))
        .await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "DELETE /_synapse/admin/v1/rooms/{room_id} ({})",
            describe(body)
        ),
        result.is_ok(),
    );
    let report: ShutdownReport = result?;
    Ok(RawJson(summary_json(&report.summary())))
}

/// `DELETE /v2/rooms/{room}`: the same in the background; answers with the deletion's ID.
pub async fn delete_room_v2(
    services: Arc<Services>,
    request: Ruma<delete_room_v2::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let room_id = request.body.room_id.clone();
    known_room(&services, &room_id)?;
    let body = request.body.body.clone();
    check_new_room_user(&services, &body)?;
    let delete_id = services.room_deletions.start(&room_id)?;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!(
            "DELETE /_synapse/admin/v2/rooms/{room_id} ({}; delete_id {delete_id})",
            describe(&body)
        ),
        true,
    );
    let task = Arc::clone(&services);
    let id = delete_id.clone();
    tokio::spawn(async move {
        let outcome = task.shutdown_room(&room_id, &shutdown_options(&body)).await;
        if let Err(error) = &outcome {
            tracing::error!(%error, %room_id, "room deletion failed");
        }
        task.room_deletions.finish(&id, outcome);
    });
    Ok(RawJson(json!({ "delete_id": delete_id })))
}

/// The options of a deletion, for the audit log.
fn describe(body: &DeleteRoomBody) -> String {
    format!(
        "block: {}, purge: {}{}",
        body.block.unwrap_or(false),
        body.purge.unwrap_or(true),
        body.new_room_user_id
            .as_ref()
            .map(|user| format!(", new room by {user}"))
            .unwrap_or_default()
    )
}

fn deletion_json(task: &Deletion) -> Value {
    let mut answer = json!({
        "delete_id": task.delete_id,
        "room_id": task.room_id,
        "status": task.status,
        "shutdown_room": task.report.as_ref().map(summary_json),
    });
    if let Some(error) = &task.error {
        answer["error"] = json!(error);
    }
    answer
}

pub async fn room_delete_status(
    services: Arc<Services>,
    request: Ruma<room_delete_status::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    let tasks = services.room_deletions.by_room(room_id);
    if tasks.is_empty() {
        return Err(Error::not_found(format!(
            "No delete task for room_id '{room_id}' found"
        )));
    }
    let results: Vec<Value> = tasks.iter().map(deletion_json).collect();
    Ok(RawJson(json!({ "results": results })))
}

pub async fn delete_status(
    services: Arc<Services>,
    request: Ruma<delete_status::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let delete_id = &request.body.delete_id;
    let task = services
        .room_deletions
        .by_id(delete_id)
        .ok_or_else(|| Error::not_found(format!("delete id '{delete_id}' not found")))?;
    Ok(RawJson(deletion_json(&task)))
}

/// The room of a path that holds a room ID or alias.
fn room_of(services: &Services, room: &str) -> Result<ruma::OwnedRoomId> {
    crate::admin::room_arg(services, room).map_err(|error| match error {
        Error::Matrix { status, .. } if status == http::StatusCode::NOT_FOUND => {
            Error::not_found("Room not found")
        }
        other => other,
    })
}

pub async fn join_room(
    services: Arc<Services>,
    request: Ruma<join_room::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let user = request.body.user_id.clone().ok_or_else(|| {
        Error::new(
            crate::error::ErrorCode::MissingParam,
            "Missing param: user_id",
        )
    })?;
    local_account(&services, &user)?;
    let room_id = room_of(&services, &request.body.room_id_or_alias)?;
    let result = services.force_join(&user, &room_id).await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!("POST /_synapse/admin/v1/join/{room_id} (user {user})"),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({ "room_id": room_id })))
}

pub async fn make_room_admin(
    services: Arc<Services>,
    request: Ruma<make_room_admin::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let user = request
        .body
        .user_id
        .clone()
        .unwrap_or_else(|| admin.clone());
    local_account(&services, &user)?;
    let room_id = room_of(&services, &request.body.room_id_or_alias)?;
    let result = services.make_room_admin(&user, &room_id).await;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!("POST /_synapse/admin/v1/rooms/{room_id}/make_room_admin (user {user})"),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(json!({})))
}
