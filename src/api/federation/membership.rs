//! Membership through this server as a room's resident: another server's user joins
//! (`make_join`/`send_join`), knocks (`make_knock`/`send_knock`) or leaves
//! (`make_leave`/`send_leave`) one of our rooms, and other servers invite our users (`invite`).

use std::sync::Arc;

use ruma::api::federation::membership::{
    RawStrippedState, create_invite, create_join_event, create_knock_event, create_leave_event,
    prepare_join_event, prepare_knock_event, prepare_leave_event,
};
use ruma::events::TimelineEventType;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, RoomId, RoomVersionId, ServerName, UserId};
use serde_json::json;
use serde_json::value::RawValue;

use super::events::wire_list;
use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::federation::incoming;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::member_change::authorise_restricted_join;
use crate::service::rooms::receive::Received;

/// The room must be one we are in, and the user one of the asking server's.
fn ensure_resident(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<()> {
    if user_id.server_name() != origin {
        return Err(Error::forbidden("The user is not one of your server's"));
    }
    if !services.rooms.exists(room_id)? || !services.rooms.has_local_member(room_id)? {
        return Err(Error::not_found("This server is not in that room"));
    }
    services.rooms.check_server_acl(room_id, origin)
}

/// A membership event for the remote server to sign: built on our forward extremities, with
/// auth events from the current state.
fn template(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    content: serde_json::Value,
) -> Result<(RoomVersionId, Box<RawValue>)> {
    let rooms = &services.rooms;
    let version = rooms.room_version(room_id)?;
    let rules = rooms.rules(room_id)?;
    let state = rooms.current_state(room_id)?;
    let prev_events = rooms.forward_extremities(room_id)?;
    let mut depth = 0;
    for prev in &prev_events {
        if let Some(pdu) = rooms.get_pdu(prev)? {
            depth = depth.max(u64::from(pdu.depth));
        }
    }
    let builder = PduBuilder::state(TimelineEventType::RoomMember, user_id.as_str(), content);
    let mut event = rooms.event_template(
        &builder,
        user_id,
        Some(room_id),
        &rules,
        &state,
        prev_events,
        depth + 1,
    )?;
    event["origin"] = json!(services.server_name());
    if let Err(reason) = rooms.template_allowed(&rules, &event, &state)? {
        return Err(Error::forbidden(format!(
            "You may not do that in this room: {reason}"
        )));
    }
    let raw = serde_json::value::to_raw_value(&event).map_err(Error::internal)?;
    Ok((version, raw))
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`.
pub async fn make_join(
    services: Arc<Services>,
    request: Ruma<prepare_join_event::v1::Request>,
) -> Result<prepare_join_event::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_resident(&services, origin, &body.room_id, &body.user_id)?;
    let version = services.rooms.room_version(&body.room_id)?;
    // Without `ver`, the joining server supports version 1 only.
    let supported = if body.ver.is_empty() {
        vec![RoomVersionId::V1]
    } else {
        body.ver.clone()
    };
    if !supported.contains(&version) {
        return Err(Error::new(
            ErrorCode::IncompatibleRoomVersion,
            format!("The room is of version {version}, which your server does not support"),
        ));
    }
    if services.rooms.is_blocked(&body.room_id)? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    let mut content = json!({ "membership": "join" });
    authorise_restricted_join(&services, &body.user_id, &body.room_id, &mut content).map_err(
        |error| match error {
            Error::Matrix { message, .. } if message.contains("can authorise") => {
                Error::new(ErrorCode::UnableToAuthoriseJoin, message)
            }
            other => other,
        },
    )?;
    let (version, event) = template(&services, &body.room_id, &body.user_id, content)?;
    let mut response = prepare_join_event::v1::Response::new(event);
    response.room_version = Some(version);
    Ok(response)
}

/// A membership event a remote server signed, checked as any received event and for being
/// the membership it claims.
async fn checked_membership(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    event_id: &ruma::EventId,
    pdu: &RawValue,
    membership: &str,
) -> Result<incoming::Checked> {
    services.rooms.check_server_acl(room_id, origin)?;
    let rules = services.rooms.rules(room_id)?;
    let object = incoming::parse_object(pdu)?;
    let checked = incoming::check_pdu(services, &rules, object).await?;
    let event = &checked.pdu;
    if event.event_id != event_id {
        return Err(Error::bad_json("The event ID does not match the event"));
    }
    if event.room_id.as_deref() != Some(room_id)
        || event.kind != TimelineEventType::RoomMember
        || event.state_key.as_deref() != Some(event.sender.as_str())
        || event.sender.server_name() != origin
        || event.content_value()["membership"] != membership
    {
        return Err(Error::bad_json(format!(
            "Not a {membership} of one of your users in this room"
        )));
    }
    Ok(checked)
}

/// Places a membership event from another server, passing it on to the room's other servers.
async fn place_membership(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    checked: &incoming::Checked,
) -> Result<()> {
    let rules = services.rooms.rules(room_id)?;
    let guard = services.rooms.lock_room(room_id).await;
    let placed = services.rooms.place_received(
        &guard,
        room_id,
        &rules,
        &checked.pdu,
        checked.object.clone(),
        Some(origin),
    );
    guard.release().await;
    match placed? {
        (Received::Timeline | Received::Known, _) => Ok(()),
        (Received::SoftFailed(reason) | Received::Rejected(reason), _) => Err(Error::forbidden(
            format!("The event is not allowed: {reason}"),
        )),
    }
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`: the join is placed and sent on
/// to the room's other servers; the answer carries the state before it and its auth chain.
pub async fn send_join(
    services: Arc<Services>,
    request: Ruma<create_join_event::v2::Request>,
) -> Result<create_join_event::v2::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    let rooms = &services.rooms;
    if !rooms.exists(&body.room_id)? || !rooms.has_local_member(&body.room_id)? {
        return Err(Error::not_found("This server is not in that room"));
    }
    let mut checked = checked_membership(
        &services,
        origin,
        &body.room_id,
        &body.event_id,
        &body.pdu,
        "join",
    )
    .await?;
    // A restricted join names one of our users as its authoriser: we countersign it.
    let authoriser = checked.pdu.content_value()["join_authorised_via_users_server"]
        .as_str()
        .and_then(|user| UserId::parse(user).ok());
    let mut countersigned = None;
    if authoriser.is_some_and(|user| user.server_name() == services.server_name()) {
        let rules = rooms.rules(&body.room_id)?;
        let wire = countersign(&services, &rules, &checked.object)?;
        countersigned = Some(serde_json::value::to_raw_value(&wire).map_err(Error::internal)?);
        if let Some(CanonicalJsonValue::Object(signatures)) = wire.get("signatures").cloned() {
            checked.object.insert(
                "signatures".to_owned(),
                CanonicalJsonValue::Object(signatures),
            );
        }
    }
    let state_before = {
        // The state the join is built on: the room's current state as it is placed.
        place_membership(&services, origin, &body.room_id, &checked).await?;
        rooms
            .state_ids_before(&body.event_id)?
            .ok_or_else(|| Error::internal("a placed join has no state"))?
    };
    let auth_chain = rooms.auth_chain_ids(&state_before)?;
    let mut room_state = create_join_event::v2::RoomState::new();
    room_state.auth_chain = wire_list(&services, &auth_chain)?;
    room_state.state = wire_list(&services, &state_before)?;
    room_state.event = countersigned;
    room_state.members_omitted = false;
    room_state.servers_in_room = Some(
        rooms
            .resident_servers(&body.room_id)?
            .into_iter()
            .map(|s| s.to_string())
            .collect(),
    );
    Ok(create_join_event::v2::Response::new(room_state))
}

/// Another server's event in its federation form with this server's signature added (a
/// restricted join we authorise, an invite of one of our users).
fn countersign(
    services: &Services,
    rules: &ruma::room_version_rules::RoomVersionRules,
    object: &CanonicalJsonObject,
) -> Result<CanonicalJsonObject> {
    let mut wire = object.clone();
    if !rules.event_format.require_event_id {
        wire.remove("event_id");
    }
    ruma::signatures::sign_event(
        services.server_name().as_str(),
        &*services.server_keys.key_pair(),
        &mut wire,
        &rules.redaction,
    )
    .map_err(Error::internal)?;
    Ok(wire)
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`.
pub async fn make_leave(
    services: Arc<Services>,
    request: Ruma<prepare_leave_event::v1::Request>,
) -> Result<prepare_leave_event::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_resident(&services, origin, &body.room_id, &body.user_id)?;
    let (version, event) = template(
        &services,
        &body.room_id,
        &body.user_id,
        json!({ "membership": "leave" }),
    )?;
    Ok(prepare_leave_event::v1::Response::new(Some(version), event))
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`.
pub async fn send_leave(
    services: Arc<Services>,
    request: Ruma<create_leave_event::v2::Request>,
) -> Result<create_leave_event::v2::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    if !services.rooms.exists(&body.room_id)? {
        return Err(Error::not_found("This server is not in that room"));
    }
    let checked = checked_membership(
        &services,
        origin,
        &body.room_id,
        &body.event_id,
        &body.pdu,
        "leave",
    )
    .await?;
    place_membership(&services, origin, &body.room_id, &checked).await?;
    Ok(create_leave_event::v2::Response::new())
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`: a remote room invites one of our
/// users. We check and countersign the invite and keep it with the room's stripped state,
/// which the user sees in `/sync` until they join or reject it.
pub async fn invite(
    services: Arc<Services>,
    request: Ruma<create_invite::v2::Request>,
) -> Result<create_invite::v2::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    // A room we know: its ACL applies (one we are not in has none we could read).
    if services.rooms.exists(&body.room_id)? {
        services.rooms.check_server_acl(&body.room_id, origin)?;
    }
    let rules = crate::service::rooms::rules_of(&body.room_version).map_err(|_| {
        Error::new(
            ErrorCode::IncompatibleRoomVersion,
            format!("Room version {} is not supported here", body.room_version),
        )
    })?;
    let object: CanonicalJsonObject = incoming::parse_object(&body.event)?;
    let checked = incoming::check_pdu(&services, &rules, object).await?;
    let event = &checked.pdu;
    let invitee = event
        .state_key
        .as_deref()
        .and_then(|key| UserId::parse(key).ok())
        .ok_or_else(|| Error::bad_json("An invite names its invitee in state_key"))?;
    if event.event_id != body.event_id
        || event.room_id.as_deref() != Some(&*body.room_id)
        || event.kind != TimelineEventType::RoomMember
        || event.content_value()["membership"] != "invite"
        || event.sender.server_name() != origin
    {
        return Err(Error::bad_json(
            "Not an invite from your server to this room",
        ));
    }
    if invitee.server_name() != services.server_name() || !services.users.exists(&invitee)? {
        return Err(Error::not_found("No such user on this server"));
    }
    if services.rooms.is_blocked(&body.room_id)? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    let wire = countersign(&services, &rules, &checked.object)?;
    // Full PDUs since Matrix 1.16, stripped events before: clients see the stripped form.
    #[allow(deprecated)]
    let stripped: Vec<serde_json::Value> = body
        .invite_room_state
        .iter()
        .filter_map(|state| {
            let text = match state {
                ruma::api::federation::membership::RawStrippedState::Stripped(raw) => {
                    raw.json().get()
                }
                ruma::api::federation::membership::RawStrippedState::Pdu(raw) => raw.get(),
                _ => return None,
            };
            let event: serde_json::Value = serde_json::from_str(text).ok()?;
            Some(json!({
                "type": event.get("type")?,
                "state_key": event.get("state_key")?,
                "content": event.get("content")?,
                "sender": event.get("sender")?,
            }))
        })
        .collect();
    services.rooms.store_remote_invite(
        &body.room_id,
        &body.room_version,
        &invitee,
        "invite",
        wire.clone(),
        stripped,
    )?;
    Ok(create_invite::v2::Response::new(
        serde_json::value::to_raw_value(&wire).map_err(Error::internal)?,
    ))
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`.
pub async fn make_knock(
    services: Arc<Services>,
    request: Ruma<prepare_knock_event::v1::Request>,
) -> Result<prepare_knock_event::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    ensure_resident(&services, origin, &body.room_id, &body.user_id)?;
    let version = services.rooms.room_version(&body.room_id)?;
    let knocking = services.rooms.rules(&body.room_id)?.authorization.knocking;
    if !body.ver.contains(&version) || !knocking {
        return Err(Error::new(
            ErrorCode::IncompatibleRoomVersion,
            format!(
                "The room is of version {version}: knocking needs a version that allows it and that your server supports"
            ),
        ));
    }
    if services.rooms.is_blocked(&body.room_id)? {
        return Err(Error::forbidden(
            "This room has been blocked on this server",
        ));
    }
    let (version, event) = template(
        &services,
        &body.room_id,
        &body.user_id,
        json!({ "membership": "knock" }),
    )?;
    Ok(prepare_knock_event::v1::Response::new(version, event))
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`: the knock is placed and sent on
/// to the room's other servers; the answer carries the room's stripped state.
pub async fn send_knock(
    services: Arc<Services>,
    request: Ruma<create_knock_event::v1::Request>,
) -> Result<create_knock_event::v1::Response> {
    let origin = request.origin()?;
    let body = &request.body;
    if !services.rooms.exists(&body.room_id)? || !services.rooms.has_local_member(&body.room_id)? {
        return Err(Error::not_found("This server is not in that room"));
    }
    let checked = checked_membership(
        &services,
        origin,
        &body.room_id,
        &body.event_id,
        &body.pdu,
        "knock",
    )
    .await?;
    place_membership(&services, origin, &body.room_id, &checked).await?;
    let rules = services.rooms.rules(&body.room_id)?;
    let state = crate::service::federation::membership::invite_room_state(
        &services,
        &body.room_id,
        &rules,
    )?
    .into_iter()
    .map(|event| {
        serde_json::value::to_raw_value(&event)
            .map(RawStrippedState::Pdu)
            .map_err(Error::internal)
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(create_knock_event::v1::Response::new(state))
}
