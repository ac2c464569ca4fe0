//! `rooms` commands.

use ruma::{RoomAliasId, RoomId};

use super::answer::{Answer, Block};
use super::command::{AliasCommand, RoomOrder, RoomsCommand};
use super::room_arg;
use super::time::{cutoff, format_ts};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::moderation::Shutdown;

pub async fn run(
    services: &Services,
    command: RoomsCommand,
    progress: Option<&super::Progress>,
) -> Result<Answer> {
    let rooms = &services.rooms;
    match command {
        RoomsCommand::Shutdown {
            room,
            message,
            purge,
        } => {
            let room_id = room_arg(services, &room)?;
            if Some(&*room_id) == services.admin.room() {
                return Ok(Answer::error("That is the admin room."));
            }
            if purge && let Some(progress) = progress {
                let _ = progress.send(Answer::ok(format!(
                    "Shutting down and purging `{room_id}`; I will answer again when it is done."
                )));
            }
            let options = Shutdown {
                message,
                block: true,
                purge,
                ..Shutdown::default()
            };
            let report = services.shutdown_room(&room_id, &options).await?;
            let mut text = format!(
                "Shut down `{room_id}`: {} local member(s) removed, the room is blocked and \
                 off the directory",
                report.kicked_users.len()
            );
            if !report.local_aliases.is_empty() {
                text.push_str(&format!(
                    ", {} alias(es) removed",
                    report.local_aliases.len()
                ));
            }
            if !report.failed_to_kick_users.is_empty() {
                text.push_str(&format!(
                    "; {} member(s) could not be removed: {}",
                    report.failed_to_kick_users.len(),
                    join(&report.failed_to_kick_users)
                ));
            }
            match report.purged {
                Some(purged) => text.push_str(&format!(
                    ". Purged from the database: {} event(s).",
                    purged.events
                )),
                None => text.push('.'),
            }
            Ok(Answer::ok(text).with(Block::Code(join(&report.kicked_users))))
        }
        RoomsCommand::PurgeHistory { room, before } => {
            let room_id = room_arg(services, &room)?;
            let before = cutoff(&before)?;
            if let Some(progress) = progress {
                let _ = progress.send(Answer::ok(format!(
                    "Purging `{room_id}`'s messages from before {}; I will answer again when \
                     it is done.",
                    format_ts(before)
                )));
            }
            let purged = rooms.purge_history(&room_id, before).await?;
            Ok(Answer::ok(format!(
                "Purged {} message(s) of `{room_id}` from before {}; kept {} state or newest \
                 event(s) from that time.",
                purged.events,
                format_ts(before),
                purged.kept
            )))
        }
        RoomsCommand::Block { room } => {
            let room_id = room_arg(services, &room)?;
            rooms.set_blocked(&room_id, true)?;
            Ok(Answer::ok(format!(
                "Blocked `{room_id}`: no local user may join it; its members stay."
            )))
        }
        RoomsCommand::Unblock { room } => {
            let room_id = room_arg(services, &room)?;
            if !rooms.is_blocked(&room_id)? {
                return Ok(Answer::error(format!("`{room_id}` is not blocked")));
            }
            rooms.set_blocked(&room_id, false)?;
            Ok(Answer::ok(format!("Unblocked `{room_id}`.")))
        }
        RoomsCommand::List { sort, limit } => list(services, sort, limit),
        RoomsCommand::Info { room } => info(services, &room_arg(services, &room)?),
        RoomsCommand::Members { room } => {
            let room_id = room_arg(services, &room)?;
            let mut rows = Vec::new();
            for (user, membership) in rooms.members(&room_id)? {
                let name = rooms
                    .current_state_event(&room_id, "m.room.member", user.as_str())?
                    .and_then(|event| {
                        event.content_value()["displayname"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .unwrap_or_default();
                rows.push(vec![user.to_string(), name, membership]);
            }
            Ok(
                Answer::ok(format!("{} member(s) of `{room_id}`:", rows.len())).with(
                    Block::Table {
                        head: ["user", "display name", "membership"]
                            .map(String::from)
                            .to_vec(),
                        rows,
                    },
                ),
            )
        }
        RoomsCommand::Alias(AliasCommand::Set { alias, room }) => {
            let alias = local_alias(services, &alias)?;
            let room_id = room_arg(services, &room)?;
            if rooms.resolve_alias(&alias)?.is_some() {
                rooms.remove_alias(&alias)?;
            }
            rooms.set_alias(&alias, &room_id, &services.admin.bot)?;
            Ok(Answer::ok(format!("`{alias}` now points to `{room_id}`.")))
        }
        RoomsCommand::Alias(AliasCommand::Remove { alias }) => {
            let alias = local_alias(services, &alias)?;
            if rooms.resolve_alias(&alias)?.is_none() {
                return Ok(Answer::error(format!("There is no alias `{alias}`")));
            }
            rooms.remove_alias(&alias)?;
            Ok(Answer::ok(format!("Removed `{alias}`.")))
        }
        RoomsCommand::Publish { room } => {
            let room_id = room_arg(services, &room)?;
            rooms.set_public(&room_id, true)?;
            Ok(Answer::ok(format!(
                "`{room_id}` is listed in the public room directory."
            )))
        }
        RoomsCommand::Unpublish { room } => {
            let room_id = room_arg(services, &room)?;
            rooms.set_public(&room_id, false)?;
            Ok(Answer::ok(format!(
                "`{room_id}` is no longer in the public room directory."
            )))
        }
    }
}

fn join(users: &[ruma::OwnedUserId]) -> String {
    users
        .iter()
        .map(|user| user.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn local_alias(services: &Services, alias: &str) -> Result<ruma::OwnedRoomAliasId> {
    let alias = RoomAliasId::parse(alias).map_err(|_| {
        Error::invalid_param(format!(
            "`{alias}` is not a room alias (write `#name:{}`)",
            services.server_name()
        ))
    })?;
    if alias.server_name() != services.server_name() {
        return Err(Error::invalid_param(format!(
            "`{alias}` belongs to another server"
        )));
    }
    Ok(alias)
}

fn list(services: &Services, order: RoomOrder, limit: usize) -> Result<Answer> {
    let rooms = &services.rooms;
    let mut found = Vec::new();
    for room_id in rooms.room_ids()? {
        let summary = rooms.summary(&room_id)?;
        let latest = rooms.room_latest(&room_id)?;
        found.push((summary, latest));
    }
    match order {
        RoomOrder::Activity => found.sort_by_key(|(_, latest)| std::cmp::Reverse(*latest)),
        RoomOrder::Members => {
            found.sort_by_key(|(summary, _)| std::cmp::Reverse(summary.num_joined_members))
        }
        RoomOrder::Name => found.sort_by(|a, b| a.0.name.cmp(&b.0.name)),
    }
    let total = found.len();
    let rows: Vec<Vec<String>> = found
        .into_iter()
        .take(limit)
        .map(|(summary, _)| {
            vec![
                summary.room_id.to_string(),
                summary.name.unwrap_or_default(),
                summary
                    .canonical_alias
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                summary.num_joined_members.to_string(),
                if summary.encryption.is_some() {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]
        })
        .collect();
    Ok(
        Answer::ok(format!("{} of {total} room(s):", rows.len())).with(Block::Table {
            head: ["room", "name", "alias", "members", "encrypted"]
                .map(String::from)
                .to_vec(),
            rows,
        }),
    )
}

fn info(services: &Services, room_id: &RoomId) -> Result<Answer> {
    let rooms = &services.rooms;
    let summary = rooms.summary(room_id)?;
    let creator = rooms
        .current_state_event(room_id, "m.room.create", "")?
        .map(|create| create.sender.to_string())
        .unwrap_or_default();
    let members = rooms.members(room_id)?;
    let count = |wanted: &str| members.iter().filter(|(_, m)| m == wanted).count();
    let aliases: Vec<String> = rooms
        .local_aliases(room_id)?
        .into_iter()
        .map(|a| a.to_string())
        .collect();
    let row = |name: &str, value: String| vec![name.to_owned(), value];
    let rows = vec![
        row("name", summary.name.unwrap_or_default()),
        row("topic", summary.topic.unwrap_or_default()),
        row("creator", creator),
        row("version", summary.room_version.to_string()),
        row(
            "members",
            format!("{} joined, {} invited", count("join"), count("invite")),
        ),
        row("join rule", summary.join_rule),
        row(
            "encryption",
            summary.encryption.unwrap_or_else(|| "none".to_owned()),
        ),
        row("aliases", aliases.join(", ")),
        row(
            "blocked",
            if rooms.is_blocked(room_id)? {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
        ),
        row(
            "published",
            if rooms.is_public(room_id)? {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
        ),
    ];
    Ok(Answer::ok(format!("`{room_id}`")).with(Block::Table {
        head: vec![String::new(), String::new()],
        rows,
    }))
}
