//! The admin room: created with the bot on the first start, server administrators invited as
//! they become one and removed when they stop, commands taken from its messages and answered
//! there as replies from the bot.

use std::sync::Arc;

use ruma::api::client::room::create_room;
use ruma::events::TimelineEventType;
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::json;

use super::answer::Answer;
use super::{Actor, Job};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::PduBuilder;
use crate::service::rooms::creation;
use crate::service::rooms::member_change::set_membership;

/// `global` keys: the bot account this server created, and the admin room's ID.
const BOT_KEY: &[u8] = b"admin_bot";
const ROOM_KEY: &[u8] = b"admin_room";

const TOPIC: &str = "Conclave server administration. Send `!admin help` for the commands; \
                     `!admin <group> --help` explains a group.";

/// Creates the bot and the admin room if they do not exist yet, invites administrators who
/// are not in it, and starts the worker that runs the room's commands.
pub async fn start(services: &Arc<Services>) -> Result<()> {
    ensure_bot(services)?;
    let room_id = ensure_room(services).await?;
    let _ = services.admin.room.set(room_id);
    for admin in services.users.admins()? {
        if !services.users.is_deactivated(&admin)? {
            invite(services, &admin).await?;
        }
    }
    spawn_worker(services);
    super::console::listen(services);
    Ok(())
}

fn ensure_bot(services: &Services) -> Result<()> {
    let bot = &services.admin.bot;
    let global = services.engine.tree("global");
    match global.get(BOT_KEY)? {
        Some(ours) if ours == bot.as_bytes() => Ok(()),
        _ if services.users.exists(bot)? => Err(Error::internal(format!(
            "the account {bot} exists but was not created as this server's bot; set \
             admin_bot_localpart to a localpart nobody uses"
        ))),
        _ => {
            services.users.create_server_account(bot, "Conclave")?;
            global.insert(BOT_KEY, bot.as_bytes())?;
            tracing::info!(%bot, "created the server's bot account");
            Ok(())
        }
    }
}

async fn ensure_room(services: &Services) -> Result<OwnedRoomId> {
    let global = services.engine.tree("global");
    if let Some(bytes) = global.get(ROOM_KEY)? {
        let room_id = RoomId::parse(String::from_utf8_lossy(&bytes).as_ref())
            .map_err(|e| Error::Database(format!("admin room ID unreadable: {e}")))?;
        return Ok(room_id);
    }
    let mut request = create_room::v3::Request::new();
    request.name = Some("Admins".to_owned());
    request.topic = Some(TOPIC.to_owned());
    request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    let alias = ruma::RoomAliasId::parse(format!("#admins:{}", services.server_name()))
        .map_err(Error::internal)?;
    if services.rooms.resolve_alias(&alias)?.is_none() {
        request.room_alias_name = Some("admins".to_owned());
    } else {
        tracing::warn!(%alias, "the alias is taken; the admin room is created without it");
    }
    // Commands must stay readable by the server: no admin may turn encryption on, so
    // Element does not offer it.
    request.power_level_content_override = Some(
        serde_json::from_value(json!({
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 100,
                "m.room.avatar": 50,
                "m.room.tombstone": 100,
                "m.room.server_acl": 100,
                "m.room.encryption": 1000,
            },
        }))
        .map_err(Error::internal)?,
    );
    let room_id = creation::create_room(services, &services.admin.bot, &request).await?;
    global.insert(ROOM_KEY, room_id.as_bytes())?;
    tracing::info!(%room_id, "created the admin room");
    Ok(room_id)
}

/// Invites `user` to the admin room unless they are in it or invited.
async fn invite(services: &Services, user: &UserId) -> Result<()> {
    let Some(room) = services.admin.room() else {
        return Ok(());
    };
    let membership = services.rooms.membership(user, room)?;
    if matches!(membership.as_deref(), Some("join" | "invite")) {
        return Ok(());
    }
    set_membership(services, &services.admin.bot, room, user, "invite", None).await
}

