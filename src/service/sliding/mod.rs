//! Simplified sliding sync (MSC4186), the sync Element X uses.
//!
//! A client keeps one or more connections (`conn_id`) per device. The server remembers, per
//! connection and per `pos` it handed out, which rooms the client has been sent and up to
//! which stream position; each response sends only rooms in the requested windows (or
//! subscriptions) that are new to the client or changed since, and advances `pos`. The state
//! is in memory: after a restart, or for a `pos` too old, the client gets `M_UNKNOWN_POS` and
//! starts the connection afresh, as the MSC intends.

mod extensions;
mod lists;
mod room;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::api::client::sync::sync_events::v5;
use ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Map, Value, json};

use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// Positions kept per connection: the newest answers, so a client retrying a request whose
/// answer it lost is still understood.
const KEPT_POSITIONS: usize = 3;
/// Connections kept per device (Element X uses a few: room list, encryption, notifications).
const MAX_CONNECTIONS_PER_DEVICE: usize = 16;

/// What a client had been sent when it received a given `pos`.
#[derive(Clone, Default)]
struct Snapshot {
    /// The global stream position the answer covered.
    since: u64,
    /// Rooms sent, with the stream position each was sent up to.
    rooms: HashMap<OwnedRoomId, u64>,
}

#[derive(Default)]
struct Connection {
    positions: VecDeque<(u64, Snapshot)>,
    last_used: u64,
}

type ConnectionKey = (OwnedUserId, OwnedDeviceId, String);

pub struct Service {
    /// Random per server start: a `pos` from before a restart is unknown, not misread.
    epoch: String,
    connections: Mutex<HashMap<ConnectionKey, Connection>>,
    uses: std::sync::atomic::AtomicU64,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            epoch: rand::rng()
                .sample_iter(Alphanumeric)
                .take(8)
                .map(char::from)
                .collect(),
            connections: Mutex::new(HashMap::new()),
            uses: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

fn unknown_pos() -> Error {
    Error::new(
        ErrorCode::UnknownPos,
        "Unknown or expired position; start the connection again without pos",
    )
}

impl Service {
    fn key(user: &UserId, device: &ruma::DeviceId, conn_id: Option<&str>) -> ConnectionKey {
        (
            user.to_owned(),
            device.to_owned(),
            conn_id.unwrap_or_default().to_owned(),
        )
    }

    /// The snapshot a request continues from: empty for a new connection (no `pos`).
    fn snapshot(&self, key: &ConnectionKey, pos: Option<&str>) -> Result<Option<Snapshot>> {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pos) = pos else {
            connections.remove(key);
            return Ok(None);
        };
        let id = pos
            .strip_prefix(&self.epoch)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|id| id.parse::<u64>().ok())
            .ok_or_else(unknown_pos)?;
        let connection = connections.get(key).ok_or_else(unknown_pos)?;
        connection
            .positions
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, snapshot)| Some(snapshot.clone()))
            .ok_or_else(unknown_pos)
    }

    /// Stores what the client will have after this answer; returns its `pos`.
    fn remember(&self, key: ConnectionKey, snapshot: Snapshot) -> String {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let use_count = self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let device_connections = connections
            .keys()
            .filter(|(u, d, _)| *u == key.0 && *d == key.1)
            .count();
        if device_connections >= MAX_CONNECTIONS_PER_DEVICE && !connections.contains_key(&key) {
            // Forget the device's least recently used connection.
            if let Some(oldest) = connections
                .iter()
                .filter(|((u, d, _), _)| *u == key.0 && *d == key.1)
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
            {
                connections.remove(&oldest);
            }
        }
        let connection = connections.entry(key).or_default();
        connection.last_used = use_count;
        // Unique across connections, so one connection's pos means nothing to another.
        let id = use_count + 1;
        connection.positions.push_back((id, snapshot));
        while connection.positions.len() > KEPT_POSITIONS {
            connection.positions.pop_front();
        }
        format!("{}.{id}", self.epoch)
    }

    /// Forgets every connection of a removed device.
    pub fn forget_device(&self, user: &UserId, device: &ruma::DeviceId) {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        connections.retain(|(u, d, _), _| !(u == user && d == device));
    }
}

