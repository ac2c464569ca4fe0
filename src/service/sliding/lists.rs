//! Room lists: which of the user's rooms pass a list's filters, ordered by recency, and which
//! of them fall in the requested ranges. Rooms come from the per-user recency index
//! (`rooms::room_list`), so a window costs what it holds, not what the user is in.

use std::collections::HashSet;

use ruma::api::client::sync::sync_events::v5::request::{List, ListFilters};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde_json::Value;

use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::room_list::{LISTED, ListedRoom};

/// The requesting user and what the filters need, read once per request.
pub struct Context {
    user_id: OwnedUserId,
    /// Rooms the user's `m.direct` account data lists.
    direct: HashSet<OwnedRoomId>,
    /// Users whose invites (and events) the user does not see.
    ignored: crate::service::account_data::IgnoredUsers,
}

impl Context {
    pub fn load(services: &Services, user_id: &UserId) -> Result<Context> {
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
            user_id: user_id.to_owned(),
            direct,
            ignored: services.account_data.ignored_users(user_id)?,
        })
    }

    /// The user's membership in the room: `join`, `invite`, `knock`, `leave` or `ban`.
    pub fn membership(&self, services: &Services, room_id: &RoomId) -> Result<Option<String>> {
        services.rooms.membership(&self.user_id, room_id)
    }

    /// Rooms a list or subscription may show: joined, invited or knocked.
    pub fn may_see(&self, services: &Services, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .membership(services, room_id)?
            .is_some_and(|m| LISTED.contains(&m.as_str())))
    }

    pub fn ignored(&self) -> &crate::service::account_data::IgnoredUsers {
        &self.ignored
    }

    /// Whether the room is an invite from someone the user ignores (not listed).
    fn hidden_invite(&self, services: &Services, room: &ListedRoom) -> Result<bool> {
        Ok(room.membership == "invite"
            && crate::service::sync::invited_by_ignored(
                services,
                &room.room_id,
                &self.user_id,
                &self.ignored,
            )?)
    }

    pub fn is_dm(&self, room_id: &RoomId) -> bool {
        self.direct.contains(room_id)
    }

    /// Whether the user left (or was removed from) the room after `since`.
    pub fn left_since(
        &self,
        services: &Services,
        room_id: &RoomId,
        since: Option<u64>,
    ) -> Result<bool> {
        let Some(since) = since else {
            return Ok(false);
        };
        if !matches!(
            self.membership(services, room_id)?.as_deref(),
            Some("leave" | "ban")
        ) {
            return Ok(false);
        }
        Ok(member_position(services, room_id, &self.user_id).is_some_and(|at| at > since))
    }

    /// The list's size after filtering, and the rooms in its ranges, most recent first.
    ///
    /// Reads the user's rooms newest first and stops after the last range, when the size is
    /// known from counters (no filter, or only `is_invite`, as Element X asks). Other filters
    /// need every room looked at to be counted.
    pub fn window(&self, services: &Services, list: &List) -> Result<(usize, Vec<OwnedRoomId>)> {
        let ranges: Vec<(usize, usize)> = list
            .ranges
            .iter()
            .map(|(start, end)| {
                let index = |n: &ruma::UInt| usize::try_from(u64::from(*n)).unwrap_or(usize::MAX);
                (index(start), index(end))
            })
            .filter(|(start, end)| start <= end)
            .collect();
        let last = ranges.iter().map(|(_, end)| *end).max();
        let counted = self.count_from_counters(services, list.filters.as_ref())?;
        // Rooms at filtered positions 0..=last, in order.
        let mut head: Vec<OwnedRoomId> = Vec::new();
        let mut matched = 0usize;
        for room in services.rooms.room_list(&self.user_id) {
            if counted.is_some() && last.is_none_or(|last| matched > last) {
                break;
            }
            let room = room?;
            if let Some(filters) = &list.filters
                && !self.passes(services, &room, filters)?
            {
                continue;
            }
            if self.hidden_invite(services, &room)? {
                continue;
            }
            if last.is_some_and(|last| matched <= last) {
                head.push(room.room_id);
            }
            matched += 1;
        }
        let mut picked: Vec<OwnedRoomId> = Vec::new();
        for (start, end) in ranges {
            for room_id in head.iter().take(end.saturating_add(1)).skip(start) {
                if !picked.contains(room_id) {
                    picked.push(room_id.clone());
                }
            }
        }
        Ok((counted.unwrap_or(matched), picked))
    }

    /// The list's size from the per-membership counters, when its filters allow.
    fn count_from_counters(
        &self,
        services: &Services,
        filters: Option<&ListFilters>,
    ) -> Result<Option<usize>> {
        // Hidden invites are not in the counters: every room is looked at instead.
        if !self.ignored.is_empty() {
            return Ok(None);
        }
        let memberships: &[&str] = match filters {
            None => &LISTED,
            Some(f)
                if f.is_dm.is_some()
                    || f.is_encrypted.is_some()
                    || !f.room_types.is_empty()
                    || !f.not_room_types.is_empty() =>
            {
                return Ok(None);
            }
            Some(f) => match f.is_invite {
                None => &LISTED,
                Some(true) => &["invite"],
                Some(false) => &["join", "knock"],
            },
        };
        let mut total = 0u64;
        for membership in memberships {
            total += services.rooms.listed_count(&self.user_id, membership)?;
        }
        Ok(Some(usize::try_from(total).unwrap_or(usize::MAX)))
    }

    fn passes(
        &self,
        services: &Services,
        room: &ListedRoom,
        filters: &ListFilters,
    ) -> Result<bool> {
        let room_id = &room.room_id;
        if filters.is_dm.is_some_and(|dm| dm != self.is_dm(room_id)) {
            return Ok(false);
        }
        if filters
            .is_invite
            .is_some_and(|invite| invite != (room.membership == "invite"))
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
        .and_then(|(_, count)| count.stream())
}

/// What orders a room list: the room's place on the user's recency index (the latest
/// message-like event of a joined room; the membership event of an invite or knock).
pub fn bump_stamp(services: &Services, room_id: &RoomId, user_id: &UserId) -> Result<u64> {
    if let Some(stamp) = services.rooms.listed_stamp(user_id, room_id)? {
        return Ok(stamp);
    }
    Ok(member_position(services, room_id, user_id).unwrap_or(0))
}
