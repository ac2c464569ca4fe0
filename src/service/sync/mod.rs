//! `/sync`: what changed for a user since a stream position.
//!
//! Every stream (timeline, membership, account data, receipts, typing) takes its positions from
//! the one global counter, so a `since` token is a single number and `next_batch` is the
//! counter's value when the answer was assembled. Incremental syncs read only the rooms the
//! per-user change index lists, plus ephemeral data of the user's rooms.

pub(crate) mod joined;
pub(crate) mod json;
pub mod lazy;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use ruma::api::client::filter::FilterDefinition;
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use self::json::{Json, events, object};

use super::Services;
use super::keys::DeviceListChanges;
use super::rooms::pdu::PduEvent;
use super::to_device;
use crate::error::Result;

/// What one /sync call asks for.
pub struct SyncRequest<'a> {
    pub user_id: &'a UserId,
    pub device_id: &'a ruma::DeviceId,
    pub since: Option<u64>,
    /// Where the device's to-device messages stand, when an earlier answer held back some
    /// (the token's part after `_`); else `since`.
    pub since_to_device: Option<u64>,
    pub full_state: bool,
    pub filter: FilterDefinition,
    /// Whose events and invites are not shown (`m.ignored_user_list`).
    pub ignored: crate::service::account_data::IgnoredUsers,
}

/// A /sync answer and whether it carries anything new (an empty one may wait for changes).
pub struct SyncResponse {
    pub body: Json,
    pub has_updates: bool,
}

/// Default number of timeline events per room.
const DEFAULT_TIMELINE_LIMIT: usize = 10;

