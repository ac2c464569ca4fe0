//! IT's tools for running the server from the chat client it already has open: commands in
//! the admin room (`!admin …`) from server administrators, answered by the server's bot, and
//! the audit log of every administrative action.
//!
//! The admin room and the bot account are created on the first start. A message in the room is
//! handed to a worker task by the event pipeline (after the event is stored), so a command
//! never runs under the room's lock and its answer is an ordinary event from the bot.

pub mod answer;
mod appservices;
pub mod audit;
pub mod command;
pub mod console;
mod federation;
mod media;
pub mod notices;
mod partners;
mod room;
mod rooms;
mod server;
pub mod time;
mod tokens;
mod users;

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use clap::Parser;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use tokio::sync::mpsc;

pub use room::{announce, set_admin, start, welcome_first_admin};

use self::answer::Answer;
use self::command::{AdminCommand, Group};
use crate::error::Result;
use crate::service::Services;
use crate::service::now_millis;
use crate::service::rooms::pdu::PduEvent;
use crate::storage::Engine;

/// A message in the admin room that starts with `!admin`.
#[derive(Debug)]
struct Job {
    event_id: OwnedEventId,
    sender: OwnedUserId,
    line: String,
}

/// Who runs a command, for the permission check and the audit log.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A user, through the admin room.
    User(OwnedUserId),
    /// The local console (the server's unix socket), with the caller's OS user ID.
    Console { uid: Option<u32> },
}

impl Actor {
    fn name(&self) -> String {
        match self {
            Actor::User(user) => user.to_string(),
            Actor::Console { .. } => "console".to_owned(),
        }
    }

    fn origin(&self) -> String {
        match self {
            Actor::User(_) => "admin room".to_owned(),
            Actor::Console { uid: Some(uid) } => format!("console (uid {uid})"),
            Actor::Console { uid: None } => "console".to_owned(),
        }
    }
}

pub struct Service {
    /// The server's bot: owns the admin room, answers commands.
    pub bot: OwnedUserId,
    room: OnceLock<OwnedRoomId>,
    jobs: mpsc::UnboundedSender<Job>,
    inbox: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    pub audit: audit::Log,
    started: Instant,
    /// Set by `server shutdown`; the stop is requested once its answer is out.
    stop_after_answer: std::sync::atomic::AtomicBool,
    stop: tokio::sync::Notify,
}

impl Service {
    pub fn new(engine: &std::sync::Arc<Engine>, bot: OwnedUserId) -> Result<Self> {
        let (jobs, inbox) = mpsc::unbounded_channel();
        Ok(Self {
            bot,
            room: OnceLock::new(),
            jobs,
            inbox: Mutex::new(Some(inbox)),
            audit: audit::Log::open(engine)?,
            started: Instant::now(),
            stop_after_answer: std::sync::atomic::AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
        })
    }

    /// Resolves when an administrator asked the server to stop (`server shutdown`).
    pub async fn stop_requested(&self) {
        self.stop.notified().await;
    }

    /// After an answer went out: requests the stop `server shutdown` asked for.
    fn stop_if_asked(&self) {
        if self
            .stop_after_answer
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.stop.notify_one();
        }
    }

    /// The admin room, once it exists.
    pub fn room(&self) -> Option<&RoomId> {
        self.room.get().map(|room| &**room)
    }

    /// Called by the event pipeline for every stored event: queues the admin room's commands.
    /// One comparison for any other room.
    pub fn observe(&self, room_id: &RoomId, pdu: &PduEvent) {
        if self.room() != Some(room_id)
            || pdu.sender == self.bot
            || pdu.kind != ruma::events::TimelineEventType::RoomMessage
        {
            return;
        }
        let content = pdu.content_value();
        // An edit repeats the command; only the original runs.
        if content["m.relates_to"]["rel_type"] == "m.replace" {
            return;
        }
        let Some(body) = content["body"].as_str() else {
            return;
        };
        let Some(line) = command_line(body) else {
            return;
        };
        let _ = self.jobs.send(Job {
            event_id: pdu.event_id.clone(),
            sender: pdu.sender.clone(),
            line: line.to_owned(),
        });
    }
}