/// Makes `user` an administrator or not, and invites them to, or removes them from, the
/// admin room.
pub async fn set_admin(services: &Services, user: &UserId, admin: bool) -> Result<()> {
    services.users.set_admin(user, admin)?;
    if admin {
        return invite(services, user).await;
    }
    let Some(room) = services.admin.room() else {
        return Ok(());
    };
    let membership = services.rooms.membership(user, room)?;
    if matches!(membership.as_deref(), Some("join" | "invite" | "knock")) {
        set_membership(
            services,
            &services.admin.bot,
            room,
            user,
            "leave",
            Some("No longer a server administrator"),
        )
        .await?;
    }
    Ok(())
}

/// Invites a user who just became an administrator by being the first account.
pub async fn welcome_first_admin(services: &Services, user: &UserId) -> Result<()> {
    invite(services, user).await
}

/// Runs the admin room's commands one at a time, until the server stops. It holds the
/// services weakly, so a stopped server is not kept alive by it.
fn spawn_worker(services: &Arc<Services>) {
    let Some(mut inbox) = services
        .admin
        .inbox
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    let weak = Arc::downgrade(services);
    let mut stopping = services.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            let job = tokio::select! {
                job = inbox.recv() => job,
                _ = stopping.changed() => None,
            };
            let (Some(job), Some(services)) = (job, weak.upgrade()) else {
                break;
            };
            let span = tracing::info_span!("admin command", sender = %job.sender);
            let _ = tracing::Instrument::instrument(handle(&services, job), span).await;
        }
    });
}

async fn handle(services: &Services, job: Job) -> Result<()> {
    let answer = if services.users.is_admin(&job.sender)? {
        // A long-running command says it started; that is posted while it runs.
        let (progress, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let actor = Actor::User(job.sender.clone());
        let command = async {
            let answer = super::run(services, &actor, &job.line, Some(&progress)).await;
            drop(progress);
            answer
        };
        let relay = async {
            while let Some(report) = reports.recv().await {
                if let Err(error) = reply(services, &job, &report).await {
                    tracing::error!(%error, "cannot answer in the admin room");
                }
            }
        };
        tokio::join!(command, relay).0
    } else {
        services.admin.audit.append(&super::audit::Entry {
            ts: crate::service::now_millis(),
            actor: job.sender.to_string(),
            origin: "admin room".to_owned(),
            action: job.line.clone(),
            outcome: "refused: not a server administrator".to_owned(),
        })?;
        Answer::error("Sorry, only server administrators can run admin commands. Nothing was done.")
    };
    if let Err(error) = reply(services, &job, &answer).await {
        tracing::error!(%error, "cannot answer in the admin room");
    }
    services.admin.stop_if_asked();
    Ok(())
}

/// Posts `text` (Markdown with `code` spans) in the admin room as the bot: reports, events
/// administrators should see.
pub async fn announce(services: &Services, text: &str) -> Result<()> {
    post(services, &Answer::ok(text), None).await
}

/// Answers the command as a reply from the bot.
async fn reply(services: &Services, job: &Job, answer: &Answer) -> Result<()> {
    post(services, answer, Some(&job.event_id)).await
}

/// Posts `answer` in the admin room as the bot (`m.notice`, Markdown `body`, HTML
/// `formatted_body`), as a reply to `in_reply_to` if given.
async fn post(
    services: &Services,
    answer: &Answer,
    in_reply_to: Option<&ruma::EventId>,
) -> Result<()> {
    let Some(room) = services.admin.room() else {
        return Ok(());
    };
    let mut content = json!({
        "msgtype": "m.notice",
        "body": answer.markdown(),
        "format": "org.matrix.custom.html",
        "formatted_body": answer.html(),
    });
    if let Some(event_id) = in_reply_to {
        content["m.relates_to"] = json!({ "m.in_reply_to": { "event_id": event_id } });
    }
    let guard = services.rooms.lock_room(room).await;
    services.rooms.build_and_append(
        PduBuilder::timeline(TimelineEventType::RoomMessage, content),
        &services.admin.bot,
        room,
        &guard,
    )?;
    guard.release().await;
    Ok(())
}
