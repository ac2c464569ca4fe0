//! What administrators do to rooms and accounts that spans several areas: shutting a room
//! down (and purging it), and erasing an account's messages. One implementation serves the
//! admin room, the console and Synapse's admin API.

use ruma::events::TimelineEventType;
use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::Services;
use super::rooms::member_change::set_membership;
use super::rooms::power::Power;
use super::rooms::purge::Purged;
use crate::error::{Error, Result};

/// How to shut a room down.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Shown to the members as the reason they left (and posted in the new room).
    pub message: Option<String>,
    /// Keep local users from joining again.
    pub block: bool,
    /// Delete the room from the database once its local members are out.
    pub purge: bool,
    /// Create a room owned by this local user, move the removed members into it and post
    /// `message` there (Synapse's `new_room_user_id`).
    pub new_room_user: Option<OwnedUserId>,
    /// The new room's name (Synapse's default otherwise).
    pub new_room_name: Option<String>,
}

/// What a shutdown did.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    pub kicked_users: Vec<OwnedUserId>,
    pub failed_to_kick_users: Vec<OwnedUserId>,
    pub local_aliases: Vec<OwnedRoomAliasId>,
    pub new_room_id: Option<OwnedRoomId>,
    pub purged: Option<Purged>,
}

/// Room deletions running in the background (Synapse's `DELETE /v2/rooms/{room}`), so their
/// status can be asked for. Kept in memory, as Synapse keeps its finished tasks only a while.
#[derive(Default)]
pub struct Deletions {
    tasks: std::sync::Mutex<Vec<Deletion>>,
}

/// One room deletion and how far it got.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub delete_id: String,
    pub room_id: OwnedRoomId,
    /// `active`, `complete` or `failed`.
    pub status: &'static str,
    pub error: Option<String>,
    pub report: Option<ShutdownSummary>,
}

/// The part of a [`ShutdownReport`] kept for a deletion's status.
#[derive(Debug, Clone)]
pub struct ShutdownSummary {
    pub kicked_users: Vec<OwnedUserId>,
    pub failed_to_kick_users: Vec<OwnedUserId>,
    pub local_aliases: Vec<OwnedRoomAliasId>,
    pub new_room_id: Option<OwnedRoomId>,
}

/// Finished deletions remembered; the oldest are forgotten first.
const DELETIONS_KEPT: usize = 1_000;

impl Deletions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Deletion>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a deletion of `room_id`, unless one is running for it already.
    pub fn start(&self, room_id: &RoomId) -> Result<String> {
        let mut tasks = self.lock();
        if tasks
            .iter()
            .any(|task| task.room_id == room_id && task.status == "active")
        {
            return Err(Error::invalid_param(format!(
                "A deletion of {room_id} is already in progress"
            )));
        }
        if tasks.len() >= DELETIONS_KEPT
            && let Some(done) = tasks.iter().position(|task| task.status != "active")
        {
            tasks.remove(done);
        }
        let delete_id: String = rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        tasks.push(Deletion {
            delete_id: delete_id.clone(),
            room_id: room_id.to_owned(),
            status: "active",
            error: None,
            report: None,
        });
        Ok(delete_id)
    }

    /// Records how a deletion ended.
    pub fn finish(&self, delete_id: &str, outcome: Result<ShutdownReport>) {
        let mut tasks = self.lock();
        let Some(task) = tasks.iter_mut().find(|task| task.delete_id == delete_id) else {
            return;
        };
        match outcome {
            Ok(report) => {
                task.status = "complete";
                task.report = Some(report.summary());
            }
            Err(error) => {
                task.status = "failed";
                task.error = Some(error.message());
            }
        }
    }

    pub fn by_id(&self, delete_id: &str) -> Option<Deletion> {
        self.lock()
            .iter()
            .find(|task| task.delete_id == delete_id)
            .cloned()
    }

    pub fn by_room(&self, room_id: &RoomId) -> Vec<Deletion> {
        self.lock()
            .iter()
            .filter(|task| task.room_id == room_id)
            .cloned()
            .collect()
    }
}

impl ShutdownReport {
    pub fn summary(&self) -> ShutdownSummary {
        ShutdownSummary {
            kicked_users: self.kicked_users.clone(),
            failed_to_kick_users: self.failed_to_kick_users.clone(),
            local_aliases: self.local_aliases.clone(),
            new_room_id: self.new_room_id.clone(),
        }
    }
}

/// The default reason given to the members of a room that is shut down.
pub const SHUTDOWN_MESSAGE: &str = "This room has been shut down by the administrators";

