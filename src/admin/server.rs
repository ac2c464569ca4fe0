//! `server` and `audit` commands.

use std::path::{Path, PathBuf};

use super::answer::{Answer, Block};
use super::command::{AuditCommand, ServerCommand};
use super::time::{format_ts, parse_when};
use super::{Actor, Progress};
use crate::error::{Error, Result};
use crate::service::{Services, now_millis};

pub async fn run(
    services: &Services,
    command: ServerCommand,
    progress: Option<&Progress>,
) -> Result<Answer> {
    match command {
        ServerCommand::Status => status(services),
        ServerCommand::Config => Ok(Answer::ok("The effective configuration (secrets masked):")
            .with(Block::Code(services.config.to_masked_toml()))),
        ServerCommand::Backup { dir } => backup(services, PathBuf::from(dir), progress).await,
        ServerCommand::Notice { to, message } => {
            let text = message.join(" ");
            let recipients = match to {
                Some(user) => vec![super::local_user(services, &user)?],
                None => services
                    .users
                    .active_users()?
                    .into_iter()
                    .filter(|user| *user != services.admin.bot)
                    .collect(),
            };
            if recipients.len() > 1
                && let Some(progress) = progress
            {
                let _ = progress.send(Answer::ok(format!(
                    "Sending the notice to {} users…",
                    recipients.len()
                )));
            }
            for user in &recipients {
                super::notices::send(services, user, &text).await?;
            }
            Ok(Answer::ok(format!(
                "Sent the notice to {} user(s).",
                recipients.len()
            )))
        }
        ServerCommand::ClearCaches => {
            let before = services.rooms.cache_sizes();
            services.rooms.clear_caches();
            Ok(Answer::ok(format!(
                "Emptied the caches: {} state entries, {} member entries, {} events.",
                before.state_entries, before.member_entries, before.events
            )))
        }
        ServerCommand::Shutdown => {
            services
                .admin
                .stop_after_answer
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(Answer::ok(
                "Shutting down: in-flight requests finish, then the database is flushed.",
            ))
        }
    }
}

/// A backup (see [`crate::backup`]) into the new directory `dir`.
async fn backup(services: &Services, dir: PathBuf, progress: Option<&Progress>) -> Result<Answer> {
    if dir.exists() {
        return Ok(Answer::error(format!(
            "`{}` exists already; name a new directory",
            dir.display()
        )));
    }
    if let Some(progress) = progress {
        let _ = progress.send(Answer::ok(format!(
            "Backup to `{}` started; I will answer again when it is done.",
            dir.display()
        )));
    }
    let engine = std::sync::Arc::clone(&services.engine);
    let media = services.config.media_path();
    let server_name = services.server_name().to_string();
    let target = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::backup::write(&engine, &media, &target, &server_name)
    })
    .await
    .map_err(Error::internal)??;
    Ok(Answer::ok(format!(
        "Backup written to `{}`: the database ({}) and {} of media. To restore, stop the \
         server and run `conclave restore {}` (it fills the configured, empty database and \
         media directories).",
        dir.display(),
        megabytes(manifest.database_bytes),
        megabytes(manifest.media_bytes),
        dir.display(),
    )))
}

fn status(services: &Services) -> Result<Answer> {
    let accounts = services.users.all_accounts()?;
    let active = accounts
        .iter()
        .filter(|(user, deactivated)| !deactivated && *user != services.admin.bot)
        .count();
    let uptime = services.admin.started.elapsed().as_secs();
    let rows = vec![
        row("version", env!("CARGO_PKG_VERSION").to_owned()),
        row("server name", services.server_name().to_string()),
        row(
            "uptime",
            format!(
                "{}d {}h {}m",
                uptime / 86_400,
                uptime % 86_400 / 3600,
                uptime % 3600 / 60
            ),
        ),
        row(
            "accounts",
            format!(
                "{active} active, {} deactivated",
                accounts.iter().filter(|(_, d)| *d).count()
            ),
        ),
        row("administrators", services.users.admins()?.len().to_string()),
        row("rooms", services.rooms.room_ids()?.len().to_string()),
        row(
            "database on disk",
            megabytes(directory_size(&services.config.database_path)),
        ),
        row(
            "memory (RSS)",
            resident_memory().map_or_else(|| "unknown".to_owned(), megabytes),
        ),
    ];
    Ok(Answer::ok("Server status:").with(Block::Table {
        head: vec![String::new(), String::new()],
        rows,
    }))
}

pub fn audit(services: &Services, _: &Actor, command: AuditCommand) -> Result<Answer> {
    let (limit, actor, since) = match command {
        AuditCommand::List {
            limit,
            actor,
            since,
        } => (limit, actor, since),
        AuditCommand::Export { file } => return export(services, Path::new(&file)),
    };
    let since = since
        .as_deref()
        .map(|when| parse_when(when, now_millis()))
        .transpose()?;
    let mut rows = Vec::new();
    for entry in services.admin.audit.newest_first() {
        let entry = entry?;
        if since.is_some_and(|since| entry.ts < since) {
            break;
        }
        if actor.as_deref().is_some_and(|actor| actor != entry.actor) {
            continue;
        }
        rows.push(vec![
            format_ts(entry.ts),
            entry.actor,
            entry.origin,
            entry.action,
            entry.outcome,
        ]);
        if rows.len() >= limit {
            break;
        }
    }
    Ok(
        Answer::ok(format!("The last {} action(s), newest first:", rows.len())).with(
            Block::Table {
                head: ["when", "who", "from", "what", "outcome"]
                    .map(String::from)
                    .to_vec(),
                rows,
            },
        ),
    )
}

/// The whole audit log, oldest first, as JSON lines in a new file.
fn export(services: &Services, file: &Path) -> Result<Answer> {
    use std::io::Write;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file);
    let mut out = match created {
        Ok(out) => std::io::BufWriter::new(out),
        Err(error) => {
            return Ok(Answer::error(format!(
                "Cannot create `{}`: {error} (name a new file)",
                file.display()
            )));
        }
    };
    let mut count = 0;
    for entry in services.admin.audit.oldest_first() {
        serde_json::to_writer(&mut out, &entry?)?;
        out.write_all(b"\n").map_err(Error::internal)?;
        count += 1;
    }
    out.flush().map_err(Error::internal)?;
    Ok(Answer::ok(format!(
        "Wrote {count} entries to `{}`.",
        file.display()
    )))
}

fn row(name: &str, value: String) -> Vec<String> {
    vec![name.to_owned(), value]
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn directory_size(path: &Path) -> u64 {
    crate::backup::directory_size(path)
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
