//! Membership through other servers, as the joining server: our user joins a room this
//! server is not in (`make_join` then `send_join` on a resident server, whose answer — the
//! room's state and auth chain — is checked event by event before the join is placed),
//! rejects a remote invite or leaves through a resident (`make_leave`/`send_leave`), and
//! invites a remote user (`invite` to their server, which countersigns).

use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, RoomId, RoomVersionId, ServerName,
    UserId,
};
use serde_json::{Value, json};

use super::incoming::{self, Checked, signed, utf8_percent_encode};
use super::state_answer::StateRequest;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::rooms::{SUPPORTED_VERSIONS, rules_of};

/// Largest `send_join` answer taken (on disk while it is read): the whole state and auth
/// chain of a large room.
const MAX_JOIN_ANSWER: u64 = 1 << 30;

/// The servers to try for a room: those given, then the room ID's own server (room versions
/// before 12 name one), ours left out, each once.
pub fn candidate_servers(
    services: &Services,
    room_id: &RoomId,
    given: &[OwnedServerName],
) -> Vec<OwnedServerName> {
    let mut servers: Vec<OwnedServerName> = Vec::new();
    let from_id = room_id.server_name().map(ToOwned::to_owned);
    for server in given.iter().cloned().chain(from_id) {
        if server != services.server_name() && !servers.contains(&server) {
            servers.push(server);
        }
    }
    servers
}

/// What is asked of a resident server.
#[derive(Clone, Copy)]
enum Through {
    Join,
    Leave,
    Knock,
}

/// Asks each server in turn: the first success, a refusal by the room's rules (that is the
/// answer, whoever gives it), or the last failure.
async fn through_one_of(
    services: &Services,
    what: Through,
    user: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    reason: Option<&str>,
) -> Result<()> {
    let verb = match what {
        Through::Join => "join",
        Through::Leave => "leave",
        Through::Knock => "knock",
    };
    let mut last_error = None;
    for server in servers {
        // A server the partner policy excludes is not asked; if no other is, that is the
        // answer.
        if let Err(refused) = services.federation.partners().check(server) {
            last_error.get_or_insert(refused);
            continue;
        }
        let attempt = match what {
            Through::Join => join_through(services, user, room_id, server, reason).await,
            Through::Leave => leave_through(services, user, room_id, server, reason).await,
            Through::Knock => knock_through(services, user, room_id, server, reason).await,
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::info!(%server, %room_id, %error, "{verb} through this server failed");
                if let Error::Matrix {
                    code: ErrorCode::Forbidden,
                    ..
                } = &error
                {
                    return Err(error);
                }
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::not_found(format!(
            "This server is not in the room and knows no server to {verb} through"
        ))
    }))
}

/// A membership template from `make_join` or `make_leave`, filled in and signed by us.
fn sign_template(
    services: &Services,
    rules: &RoomVersionRules,
    template: &Value,
    user: &UserId,
    room_id: &RoomId,
    content: Value,
) -> Result<(CanonicalJsonObject, crate::service::rooms::pdu::PduEvent)> {
    let mut event = template.clone();
    let fields_ok = event["type"] == "m.room.member"
        && event["state_key"] == user.as_str()
        && event["sender"] == user.as_str()
        && event["room_id"] == room_id.as_str();
    if !fields_ok {
        return Err(Error::Internal(
            "the resident server answered a template for another event".into(),
        ));
    }
    let Some(map) = event.as_object_mut() else {
        return Err(Error::Internal("the template is not an object".into()));
    };
    for field in ["signatures", "hashes", "unsigned", "event_id"] {
        map.remove(field);
    }
    map.insert("content".into(), content);
    map.insert("origin".into(), json!(services.server_name()));
    map.insert(
        "origin_server_ts".into(),
        json!(crate::service::now_millis()),
    );
    if rules.event_id_format == EventIdFormatVersion::V1 {
        let opaque: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(18)
            .map(char::from)
            .collect();
        map.insert(
            "event_id".into(),
            json!(format!("${opaque}:{}", services.server_name())),
        );
    }
    let object: CanonicalJsonObject = serde_json::from_value(event)
        .map_err(|e| Error::Internal(format!("the template is not canonical JSON: {e}")))?;
    services.rooms.sign_pdu(object, rules)
}

/// The federation form of an event of ours.
fn wire_value(object: &CanonicalJsonObject, rules: &RoomVersionRules) -> Result<Value> {
    let mut wire = object.clone();
    wire.remove("unsigned");
    if !rules.event_format.require_event_id {
        wire.remove("event_id");
    }
    serde_json::to_value(wire).map_err(Error::internal)
}

/// Joins `user` to `room_id` through one of `servers`.
pub async fn join_remote(
    services: &Arc<Services>,
    user: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    reason: Option<&str>,
) -> Result<()> {
    through_one_of(services, Through::Join, user, room_id, servers, reason).await
}

