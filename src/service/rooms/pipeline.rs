//! The one path by which this server adds an event to a room: build it on the room's
//! forward extremities, authorise it, store it, then the work that follows (members' indexes,
//! push, device lists, the admin bot) once the room is unlocked.

use ruma::events::TimelineEventType;
use ruma::room_version_rules::RoomIdFormatVersion;
use ruma::{CanonicalJsonObject, OwnedEventId, OwnedRoomId, RoomId, RoomVersionId, UserId};
use serde_json::{Value, json};

use super::authorise::AuthOutcome;
use super::builder::PduBuilder;
use super::fanout::Appended;
use super::pdu::PduEvent;
use super::resolution::StateBefore;
use super::state::StateMap;
use super::{RoomGuard, Service, rules_of};
use crate::error::{Error, Result};
use crate::service::now_millis;
use crate::storage::{Batch, OwnedWriteGuard};

/// Most `prev_events` referenced by one event.
const MAX_PREV_EVENTS: usize = 20;

impl Service {
    /// Creates a room with its create event and returns the room locked for the remaining
    /// initial events. `create_content` must hold the create event's content.
    pub async fn create_room(
        &self,
        sender: &UserId,
        version: &RoomVersionId,
        create_content: Value,
    ) -> Result<(OwnedRoomId, RoomGuard)> {
        self.check_not_suspended(
            &PduBuilder::state(TimelineEventType::RoomCreate, "", Value::Null),
            sender,
        )?;
        let writing = self.engine.begin_write_owned();
        let rules = rules_of(version)?;
        let mut builder = PduBuilder::state(TimelineEventType::RoomCreate, "", create_content);
        let empty = StateMap::new();
        let mut attempts = 0;
        let (room_id, object, pdu, guard) = loop {
            // Room IDs derived from the create event's hash: two identical create events (same
            // creator and content within one millisecond) would be one room. Every create event
            // of this server gets its own timestamp.
            builder.timestamp = Some(self.unique_create_timestamp());
            let (room_id, object, pdu) = match rules.room_id_format {
                RoomIdFormatVersion::V1 => {
                    let room_id = RoomId::new_v1(&self.server_name);
                    let (object, pdu) = self.build_pdu(
                        &builder,
                        sender,
                        Some(&room_id),
                        &rules,
                        &empty,
                        Vec::new(),
                        1,
                    )?;
                    (room_id, object, pdu)
                }
                _ => {
                    // The room ID is the create event's reference hash.
                    let (object, pdu) =
                        self.build_pdu(&builder, sender, None, &rules, &empty, Vec::new(), 1)?;
                    let hash = pdu.event_id.as_str().trim_start_matches('$');
                    let room_id = RoomId::new_v2(hash).map_err(Error::internal)?;
                    (room_id, object, pdu)
                }
            };
            let guard = self.lock_room(&room_id).await;
            if !self.exists(&room_id)? {
                break (room_id, object, pdu, guard);
            }
            // Only after a clock step backwards: try again with the next timestamp.
            attempts += 1;
            if attempts >= 5 {
                return Err(Error::internal("room ID collision"));
            }
            drop(guard);
        };
        if let AuthOutcome::Reject(reason) | AuthOutcome::SoftFail(reason) =
            self.authorise_built(&rules, &pdu, &empty)?
        {
            return Err(Error::forbidden(format!(
                "The create event is not allowed: {reason}"
            )));
        }

        let mut batch = Batch::default();
        batch.put(
            &self.roomid_roomversion,
            room_id.as_bytes(),
            version.as_str().as_bytes(),
        )?;
        let shortroomid = self.get_or_create_shortroomid(&room_id, &mut batch)?;
        let (_, _, appended) = self.append_pdu(
            &room_id,
            shortroomid,
            &rules,
            &pdu,
            object,
            &StateBefore::empty(),
            &mut batch,
        )?;
        self.engine.write(batch)?;
        self.after_write(&room_id, &pdu, appended, writing, &guard);
        Ok((room_id, guard))
    }

