//! `GET /_matrix/federation/v1/hierarchy/{roomId}`: one of our rooms (a space) and its
//! direct children as another server's users may preview them — the same summaries our
//! clients see, with the children we hold but the asking server may not preview listed as
//! inaccessible.

use std::sync::Arc;

use ruma::ServerName;
use ruma::api::federation::space::get_hierarchy;
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::client::spaces::space_children;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::summary::RoomSummary;

/// Whether a server's users may preview a room: anyone may see it (public, knockable or
/// world-readable), or the server is in it.
fn server_may_preview(
    services: &Services,
    server: &ServerName,
    summary: &RoomSummary,
) -> Result<bool> {
    Ok(summary.world_readable
        || matches!(
            summary.join_rule.as_str(),
            "public" | "knock" | "knock_restricted" | "restricted"
        )
        || services.rooms.server_in_room(server, &summary.room_id)?)
}

/// A summary as other servers are shown it.
fn public_summary(summary: &RoomSummary) -> Value {
    let mut json = summary.to_json();
    if let Some(object) = json.as_object_mut() {
        object.remove("room_version");
        object.remove("encryption");
    }
    json
}

pub async fn hierarchy(
    services: Arc<Services>,
    request: Ruma<get_hierarchy::v1::Request>,
) -> Result<RawJson> {
    let origin = request.origin()?;
    let body = &request.body;
    let rooms = &services.rooms;
    if !rooms.exists(&body.room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    rooms.check_server_acl(&body.room_id, origin)?;
    let summary = rooms.summary(&body.room_id)?;
    if !server_may_preview(&services, origin, &summary)? {
        return Err(Error::not_found("Unknown room"));
    }
    let children = space_children(&services, &body.room_id, body.suggested_only)?;
    let mut room = public_summary(&summary);
    room["children_state"] = Value::Array(children.iter().map(|(_, s)| s.clone()).collect());
    let mut accessible = Vec::new();
    let mut inaccessible = Vec::new();
    for (child, _) in &children {
        if !rooms.exists(child)? {
            continue;
        }
        let summary = rooms.summary(child)?;
        if server_may_preview(&services, origin, &summary)? {
            accessible.push(public_summary(&summary));
        } else {
            inaccessible.push(child.clone());
        }
    }
    Ok(RawJson(json!({
        "room": room,
        "children": accessible,
        "inaccessible_children": inaccessible,
    })))
}
