//! `media` commands.

use std::collections::HashMap;

use ruma::ServerName;

use super::Actor;
use super::answer::{Answer, Block};
use super::command::MediaCommand;
use super::time::{cutoff, format_ts};
use super::{local_user, room_arg};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::media::{QuarantineCount, QuarantineOutcome, mxcs_in_room};

/// The server and media ID of an `mxc://` URI of this server.
fn local_mxc<'a>(services: &Services, mxc: &'a str) -> Result<(&'a ServerName, &'a str)> {
    let (server, media_id) = mxc
        .strip_prefix("mxc://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| Error::invalid_param(format!("`{mxc}` is not an mxc:// URI")))?;
    let server = <&ServerName>::try_from(server)
        .map_err(|_| Error::invalid_param(format!("`{mxc}` names no valid server")))?;
    if server != services.server_name() {
        return Err(Error::invalid_param(format!(
            "`{mxc}` is not stored here (remote media is not kept yet)"
        )));
    }
    Ok((server, media_id))
}

fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// `N upload(s)`, and how many protected ones were left alone.
fn quarantined(count: QuarantineCount) -> String {
    let mut text = format!("{} upload(s)", count.quarantined);
    if count.protected > 0 {
        text.push_str(&format!(
            " ({} protected upload(s) left alone)",
            count.protected
        ));
    }
    text
}

pub async fn run(services: &Services, actor: &Actor, command: MediaCommand) -> Result<Answer> {
    let media = &services.media;
    let server = services.server_name();
    match command {
        MediaCommand::Info { mxc } => {
            let (server, media_id) = local_mxc(services, &mxc)?;
            let Some(meta) = media.get(server, media_id)? else {
                return Ok(Answer::error(format!("There is no `{mxc}`")));
            };
            let row = |name: &str, value: String| vec![name.to_owned(), value];
            Ok(Answer::ok(format!("`{mxc}`")).with(Block::Table {
                head: vec![String::new(), String::new()],
                rows: vec![
                    row("uploader", meta.uploader.to_string()),
                    row("uploaded", format_ts(meta.created_ms)),
                    row("size", megabytes(meta.size)),
                    row("type", meta.content_type.unwrap_or_default()),
                    row("file name", meta.filename.unwrap_or_default()),
                    row("sha256", meta.sha256),
                    row(
                        "quarantined",
                        match (meta.quarantined, &meta.quarantined_by) {
                            (false, _) => "no".to_owned(),
                            (true, Some(by)) => format!("yes, by {by}"),
                            (true, None) => "yes".to_owned(),
                        },
                    ),
                    row(
                        "protected",
                        if meta.protected { "yes" } else { "no" }.to_owned(),
                    ),
                    row(
                        "pending upload",
                        if meta.pending { "yes" } else { "no" }.to_owned(),
                    ),
                ],
            }))
        }
        MediaCommand::Delete { mxc } => {
            let (server, media_id) = local_mxc(services, &mxc)?;
            if media.delete(server, media_id).await? {
                Ok(Answer::ok(format!("Deleted `{mxc}`.")))
            } else {
                Ok(Answer::error(format!("There is no `{mxc}`")))
            }
        }
        MediaCommand::DeleteFromUser { user } => {
            let user_id = local_user(services, &user)?;
            let count = media.delete_by_uploader(server, &user_id).await?;
            Ok(Answer::ok(format!(
                "Deleted {count} upload(s) of `{user_id}`."
            )))
        }
        MediaCommand::DeleteOlderThan { age, remote_only } => {
            let before = cutoff(&age)?;
            let own = server.as_str();
            let deleted = media
                .delete_matching(|origin, _, meta| {
                    meta.created_ms < before && !(remote_only && origin == own)
                })
                .await?;
            let what = if remote_only {
                "cached remote upload(s)"
            } else {
                "upload(s)"
            };
            Ok(Answer::ok(format!(
                "Deleted {} {what} from before {}.",
                deleted.len(),
                format_ts(before)
            )))
        }
        MediaCommand::Quarantine { mxc } => {
            let (server, media_id) = local_mxc(services, &mxc)?;
            Ok(match media.quarantine(server, media_id, &actor.name())? {
                Some(QuarantineOutcome::Quarantined) => {
                    Answer::ok(format!("Quarantined `{mxc}`: kept, never served again."))
                }
                Some(QuarantineOutcome::Already) => {
                    Answer::ok(format!("`{mxc}` was already quarantined."))
                }
                Some(QuarantineOutcome::Protected) => Answer::error(format!(
                    "`{mxc}` is protected from quarantine: left as it was."
                )),
                None => Answer::error(format!("There is no `{mxc}`")),
            })
        }
        MediaCommand::QuarantineUser { user } => {
            let user_id = local_user(services, &user)?;
            let count = media.quarantine_by_uploader(server, &user_id, &actor.name())?;
            Ok(Answer::ok(format!(
                "Quarantined {} of `{user_id}`.",
                quarantined(count)
            )))
        }
        MediaCommand::QuarantineRoom { room } => {
            let room_id = room_arg(services, &room)?;
            let referenced = mxcs_in_room(&services.rooms, &room_id)?;
            let found = referenced.len();
            let count = media.quarantine_many(referenced, &actor.name())?;
            Ok(Answer::ok(format!(
                "Quarantined {} referenced in `{room_id}` ({found} media URI(s) found in its events).",
                quarantined(count)
            )))
        }
        MediaCommand::Usage { top } => {
            let mut by_user: HashMap<String, (u64, u64)> = HashMap::new();
            for (_, _, meta) in media.all()? {
                let entry = by_user.entry(meta.uploader.to_string()).or_default();
                entry.0 += 1;
                entry.1 += meta.size;
            }
            let mut usage: Vec<(String, (u64, u64))> = by_user.into_iter().collect();
            usage.sort_by_key(|(_, (_, bytes))| std::cmp::Reverse(*bytes));
            let total: u64 = usage.iter().map(|(_, (_, bytes))| bytes).sum();
            let rows = usage
                .into_iter()
                .take(top)
                .map(|(user, (count, bytes))| vec![user, count.to_string(), megabytes(bytes)])
                .collect();
            Ok(
                Answer::ok(format!("Media stored: {} in all.", megabytes(total))).with(
                    Block::Table {
                        head: ["user", "uploads", "size"].map(String::from).to_vec(),
                        rows,
                    },
                ),
            )
        }
    }
}