/// The command after `!admin`, if `body` is one.
fn command_line(body: &str) -> Option<&str> {
    let rest = body.trim_start().strip_prefix("!admin")?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// Where a long-running command reports that it started; its final answer comes as usual.
pub type Progress = tokio::sync::mpsc::UnboundedSender<Answer>;

/// Parses and runs one command line for `actor` (already known to be an administrator),
/// recording it in the audit log.
pub async fn run(
    services: &Services,
    actor: &Actor,
    line: &str,
    progress: Option<&Progress>,
) -> Answer {
    let (line, block) = command::split_code_block(line);
    match command::split_words(line) {
        Some(mut words) => {
            words.extend(block);
            run_words(services, actor, words, progress).await
        }
        None => Answer::error(
            "A quote is not closed. Quote values with spaces: `--displayname \"Bob B\"`.",
        ),
    }
}

/// Runs a command given as words (the console sends them split already).
pub async fn run_words(
    services: &Services,
    actor: &Actor,
    words: Vec<String>,
    progress: Option<&Progress>,
) -> Answer {
    let parsed = AdminCommand::try_parse_from(
        std::iter::once("!admin".to_owned()).chain(words.iter().cloned()),
    );
    let command = match parsed {
        Ok(command) => command,
        // `help` and `--help` arrive here too, as clap's text.
        Err(error) => {
            let text = answer::Block::Code(error.render().to_string());
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Answer {
                    ok: true,
                    blocks: vec![text],
                },
                _ => Answer::error("The command could not be read:").with(text),
            };
        }
    };
    let answer = match execute(services, actor, command, progress).await {
        Ok(answer) => answer,
        Err(error) => Answer::error(format!("Failed: {}", error.message())),
    };
    let entry = audit::Entry {
        ts: now_millis(),
        actor: actor.name(),
        origin: actor.origin(),
        action: command::masked(&words),
        outcome: if answer.ok {
            "ok".to_owned()
        } else {
            answer.plain().lines().next().unwrap_or("failed").to_owned()
        },
    };
    if let Err(error) = services.admin.audit.append(&entry) {
        tracing::error!(%error, "cannot write the audit log");
    }
    answer
}

async fn execute(
    services: &Services,
    actor: &Actor,
    command: AdminCommand,
    progress: Option<&Progress>,
) -> Result<Answer> {
    match command.group {
        Group::Users(command) => users::run(services, command, progress).await,
        Group::Rooms(command) => rooms::run(services, command, progress).await,
        Group::Media(command) => media::run(services, actor, command).await,
        Group::Tokens(command) => tokens::run(services, command),
        Group::Server(command) => server::run(services, command, progress).await,
        Group::Audit(command) => server::audit(services, actor, command),
        Group::Federation(command) => federation::run(services, command).await,
        Group::Appservices(command) => appservices::run(services, command).await,
    }
}

/// Records an admin API call that changed something (secrets already left out of `action`).
pub fn record_api_call(
    services: &Services,
    actor: &UserId,
    ip: std::net::IpAddr,
    action: String,
    ok: bool,
) {
    let entry = audit::Entry {
        ts: now_millis(),
        actor: actor.to_string(),
        origin: format!("admin API from {ip}"),
        action,
        outcome: if ok { "ok" } else { "failed" }.to_owned(),
    };
    if let Err(error) = services.admin.audit.append(&entry) {
        tracing::error!(%error, "cannot write the audit log");
    }
}

/// Resolves a command's room argument: a room ID, or an alias of this server.
pub fn room_arg(services: &Services, room: &str) -> Result<ruma::OwnedRoomId> {
    let unknown = || crate::error::Error::not_found(format!("There is no room `{room}` here"));
    if room.starts_with('#') {
        let alias = ruma::RoomAliasId::parse(room).map_err(|_| {
            crate::error::Error::invalid_param(format!("`{room}` is not a room alias"))
        })?;
        return services.rooms.resolve_alias(&alias)?.ok_or_else(unknown);
    }
    let room_id = RoomId::parse(room).map_err(|_| {
        crate::error::Error::invalid_param(format!(
            "`{room}` is neither a room ID (!…) nor an alias (#…)"
        ))
    })?;
    if !services.rooms.exists(&room_id)? {
        return Err(unknown());
    }
    Ok(room_id)
}

/// Resolves a command's user argument: a full user ID, or a localpart of this server.
fn local_user(services: &Services, user: &str) -> Result<OwnedUserId> {
    let text = if user.starts_with('@') {
        user.to_owned()
    } else {
        format!("@{user}:{}", services.server_name())
    };
    let user_id = UserId::parse(&text).map_err(|_| {
        crate::error::Error::invalid_param(format!(
            "`{user}` is not a user ID (write `@bob:{}` or just `bob`)",
            services.server_name()
        ))
    })?;
    if user_id.server_name() != services.server_name() || !services.users.exists(&user_id)? {
        return Err(crate::error::Error::not_found(format!(
            "There is no account `{user_id}` on this server"
        )));
    }
    Ok(user_id)
}
