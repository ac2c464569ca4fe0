//! History visibility: which events a user may see, following the spec's algorithm with the
//! room state at each event.

use std::collections::HashMap;

use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use super::Service;
use super::count::PduCount;
use crate::error::Result;

/// Answers "may this user see that event?" for one user and room, remembering the answer per
/// state snapshot, and the history visibility and membership per state event, so a page of
/// events costs a few lookups, not one per event.
pub struct Visibility<'a> {
    rooms: &'a Service,
    user_id: &'a UserId,
    currently_joined: bool,
    by_state: HashMap<u64, bool>,
    /// Short state keys of `m.room.history_visibility` and of the user's `m.room.member` (`None`
    /// when the server has never seen such an event).
    history_key: Option<u64>,
    member_key: Option<u64>,
    /// Value of a state event (by short event ID) that decides visibility: the history
    /// visibility setting, or the user's membership.
    decided_by: HashMap<u64, Option<String>>,
    /// Position of the user's current join, read on first use (`Some(None)`: not joined).
    joined_at: Option<Option<PduCount>>,
    room_id: ruma::OwnedRoomId,
}

impl Service {
    pub fn visibility<'a>(
        &'a self,
        user_id: &'a UserId,
        room_id: &RoomId,
    ) -> Result<Visibility<'a>> {
        Ok(Visibility {
            rooms: self,
            user_id,
            currently_joined: self.is_joined(user_id, room_id)?,
            by_state: HashMap::new(),
            history_key: self.shortstatekey("m.room.history_visibility", "")?,
            member_key: self.shortstatekey("m.room.member", user_id.as_str())?,
            decided_by: HashMap::new(),
            joined_at: None,
            room_id: room_id.to_owned(),
        })
    }

    /// Whether the user may read the room's history at all (a member now or before, or a
    /// world-readable room).
    pub fn may_read_room(&self, user_id: &UserId, room_id: &RoomId) -> Result<bool> {
        Ok(self.membership(user_id, room_id)?.is_some()
            || self.history_visibility(room_id)? == "world_readable")
    }
}

impl Visibility<'_> {
    /// [`Self::can_see`] for the event at stream position `count`: events after the user's
    /// current join are visible whatever the history setting (their membership at each is
    /// `join`: the room's timeline here is linear), without reading their state.
    pub fn can_see_at(&mut self, count: PduCount, event_id: &EventId) -> Result<bool> {
        if self.currently_joined && self.joined_at()?.is_some_and(|joined| count > joined) {
            return Ok(true);
        }
        self.can_see(event_id)
    }

    fn joined_at(&mut self) -> Result<Option<PduCount>> {
        if let Some(known) = self.joined_at {
            return Ok(known);
        }
        let rooms = self.rooms;
        // The user's member event in the current state is their join (they are joined).
        let member = match self.member_key {
            Some(key) if self.currently_joined => {
                rooms.current_state(&self.room_id)?.get(&key).copied()
            }
            _ => None,
        };
        let joined = match member {
            Some(short) => rooms
                .pdu_position(&rooms.event_id_of_short(short)?)?
                .map(|(_, count)| count),
            None => None,
        };
        // State and membership index change in one batch: still joined now means the member
        // event read above was the join, not a leave stored since `currently_joined` was read.
        let joined = match joined {
            Some(count) if rooms.is_joined(self.user_id, &self.room_id)? => Some(count),
            _ => None,
        };
        self.joined_at = Some(joined);
        Ok(joined)
    }

    pub fn can_see(&mut self, event_id: &EventId) -> Result<bool> {
        let Some(shorteventid) = self.rooms.shorteventid(event_id)? else {
            return Ok(false);
        };
        let Some(hash) = self
            .rooms
            .shorteventid_shortstatehash
            .get(&shorteventid.to_be_bytes())?
            .map(|v| crate::storage::schema::decode_u64(&v))
            .transpose()?
        else {
            return Ok(false);
        };
        let visible = match self.by_state.get(&hash) {
            Some(known) => *known,
            None => {
                let visible = self.decide(hash)?;
                self.by_state.insert(hash, visible);
                visible
            }
        };
        Ok(visible || self.is_own_membership(event_id)?)
    }

    /// The spec's rule for the state snapshot `hash` (not counting the user's own membership
    /// events, which they always see).
    fn decide(&mut self, hash: u64) -> Result<bool> {
        let state = self.rooms.state_map(hash)?;
        let setting = self.decided_by(&state, self.history_key, "history_visibility")?;
        let setting = setting.as_deref().unwrap_or("shared");
        // Nothing else matters for a world-readable room, or a shared one the user is in.
        if setting == "world_readable" || (setting == "shared" && self.currently_joined) {
            return Ok(true);
        }
        let membership = self.decided_by(&state, self.member_key, "membership")?;
        Ok(match membership.as_deref() {
            Some("join") => true,
            Some("invite") => setting == "invited",
            _ => false,
        })
    }

    /// The `field` of the content of the state event at `key` in `state`, read once per event.
    fn decided_by(
        &mut self,
        state: &super::state::StateMap,
        key: Option<u64>,
        field: &str,
    ) -> Result<Option<String>> {
        let Some(shorteventid) = key.and_then(|key| state.get(&key).copied()) else {
            return Ok(None);
        };
        if let Some(known) = self.decided_by.get(&shorteventid) {
            return Ok(known.clone());
        }
        let event_id = self.rooms.event_id_of_short(shorteventid)?;
        let value = self.rooms.get_pdu(&event_id)?.and_then(|pdu| {
            pdu.content_value()
                .get(field)
                .and_then(Value::as_str)
                .map(ToOwned::to_owned)
        });
        self.decided_by.insert(shorteventid, value.clone());
        Ok(value)
    }

    /// Users always see their own membership events: a leave or kick must reach them even
    /// though it ends their access.
    fn is_own_membership(&self, event_id: &EventId) -> Result<bool> {
        Ok(self.rooms.get_pdu(event_id)?.is_some_and(|pdu| {
            pdu.kind == ruma::events::TimelineEventType::RoomMember
                && pdu.state_key.as_deref() == Some(self.user_id.as_str())
        }))
    }
}
