//! Push-rule evaluation: every new event is checked against the push rules of each joined
//! local member (ruma's evaluator); notifying events feed unread counts, highlights and
//! `/notifications`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use ruma::events::TimelineEventType;
use ruma::power_levels::NotificationPowerLevels;
use ruma::push::{
    Action, FlattenedJson, PushCondition, PushConditionPowerLevelsCtx, PushConditionRoomCtx,
    Ruleset,
};
use ruma::room_version_rules::RoomPowerLevelsRules;
use ruma::{Int, OwnedUserId, RoomId, UInt, UserId};
use serde_json::{Value, json};

use super::Services;
use super::rooms::pdu::{PduEvent, client_event};
use crate::error::Result;
use crate::service::now_millis;
use crate::storage::{Batch, Engine, Key, Tree};

/// (notifications, highlights) for the main timeline and per thread root.
#[derive(Debug, Default)]
pub struct UnreadCounts {
    pub main: (u64, u64),
    pub threads: BTreeMap<String, (u64, u64)>,
    /// Unread call invites (the push gateway's `missed_calls`).
    pub missed_calls: u64,
}

/// Bits of the first byte of a `useridroomidcount_notification` value.
const FLAG_HIGHLIGHT: u8 = 1;
const FLAG_CALL_INVITE: u8 = 2;

impl UnreadCounts {
    /// Everything together, for clients that do not track threads.
    pub fn total(&self) -> (u64, u64) {
        self.threads
            .values()
            .fold(self.main, |(n, h), (tn, th)| (n + tn, h + th))
    }
}

pub struct Service {
    engine: Arc<Engine>,
    useridroomidcount_notification: Tree,
    useridcount_notification: Tree,
}

/// The actions of the first enabled rule of `ruleset` that applies (what ruma's
/// `Ruleset::get_actions` does, on an event flattened once for all recipients).
fn first_match<'a>(
    ruleset: &'a Ruleset,
    event: &FlattenedJson,
    context: &PushConditionRoomCtx,
) -> Option<&'a [Action]> {
    for rule in ruleset {
        if complete(rule.applies(event, context))? {
            return Some(rule.actions());
        }
    }
    None
}

/// Whether any rule looks at the user's display name (the legacy `contains_display_name`, which
/// users may still have in stored rules).
#[allow(deprecated)]
fn uses_display_name(ruleset: &Ruleset) -> bool {
    ruleset
        .override_
        .iter()
        .chain(&ruleset.underride)
        .any(|rule| {
            rule.enabled
                && rule
                    .conditions
                    .iter()
                    .any(|c| matches!(c, PushCondition::ContainsDisplayName))
        })
}

