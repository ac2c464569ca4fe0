//! Ephemeral events between servers (EDUs): what our users do that the room's other servers
//! must see (typing, read receipts), queued to each of them beside the PDUs; and the EDUs
//! other servers send us, checked (the user is one of the sending server's, joined to the
//! room, and the room's ACL admits the server) and applied through the same services as a
//! local user's.

use std::sync::Arc;
use std::time::Duration;

use ruma::api::federation::transactions::edu::Edu;
use ruma::serde::Raw;
use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::service::Services;

/// How long a remote user's typing notice lasts unless renewed (Synapse's federation
/// timeout: its servers renew a notice every 40 seconds while the user types).
const REMOTE_TYPING_TIMEOUT: Duration = Duration::from_secs(60);

/// The servers a room's EDUs go to: those with joined members, allowed by the policy.
fn destinations(services: &Services, room_id: &RoomId) -> Result<Vec<OwnedServerName>> {
    let partners = services.federation.partners();
    Ok(services
        .rooms
        .remote_servers(room_id)?
        .iter()
        .filter(|server| partners.allows(server))
        .cloned()
        .collect())
}

/// Tells the room's other servers that `user` (ours) started or stopped typing.
pub fn send_typing(
    services: &Services,
    room_id: &RoomId,
    user: &UserId,
    typing: bool,
) -> Result<()> {
    if !services.config.allow_federation {
        return Ok(());
    }
    let servers = destinations(services, room_id)?;
    if servers.is_empty() {
        return Ok(());
    }
    let edu = json!({
        "edu_type": "m.typing",
        "content": { "room_id": room_id, "user_id": user, "typing": typing },
    });
    services.sending.queue_edu(&servers, edu);
    Ok(())
}

/// Tells the room's other servers of `user`'s (public) read receipt.
pub fn send_receipt(
    services: &Services,
    room_id: &RoomId,
    user: &UserId,
    event_id: &ruma::EventId,
    thread_id: Option<&str>,
) -> Result<()> {
    if !services.config.allow_federation {
        return Ok(());
    }
    let servers = destinations(services, room_id)?;
    if servers.is_empty() {
        return Ok(());
    }
    let mut data = json!({ "ts": crate::service::now_millis() });
    if let Some(thread_id) = thread_id {
        data["thread_id"] = json!(thread_id);
    }
    let edu = json!({
        "edu_type": "m.receipt",
        "content": { room_id.as_str(): { "m.read": { user.as_str(): {
            "event_ids": [event_id],
            "data": data,
        } } } },
    });
    services.sending.queue_edu(&servers, edu);
    Ok(())
}

/// Sets one of our users' presence; when that changed (or refreshed their activity), the
/// servers sharing a room with them hear it (`m.presence`, only while `allow_presence`).
pub fn set_presence(
    services: &Services,
    user: &UserId,
    presence: &str,
    status_msg: Option<Option<String>>,
) -> Result<()> {
    if !services.presence.set(user, presence, status_msg)? || !services.config.allow_federation {
        return Ok(());
    }
    let servers = servers_sharing_rooms_with(services, user)?;
    if servers.is_empty() {
        return Ok(());
    }
    let Some(mut content) = services.presence.get(user)? else {
        return Ok(());
    };
    content["user_id"] = json!(user);
    let edu = json!({ "edu_type": "m.presence", "content": { "push": [content] } });
    services.sending.queue_edu(&servers, edu);
    Ok(())
}

/// The servers (other than ours, allowed by the policy) with a member in one of `user`'s
/// joined rooms: those that must hear about the user's presence and keys.
pub fn servers_sharing_rooms_with(
    services: &Services,
    user: &UserId,
) -> Result<Vec<OwnedServerName>> {
    let partners = services.federation.partners();
    let mut servers = std::collections::BTreeSet::new();
    for room_id in services.rooms.rooms_with_membership(user, "join")? {
        for server in services.rooms.remote_servers(&room_id)?.iter() {
            if partners.allows(server) {
                servers.insert(server.clone());
            }
        }
    }
    Ok(servers.into_iter().collect())
}

/// Sends to-device messages for other servers' users: one `m.direct_to_device` EDU per
/// server, kept until that server acknowledges it. `messages` holds, per server, user ID →
/// device ID (or `*`) → content.
pub fn send_to_device(
    services: &Services,
    sender: &UserId,
    event_type: &str,
    messages: std::collections::BTreeMap<OwnedServerName, serde_json::Map<String, Value>>,
) -> Result<()> {
    let partners = services.federation.partners();
    for (server, messages) in messages {
        if !partners.allows(&server) {
            tracing::info!(%server, "to-device messages for a server the policy excludes dropped");
            continue;
        }
        // Unique (a stream position); the request's own repeats were dropped before this,
        // and the receiver drops a repeat of the EDU.
        let message_id = services.engine.next_count()?.to_string();
        let edu = json!({
            "edu_type": "m.direct_to_device",
            "content": {
                "sender": sender,
                "type": event_type,
                "message_id": message_id,
                "messages": messages,
            },
        });
        services.sending.queue_persistent_edu(&[server], &edu)?;
    }
    Ok(())
}