/// What erasing an account's messages did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Erased {
    pub redacted: usize,
    /// Messages in rooms the user had already left, where they can no longer redact.
    pub out_of_reach: usize,
}

impl Services {
    /// Removes every local member from a room (leave events with the message as reason),
    /// takes it off the directory and drops its local aliases; then, as asked, blocks it,
    /// moves the members to a new room and purges it.
    pub async fn shutdown_room(
        &self,
        room_id: &RoomId,
        options: &Shutdown,
    ) -> Result<ShutdownReport> {
        if !self.rooms.exists(room_id)? {
            return Err(Error::not_found("Unknown room"));
        }
        if Some(room_id) == self.admin.room() {
            return Err(Error::invalid_param("That is the admin room"));
        }
        let mut report = ShutdownReport::default();
        if options.block {
            self.rooms.set_blocked(room_id, true)?;
        }
        let reason = options.message.as_deref().unwrap_or(SHUTDOWN_MESSAGE);
        for (user, membership) in self.rooms.members(room_id)? {
            if user.server_name() != self.server_name()
                || !matches!(membership.as_str(), "join" | "invite" | "knock")
            {
                continue;
            }
            match set_membership(self, &user, room_id, &user, "leave", Some(reason)).await {
                Ok(()) => report.kicked_users.push(user),
                Err(error) => {
                    tracing::warn!(%error, %user, %room_id, "could not remove a member");
                    report.failed_to_kick_users.push(user);
                }
            }
        }
        self.rooms.set_public(room_id, false)?;
        for alias in self.rooms.local_aliases(room_id)? {
            self.rooms.remove_alias(&alias)?;
            report.local_aliases.push(alias);
        }
        if let Some(owner) = &options.new_room_user {
            let name = options
                .new_room_name
                .as_deref()
                .unwrap_or("Content Violation Notification");
            let new_room = self
                .notice_room(owner, name, reason, &report.kicked_users)
                .await?;
            report.new_room_id = Some(new_room);
        }
        if options.purge {
            report.purged = Some(self.purge_room(room_id).await?);
        }
        Ok(report)
    }

    /// Deletes a room from the database (its receipts too); see [`super::rooms::Service::purge_room`].
    pub async fn purge_room(&self, room_id: &RoomId) -> Result<Purged> {
        let purged = self.rooms.purge_room(room_id).await?;
        self.receipts.forget_room(room_id)?;
        Ok(purged)
    }

    /// The room Synapse's shutdown moves a closed room's members to: owned by `owner`, with
    /// `message` posted in it and the members joined.
    async fn notice_room(
        &self,
        owner: &UserId,
        name: &str,
        message: &str,
        members: &[OwnedUserId],
    ) -> Result<OwnedRoomId> {
        if owner.server_name() != self.server_name() || !self.users.exists(owner)? {
            return Err(Error::invalid_param(
                "new_room_user_id must be a local user",
            ));
        }
        let mut body = ruma::api::client::room::create_room::v3::Request::new();
        body.name = Some(name.to_owned());
        body.preset = Some(ruma::api::client::room::create_room::v3::RoomPreset::PublicChat);
        let room_id = super::rooms::creation::create_room(self, owner, &body).await?;
        let guard = self.rooms.lock_room(&room_id).await;
        self.rooms.build_and_append(
            super::rooms::PduBuilder::timeline(
                TimelineEventType::RoomMessage,
                json!({ "msgtype": "m.text", "body": message }),
            ),
            owner,
            &room_id,
            &guard,
        )?;
        guard.release().await;
        for member in members {
            if member != owner
                && let Err(error) =
                    set_membership(self, member, &room_id, member, "join", None).await
            {
                tracing::warn!(%error, %member, "could not move a member to the new room");
            }
        }
        Ok(room_id)
    }

    /// Redacts every message the user sent in the rooms they are still in (their own
    /// redactions, so every member's client shows them as removed). State events stay: the
    /// room needs them, and deactivation empties the user's membership right after.
    pub async fn erase_messages(&self, user_id: &UserId) -> Result<Erased> {
        let mut erased = Erased::default();
        let mut purge = crate::storage::Purge::default();
        for (room_id, membership) in self.rooms.memberships_of(user_id)? {
            let events = self.rooms.events_by_sender(user_id, &room_id)?;
            let targets: Vec<_> = events
                .into_iter()
                .filter(|pdu| {
                    pdu.state_key.is_none()
                        && pdu.kind != TimelineEventType::RoomRedaction
                        && pdu.content.get() != "{}"
                })
                .collect();
            if membership != "join" {
                erased.out_of_reach += targets.len();
                continue;
            }
            for target in targets {
                let (_, redacted) = self
                    .rooms
                    .redact(user_id, &room_id, &target.event_id, None, None)
                    .await?;
                purge.append(redacted);
                erased.redacted += 1;
            }
        }
        // One flush and compaction for every message, not one each.
        self.rooms
            .off_the_workers(move |services| services.engine.purge_old_versions(&purge))
            .await?;
        self.users.set_erased(user_id, true)?;
        tracing::info!(%user_id, redacted = erased.redacted, "account's messages erased");
        Ok(erased)
    }

