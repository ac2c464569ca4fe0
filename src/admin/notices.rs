//! Server notices (the spec's "Server Notices" module): each user has a room with the server's
//! bot, tagged `m.server_notice`, in which the server writes to them and they cannot write
//! back. A user who left it is invited again by the next notice.

use ruma::api::client::room::create_room;
use ruma::events::TimelineEventType;
use ruma::{OwnedEventId, OwnedRoomId, RoomId, UserId};
use serde_json::json;

use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::creation;
use crate::service::rooms::member_change::set_membership;

/// Sends `text` to `user` as a server notice; returns the notices room and the event.
pub async fn send(
    services: &Services,
    user: &UserId,
    text: &str,
) -> Result<(OwnedRoomId, OwnedEventId)> {
    send_content(
        services,
        user,
        json!({ "msgtype": "m.server_notice", "body": text }),
    )
    .await
}

/// Sends `content` (an `m.room.message` content) to `user` as a server notice.
pub async fn send_content(
    services: &Services,
    user: &UserId,
    content: serde_json::Value,
) -> Result<(OwnedRoomId, OwnedEventId)> {
    let bot = &services.admin.bot;
    let tree = services.engine.tree("userid_noticeroomid");
    let stored = tree
        .get(user.as_bytes())?
        .and_then(|bytes| RoomId::parse(String::from_utf8_lossy(&bytes).as_ref()).ok())
        .filter(|room| services.rooms.is_joined(bot, room).unwrap_or(false));
    let room_id = match stored {
        Some(room) => room,
        None => {
            let room = create(services, user).await?;
            tree.insert(user.as_bytes(), room.as_bytes())?;
            room
        }
    };
    if !matches!(
        services.rooms.membership(user, &room_id)?.as_deref(),
        Some("join" | "invite")
    ) {
        set_membership(services, bot, &room_id, user, "invite", None).await?;
    }
    let guard = services.rooms.lock_room(&room_id).await;
    let event_id = services.rooms.build_and_append(
        PduBuilder::timeline(TimelineEventType::RoomMessage, content),
        bot,
        &room_id,
        &guard,
    )?;
    guard.release().await;
    Ok((room_id, event_id))
}

async fn create(services: &Services, user: &UserId) -> Result<OwnedRoomId> {
    let mut request = create_room::v3::Request::new();
    request.name = Some("Server notices".to_owned());
    request.topic = Some(format!(
        "Messages from the administrators of {}",
        services.server_name()
    ));
    request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    request.invite = vec![user.to_owned()];
    // Only the bot writes here.
    request.power_level_content_override = Some(
        serde_json::from_value(json!({ "events_default": 100, "invite": 100 }))
            .map_err(Error::internal)?,
    );
    let room_id = creation::create_room(services, &services.admin.bot, &request).await?;
    services.account_data.set(
        user,
        Some(&room_id),
        "m.tag",
        &json!({ "tags": { "m.server_notice": { "order": 0.5 } } }),
    )?;
    Ok(room_id)
}
