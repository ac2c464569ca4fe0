//! Room lists: which of the user's rooms pass a list's filters, ordered by recency, and which
//! of them fall in the requested ranges.

use std::collections::{BTreeMap, HashSet};

use ruma::api::client::sync::sync_events::v5::request::{List, ListFilters};
use ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::service::Services;

/// The user's rooms and what the filters need, read once per request.
pub struct Context {
    /// Membership per room: `join`, `invite`, `knock`, `leave` or `ban`.
    memberships: BTreeMap<OwnedRoomId, String>,
    /// Rooms the user's `m.direct` account data lists.
    direct: HashSet<OwnedRoomId>,
}

impl Context {
    pub fn load(services: &Services, user_id: &UserId) -> Result<Context> {
        let mut memberships = BTreeMap::new();
        for membership in ["join", "invite", "knock", "leave", "ban"] {
            for room in services.rooms.rooms_with_membership(user_id, membership)? {
                memberships.insert(room, membership.to_owned());
            }
        }
        let mut direct = HashSet::new();
        if let Some(content) = services.account_data.get(user_id, None, "m.direct")?
            && let Some(by_user) = content.as_object()
        {
            for rooms in by_user.values() {
                for room in rooms.as_array().into_iter().flatten() {
                    if let Some(room) = room.as_str().and_then(|r| RoomId::parse(r).ok()) {
                        direct.insert(room);
                    }
                }
            }
        }
        Ok(Context {
            memberships,
            direct,
        })
    }

    pub fn membership(&self, room_id: &RoomId) -> Option<&str> {
        self.memberships.get(room_id).map(String::as_str)
    }

    /// Rooms a list or subscription may show: joined, invited or knocked.
    pub fn may_see(&self, room_id: &RoomId) -> bool {
        matches!(self.membership(room_id), Some("join" | "invite" | "knock"))
    }

    pub fn is_dm(&self, room_id: &RoomId) -> bool {
        self.direct.contains(room_id)
    }

    /// Whether the user left (or was removed from) the room after `since`.
    pub fn left_since(
        &self,
        services: &Services,
        room_id: &RoomId,
        user_id: &UserId,
        since: Option<u64>,
    ) -> bool {
        if !matches!(self.membership(room_id), Some("leave" | "ban")) {
            return false;
        }
        let Some(since) = since else {
            return false;
        };
        member_position(services, room_id, user_id).is_some_and(|at| at > since)
    }

    /// The list's size after filtering, and the rooms in its ranges, most recent first.
    pub fn window(
        &self,
        services: &Services,
        user_id: &UserId,
        list: &List,
    ) -> Result<(usize, Vec<OwnedRoomId>)> {
        let mut rooms: Vec<(u64, &OwnedRoomId)> = Vec::new();
        for (room_id, membership) in &self.memberships {
            if !matches!(membership.as_str(), "join" | "invite" | "knock") {
                continue;
            }
            if let Some(filters) = &list.filters
                && !self.passes(services, room_id, membership, filters)?
            {
                continue;
            }
            rooms.push((bump_stamp(services, room_id, user_id, membership)?, room_id));
        }
        rooms.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let count = rooms.len();
        let mut picked: Vec<OwnedRoomId> = Vec::new();
        for (start, end) in &list.ranges {
            let start = usize::try_from(u64::from(*start)).unwrap_or(usize::MAX);
            let end = usize::try_from(u64::from(*end)).unwrap_or(usize::MAX);
            for (_, room_id) in rooms.iter().skip(start).take(end.saturating_sub(start) + 1) {
                if !picked.contains(room_id) {
                    picked.push((*room_id).clone());
                }
            }
        }
        Ok((count, picked))
    }

    fn passes(
        &self,
        services: &Services,
        room_id: &RoomId,
        membership: &str,
        filters: &ListFilters,
    ) -> Result<bool> {
        if filters.is_dm.is_some_and(|dm| dm != self.is_dm(room_id)) {
            return Ok(false);
        }
        if filters
            .is_invite
            .is_some_and(|invite| invite != (membership == "invite"))
        {
            return Ok(false);
        }
        if let Some(encrypted) = filters.is_encrypted {
            let is = services
                .rooms
                .current_state_event(room_id, "m.room.encryption", "")?
                .is_some();
            if is != encrypted {
                return Ok(false);
            }
        }
        if !filters.room_types.is_empty() || !filters.not_room_types.is_empty() {
            let room_type = room_type(services, room_id)?;
            let matches =
                |filter: &ruma::directory::RoomTypeFilter| filter.as_str() == room_type.as_deref();
            if !filters.room_types.is_empty() && !filters.room_types.iter().any(matches) {
                return Ok(false);
            }
            if filters.not_room_types.iter().any(matches) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The room's type from its create event (`m.space`, …); `None` for an ordinary room.
pub fn room_type(services: &Services, room_id: &RoomId) -> Result<Option<String>> {
    Ok(services
        .rooms
        .current_state_event(room_id, "m.room.create", "")?
        .and_then(|create| {
            create
                .content_value()
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }))
}

/// Stream position of the user's current membership event in the room.
pub fn member_position(services: &Services, room_id: &RoomId, user_id: &UserId) -> Option<u64> {
    services
        .rooms
        .current_state_event(room_id, "m.room.member", user_id.as_str())
        .ok()
        .flatten()
        .and_then(|member| services.rooms.pdu_position(&member.event_id).ok().flatten())
        .map(|(_, count)| count)
}

/// What orders a room list: the latest message-like event of a joined room; for an invite
/// or knock, the membership event (the room's messages are not visible yet).
pub fn bump_stamp(
    services: &Services,
    room_id: &RoomId,
    user_id: &UserId,
    membership: &str,
) -> Result<u64> {
    if membership == "join"
        && let Some(stamp) = services.rooms.bump_stamp(room_id)?
    {
        return Ok(stamp);
    }
    Ok(member_position(services, room_id, user_id).unwrap_or(0))
}