    /// Joins a local user to a room, having a local member who may invite do so first when
    /// the room does not let them in on their own.
    pub async fn force_join(&self, user: &UserId, room: &RoomId) -> Result<()> {
        if self.rooms.is_joined(user, room)? {
            return Ok(());
        }
        let joined = set_membership(self, user, room, user, "join", None).await;
        let Err(refused) = joined else {
            return Ok(());
        };
        if self.rooms.membership(user, room)?.as_deref() == Some("invite") {
            return Err(refused);
        }
        let Some(inviter) = self.local_member_with_power(room, "invite", 0)? else {
            return Err(Error::forbidden(format!(
                "{}; and no member of this server in the room may invite",
                refused.message()
            )));
        };
        set_membership(self, &inviter, room, user, "invite", None).await?;
        set_membership(self, user, room, user, "join", None).await
    }

    /// Gives a local user the highest power level a local member of the room can grant
    /// (Synapse's `make_room_admin`), inviting them first if they are not in the room and
    /// it is not open to all. Returns who granted it.
    pub async fn make_room_admin(&self, user: &UserId, room: &RoomId) -> Result<OwnedUserId> {
        let rooms = &self.rooms;
        let Some(granter) = self.strongest_local_member(room)? else {
            return Err(Error::invalid_param(
                "No local member of the room may change its power levels",
            ));
        };
        let level = match rooms.user_power(room, &granter)? {
            Power::Level(level) => level,
            // A room version 12 creator is above every level: grant the highest one in use.
            Power::Infinite => {
                let levels = rooms.power_levels(room)?;
                levels["users"]
                    .as_object()
                    .into_iter()
                    .flat_map(|users| users.values())
                    .filter_map(Value::as_i64)
                    .chain([100])
                    .max()
                    .unwrap_or(100)
            }
        };
        if !matches!(
            rooms.membership(user, room)?.as_deref(),
            Some("join" | "invite")
        ) {
            let public = rooms
                .current_state_event(room, "m.room.join_rules", "")?
                .is_some_and(|rules| rules.content_value()["join_rule"] == "public");
            if !public {
                set_membership(self, &granter, room, user, "invite", None).await?;
            }
        }
        if rooms.user_power(room, user)? < Power::Level(level) {
            let mut levels = rooms.power_levels(room)?;
            if !levels["users"].is_object() {
                levels["users"] = json!({});
            }
            levels["users"][user.as_str()] = json!(level);
            let guard = rooms.lock_room(room).await;
            rooms.build_and_append(
                super::rooms::PduBuilder::state(TimelineEventType::RoomPowerLevels, "", levels),
                &granter,
                room,
                &guard,
            )?;
            guard.release().await;
        }
        Ok(granter)
    }

    /// A joined local member with at least the level named `key`.
    fn local_member_with_power(
        &self,
        room: &RoomId,
        key: &str,
        default: i64,
    ) -> Result<Option<OwnedUserId>> {
        for (member, membership) in self.rooms.members(room)? {
            if membership == "join"
                && member.server_name() == self.server_name()
                && self.rooms.has_power(room, &member, key, default)?
            {
                return Ok(Some(member));
            }
        }
        Ok(None)
    }

    /// The joined local member with the highest power who may change the power levels.
    fn strongest_local_member(&self, room: &RoomId) -> Result<Option<OwnedUserId>> {
        let levels = self.rooms.power_levels(room)?;
        let needed = levels["events"]["m.room.power_levels"]
            .as_i64()
            .or_else(|| levels["state_default"].as_i64())
            .unwrap_or(50);
        let mut best: Option<(Power, OwnedUserId)> = None;
        for (member, membership) in self.rooms.members(room)? {
            if membership != "join" || member.server_name() != self.server_name() {
                continue;
            }
            let power = self.rooms.user_power(room, &member)?;
            if power >= Power::Level(needed) && best.as_ref().is_none_or(|(p, _)| power > *p) {
                best = Some((power, member));
            }
        }
        Ok(best.map(|(_, member)| member))
    }
}
