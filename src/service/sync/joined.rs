//! One room's part of a /sync answer.

use std::collections::BTreeSet;
use std::sync::Arc;

use ruma::api::client::filter::LazyLoadOptions;
use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::json::{Json, events as events_object, object, raw_array, raw_events};
use super::{DEFAULT_TIMELINE_LIMIT, SyncRequest, value_object};
use crate::error::Result;
use crate::service::Services;
use crate::service::push::UnreadCounts;
use crate::service::rooms::pdu::{EventHead, PduEvent, client_event_text};
use crate::service::rooms::state::StateMap;
use crate::service::rooms::{PduCount, StoredEvent};

/// A timeline window, and what precedes it in the room.
pub(crate) struct Window {
    pub events: Vec<StoredEvent>,
    pub limited: bool,
    /// The event right before the window's first: `Some(None)` when the window starts the room,
    /// `None` when the window is empty.
    pub before: Option<Option<ruma::OwnedEventId>>,
    /// The senders of `events`.
    pub senders: BTreeSet<OwnedUserId>,
}

/// The room's timeline events after `since` up to `next` (newest `limit`), oldest first,
/// whether older ones were left out, and which event precedes them (read anyway, so the state
/// before the window costs no second seek).
pub(crate) fn timeline_window(
    services: &Services,
    request: &SyncRequest<'_>,
    room_id: &RoomId,
    since: u64,
    next: u64,
    lower_bound: bool,
) -> Result<Window> {
    let filter = &request.filter.room.timeline;
    let limit = filter
        .limit
        .map_or(DEFAULT_TIMELINE_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(DEFAULT_TIMELINE_LIMIT)
        })
        .clamp(1, 1000);
    let rooms = &services.rooms;
    let mut visibility = rooms.visibility(request.user_id, room_id)?;
    let mut events = Vec::new();
    let mut limited = false;
    let mut cursor = PduCount::normal(next);
    // The event read right after the oldest one kept (its predecessor in the room).
    let mut before: Option<ruma::OwnedEventId> = None;
    let mut senders = BTreeSet::new();
    'pages: loop {
        let page = rooms.timeline_page(room_id, cursor.next(), true, limit + 1)?;
        if page.is_empty() {
            break;
        }
        for (count, json) in page {
            cursor = count.prev();
            let head = EventHead::parse(&json)?;
            if !events.is_empty() && before.is_none() {
                before = Some(head.event_id()?);
            }
            if lower_bound && count <= PduCount::normal(since) {
                break 'pages;
            }
            let (kind, sender) = (head.kind.as_ref(), head.sender.as_ref());
            let wanted = filter
                .types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| matches_type(t, kind)))
                && !filter.not_types.iter().any(|t| matches_type(t, kind))
                && filter
                    .senders
                    .as_ref()
                    .is_none_or(|s| s.iter().any(|s| s.as_str() == sender))
                && !filter.not_senders.iter().any(|s| s.as_str() == sender);
            let ignored = request.ignored.hides(sender, head.state_key.is_some());
            if !wanted || ignored || !visibility.can_see_at(count, &head.event_id()?)? {
                continue;
            }
            if events.len() == limit {
                limited = true;
                break 'pages;
            }
            if let Ok(sender) = UserId::parse(sender) {
                senders.insert(sender);
            }
            events.push((count, json));
            before = None;
        }
    }
    events.reverse();
    let before = (!events.is_empty()).then_some(before);
    Ok(Window {
        events,
        limited,
        before,
        senders,
    })
}