    /// A suspended user may still leave rooms and redact their own events; nothing else they
    /// send is accepted (MSC3823). Checked here, where every event a user sends passes.
    fn check_not_suspended(&self, builder: &PduBuilder, sender: &UserId) -> Result<()> {
        let services = self.services()?;
        if !services.users.is_suspended(sender) {
            return Ok(());
        }
        let leaving = builder.event_type == TimelineEventType::RoomMember
            && builder.state_key.as_deref() == Some(sender.as_str())
            && builder.content["membership"] == "leave";
        let redacts = builder.redacts.clone().or_else(|| {
            builder.content["redacts"]
                .as_str()
                .and_then(|id| id.try_into().ok())
        });
        let target = match redacts {
            Some(target) if builder.event_type == TimelineEventType::RoomRedaction => {
                self.get_pdu(&target)?
            }
            _ => None,
        };
        let own_redaction = target.is_some_and(|target| target.sender == sender);
        if leaving || own_redaction {
            return Ok(());
        }
        services.users.ensure_not_suspended(sender)
    }

    /// The current time in milliseconds, or one more than the last one handed out.
    fn unique_create_timestamp(&self) -> u64 {
        let now = now_millis();
        let previous = self
            .last_create_timestamp
            .fetch_update(
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
                |last| Some(now.max(last + 1)),
            )
            .unwrap_or(now);
        now.max(previous + 1)
    }

    /// Builds, authorises and stores one event in an existing room. The caller holds the
    /// room's lock, so the room cannot change between reading its state and appending.
    pub fn build_and_append(
        &self,
        builder: PduBuilder,
        sender: &UserId,
        room_id: &RoomId,
        guard: &RoomGuard,
    ) -> Result<OwnedEventId> {
        let mut prev_events = self.forward_extremities(room_id)?;
        prev_events.truncate(MAX_PREV_EVENTS);
        self.build_and_append_after(builder, sender, room_id, guard, prev_events)
    }

    /// Builds and authorises an event on the room's forward extremities without storing it:
    /// an invite that the invitee's server countersigns before it is placed.
    pub fn build_unstored(
        &self,
        builder: &PduBuilder,
        sender: &UserId,
        room_id: &RoomId,
        _guard: &RoomGuard,
    ) -> Result<(CanonicalJsonObject, PduEvent)> {
        self.check_not_suspended(builder, sender)?;
        let rules = self.rules(room_id)?;
        let mut prev_events = self.forward_extremities(room_id)?;
        prev_events.truncate(MAX_PREV_EVENTS);
        let before = self.state_before_events(room_id, &rules, &prev_events)?;
        let mut depth = 0u64;
        for prev in &prev_events {
            if let Some(json) = self.get_pdu_json(prev)? {
                depth = depth.max(super::pdu::depth_of(&json)?);
            }
        }
        let (object, pdu) = self.build_pdu(
            builder,
            sender,
            Some(room_id),
            &rules,
            &before.state,
            prev_events,
            depth + 1,
        )?;
        match self.authorise_built(&rules, &pdu, &before.state)? {
            AuthOutcome::Accept => Ok((object, pdu)),
            AuthOutcome::SoftFail(reason) | AuthOutcome::Reject(reason) => {
                Err(Error::forbidden(format!("Event not allowed: {reason}")))
            }
        }
    }