/// Applies the EDUs of a transaction from `origin`; one that fails its checks is dropped
/// (EDUs get no result in the answer).
pub fn receive_edus(services: &Arc<Services>, origin: &ServerName, edus: &[Raw<Edu>]) {
    for raw in edus {
        let Ok(edu) = serde_json::from_str::<Value>(raw.json().get()) else {
            tracing::info!(%origin, "an EDU that is not JSON");
            continue;
        };
        let content = &edu["content"];
        let result = match edu["edu_type"].as_str() {
            Some("m.typing") => receive_typing(services, origin, content),
            Some("m.receipt") => receive_receipts(services, origin, content),
            Some("m.direct_to_device") => receive_to_device(services, origin, content),
            Some("m.presence") => receive_presence(services, origin, content),
            Some("m.device_list_update") => receive_device_update(services, origin, content),
            Some("m.signing_key_update") => receive_signing_update(services, origin, content),
            _ => Ok(()),
        };
        if let Err(error) = result {
            tracing::info!(%origin, edu_type = %edu["edu_type"], %error, "an EDU was dropped");
        }
    }
}

/// Why a remote user's EDU about a room is not taken, if it is not.
fn may_speak_for(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    user: &UserId,
) -> Result<Option<&'static str>> {
    if user.server_name() != origin {
        return Ok(Some("the user is not one of the sending server's"));
    }
    if !services.rooms.exists(room_id)? || !services.rooms.server_acl_allows(room_id, origin)? {
        return Ok(Some("unknown room, or the room's ACL refuses the server"));
    }
    if !services.rooms.is_joined(user, room_id)? {
        return Ok(Some("the user is not in the room"));
    }
    Ok(None)
}

fn receive_typing(services: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let (Some(room_id), Some(user)) = (
        content["room_id"]
            .as_str()
            .and_then(|r| RoomId::parse(r).ok()),
        content["user_id"]
            .as_str()
            .and_then(|u| UserId::parse(u).ok()),
    ) else {
        return Err(crate::error::Error::bad_json(
            "m.typing without room_id or user_id",
        ));
    };
    if let Some(why) = may_speak_for(services, origin, &room_id, &user)? {
        return Err(crate::error::Error::forbidden(why));
    }
    let timeout = (content["typing"] == true).then_some(REMOTE_TYPING_TIMEOUT);
    services.typing.set(&room_id, &user, timeout)?;
    services
        .appservices
        .queue
        .typing_changed(services, &room_id);
    Ok(())
}

fn receive_receipts(services: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(rooms) = content.as_object() else {
        return Err(crate::error::Error::bad_json(
            "m.receipt content is not an object",
        ));
    };
    for (room_id, kinds) in rooms {
        let Ok(room_id) = RoomId::parse(room_id) else {
            continue;
        };
        // Only public read receipts travel between servers.
        let Some(users) = kinds["m.read"].as_object() else {
            continue;
        };
        for (user, receipt) in users {
            let Ok(user) = UserId::parse(user) else {
                continue;
            };
            if let Some(why) = may_speak_for(services, origin, &room_id, &user)? {
                tracing::info!(%origin, %room_id, %user, why, "a remote receipt was dropped");
                continue;
            }
            let Some(event_id) = receipt["event_ids"]
                .as_array()
                .and_then(|ids| ids.first())
                .and_then(Value::as_str)
                .and_then(|id| ruma::EventId::parse(id).ok())
            else {
                continue;
            };
            let thread = receipt["data"]["thread_id"].as_str();
            services
                .receipts
                .set(&room_id, &user, "m.read", &event_id, thread)?;
            services
                .appservices
                .queue
                .receipt(services, &room_id, &user, &event_id, thread);
        }
    }
    Ok(())
}

