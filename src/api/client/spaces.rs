//! Space hierarchies (children on other servers asked of them over federation, and ours
//! answered to other servers) and room summaries.

use std::collections::HashSet;
use std::sync::Arc;

use ruma::api::client::room::get_summary;
use ruma::api::client::space::get_hierarchy;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::pdu::PduEvent;

const DEFAULT_LIMIT: usize = 50;
const MAX_DEPTH: u64 = 10;
/// Most rooms of other servers asked about for one request.
const MAX_REMOTE_ROOMS: usize = 20;

/// The servers a child's `m.space.child` event names to reach it through.
fn via_of(state: &Value) -> Vec<ruma::OwnedServerName> {
    state["content"]["via"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|server| server.as_str())
        .filter_map(|server| ruma::ServerName::parse(server).ok())
        .collect()
}

/// A room this server is not in, as one of `via` describes it (`hierarchy` over federation):
/// its summary and its children, or `None` when no server answers.
async fn remote_room(
    services: &Services,
    room_id: &RoomId,
    via: &[ruma::OwnedServerName],
    suggested_only: bool,
) -> Option<(Value, Vec<(OwnedRoomId, Value)>)> {
    let path = format!(
        "/_matrix/federation/v1/hierarchy/{}?suggested_only={suggested_only}",
        crate::service::federation::incoming::utf8_percent_encode(room_id.as_str())
    );
    for server in via.iter().take(3) {
        let answer = match crate::service::federation::incoming::signed(
            services,
            http::Method::GET,
            server,
            &path,
            None,
            4 << 20,
        )
        .await
        {
            Ok(answer) => answer,
            Err(error) => {
                tracing::info!(%server, %room_id, %error, "a space child's server did not describe it");
                continue;
            }
        };
        let mut room = answer["room"].clone();
        if room["room_id"] != room_id.as_str() {
            continue;
        }
        let children: Vec<(OwnedRoomId, Value)> = room["children_state"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|state| state["type"] == "m.space.child")
            .filter_map(|state| {
                let child = RoomId::parse(state["state_key"].as_str()?).ok()?;
                Some((child, state.clone()))
            })
            .collect();
        if let Some(object) = room.as_object_mut() {
            object.remove("children_state");
        }
        return Some((room, children));
    }
    None
}