    /// Like [`Self::build_and_append`] with explicit `prev_events`. When they carry different
    /// states, the state before the event is their resolution.
    pub fn build_and_append_after(
        &self,
        builder: PduBuilder,
        sender: &UserId,
        room_id: &RoomId,
        guard: &RoomGuard,
        prev_events: Vec<OwnedEventId>,
    ) -> Result<OwnedEventId> {
        self.check_not_suspended(&builder, sender)?;
        // Stream positions taken below are not reported by /sync until the batch and the
        // members' indexes land.
        let writing = self.engine.begin_write_owned();
        let version = self.room_version(room_id)?;
        let rules = rules_of(&version)?;
        let shortroomid = self
            .shortroomid(room_id)?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let before = self.state_before_events(room_id, &rules, &prev_events)?;
        let state = &before.state;
        let mut depth = 0u64;
        for prev in &prev_events {
            if let Some(json) = self.get_pdu_json(prev)? {
                depth = depth.max(super::pdu::depth_of(&json)?);
            }
        }
        let (object, pdu) = self.build_pdu(
            &builder,
            sender,
            Some(room_id),
            &rules,
            state,
            prev_events,
            depth + 1,
        )?;

        // Built on every extremity, so the state before it is the current state.
        match self.authorise_built(&rules, &pdu, state)? {
            AuthOutcome::Accept => {}
            AuthOutcome::SoftFail(reason) | AuthOutcome::Reject(reason) => {
                return Err(Error::forbidden(format!("Event not allowed: {reason}")));
            }
        }

        let (object, was_joined) = self.with_replaced_state(&pdu, state, object)?;
        let event_id = pdu.event_id.clone();
        let mut batch = Batch::default();
        let (count, json, appended) = self.append_pdu(
            room_id,
            shortroomid,
            &rules,
            &pdu,
            object,
            &before,
            &mut batch,
        )?;
        if let Some((device, txn_id)) = &builder.transaction {
            self.put_txn_event(
                sender,
                device.as_str(),
                txn_id,
                txn_id,
                &event_id,
                &mut batch,
            )?;
        }
        let destinations = self.queue_for_servers(room_id, &event_id, None, &mut batch)?;
        let appservices = self.queue_for_appservices(room_id, &pdu, &mut batch)?;
        self.engine.write(batch)?;
        self.after_write(room_id, &pdu, appended, writing, guard);
        self.wake_senders(&destinations);
        self.wake_appservices(&appservices);
        self.defer_after_append(guard, room_id, &pdu, count, json, was_joined);
        Ok(event_id)
    }

    /// The event with `unsigned` naming the state event it replaces, if any: clients show
    /// changes (a new display name rather than another join) from `unsigned.prev_content`.
    /// `unsigned` is outside the hashes and signatures, and is not sent over federation. Also
    /// answers whether a member event's target was joined before it.
    pub(super) fn with_replaced_state(
        &self,
        pdu: &PduEvent,
        state_before: &StateMap,
        mut object: CanonicalJsonObject,
    ) -> Result<(CanonicalJsonObject, bool)> {
        let previous = match &pdu.state_key {
            Some(state_key) => {
                self.state_event_in(state_before, &pdu.kind.to_string(), state_key)?
            }
            None => None,
        };
        let was_joined = pdu.kind == TimelineEventType::RoomMember
            && previous
                .as_ref()
                .is_some_and(|previous| previous.content_value()["membership"] == "join");
        object.remove("unsigned");
        if let Some(previous) = &previous {
            let unsigned = json!({
                "replaces_state": previous.event_id,
                "prev_content": previous.content_value(),
                "prev_sender": previous.sender,
            });
            object.insert(
                "unsigned".to_owned(),
                serde_json::from_value(unsigned).map_err(Error::internal)?,
            );
        }
        Ok((object, was_joined))
    }

    /// Queues a timeline event, in its own batch, for the other servers joined to the room
    /// (but `origin`, which sent it to us). Answers them, to wake their senders once written.
    pub(super) fn queue_for_servers(
        &self,
        room_id: &RoomId,
        event_id: &ruma::EventId,
        origin: Option<&ruma::ServerName>,
        batch: &mut Batch,
    ) -> Result<Vec<ruma::OwnedServerName>> {
        let servers = self.remote_servers_locked(room_id)?;
        if servers.is_empty() {
            return Ok(Vec::new());
        }
        let services = self.services()?;
        // Servers the partner policy excludes are sent nothing.
        let partners = services.federation.partners();
        let servers: Vec<ruma::OwnedServerName> = servers
            .iter()
            .filter(|server| Some(server.as_ref()) != origin && partners.allows(server))
            .cloned()
            .collect();
        services.sending.queue_pdu(&servers, event_id, batch)?;
        Ok(servers)
    }