pub fn sync_once(services: &Services, request: &SyncRequest<'_>) -> Result<SyncResponse> {
    let user_id = request.user_id;
    // Only positions whose writes have landed: a later sync must not skip an event that was
    // still being written when this one read.
    let next = services.engine.safe_count();
    let since = request.since.unwrap_or(0);
    let initial = request.since.is_none();
    let rooms = &services.rooms;

    // Rooms to look at: all of the user's rooms on an initial sync, else those that changed.
    let mut candidates: BTreeSet<OwnedRoomId> = BTreeSet::new();
    let memberships = rooms.memberships_of(user_id)?;
    let joined_now: Vec<OwnedRoomId> = memberships
        .iter()
        .filter(|(_, membership)| membership == "join")
        .map(|(room, _)| room.clone())
        .collect();
    if initial || request.full_state {
        candidates.extend(
            memberships
                .iter()
                .filter(|(_, membership)| {
                    matches!(membership.as_str(), "join" | "invite" | "knock")
                })
                .map(|(room, _)| room.clone()),
        );
    } else {
        // A room whose newest change is beyond `next` is read too: the index keeps only the
        // newest change per room, and its earlier changes up to `next` belong in this answer
        // (the timeline read stops at `next`).
        candidates.extend(rooms.joined_rooms_changed_since(&joined_now, since)?);
        candidates.extend(
            rooms
                .membership_changes_since(user_id, since)?
                .into_iter()
                .map(|(_, room)| room),
        );
    }
    let room_filter = &request.filter.room;
    let room_allowed = |room_id: &RoomId| {
        room_filter
            .rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
            && !room_filter.not_rooms.iter().any(|r| r == room_id)
    };

    let mut room_data = room_account_data(services, user_id, since, initial || request.full_state)?;
    if !initial {
        candidates.extend(
            room_data
                .keys()
                .filter(|room| joined_now.contains(room))
                .cloned(),
        );
    }

    let txn_ids = joined::TransactionIds::new(services, user_id, request.device_id)?;
    let membership_of: std::collections::HashMap<OwnedRoomId, String> =
        memberships.into_iter().collect();
    let mut join = Vec::new();
    let mut invite = Vec::new();
    let mut knock = Vec::new();
    let mut leave = Vec::new();
    let key = |room_id: &RoomId| Cow::Owned(room_id.to_string());
    for room_id in &candidates {
        if !room_allowed(room_id) {
            continue;
        }
        match membership_of.get(room_id).map(String::as_str) {
            Some("join") => {
                let room = joined::joined_room(
                    services,
                    request,
                    room_id,
                    since,
                    next,
                    room_data.remove(room_id),
                    &txn_ids,
                )?;
                if let Some(room) = room {
                    join.push((key(room_id), room));
                }
            }
            Some("invite") if invited_by_ignored(services, room_id, user_id, &request.ignored)? => {
            }
            Some("invite") => {
                invite.push((
                    key(room_id),
                    object([(
                        "invite_state",
                        events(stripped_state(services, room_id, user_id)?),
                    )]),
                ));
            }
            Some("knock") => {
                knock.push((
                    key(room_id),
                    object([(
                        "knock_state",
                        events(stripped_state(services, room_id, user_id)?),
                    )]),
                ));
            }
            Some("leave" | "ban") if !initial || room_filter.include_leave => {
                if let Some(room) = joined::left_room(services, request, room_id, since, next)? {
                    leave.push((key(room_id), room));
                }
            }
            _ => {}
        }
    }
    // Typing and receipts change without a room event: check the user's other joined rooms.
    if !initial {
        for room_id in &joined_now {
            if candidates.contains(room_id) || !room_allowed(room_id) {
                continue;
            }
            let ephemeral = joined::ephemeral(services, room_id, user_id, since, next)?;
            if !ephemeral.is_empty() {
                // A receipt may have changed the unread counts.
                let counts = joined::unread_counts(services, room_id, user_id)?;
                let per_thread = request.filter.room.timeline.unread_thread_notifications;
                let (unread, threads) = joined::unread_fields(&counts, per_thread);
                join.push((
                    key(room_id),
                    object([
                        ("ephemeral", events(ephemeral)),
                        ("unread_notifications", unread.into()),
                        (
                            "unread_thread_notifications",
                            threads.map_or_else(Json::empty_object, Json::from),
                        ),
                    ]),
                ));
            }
        }
    }

    let account_data = global_account_data(services, user_id, since, initial)?;
    let presence = presence_events(services, user_id, &joined_now, since)?;
    let encryption = encryption(services, request, since, next)?;
    let has_updates = !(join.is_empty()
        && invite.is_empty()
        && knock.is_empty()
        && leave.is_empty()
        && account_data.is_empty()
        && encryption.to_device.is_empty()
        && encryption.device_lists.is_empty());
    // Messages held back for the next answer: the token says where the device stands.
    let next_batch = match encryption.to_device_held_back_after {
        Some(delivered) => format!("s{next}_{delivered}"),
        None => format!("s{next}"),
    };
    let body = object([
        ("next_batch", Value::String(next_batch).into()),
        (
            "rooms",
            object([
                ("join", Json::Object(join)),
                ("invite", Json::Object(invite)),
                ("knock", Json::Object(knock)),
                ("leave", Json::Object(leave)),
            ]),
        ),
        (
            "account_data",
            object([("events", Json::Array(account_data))]),
        ),
        ("presence", events(presence)),
        ("to_device", events(encryption.to_device)),
        (
            "device_lists",
            json!({
                "changed": encryption.device_lists.changed,
                "left": encryption.device_lists.left,
            })
            .into(),
        ),
        (
            "device_one_time_keys_count",
            encryption.one_time_keys_count.into(),
        ),
        (
            "device_unused_fallback_key_types",
            json!(encryption.unused_fallback_key_types).into(),
        ),
    ]);
    Ok(SyncResponse { body, has_updates })
}

/// A JSON value object of `fields`, moving the values in (`json!` would copy each).
pub(crate) fn value_object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// An account-data event: `{"type": kind, "content": content}`.
fn typed_content(kind: &str, content: Value) -> Value {
    value_object([
        ("type", Value::String(kind.to_owned())),
        ("content", content),
    ])
}

/// The end-to-end encryption parts of a sync answer.
struct Encryption {
    to_device: Vec<Value>,
    /// Set when more messages wait than one answer holds: the position of the last one sent.
    to_device_held_back_after: Option<u64>,
    device_lists: DeviceListChanges,
    one_time_keys_count: Value,
    unused_fallback_key_types: Vec<String>,
}

