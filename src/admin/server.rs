//! `server` and `audit` commands.

use super::Actor;
use super::answer::{Answer, Block};
use super::command::{AuditCommand, ServerCommand};
use super::time::format_ts;
use crate::error::Result;
use crate::service::Services;

pub fn run(services: &Services, command: ServerCommand) -> Result<Answer> {
    match command {
        ServerCommand::Status => status(services),
    }
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
    let AuditCommand::List { limit, actor } = command;
    let mut rows = Vec::new();
    for entry in services.admin.audit.newest_first() {
        let entry = entry?;
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

fn row(name: &str, value: String) -> Vec<String> {
    vec![name.to_owned(), value]
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Bytes of the files under `path` (the database's SST files, logs and manifests).
fn directory_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