fn matches_type(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// The room state after the room's last event at or before `count` (empty before the room).
pub(crate) fn state_at(services: &Services, room_id: &RoomId, count: u64) -> Result<Arc<StateMap>> {
    let rooms = &services.rooms;
    let Some((_, json)) = rooms
        .timeline_page(room_id, PduCount::normal(count).next(), true, 1)?
        .into_iter()
        .next()
    else {
        return Ok(Arc::new(StateMap::new()));
    };
    state_after(services, &EventHead::parse(&json)?.event_id()?)
}

/// The room state after an event (empty for an event without stored state).
fn state_after(services: &Services, event_id: &ruma::EventId) -> Result<Arc<StateMap>> {
    let rooms = &services.rooms;
    let Some(short) = rooms.shorteventid(event_id)? else {
        return Ok(Arc::new(StateMap::new()));
    };
    Ok(rooms.state_after_event(short)?.unwrap_or_default())
}

/// The entries of `state` not in `already` (and, when lazy-loading members, only the members
/// in `members`), as (ShortStateKey, ShortEventId).
fn state_delta(
    services: &Services,
    state: &StateMap,
    already: &StateMap,
    members: Option<&BTreeSet<OwnedUserId>>,
) -> Result<Vec<(u64, u64)>> {
    let mut picked = Vec::new();
    for (shortstatekey, shorteventid) in state.iter() {
        if already.get(shortstatekey) == Some(shorteventid) {
            continue;
        }
        if let Some(members) = members {
            let (kind, state_key) = services.rooms.statekey_of_short(*shortstatekey)?;
            if kind == "m.room.member" && !members.iter().any(|m| m.as_str() == state_key) {
                continue;
            }
        }
        picked.push((*shortstatekey, *shorteventid));
    }
    Ok(picked)
}

/// Client events for picked state entries.
fn render_state(
    services: &Services,
    room_id: &RoomId,
    picked: &[(u64, u64)],
) -> Result<Vec<Box<RawValue>>> {
    let rooms = &services.rooms;
    let mut events = Vec::with_capacity(picked.len());
    for (_, shorteventid) in picked {
        let event_id = rooms.event_id_of_short(*shorteventid)?;
        if let Some(json) = rooms.get_pdu_json(&event_id)? {
            events.push(client_event_text(&json, room_id)?);
        }
    }
    Ok(events)
}

/// Lazy loading: which senders' membership events to add to an incremental sync's state (those
/// the device may not have), and remembering what was sent so it is sent only once.
struct LazyMembers<'a> {
    services: &'a Services,
    request: &'a SyncRequest<'a>,
    room_id: &'a RoomId,
    redundant: bool,
}

impl LazyMembers<'_> {
    /// Adds the current membership of each sender the device lacks to `picked`.
    fn add_missing(
        &self,
        picked: &mut Vec<(u64, u64)>,
        state: &StateMap,
        senders: &BTreeSet<OwnedUserId>,
        since: u64,
    ) -> Result<()> {
        let rooms = &self.services.rooms;
        for sender in senders {
            let Some(key) = rooms.shortstatekey("m.room.member", sender.as_str())? else {
                continue;
            };
            let Some(&event) = state.get(&key) else {
                continue;
            };
            if picked.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if !self.redundant
                && self.services.lazy_members.delivered(
                    self.request.user_id,
                    self.request.device_id,
                    self.room_id,
                    sender.as_str(),
                    event,
                    since,
                )?
            {
                continue;
            }
            picked.push((key, event));
        }
        Ok(())
    }

    /// Records the membership events an answer at `next` carries, in state or timeline.
    fn record(
        &self,
        picked: &[(u64, u64)],
        timeline: &[StoredEvent],
        initial: bool,
        next: u64,
    ) -> Result<()> {
        let rooms = &self.services.rooms;
        let (user_id, device_id) = (self.request.user_id, self.request.device_id);
        if initial {
            self.services
                .lazy_members
                .reset(user_id, device_id, self.room_id)?;
        }
        let mut sent = Vec::new();
        for (key, event) in picked {
            let (kind, state_key) = rooms.statekey_of_short(*key)?;
            if kind == "m.room.member" {
                sent.push((state_key, *event));
            }
        }
        for (_, json) in timeline {
            let pdu = PduEvent::from_json(json)?;
            if pdu.kind.to_string() == "m.room.member"
                && let Some(state_key) = pdu.state_key
                && let Some(short) = rooms.shorteventid(&pdu.event_id)?
            {
                sent.push((state_key, short));
            }
        }
        if sent.is_empty() {
            return Ok(());
        }
        self.services
            .lazy_members
            .record(user_id, device_id, self.room_id, &sent, next)
    }
}