/// ruma's evaluator is async only to allow lookups this server does not configure, so it
/// completes on its first poll.
fn complete<T>(future: impl Future<Output = T>) -> Option<T> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            useridroomidcount_notification: engine.tree("useridroomidcount_notification"),
            useridcount_notification: engine.tree("useridcount_notification"),
        }
    }

    /// Evaluates a newly stored event for the room's joined local members.
    pub fn on_event(
        &self,
        services: &Services,
        room_id: &RoomId,
        pdu: &PduEvent,
        count: u64,
        json: &[u8],
    ) -> Result<()> {
        let rooms = &services.rooms;
        let members = rooms.members_shared(room_id)?;
        let joined: Vec<OwnedUserId> = members
            .iter()
            .filter(|(_, m)| m == "join")
            .map(|(u, _)| u.clone())
            .collect();
        let recipients: Vec<&OwnedUserId> = joined
            .iter()
            .filter(|user| **user != pdu.sender && user.server_name() == services.server_name())
            .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let event = client_event(json, room_id)?;
        // Flattened once for every recipient (ruma's `get_actions` would flatten per user).
        let flattened = FlattenedJson::from_raw(&event);
        // Replies in a thread count towards that thread, not the main timeline.
        let thread_root = super::rooms::relations::relates_to(&pdu.content_value())
            .filter(|(rel_type, _)| rel_type == "m.thread")
            .map(|(_, root)| root);
        let member_count = UInt::try_from(joined.len() as u64).unwrap_or_default();
        // One context for all recipients: only the user and display name change.
        let mut context = PushConditionRoomCtx::new(
            room_id.to_owned(),
            member_count,
            recipients[0].clone(),
            String::new(),
        );
        context.power_levels = self.power_levels_ctx(services, room_id)?;
        let ts = now_millis();
        let mut batch = Batch::default();
        let mut notified = Vec::new();
        for user in recipients {
            let settings = services.account_data.settings(user)?;
            // Nothing of someone a user ignores counts for them, except state events.
            if settings
                .ignored
                .hides(pdu.sender.as_str(), pdu.state_key.is_some())
            {
                continue;
            }
            let ruleset = &settings.push_rules;
            // The member event is read only for rules that need the display name.
            let display_name = if uses_display_name(ruleset) {
                rooms
                    .current_state_event(room_id, "m.room.member", user.as_str())?
                    .and_then(|member| {
                        member
                            .content_value()
                            .get("displayname")
                            .and_then(Value::as_str)
                            .map(ToOwned::to_owned)
                    })
                    .unwrap_or_else(|| user.localpart().to_owned())
            } else {
                user.localpart().to_owned()
            };
            context.user_id = user.clone();
            context.user_display_name = display_name;
            let Some(actions) = first_match(ruleset, &flattened, &context) else {
                continue;
            };
            if !actions.iter().any(Action::should_notify) {
                continue;
            }
            let mut flags = 0;
            if actions.iter().any(Action::is_highlight) {
                flags |= FLAG_HIGHLIGHT;
            }
            if pdu.kind == TimelineEventType::CallInvite {
                flags |= FLAG_CALL_INVITE;
            }
            let mut value = vec![flags];
            if let Some(root) = &thread_root {
                value.extend_from_slice(root.as_bytes());
            }
            batch.put(
                &self.useridroomidcount_notification,
                &(user.as_str(), room_id.as_str(), count).encode(),
                &value,
            )?;
            notified.push(user);
            let record = json!({ "room_id": room_id, "event_id": pdu.event_id, "actions": actions, "ts": ts });
            batch.put(
                &self.useridcount_notification,
                &(user.as_str(), count).encode(),
                record.to_string().as_bytes(),
            )?;
        }
        self.engine.write(batch)?;
        // Their phones hear of it from the push gateway, sent by a worker of their own.
        for user in notified {
            if services.pushers.has_pushers(user)? {
                services.pushers.delivery.wake(user);
            }
        }
        Ok(())
    }

    fn power_levels_ctx(
        &self,
        services: &Services,
        room_id: &RoomId,
    ) -> Result<Option<PushConditionPowerLevelsCtx>> {
        let rooms = &services.rooms;
        let levels = rooms.power_levels(room_id)?;
        let as_int = |v: &Value| v.as_i64().and_then(Int::new);
        let users = levels
            .get("users")
            .and_then(Value::as_object)
            .map(|users| {
                users
                    .iter()
                    .filter_map(|(user, level)| Some((UserId::parse(user).ok()?, as_int(level)?)))
                    .collect()
            })
            .unwrap_or_default();
        let users_default = levels
            .get("users_default")
            .and_then(as_int)
            .unwrap_or_default();
        let mut notifications = NotificationPowerLevels::new();
        if let Some(room) = levels
            .get("notifications")
            .and_then(|n| n.get("room"))
            .and_then(as_int)
        {
            notifications.room = room;
        }
        let version = rooms.room_version(room_id)?;
        let Some(rules) = version.rules() else {
            return Ok(None);
        };
        let mut creators = Vec::new();
        if let Some(create) = rooms.current_state_event(room_id, "m.room.create", "")? {
            creators.push(create.sender.clone());
            if let Some(extra) = create
                .content_value()
                .get("additional_creators")
                .and_then(Value::as_array)
            {
                creators.extend(
                    extra
                        .iter()
                        .filter_map(|u| u.as_str())
                        .filter_map(|u| UserId::parse(u).ok()),
                );
            }
        }
        let rules = RoomPowerLevelsRules::new(&rules.authorization, creators);
        Ok(Some(PushConditionPowerLevelsCtx::new(
            users,
            users_default,
            notifications,
            rules,
        )))
    }

    /// Unread counts of a room for the user: the main timeline's and each thread's, each
    /// counted after the latest receipt that covers it (`read_after` gives that position for
    /// the main timeline (`None`) or a thread root).
    pub fn unread_counts(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        mut read_after: impl FnMut(Option<&str>) -> Result<u64>,
    ) -> Result<UnreadCounts> {
        let prefix = (user_id.as_str(), room_id.as_str()).prefix();
        let mut counts = UnreadCounts::default();
        let mut thread_reads: BTreeMap<String, u64> = BTreeMap::new();
        let main_read = read_after(None)?;
        let unthreaded_floor = read_after(Some(""))?;
        let start = (
            user_id.as_str(),
            room_id.as_str(),
            unthreaded_floor.saturating_add(1),
        )
            .encode();
        for entry in self
            .useridroomidcount_notification
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (_, _, count) = <(&str, &str, u64)>::decode(&key)?;
            let flags = value.first().copied().unwrap_or(0);
            let highlight = u64::from(flags & FLAG_HIGHLIGHT != 0);
            let call = u64::from(flags & FLAG_CALL_INVITE != 0);
            let thread = value
                .get(1..)
                .filter(|t| !t.is_empty())
                .and_then(|t| std::str::from_utf8(t).ok());
            match thread {
                None => {
                    if count > main_read {
                        counts.main.0 += 1;
                        counts.main.1 += highlight;
                        counts.missed_calls += call;
                    }
                }
                Some(root) => {
                    let read = match thread_reads.get(root) {
                        Some(read) => *read,
                        None => {
                            let read = read_after(Some(root))?;
                            thread_reads.insert(root.to_owned(), read);
                            read
                        }
                    };
                    if count > read {
                        let entry = counts.threads.entry(root.to_owned()).or_default();
                        entry.0 += 1;
                        entry.1 += highlight;
                        counts.missed_calls += call;
                    }
                }
            }
        }
        Ok(counts)
    }

    /// The user's notifications after stream position `after`, oldest first (what their
    /// pushers have yet to deliver).
    pub fn notifications_after(
        &self,
        user_id: &UserId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>> {
        let prefix = (user_id.as_str(),).prefix();
        let from = (user_id.as_str(), after.saturating_add(1)).encode();
        let mut out = Vec::new();
        for entry in self
            .useridcount_notification
            .scan_prefix_from(prefix, &from)
            .take(limit)
        {
            let (key, value) = entry?;
            let (_, count) = <(&str, u64)>::decode(&key)?;
            out.push((count, serde_json::from_slice(&value)?));
        }
        Ok(out)
    }

    /// The user's notifications, newest first, before stream position `before`.
    pub fn notifications(
        &self,
        user_id: &UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Value)>> {
        let prefix = (user_id.as_str(),).prefix();
        let start = (user_id.as_str(), before.saturating_sub(1)).encode();
        let mut out = Vec::new();
        for entry in self
            .useridcount_notification
            .iter_from(&start, rocksdb::Direction::Reverse)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let (_, count) = <(&str, u64)>::decode(&key)?;
            out.push((count, serde_json::from_slice(&value)?));
        }
        Ok(out)
    }
}

/// Whether an event type can notify at all; state and ephemeral noise is skipped early.
pub fn may_notify(kind: &TimelineEventType) -> bool {
    !matches!(
        kind,
        TimelineEventType::RoomCreate
            | TimelineEventType::RoomPowerLevels
            | TimelineEventType::RoomJoinRules
    )
}