    /// Queues a timeline event, in its own batch, for the application services interested in
    /// it; answers them, to wake their workers once written.
    pub(super) fn queue_for_appservices(
        &self,
        room_id: &RoomId,
        pdu: &PduEvent,
        batch: &mut Batch,
    ) -> Result<Vec<String>> {
        let services = self.services()?;
        services
            .appservices
            .queue
            .queue_pdu(&services, room_id, pdu, batch)
    }

    /// Starts sending what [`Self::queue_for_appservices`] queued.
    pub(super) fn wake_appservices(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        if let Some(services) = self.services.upgrade() {
            services.appservices.queue.wake(ids);
        }
    }

    /// Starts sending what [`Self::queue_for_servers`] queued.
    pub(super) fn wake_senders(&self, servers: &[ruma::OwnedServerName]) {
        if servers.is_empty() {
            return;
        }
        if let Some(services) = self.services.upgrade() {
            services.sending.wake(servers);
        }
    }

    /// Push-rule evaluation and device-list tracking for a stored timeline event, after the
    /// room is unlocked.
    pub(super) fn defer_after_append(
        &self,
        guard: &RoomGuard,
        room_id: &RoomId,
        pdu: &PduEvent,
        count: u64,
        json: Vec<u8>,
        was_joined: bool,
    ) {
        // Stored: what follows may only be skipped while the server stops, and says so.
        match self.services.upgrade() {
            Some(services) => {
                let room_id = room_id.to_owned();
                let pdu = pdu.clone();
                guard.defer(move || {
                    after_append(&services, &room_id, &pdu, count, &json, was_joined);
                });
            }
            None => {
                tracing::warn!(event_id = %pdu.event_id, "stopping: no push or device-list work for this event")
            }
        }
    }

    /// What follows an event's batch under the room's lock: its members' indexes are queued
    /// and written once the room is unlocked (see [`super::fanout`]), after the cached members
    /// are dropped if it changed them.
    pub(super) fn after_write(
        &self,
        room_id: &RoomId,
        pdu: &PduEvent,
        mut appended: Appended,
        floor: OwnedWriteGuard,
        guard: &RoomGuard,
    ) {
        if appended.members_changed {
            self.forget_members(room_id);
        }
        self.apply_server_deltas(room_id, &appended.server_deltas);
        appended.floor = Some(floor);
        self.queue_fanout(room_id, appended);
        match self.services.upgrade() {
            Some(services) => {
                services.admin.observe(room_id, pdu);
                let room_id = room_id.to_owned();
                guard.defer(move || services.rooms.flush_fanout(&room_id));
            }
            None => self.flush_fanout(room_id),
        }
    }
}

/// Work that follows a stored event but must not undo it: push-rule evaluation, and
/// device-list tracking when someone joins or leaves. Runs once the room is unlocked.
fn after_append(
    services: &crate::service::Services,
    room_id: &RoomId,
    pdu: &PduEvent,
    count: u64,
    json: &[u8],
    was_joined: bool,
) {
    if pdu.kind == TimelineEventType::RoomMember
        && let Some(member) = pdu.state_key.as_deref().and_then(|m| UserId::parse(m).ok())
    {
        let is_joined = pdu.content_value()["membership"] == "join";
        if let Err(error) = crate::service::keys::on_membership_change(
            services, room_id, &member, was_joined, is_joined,
        ) {
            tracing::error!(%error, event_id = %pdu.event_id, "device-list tracking failed");
        }
    }
    if !crate::service::push::may_notify(&pdu.kind) {
        return;
    }
    if let Err(error) = services.push.on_event(services, room_id, pdu, count, json) {
        tracing::error!(%error, event_id = %pdu.event_id, "push-rule evaluation failed");
    }
}