/// The `m.space.child` events of a room with a non-empty `via`, as stripped state.
pub(crate) fn space_children(
    services: &Services,
    room_id: &RoomId,
    suggested_only: bool,
) -> Result<Vec<(OwnedRoomId, Value)>> {
    let rooms = &services.rooms;
    let state = rooms.current_state(room_id)?;
    let mut children = Vec::new();
    for (shortstatekey, shorteventid) in state.iter() {
        let (kind, state_key) = rooms.statekey_of_short(*shortstatekey)?;
        if kind != "m.space.child" {
            continue;
        }
        let Ok(child) = RoomId::parse(&state_key) else {
            continue;
        };
        let Some(json) = rooms.get_pdu_json(&rooms.event_id_of_short(*shorteventid)?)? else {
            continue;
        };
        let pdu = PduEvent::from_json(&json)?;
        let content = pdu.content_value();
        let has_via = content
            .get("via")
            .and_then(Value::as_array)
            .is_some_and(|via| !via.is_empty());
        let suggested = content
            .get("suggested")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !has_via || (suggested_only && !suggested) {
            continue;
        }
        let stripped = json!({
            "type": "m.space.child",
            "state_key": state_key,
            "content": content,
            "sender": pdu.sender,
            "origin_server_ts": pdu.origin_server_ts,
        });
        let order = content
            .get("order")
            .and_then(Value::as_str)
            .filter(|o| o.len() <= 50 && o.chars().all(|c| (' '..='~').contains(&c)))
            .map(ToOwned::to_owned);
        children.push((child, stripped, order, pdu.origin_server_ts));
    }
    // The spec's order: by `order` (children without one last), then timestamp, then room ID.
    children.sort_by(|a, b| {
        let by_order = match (&a.2, &b.2) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_order
            .then_with(|| a.3.cmp(&b.3))
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(children
        .into_iter()
        .map(|(child, stripped, _, _)| (child, stripped))
        .collect())
}

pub async fn hierarchy(
    services: Arc<Services>,
    request: Ruma<get_hierarchy::v1::Request>,
) -> Result<RawJson> {
    let body = &request.body;
    let user = request.user()?;
    let rooms = &services.rooms;
    if !rooms.exists(&body.room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let root = rooms.summary(&body.room_id)?;
    if !rooms.may_preview(user, &root)? {
        return Err(Error::forbidden("You cannot see this space"));
    }
    let max_depth = body.max_depth.map_or(MAX_DEPTH, u64::from).min(MAX_DEPTH);
    let limit = body
        .limit
        .map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(DEFAULT_LIMIT)
        })
        .clamp(1, 1000);
    let skip = match &body.from {
        Some(token) => token
            .trim_start_matches('h')
            .parse::<usize>()
            .map_err(|_| Error::invalid_param("Invalid from token"))?,
        None => 0,
    };

    // Depth-first over the space tree, children in the spec's order; `from` counts the rooms
    // already returned.
    let mut stack = vec![(body.room_id.clone(), 0u64, Vec::new())];
    let mut seen = HashSet::new();
    let mut position = 0usize;
    let mut out = Vec::new();
    let mut next_batch = None;
    let mut remote_budget = MAX_REMOTE_ROOMS;
    while let Some((room_id, depth, via)) = stack.pop() {
        if !seen.insert(room_id.clone()) {
            continue;
        }
        // A room of ours (or one we are in), or one asked of the servers its parent names.
        let (mut chunk, children) = if rooms.exists(&room_id)? {
            let summary = rooms.summary(&room_id)?;
            if !rooms.may_preview(user, &summary)? {
                continue;
            }
            let children = space_children(&services, &room_id, body.suggested_only)?;
            (summary.to_json(), children)
        } else {
            if remote_budget == 0 || !services.config.allow_federation {
                continue;
            }
            remote_budget -= 1;
            match remote_room(&services, &room_id, &via, body.suggested_only).await {
                Some(found) => found,
                None => continue,
            }
        };
        if depth < max_depth {
            stack.extend(
                children
                    .iter()
                    .rev()
                    .map(|(child, state)| (child.clone(), depth + 1, via_of(state))),
            );
        }
        position += 1;
        if position <= skip {
            continue;
        }
        if out.len() >= limit {
            next_batch = Some(format!("h{}", position - 1));
            break;
        }
        chunk["children_state"] =
            Value::Array(children.into_iter().map(|(_, state)| state).collect());
        out.push(chunk);
    }
    let mut response = json!({ "rooms": out });
    if let Some(next) = next_batch {
        response["next_batch"] = json!(next);
    }
    Ok(RawJson(response))
}

pub async fn summary(
    services: Arc<Services>,
    request: Ruma<get_summary::v1::Request>,
) -> Result<RawJson> {
    let rooms = &services.rooms;
    let room_id = match <&RoomId>::try_from(&*request.body.room_id_or_alias) {
        Ok(room_id) => room_id.to_owned(),
        Err(alias) => rooms
            .resolve_alias(alias)?
            .ok_or_else(|| Error::not_found("Unknown room alias"))?,
    };
    if !rooms.exists(&room_id)? {
        return Err(Error::not_found("Unknown room"));
    }
    let summary = rooms.summary(&room_id)?;
    let user: Option<&UserId> = request.sender_user.as_deref();
    let allowed = match user {
        Some(user) => rooms.may_preview(user, &summary)?,
        None => summary.world_readable || summary.join_rule == "public",
    };
    if !allowed {
        // As if it did not exist: a private room's existence is not revealed.
        return Err(Error::not_found("Unknown room"));
    }
    let mut json = summary.to_json();
    if let Some(user) = user
        && let Some(membership) = rooms.membership(user, &room_id)?
    {
        json["membership"] = json!(membership);
    }
    Ok(RawJson(json))
}