async fn join_through(
    services: &Services,
    user: &UserId,
    room_id: &RoomId,
    server: &ServerName,
    reason: Option<&str>,
) -> Result<()> {
    let mut path = format!(
        "/_matrix/federation/v1/make_join/{}/{}?",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(user.as_str())
    );
    let versions: Vec<String> = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("ver={}", utf8_percent_encode(v.as_str())))
        .collect();
    path.push_str(&versions.join("&"));
    let answer = signed(services, http::Method::GET, server, &path, None, 1 << 20).await?;
    let version = match answer["room_version"].as_str() {
        Some(version) => RoomVersionId::try_from(version)
            .map_err(|_| Error::Internal("bad room version in make_join".into()))?,
        None => RoomVersionId::V1,
    };
    let rules = rules_of(&version)?;
    let template = &answer["event"];
    let mut content = crate::service::rooms::creation::member_content(services, user, "join")?;
    if let Some(authoriser) = template["content"].get("join_authorised_via_users_server") {
        content["join_authorised_via_users_server"] = authoriser.clone();
    }
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    let (object, pdu) = sign_template(services, &rules, template, user, room_id, content)?;
    let path = format!(
        "/_matrix/federation/v2/send_join/{}/{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(pdu.event_id.as_str())
    );
    let body = wire_value(&object, &rules)?;
    services.rooms.prepare_remote_room(room_id, &version)?;
    let answer = super::state_answer::fetch_state(
        services,
        server,
        &rules,
        room_id,
        StateRequest {
            method: http::Method::PUT,
            path,
            body: Some(body),
            state_field: "state",
            limit: MAX_JOIN_ANSWER,
        },
    )
    .await?;
    // A restricted join comes back countersigned by the resident server.
    let join = match answer.event {
        Some(checked) if checked.pdu.event_id == pdu.event_id => checked,
        _ => Checked { pdu, object },
    };
    let state_ids = answer.state_ids;
    let guard = services.rooms.lock_room(room_id).await;
    let placed = services.rooms.place_remote_join(
        &guard,
        room_id,
        &rules,
        &join.pdu,
        join.object.clone(),
        &state_ids,
    );
    guard.release().await;
    placed.map_err(Error::from)?;
    if services.rooms.remote_invite(user, room_id)?.is_some() {
        services.rooms.end_remote_invite(user, room_id, "join")?;
    }
    tracing::info!(%room_id, %server, %user, "joined a room through another server");
    Ok(())
}

/// Leaves (or rejects an invite to) a room this server is not in, through `servers`.
pub async fn leave_remote(
    services: &Arc<Services>,
    user: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    reason: Option<&str>,
) -> Result<()> {
    through_one_of(services, Through::Leave, user, room_id, servers, reason).await
}

async fn leave_through(
    services: &Services,
    user: &UserId,
    room_id: &RoomId,
    server: &ServerName,
    reason: Option<&str>,
) -> Result<()> {
    let path = format!(
        "/_matrix/federation/v1/make_leave/{}/{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(user.as_str())
    );
    let answer = signed(services, http::Method::GET, server, &path, None, 1 << 20).await?;
    let version = match answer["room_version"].as_str() {
        Some(version) => RoomVersionId::try_from(version)
            .map_err(|_| Error::Internal("bad room version in make_leave".into()))?,
        None => RoomVersionId::V1,
    };
    let rules = rules_of(&version)?;
    let mut content = json!({ "membership": "leave" });
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    let (object, pdu) = sign_template(services, &rules, &answer["event"], user, room_id, content)?;
    let path = format!(
        "/_matrix/federation/v2/send_leave/{}/{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(pdu.event_id.as_str())
    );
    let body = wire_value(&object, &rules)?;
    signed(
        services,
        http::Method::PUT,
        server,
        &path,
        Some(&body),
        1 << 20,
    )
    .await?;
    Ok(())
}

/// Sends our invite event to the invitee's server, which countersigns it; answers the event
/// with both signatures, to be placed in the room.
pub async fn invite_remote(
    services: &Services,
    room_id: &RoomId,
    version: &RoomVersionId,
    object: &CanonicalJsonObject,
    event_id: &ruma::EventId,
    invitee: &UserId,
) -> Result<CanonicalJsonObject> {
    let rules = rules_of(version)?;
    let stripped = invite_room_state(services, room_id, &rules)?;
    let body = json!({
        "room_version": version,
        "event": wire_value(object, &rules)?,
        "invite_room_state": stripped,
    });
    let path = format!(
        "/_matrix/federation/v2/invite/{}/{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(event_id.as_str())
    );
    let answer = signed(
        services,
        http::Method::PUT,
        invitee.server_name(),
        &path,
        Some(&body),
        1 << 20,
    )
    .await?;
    let returned: CanonicalJsonObject =
        serde_json::from_value(answer["event"].clone()).map_err(|e| {
            Error::Internal(format!("{}: bad invite answer: {e}", invitee.server_name()))
        })?;
    let checked = incoming::check_pdu(services, &rules, returned)
        .await
        .map_err(Error::from)?;
    if checked.pdu.event_id != event_id {
        return Err(Error::Internal(format!(
            "{} answered another event to our invite",
            invitee.server_name()
        )));
    }
    // The invitee's server must have signed it.
    let signed_by_invitee = matches!(
        checked.object.get("signatures"),
        Some(CanonicalJsonValue::Object(signatures))
            if signatures.contains_key(invitee.server_name().as_str())
    );
    if !signed_by_invitee {
        return Err(Error::Internal(format!(
            "{} did not sign the invite",
            invitee.server_name()
        )));
    }
    Ok(checked.object)
}