/// A joined room's section: `None` when nothing in it changed.
pub fn joined_room(
    services: &Services,
    request: &SyncRequest<'_>,
    room_id: &RoomId,
    since: u64,
    next: u64,
    account_data: Option<Vec<Value>>,
    txn_ids: &TransactionIds<'_>,
) -> Result<Option<Json>> {
    let user_id = request.user_id;
    let rooms = &services.rooms;
    let initial = request.since.is_none();
    // A room joined since the last sync is sent whole, like on an initial sync.
    let full = initial || request.full_state || {
        let join_count = rooms
            .current_state_event(room_id, "m.room.member", user_id.as_str())?
            .and_then(|pdu| rooms.pdu_position(&pdu.event_id).ok().flatten())
            .map(|(_, count)| count);
        join_count.is_some_and(|count| count > PduCount::normal(since))
    };

    let window = timeline_window(services, request, room_id, since, next, !full)?;
    let (events, limited, mut senders) = (window.events, window.limited, window.senders);
    let first_count = events.first().map(|(count, _)| *count);
    let state_before_timeline = match window.before {
        Some(Some(before)) => state_after(services, &before)?,
        // The timeline starts at the room's first event held here: the create event (no
        // state before it), or the join of a room joined through another server, whose
        // state before it is the one that server answered.
        Some(None) => match events.first() {
            Some((_, json)) => rooms
                .state_map_before(&EventHead::parse(json)?.event_id()?)?
                .map(Arc::new)
                .unwrap_or_default(),
            None => Arc::new(StateMap::new()),
        },
        None => state_at(services, room_id, next)?,
    };
    let lazy = match request.filter.room.state.lazy_load_options {
        LazyLoadOptions::Disabled => None,
        LazyLoadOptions::Enabled {
            include_redundant_members,
        } => Some(LazyMembers {
            services,
            request,
            room_id,
            redundant: include_redundant_members,
        }),
    };
    senders.insert(user_id.to_owned());
    let members = lazy.as_ref().map(|_| &senders);
    let mut picked = if full {
        state_delta(services, &state_before_timeline, &StateMap::new(), members)?
    } else if limited {
        let previous = state_at(services, room_id, since)?;
        state_delta(services, &state_before_timeline, &previous, members)?
    } else {
        Vec::new()
    };
    if let Some(lazy) = &lazy {
        if !full {
            lazy.add_missing(&mut picked, &state_before_timeline, &senders, since)?;
        }
        lazy.record(&picked, &events, initial, next)?;
    }
    let state = render_state(services, room_id, &picked)?;

    let ephemeral = ephemeral(
        services,
        room_id,
        user_id,
        if full { 0 } else { since },
        next,
    )?;
    if !full
        && events.is_empty()
        && state.is_empty()
        && ephemeral.is_empty()
        && account_data.is_none()
    {
        return Ok(None);
    }
    let mut timeline_events = Vec::with_capacity(events.len());
    for (count, json) in &events {
        timeline_events.push(rooms.render_client_event(
            json,
            room_id,
            user_id,
            |event_id, sender| txn_ids.find(services, *count, event_id, sender),
        )?);
    }
    let prev_batch = first_count.map_or(PduCount::normal(next), PduCount::prev);
    let (joined_count, invited_count, heroes) = summary(services, room_id, user_id)?;
    let per_thread = request.filter.room.timeline.unread_thread_notifications;
    let (unread, unread_threads) =
        unread_fields(&unread_counts(services, room_id, user_id)?, per_thread);
    Ok(Some(object([
        ("timeline", timeline(timeline_events, limited, prev_batch)),
        ("state", raw_events(state)),
        ("ephemeral", events_object(ephemeral)),
        (
            "account_data",
            events_object(account_data.unwrap_or_default()),
        ),
        ("unread_notifications", unread.into()),
        (
            "unread_thread_notifications",
            unread_threads.map_or_else(Json::empty_object, Json::from),
        ),
        (
            "summary",
            json!({
                "m.joined_member_count": joined_count,
                "m.invited_member_count": invited_count,
                "m.heroes": heroes,
            })
            .into(),
        ),
    ])))
}

/// A room section's `timeline`.
fn timeline(events: Vec<Box<RawValue>>, limited: bool, prev_batch: PduCount) -> Json {
    object([
        ("events", raw_array(events)),
        ("limited", Value::Bool(limited).into()),
        ("prev_batch", Value::String(prev_batch.token()).into()),
    ])
}

/// Adds to a device's own events the transaction ID it sent them with, so it can match its
/// local echo.
pub(crate) struct TransactionIds<'a> {
    user_id: &'a UserId,
    device_id: &'a ruma::DeviceId,
    /// Events at or before this position predate the device.
    device_created: u64,
}

impl<'a> TransactionIds<'a> {
    pub fn new(
        services: &Services,
        user_id: &'a UserId,
        device_id: &'a ruma::DeviceId,
    ) -> Result<Self> {
        Ok(Self {
            user_id,
            device_id,
            device_created: services.users.device_created_at(user_id, device_id)?,
        })
    }

    /// The transaction ID of the event at `count`, if this device sent it.
    pub fn find(
        &self,
        services: &Services,
        count: PduCount,
        event_id: &ruma::EventId,
        sender: &UserId,
    ) -> Result<Option<String>> {
        // Backfilled events were never sent by this device.
        let Some(count) = count.stream() else {
            return Ok(None);
        };
        if count <= self.device_created || sender != self.user_id {
            return Ok(None);
        }
        Ok(services
            .rooms
            .event_txn(event_id)?
            .filter(|(device, _)| device == self.device_id.as_str())
            .map(|(_, txn_id)| txn_id))
    }
}