fn encryption(
    services: &Services,
    request: &SyncRequest<'_>,
    since: u64,
    next: u64,
) -> Result<Encryption> {
    let (user_id, device_id) = (request.user_id, request.device_id);
    // Syncing with a token proves the device has every message the answer with that token
    // carried: those are deleted now.
    let delivered = request.since_to_device.unwrap_or(since);
    if request.since.is_some() {
        services
            .to_device
            .acknowledge(user_id, device_id, delivered)?;
    }
    let (to_device, last) =
        services
            .to_device
            .pending(user_id, device_id, delivered, next, to_device::MAX_PER_SYNC)?;
    let to_device_held_back_after = (to_device.len() == to_device::MAX_PER_SYNC)
        .then_some(last)
        .flatten()
        .filter(|last| *last < next);
    let device_lists = if request.since.is_some() {
        services.keys.device_list_changes(user_id, since, next)?
    } else {
        DeviceListChanges::default()
    };
    let one_time_keys_count = services.keys.one_time_key_counts_json(user_id, device_id)?;
    Ok(Encryption {
        to_device,
        to_device_held_back_after,
        device_lists,
        one_time_keys_count,
        unused_fallback_key_types: services
            .keys
            .unused_fallback_key_types(user_id, device_id)?,
    })
}

/// Global account data: all of it on an initial sync (with the default push rules if the user
/// has none stored), else what changed.
pub(crate) fn global_account_data(
    services: &Services,
    user_id: &UserId,
    since: u64,
    initial: bool,
) -> Result<Vec<Json>> {
    let kinds: BTreeSet<String> = services
        .account_data
        .changed_since(user_id, if initial { 0 } else { since })?
        .into_iter()
        .filter(|(room, _)| room.is_none())
        .map(|(_, kind)| kind)
        .collect();
    let mut events = Vec::new();
    for kind in &kinds {
        if let Some(content) = services.account_data.get(user_id, None, kind)? {
            events.push(typed_content(kind, content).into());
        }
    }
    if initial && !kinds.contains("m.push_rules") {
        // The defaults, built once per user and shared with push evaluation; serialised
        // straight to text.
        #[derive(serde::Serialize)]
        struct PushRules<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            content: Global<'a>,
        }
        #[derive(serde::Serialize)]
        struct Global<'a> {
            global: &'a ruma::push::Ruleset,
        }
        let settings = services.account_data.settings(user_id)?;
        let event = PushRules {
            kind: "m.push_rules",
            content: Global {
                global: &settings.push_rules,
            },
        };
        events.push(Json::Raw(serde_json::value::to_raw_value(&event)?));
    }
    Ok(events)
}

/// Past this many presence changes, who shares a room with the user is worked out once from
/// the rooms' (cached) member lists rather than from each changed user's own rooms.
const PRESENCE_CHECKS_PER_USER: usize = 16;

/// Presence changes since `since` of the user and of users sharing a room with them.
fn presence_events(
    services: &Services,
    user_id: &UserId,
    joined: &[OwnedRoomId],
    since: u64,
) -> Result<Vec<Value>> {
    if !services.config.allow_presence {
        return Ok(Vec::new());
    }
    let users: Vec<OwnedUserId> = if since == 0 {
        // Everyone's current presence: read for the user's room-mates only, since the log of
        // changes holds every user of the server who ever set one.
        let mut mates = room_mates(services, joined)?;
        mates.insert(user_id.to_owned());
        mates.into_iter().collect()
    } else {
        let changed = services.presence.changed_since(since)?;
        if changed.len() > PRESENCE_CHECKS_PER_USER {
            let mates = room_mates(services, joined)?;
            changed
                .into_iter()
                .filter(|other| other == user_id || mates.contains(other))
                .collect()
        } else {
            let mine: BTreeSet<&OwnedRoomId> = joined.iter().collect();
            let mut sharing = Vec::new();
            for other in changed {
                if other == user_id
                    || services
                        .rooms
                        .rooms_with_membership(&other, "join")?
                        .iter()
                        .any(|room| mine.contains(room))
                {
                    sharing.push(other);
                }
            }
            sharing
        }
    };
    let mut events = Vec::new();
    for other in users {
        if let Some(content) = services.presence.get(&other)? {
            events.push(value_object([
                ("type", Value::String("m.presence".to_owned())),
                ("sender", Value::String(other.to_string())),
                ("content", content),
            ]));
        }
    }
    Ok(events)
}