/// The room's state sent with an invite (full PDUs, as Matrix 1.16 requires): what the
/// invitee's client shows before joining.
pub fn invite_room_state(
    services: &Services,
    room_id: &RoomId,
    rules: &RoomVersionRules,
) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    for kind in crate::service::sync::STRIPPED_STATE_KINDS {
        if let Some(pdu) = services.rooms.current_state_event(room_id, kind, "")?
            && let Some(json) = services.rooms.get_pdu_json(&pdu.event_id)?
        {
            let object = crate::service::rooms::wire::wire_object(&json, rules)?;
            events.push(serde_json::to_value(object).map_err(Error::internal)?);
        }
    }
    Ok(events)
}

/// `sender` invites `invitee`, a user of another server, to a room of ours: the invite is
/// built here, countersigned by the invitee's server, then placed in the room (and sent to
/// the room's other servers) like any event.
pub async fn invite(
    services: &Services,
    sender: &UserId,
    room_id: &RoomId,
    invitee: &UserId,
    reason: Option<&str>,
    is_direct: bool,
) -> Result<()> {
    let rooms = &services.rooms;
    let mut content = json!({ "membership": "invite" });
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    if is_direct {
        content["is_direct"] = json!(true);
    }
    let builder = crate::service::rooms::PduBuilder::state(
        ruma::events::TimelineEventType::RoomMember,
        invitee.as_str(),
        content,
    );
    let guard = rooms.lock_room(room_id).await;
    let built = rooms.build_unstored(&builder, sender, room_id, &guard);
    guard.release().await;
    let (object, pdu) = built?;
    let version = rooms.room_version(room_id)?;
    let countersigned =
        invite_remote(services, room_id, &version, &object, &pdu.event_id, invitee).await?;
    let rules = rules_of(&version)?;
    let guard = rooms.lock_room(room_id).await;
    let placed = rooms.place_received(
        &guard,
        room_id,
        &rules,
        &pdu,
        countersigned,
        Some(invitee.server_name()),
    );
    guard.release().await;
    match placed.map_err(Error::from)?.0 {
        crate::service::rooms::receive::Received::Rejected(reason)
        | crate::service::rooms::receive::Received::SoftFailed(reason) => Err(Error::forbidden(
            format!("The invite is not allowed: {reason}"),
        )),
        _ => Ok(()),
    }
}

/// Knocks on a room this server is not in, through one of `servers`; the knock is kept with
/// the room's stripped state, which the user's client shows until they are let in.
pub async fn knock_remote(
    services: &Services,
    user: &UserId,
    room_id: &RoomId,
    servers: &[OwnedServerName],
    reason: Option<&str>,
) -> Result<()> {
    through_one_of(services, Through::Knock, user, room_id, servers, reason).await
}

async fn knock_through(
    services: &Services,
    user: &UserId,
    room_id: &RoomId,
    server: &ServerName,
    reason: Option<&str>,
) -> Result<()> {
    let versions: Vec<String> = SUPPORTED_VERSIONS
        .iter()
        .map(|v| format!("ver={}", utf8_percent_encode(v.as_str())))
        .collect();
    let path = format!(
        "/_matrix/federation/v1/make_knock/{}/{}?{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(user.as_str()),
        versions.join("&")
    );
    let answer = signed(services, http::Method::GET, server, &path, None, 1 << 20).await?;
    let version = answer["room_version"]
        .as_str()
        .and_then(|v| RoomVersionId::try_from(v).ok())
        .ok_or_else(|| Error::Internal("no room version in make_knock".into()))?;
    let rules = rules_of(&version)?;
    let mut content = crate::service::rooms::creation::member_content(services, user, "knock")?;
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    let (object, pdu) = sign_template(services, &rules, &answer["event"], user, room_id, content)?;
    let path = format!(
        "/_matrix/federation/v1/send_knock/{}/{}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(pdu.event_id.as_str())
    );
    let body = wire_value(&object, &rules)?;
    let answer = signed(
        services,
        http::Method::PUT,
        server,
        &path,
        Some(&body),
        1 << 20,
    )
    .await?;
    let stripped: Vec<Value> = answer["knock_room_state"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| {
            Some(json!({
                "type": event.get("type")?,
                "state_key": event.get("state_key")?,
                "content": event.get("content")?,
                "sender": event.get("sender")?,
            }))
        })
        .collect();
    let mut wire = object;
    if !rules.event_format.require_event_id {
        wire.remove("event_id");
    }
    services
        .rooms
        .store_remote_invite(room_id, &version, user, "knock", wire, stripped)
}