/// Unread counts since the user's receipts (public or private): for the main timeline the
/// latest unthreaded or `main` receipt, for a thread the latest unthreaded or that thread's.
pub fn unread_counts(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<UnreadCounts> {
    let read_position = |thread: &str| -> Result<u64> {
        let mut position = 0;
        for kind in ["m.read", "m.read.private"] {
            if let Some(receipt) = services
                .receipts
                .latest_in_thread(room_id, user_id, kind, thread)?
                && let Some((_, count)) = services.rooms.pdu_position(&receipt.event_id)?
            {
                position = position.max(count.stream().unwrap_or(0));
            }
        }
        Ok(position)
    };
    let unthreaded = read_position("")?;
    services
        .push
        .unread_counts(user_id, room_id, |thread| match thread {
            Some("") => Ok(unthreaded),
            None => Ok(unthreaded.max(read_position("main")?)),
            Some(root) => Ok(unthreaded.max(read_position(root)?)),
        })
}

/// The `unread_notifications` (and, when the filter asks, `unread_thread_notifications`) of
/// a room section.
pub fn unread_fields(counts: &UnreadCounts, per_thread: bool) -> (Value, Option<Value>) {
    let (main, threads) = if per_thread {
        let threads: serde_json::Map<String, Value> = counts
            .threads
            .iter()
            .map(|(root, (n, h))| {
                (
                    root.clone(),
                    json!({ "notification_count": n, "highlight_count": h }),
                )
            })
            .collect();
        (counts.main, Some(Value::Object(threads)))
    } else {
        (counts.total(), None)
    };
    (
        json!({ "notification_count": main.0, "highlight_count": main.1 }),
        threads,
    )
}

/// Member counts and up to five other members to name an unnamed room by.
pub(crate) fn summary(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
) -> Result<(usize, usize, Vec<OwnedUserId>)> {
    let members = services.rooms.members_shared(room_id)?;
    let joined = members.iter().filter(|(_, m)| m == "join").count();
    let invited = members.iter().filter(|(_, m)| m == "invite").count();
    let heroes = members
        .iter()
        .filter(|(user, m)| user != user_id && (m == "join" || m == "invite"))
        .take(5)
        .map(|(user, _)| user.clone())
        .collect();
    Ok((joined, invited, heroes))
}

/// A room the user left or was removed from since the last sync: the timeline up to that point.
pub fn left_room(
    services: &Services,
    request: &SyncRequest<'_>,
    room_id: &RoomId,
    since: u64,
    next: u64,
) -> Result<Option<Json>> {
    let rooms = &services.rooms;
    if !rooms.exists(room_id)? {
        // Purged by the administrators after the user was removed: an empty entry still
        // tells the client the room is gone.
        return Ok(request.since.is_some().then(|| {
            object([
                (
                    "timeline",
                    timeline(Vec::new(), false, PduCount::normal(since)),
                ),
                ("state", raw_events(Vec::new())),
                ("account_data", raw_events(Vec::new())),
            ])
        }));
    }
    let Some(member) =
        rooms.current_state_event(room_id, "m.room.member", request.user_id.as_str())?
    else {
        return Ok(None);
    };
    let Some(leave_count) = rooms
        .pdu_position(&member.event_id)?
        .and_then(|(_, count)| count.stream())
    else {
        return Ok(None);
    };
    if request.since.is_some() && leave_count <= since {
        return Ok(None);
    }
    let until = leave_count.min(next);
    let Window {
        events, limited, ..
    } = timeline_window(
        services,
        request,
        room_id,
        since,
        until,
        request.since.is_some(),
    )?;
    let mut timeline_events = Vec::with_capacity(events.len());
    for (_, json) in &events {
        timeline_events.push(client_event_text(json, room_id)?);
    }
    let prev_batch = events
        .first()
        .map_or(PduCount::normal(until), |(count, _)| count.prev());
    Ok(Some(object([
        ("timeline", timeline(timeline_events, limited, prev_batch)),
        ("state", raw_events(Vec::new())),
        ("account_data", raw_events(Vec::new())),
    ])))
}

/// Typing and receipt events of a room that changed after `since`.
pub fn ephemeral(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    since: u64,
    next: u64,
) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    if let Some(typing) = services.typing.changed_since(room_id, since) {
        events.push(json!({ "type": "m.typing", "content": { "user_ids": typing } }));
    }
    let mut content = serde_json::Map::new();
    for receipt in services.receipts.since(room_id, since)? {
        if receipt.receipt_type == "m.read.private" && receipt.user_id != user_id {
            continue;
        }
        let _ = next;
        let mut entry = json!({ "ts": receipt.ts });
        if let Some(thread) = &receipt.thread_id {
            entry["thread_id"] = json!(thread);
        }
        let by_event = content
            .entry(receipt.event_id.to_string())
            .or_insert_with(|| json!({}));
        by_event[&receipt.receipt_type][receipt.user_id.as_str()] = entry;
    }
    if !content.is_empty() {
        events.push(value_object([
            ("type", Value::String("m.receipt".to_owned())),
            ("content", Value::Object(content)),
        ]));
    }
    Ok(events)
}