/// One computed answer, not yet handed out: [`finish`] gives it its `pos`.
pub struct Answer {
    body: Value,
    pub has_updates: bool,
    key: ConnectionKey,
    snapshot: Snapshot,
}

/// Remembers what the client gets with `answer` and returns the body with its `pos`.
pub fn finish(services: &Services, answer: Answer) -> Value {
    let pos = services.sliding.remember(answer.key, answer.snapshot);
    let mut body = answer.body;
    body["pos"] = json!(pos);
    body
}

/// Computes a sliding sync answer for `request` (without waiting).
pub fn sync(
    services: &Services,
    user_id: &UserId,
    device_id: &ruma::DeviceId,
    request: &v5::Request,
) -> Result<Answer> {
    let key = Service::key(user_id, device_id, request.conn_id.as_deref());
    let previous = services.sliding.snapshot(&key, request.pos.as_deref())?;
    let next = services.engine.safe_count();
    let since = previous.as_ref().map(|s| s.since);
    let mut snapshot = previous.clone().unwrap_or_default();
    snapshot.since = next;

    let context = lists::Context::load(services, user_id)?;
    let mut lists_out = Map::new();
    // Rooms to send, with the room settings that apply (the largest timeline limit and the
    // union of required state when a room is in several lists or subscribed).
    let mut wanted: BTreeMap<OwnedRoomId, room::Settings> = BTreeMap::new();
    for (name, list) in &request.lists {
        let (count, rooms) = context.window(services, list)?;
        lists_out.insert(name.clone(), json!({ "count": count }));
        for room_id in rooms {
            wanted.entry(room_id).or_default().merge(
                &list.room_details.required_state,
                list.room_details.timeline_limit,
            );
        }
    }
    for (room_id, subscription) in &request.room_subscriptions {
        if context.may_see(services, room_id)? {
            wanted
                .entry(room_id.clone())
                .or_default()
                .merge(&subscription.required_state, subscription.timeline_limit);
        }
    }
    // A room the client was sent and has since left is sent once more, so the client sees it.
    // Only rooms that changed for the user since `since` can have been left since.
    if let (Some(previous), Some(since)) = (&previous, since) {
        for (_, room_id) in services.rooms.membership_changes_since(user_id, since)? {
            if previous.rooms.contains_key(&room_id)
                && !wanted.contains_key(&room_id)
                && context.left_since(services, &room_id, Some(since))?
            {
                wanted.insert(room_id, room::Settings::default());
            }
        }
    }

    let mut has_updates = previous.is_none();
    let mut rooms_out = Map::new();
    let mut new_rooms = BTreeSet::new();
    let mut joined_rooms = BTreeSet::new();
    for (room_id, settings) in &wanted {
        let sent_up_to = previous
            .as_ref()
            .and_then(|s| s.rooms.get(room_id).copied());
        let membership = context
            .membership(services, room_id)?
            .unwrap_or_else(|| "leave".to_owned());
        if membership == "join" {
            joined_rooms.insert(room_id.clone());
        }
        let out = room::room(
            services,
            &context,
            user_id,
            device_id,
            room_id,
            &membership,
            settings,
            sent_up_to,
            since,
            next,
        )?;
        if let Some(out) = out {
            // New to the client (first sight, or an invite it has now joined): its extension
            // data is sent whole too.
            if out["initial"] == true {
                new_rooms.insert(room_id.clone());
            }
            rooms_out.insert(room_id.to_string(), out);
            has_updates = true;
        }
        snapshot.rooms.insert(room_id.clone(), next);
    }

    let all_rooms: BTreeSet<OwnedRoomId> = wanted.keys().cloned().collect();
    let extensions = extensions::extensions(
        services,
        user_id,
        device_id,
        &request.extensions,
        &extensions::RoomsInView {
            all: &all_rooms,
            new: &new_rooms,
            joined: &joined_rooms,
        },
        since,
        next,
    )?;
    has_updates |= extensions.has_updates;
    let mut body = json!({
        "lists": lists_out,
        "rooms": rooms_out,
        "extensions": extensions.body,
    });
    if let Some(txn_id) = &request.txn_id {
        body["txn_id"] = json!(txn_id);
    }
    Ok(Answer {
        body,
        has_updates,
        key,
        snapshot,
    })
}