/// The joined members of `rooms`, from the cached member lists.
fn room_mates(services: &Services, rooms: &[OwnedRoomId]) -> Result<BTreeSet<OwnedUserId>> {
    let mut mates = BTreeSet::new();
    for room_id in rooms {
        let members = services.rooms.members_shared(room_id)?;
        mates.extend(
            members
                .iter()
                .filter(|(_, membership)| membership == "join")
                .map(|(member, _)| member.clone()),
        );
    }
    Ok(mates)
}

/// The state events (empty state key) shown with an invite or knock, here and to other
/// servers: enough to name and describe the room.
pub(crate) const STRIPPED_STATE_KINDS: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

/// Stripped state shown with an invite or knock: enough to name and describe the room.
pub(crate) fn stripped_state(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<Vec<Value>> {
    let rooms = &services.rooms;
    if !rooms.exists(room_id)?
        && let Some(invite) = rooms.remote_invite(user_id, room_id)?
    {
        return Ok(crate::service::rooms::remote_invite::stripped_of(&invite));
    }
    let mut events = Vec::new();
    let mut push = |pdu: std::sync::Arc<PduEvent>| {
        events.push(value_object([
            ("type", Value::String(pdu.kind.to_string())),
            ("state_key", json!(pdu.state_key)),
            ("content", pdu.content_value()),
            ("sender", Value::String(pdu.sender.to_string())),
        ]));
    };
    for kind in STRIPPED_STATE_KINDS {
        if let Some(pdu) = rooms.current_state_event(room_id, kind, "")? {
            push(pdu);
        }
    }
    if let Some(member) = rooms.current_state_event(room_id, "m.room.member", user_id.as_str())? {
        let inviter = member.sender.clone();
        push(member);
        if inviter != user_id
            && let Some(inviter_member) =
                rooms.current_state_event(room_id, "m.room.member", inviter.as_str())?
        {
            push(inviter_member);
        }
    }
    Ok(events)
}

/// Whether the user's invite to the room comes from someone they ignore: such invites are
/// not shown (the spec's "Ignoring Users").
pub(crate) fn invited_by_ignored(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    ignored: &crate::service::account_data::IgnoredUsers,
) -> Result<bool> {
    if ignored.is_empty() {
        return Ok(false);
    }
    let rooms = &services.rooms;
    if let Some(member) = rooms.current_state_event(room_id, "m.room.member", user_id.as_str())? {
        return Ok(ignored.contains(member.sender.as_str()));
    }
    Ok(rooms
        .remote_invite(user_id, room_id)?
        .and_then(|invite| invite.event["sender"].as_str().map(|s| ignored.contains(s)))
        .unwrap_or(false))
}

/// Groups events by room for the per-room account data of a sync.
pub(crate) fn room_account_data(
    services: &Services,
    user_id: &UserId,
    since: u64,
    full: bool,
) -> Result<BTreeMap<OwnedRoomId, Vec<Value>>> {
    let mut by_room: BTreeMap<OwnedRoomId, BTreeSet<String>> = BTreeMap::new();
    for (room, kind) in services
        .account_data
        .changed_since(user_id, if full { 0 } else { since })?
    {
        if let Some(room) = room {
            by_room.entry(room).or_default().insert(kind);
        }
    }
    let mut out = BTreeMap::new();
    for (room, kinds) in by_room {
        let mut events = Vec::new();
        for kind in kinds {
            if let Some(content) = services.account_data.get(user_id, Some(&room), &kind)? {
                events.push(typed_content(&kind, content));
            }
        }
        out.insert(room, events);
    }
    Ok(out)
}
