//! The admin command grammar, one clap definition for the admin room and the console. Runbooks
//! and tests depend on these names.

use clap::{Args, Parser, Subcommand};

/// Conclave server administration. In the admin room, start a message with `!admin`.
#[derive(Debug, Parser)]
#[command(
    name = "!admin",
    disable_version_flag = true,
    color = clap::ColorChoice::Never,
    help_expected = true,
    max_term_width = 100
)]
pub struct AdminCommand {
    #[command(subcommand)]
    pub group: Group,
}

#[derive(Debug, Subcommand)]
pub enum Group {
    /// Accounts: create, reset passwords, deactivate, administrators, sessions.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Rooms: list, inspect, aliases, the public directory.
    #[command(subcommand)]
    Rooms(RoomsCommand),
    /// The media repository: inspect, delete, quarantine, usage per user.
    #[command(subcommand)]
    Media(MediaCommand),
    /// Registration tokens: hand one to new staff so they can create their own account.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The server itself.
    #[command(subcommand)]
    Server(ServerCommand),
    /// The record of every administrative action.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Federation with partner servers (needs `allow_federation`).
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Application services: bridges and bots that act for their own users.
    #[command(subcommand)]
    Appservices(AppservicesCommand),
}

#[derive(Debug, Subcommand)]
pub enum AppservicesCommand {
    /// Registers a bridge or bot from its registration (YAML, as generated for Synapse):
    /// in the admin room, put it in a code block after the command.
    Register {
        /// The registration's YAML.
        yaml: String,
    },
    /// Unregisters an application service registered here (those from
    /// appservice_registration_files are removed from the configuration instead).
    Unregister {
        /// The service's `id`.
        id: String,
    },
    /// The registered services: where they come from, their URL and queue.
    List,
    /// One service's registration (tokens masked) and the state of its queue.
    Show {
        /// The service's `id`.
        id: String,
    },
    /// Asks the service to answer (`/_matrix/app/v1/ping`) and says how long it took.
    Ping {
        /// The service's `id`.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Where a server name leads (IP literal, explicit port, well-known delegation or port
    /// 8448) and whether the server answers there: its software, and its signing keys,
    /// checked against their signatures.
    Resolve {
        /// A server name, e.g. `partner.example.com` or `127.0.0.11:8448`.
        server: String,
    },
    /// The servers this one sends events to: events queued for each, the last successful
    /// transaction, failures in a row and when the next attempt is due.
    Destinations,
    /// Sends what is queued for a server now, ending its backoff (after an outage on its side).
    Retry {
        /// A server name, e.g. `partner.example.com`.
        server: String,
    },
    /// The most recent transactions other servers sent us, newest first, with each event's
    /// result.
    Incoming {
        /// How many transactions to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Fetches one event from another server (`/event`) and shows it, checked: signatures and
    /// content hash as this server would check them on receipt. Stores nothing.
    FetchEvent {
        /// The server to ask.
        server: String,
        /// The event ID, e.g. `$abc…`.
        event_id: String,
        /// The room the event belongs to (its version decides the checks); a room this server
        /// is in.
        #[arg(long)]
        room: String,
    },
    /// This server's signing keys: the current one, and those it replaced with when they
    /// expired (still published, so that what they signed keeps verifying elsewhere).
    SigningKeys,
    /// Replaces this server's signing key, e.g. after a leak: a new key signs from now on;
    /// the old one stays published as expired now, so that events signed before still verify
    /// and nothing signed with it later does. Other servers fetch the new key on first use.
    RotateSigningKey,
    /// The partner policy: the servers this one may talk to (allowed; none = any) and never
    /// talks to (denied), from the configuration file and added here.
    Policy,
    /// Allows a server (or a glob: `*.subsidiary.example`). Once any pattern is allowed, only
    /// matching servers may talk to this one. In force at once, kept across restarts.
    Allow {
        /// A server name or glob.
        pattern: String,
    },
    /// Denies a server (or a glob): nothing is sent to it, its requests are refused, at once.
    Deny {
        /// A server name or glob.
        pattern: String,
    },
    /// Removes a pattern added with `federation allow`.
    Unallow {
        /// The pattern as it was allowed.
        pattern: String,
    },
    /// Removes a pattern added with `federation deny`.
    Undeny {
        /// The pattern as it was denied.
        pattern: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Creates an account (prints a generated password when none is given).
    Create {
        /// The new user's localpart (`bob` for `@bob:<server>`).
        localpart: String,
        /// The password; without one a random password is generated and shown once.
        #[arg(long)]
        password: Option<String>,
        /// Makes the new user a server administrator.
        #[arg(long)]
        admin: bool,
        /// The display name (defaults to the localpart).
        #[arg(long)]
        displayname: Option<String>,
    },
    /// Sets a new password and logs the user out everywhere (unless --keep-sessions).
    ResetPassword {
        /// A user ID or a localpart of this server.
        user: String,
        /// The password; without one a random password is generated and shown once.
        #[arg(long)]
        password: Option<String>,
        /// Keeps the user's devices logged in.
        #[arg(long)]
        keep_sessions: bool,
    },
    /// Deactivates an account for good: leaves every room, drops devices and tokens.
    Deactivate {
        /// A user ID or a localpart of this server.
        user: String,
        /// Also redacts every message the user sent in the rooms they are in (as Synapse's
        /// `erase`); their profile goes either way.
        #[arg(long)]
        erase: bool,
    },
    /// Lists accounts.
    List(ListUsers),
    /// Shows an account: administrator or not, devices, rooms.
    Info {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Makes a user a server administrator (and invites them to the admin room).
    MakeAdmin {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Takes server administration away from a user (and removes them from the admin room).
    RevokeAdmin {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Gives a deactivated account back its use, with a new password.
    Reactivate {
        /// A user ID or a localpart of this server.
        user: String,
        /// The new password.
        #[arg(long)]
        password: String,
    },
    /// Locks an account: its sessions stay, but every request except logging out is refused
    /// (M_USER_LOCKED) until it is unlocked.
    Lock {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Unlocks an account.
    Unlock {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Suspends an account: the user can still read, leave rooms and remove their own
    /// messages, but not send, join, invite, create rooms, upload or change their profile
    /// (M_USER_SUSPENDED).
    Suspend {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Lifts a suspension.
    Unsuspend {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Joins a user to a room as if they had joined themselves (inviting them first, as a
    /// member of the room who may, when the room needs an invite).
    ForceJoin {
        /// A user ID or a localpart of this server.
        user: String,
        /// A room ID or alias.
        room: String,
    },
    /// Removes a user from a room (they leave it, or decline its invite).
    ForceLeave {
        /// A user ID or a localpart of this server.
        user: String,
        /// A room ID or alias.
        room: String,
    },
    /// Lists a user's devices with where and when they were last seen.
    Devices {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Logs a user out of one device, or of all of them.
    Logout {
        /// A user ID or a localpart of this server.
        user: String,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListUsers {
    /// Only server administrators.
    #[arg(long)]
    pub admins: bool,
    /// Include deactivated accounts.
    #[arg(long)]
    pub deactivated: bool,
    /// Only users whose ID or display name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RoomsCommand {
    /// Lists the server's rooms.
    List {
        /// The order: most recent activity first, most members first, or by name.
        #[arg(long, value_enum, default_value_t = RoomOrder::Activity)]
        sort: RoomOrder,
        /// How many rooms to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Shows a room: name, creator, version, members, encryption, aliases, published.
    Info {
        /// A room ID or alias.
        room: String,
    },
    /// Lists a room's members with their membership.
    Members {
        /// A room ID or alias.
        room: String,
    },
    /// Adds or removes a room alias of this server.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// Takes a room away from this server's users: every local member leaves it, it is
    /// blocked so none can come back, and its local aliases and directory entry go. Its
    /// history stays on disk unless `--purge` is given.
    Shutdown {
        /// A room ID or alias.
        room: String,
        /// Shown to the members as the reason they left.
        #[arg(long)]
        message: Option<String>,
        /// Then deletes the room from the database (events, state, receipts); the block stays.
        #[arg(long)]
        purge: bool,
    },
    /// Deletes a room's messages sent before a date, to free space. State events (name,
    /// members, power levels) and the newest events stay, so the room works as before.
    PurgeHistory {
        /// A room ID or alias.
        room: String,
        /// An RFC 3339 date (`2026-01-31`, `2026-01-31T17:00:00Z`) or an age (`90d`, `12w`).
        #[arg(long)]
        before: String,
    },
    /// Blocks a room: no local user may join it, be invited to it or knock (members stay).
    Block {
        /// A room ID or alias.
        room: String,
    },
    /// Lifts a block.
    Unblock {
        /// A room ID or alias.
        room: String,
    },
    /// Lists a room in the public room directory.
    Publish {
        /// A room ID or alias.
        room: String,
    },
    /// Takes a room off the public room directory.
    Unpublish {
        /// A room ID or alias.
        room: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoomOrder {
    Activity,
    Members,
    Name,
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Points an alias at a room (moving it if it pointed elsewhere).
    Set {
        /// The alias, `#name:<server>`.
        alias: String,
        /// A room ID or alias.
        room: String,
    },
    /// Removes an alias.
    Remove {
        /// The alias, `#name:<server>`.
        alias: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Shows what is stored about an upload.
    Info {
        /// `mxc://<server>/<id>`.
        mxc: String,
    },
    /// Deletes an upload (and its thumbnails).
    Delete {
        /// `mxc://<server>/<id>`.
        mxc: String,
    },
    /// Deletes everything a user uploaded.
    DeleteFromUser {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Deletes uploads older than a date (2027-01-31) or a duration back from now (90d).
    DeleteOlderThan {
        /// A date, or a duration back from now.
        age: String,
        /// Only cached copies of other servers' media; this server's uploads stay.
        #[arg(long)]
        remote_only: bool,
    },
    /// Quarantines an upload: kept as evidence, never served again (protected media stays).
    Quarantine {
        /// `mxc://<server>/<id>`.
        mxc: String,
    },
    /// Quarantines everything a user uploaded, protected media aside.
    QuarantineUser {
        /// A user ID or a localpart of this server.
        user: String,
    },
    /// Quarantines the media that a room's events refer to (files, images, thumbnails, the room
    /// avatar), protected media aside.
    QuarantineRoom {
        /// A room ID or alias.
        room: String,
    },
    /// Bytes stored per uploader, largest first.
    Usage {
        /// How many users to show.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issues a registration token (works while registration is otherwise closed).
    Issue {
        /// How many accounts it may create (unlimited without).
        #[arg(long)]
        uses: Option<u32>,
        /// When it stops working: a date (2027-01-31, 2027-01-31T17:00:00Z) or a duration
        /// from now (12h, 7d, 2w).
        #[arg(long)]
        expires: Option<String>,
        /// The token itself (random without): 1-64 characters of A-Z a-z 0-9 . _ ~ -
        #[arg(long)]
        token: Option<String>,
    },
    /// Lists the registration tokens with their uses and expiry.
    List,
    /// Revokes a registration token.
    Revoke {
        /// The token.
        token: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Version, uptime, accounts, rooms, database size, memory and caches.
    Status,
    /// The effective configuration, secrets masked.
    Config,
    /// A consistent copy of the database and the media, taken while the server runs (also
    /// `conclave backup <DIR>` from a shell). To restore: stop the server, `conclave restore
    /// <DIR>`.
    Backup {
        /// A directory on the server that does not exist yet.
        dir: String,
    },
    /// Sends a server notice: to one user, or to every active account. Each user has a
    /// notices room from the server (tagged `m.server_notice`); leaving it does not stop the
    /// next notice.
    Notice {
        /// Only this user (a user ID or a localpart of this server).
        #[arg(long)]
        to: Option<String>,
        /// The notice's text.
        #[arg(trailing_var_arg = true, required = true)]
        message: Vec<String>,
    },
    /// Empties the in-memory caches (they refill as they are used).
    ClearCaches,
    /// Stops the server gracefully, as SIGTERM does.
    Shutdown,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The most recent administrative actions, newest first.
    List {
        /// How many entries to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only actions by this user (or `console`).
        #[arg(long)]
        actor: Option<String>,
        /// Only actions since this date (2027-01-31, 2027-01-31T17:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
    /// Writes the whole log, oldest first, as JSON lines to a new file on the server.
    Export {
        /// A file on the server that does not exist yet.
        file: String,
    },
}

/// The command reference in Markdown, from these definitions: `docs/admin.md` holds a copy
/// that a test keeps current.
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut root = AdminCommand::command();
    root.build();
    let mut out = String::new();
    describe(&mut root, &mut out);
    out
}

fn describe(command: &mut clap::Command, out: &mut String) {
    let name = command
        .get_bin_name()
        .unwrap_or(command.get_name())
        .to_owned();
    let help = command.render_long_help().to_string();
    out.push_str(&format!(
        "### `{name}`\n\n```text\n{}\n```\n\n",
        help.trim_end()
    ));
    for sub in command.get_subcommands_mut() {
        if sub.get_name() != "help" {
            describe(sub, out);
        }
    }
}

/// Splits a command line into words: whitespace separates, single or double quotes group, a
/// backslash escapes the next character. `None` for an unterminated quote.
/// A command followed by a code block (```` ``` ````, as Element sends a pasted file): the
/// command line, and the block's text as one more argument.
pub fn split_code_block(line: &str) -> (&str, Option<String>) {
    let Some(start) = line.find("```") else {
        return (line, None);
    };
    let after = &line[start + 3..];
    // The fence's first line may name a language (```yaml).
    let body = after.split_once('\n').map_or("", |(_, body)| body);
    let body = body.rsplit_once("```").map_or(body, |(body, _)| body);
    (&line[..start], Some(body.to_owned()))
}

pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                word.push(chars.next()?);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// The command's words with secrets masked, for the audit log.
pub fn masked(words: &[String]) -> String {
    // A registration holds the service's tokens: the log names the service only.
    if let [group, action, yaml, ..] = words
        && group == "appservices"
        && action == "register"
    {
        let id = serde_yaml::from_str::<serde_yaml::Value>(yaml)
            .ok()
            .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .unwrap_or_default();
        return format!("appservices register <registration of {id:?}>");
    }
    let mut out = Vec::with_capacity(words.len());
    let mut hide_next = false;
    for word in words {
        if hide_next {
            out.push("<redacted>".to_owned());
            hide_next = false;
        } else if word == "--password" || word == "--token" {
            out.push(word.clone());
            hide_next = true;
        } else if let Some((flag, _)) = word
            .split_once('=')
            .filter(|(flag, _)| matches!(*flag, "--password" | "--token"))
        {
            out.push(format!("{flag}=<redacted>"));
        } else {
            out.push(word.clone());
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{AdminCommand, masked, split_words};

    #[test]
    fn grammar_is_consistent() {
        AdminCommand::command().debug_assert();
    }

    #[test]
    fn words_and_masks() {
        let words =
            split_words(r#"users create bob --password "a b\"c" --displayname 'Bob B'"#).unwrap();
        assert_eq!(
            words,
            [
                "users",
                "create",
                "bob",
                "--password",
                "a b\"c",
                "--displayname",
                "Bob B"
            ]
        );
        assert_eq!(
            masked(&words),
            "users create bob --password <redacted> --displayname Bob B"
        );
        assert_eq!(
            masked(&["--password=x".to_owned()]),
            "--password=<redacted>"
        );
        assert_eq!(split_words("a 'b"), None);
        assert_eq!(split_words("  "), Some(vec![]));
    }
}

#[cfg(test)]
mod reference_tests {
    /// docs/admin.md carries the generated reference; `CONCLAVE_UPDATE_DOCS=1 cargo test`
    /// rewrites it after a change to the commands.
    #[test]
    fn docs_hold_the_current_reference() {
        const BEGIN: &str = "<!-- generated from src/admin/command.rs: begin -->\n";
        const END: &str = "<!-- generated: end -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin.md");
        let docs = std::fs::read_to_string(path).expect("docs/admin.md");
        let (head, rest) = docs.split_once(BEGIN).expect("begin marker");
        let (_, tail) = rest.split_once(END).expect("end marker");
        let current = format!("{head}{BEGIN}{}{END}{tail}", super::reference());
        if std::env::var_os("CONCLAVE_UPDATE_DOCS").is_some() {
            std::fs::write(path, &current).unwrap();
        } else {
            assert!(
                docs == current,
                "docs/admin.md is out of date: run CONCLAVE_UPDATE_DOCS=1 cargo test --lib reference"
            );
        }
    }
}