/// Delivers to-device messages from a remote user to our users' devices, once per message ID.
fn receive_to_device(services: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let (Some(sender), Some(event_type), Some(message_id), Some(messages)) = (
        content["sender"]
            .as_str()
            .and_then(|u| UserId::parse(u).ok()),
        content["type"].as_str(),
        content["message_id"].as_str(),
        content["messages"].as_object(),
    ) else {
        return Err(crate::error::Error::bad_json(
            "m.direct_to_device without sender, type, message_id or messages",
        ));
    };
    if sender.server_name() != origin {
        return Err(crate::error::Error::forbidden(
            "the sender is not one of the sending server's users",
        ));
    }
    let mut deliveries = Vec::new();
    for (user, targets) in messages {
        let Ok(user) = UserId::parse(user.as_str()) else {
            continue;
        };
        if user.server_name() != services.server_name() {
            continue;
        }
        for (target, message) in targets.as_object().into_iter().flatten() {
            if !message.is_object() {
                continue;
            }
            let target = if target == "*" {
                crate::service::to_device::Target::AllDevices
            } else {
                crate::service::to_device::Target::Device(target.as_str().into())
            };
            deliveries.push((user.clone(), target, message.clone()));
        }
    }
    let deliveries: Vec<_> = deliveries
        .iter()
        .map(|(user, target, message)| (&**user, target.clone(), message.clone()))
        .collect();
    // The remote sender has no device here: the message ID, per origin, is the transaction.
    let from_origin: &ruma::DeviceId = origin.as_str().into();
    let new = services.to_device.send(
        &sender,
        from_origin,
        message_id,
        event_type,
        &deliveries,
        |user_id| services.users.device_ids(user_id),
    )?;
    if new {
        services
            .appservices
            .queue
            .to_device(services, &sender, event_type, &deliveries);
    }
    Ok(())
}

/// A remote user's devices or cross-signing keys changed: our users who share a room with
/// them hear it in `/sync` (`device_lists.changed`) and query the keys afresh.
/// A remote user's device changed: applied to the list we hold of their devices, or, when
/// it shows we missed an update, the list is fetched again (in the background) before our
/// users are told to query their keys again.
fn receive_device_update(
    services: &Arc<Services>,
    origin: &ServerName,
    content: &Value,
) -> Result<()> {
    use crate::service::keys::remote_devices::{self, DeviceListUpdate, UpdateOutcome};
    let Some(update) = DeviceListUpdate::parse(content) else {
        return Err(crate::error::Error::bad_json(
            "a device list update without user_id, device_id or stream_id",
        ));
    };
    if update.user_id.server_name() != origin {
        return Err(crate::error::Error::forbidden(
            "the user is not one of the sending server's",
        ));
    }
    let outcome = services.keys.apply_remote_device_update(&update)?;
    tracing::debug!(user_id = %update.user_id, ?outcome, "remote device list update");
    if outcome == UpdateOutcome::Gap && remote_devices::is_tracked(services, &update.user_id)? {
        let services = Arc::clone(services);
        tokio::spawn(async move {
            remote_devices::refetch_after_gap(&services, &update.user_id).await;
        });
        return Ok(());
    }
    if outcome == UpdateOutcome::AlreadyKnown {
        return Ok(());
    }
    crate::service::keys::announce_change(
        services,
        &update.user_id,
        crate::service::keys::Changed::OnTheirServer,
    )
}

/// A remote user's cross-signing keys changed.
fn receive_signing_update(services: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    let Some(user) = content["user_id"]
        .as_str()
        .and_then(|u| UserId::parse(u).ok())
    else {
        return Err(crate::error::Error::bad_json(
            "a signing key update without user_id",
        ));
    };
    if user.server_name() != origin {
        return Err(crate::error::Error::forbidden(
            "the user is not one of the sending server's",
        ));
    }
    services.keys.apply_remote_signing_update(&user, content)?;
    crate::service::keys::announce_change(
        services,
        &user,
        crate::service::keys::Changed::OnTheirServer,
    )
}

/// Remote users' presence, kept for those who share a room with one of our users.
fn receive_presence(services: &Services, origin: &ServerName, content: &Value) -> Result<()> {
    if !services.config.allow_presence {
        return Ok(());
    }
    for update in content["push"].as_array().into_iter().flatten() {
        let Some(user) = update["user_id"]
            .as_str()
            .and_then(|u| UserId::parse(u).ok())
        else {
            continue;
        };
        let Some(presence) = update["presence"]
            .as_str()
            .filter(|p| matches!(*p, "online" | "unavailable" | "offline"))
        else {
            continue;
        };
        if user.server_name() != origin
            || services
                .rooms
                .rooms_with_membership(&user, "join")?
                .is_empty()
        {
            continue;
        }
        let status = update["status_msg"].as_str().map(str::to_owned);
        let ago = update["last_active_ago"].as_u64().unwrap_or(0);
        services.presence.set_remote(&user, presence, status, ago)?;
    }
    Ok(())
}
