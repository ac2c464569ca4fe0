//! History visibility: which events a user may see, following the spec's algorithm with the
//! room state at each event.

use std::collections::HashMap;

use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use super::Service;
use crate::error::Result;

/// Answers "may this user see that event?" for one user and room, remembering the answer per
/// state snapshot so a page of events costs a few lookups, not one per event.
pub struct Visibility<'a> {
    rooms: &'a Service,
    user_id: &'a UserId,
    currently_joined: bool,
    by_state: HashMap<u64, bool>,
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
        if let Some(known) = self.by_state.get(&hash) {
            return Ok(*known || self.is_own_membership(event_id)?);
        }
        let state = self.rooms.state_map(hash)?;
        let visibility = self
            .rooms
            .state_event_in(&state, "m.room.history_visibility", "")?
            .and_then(|pdu| {
                pdu.content_value()
                    .get("history_visibility")
                    .and_then(Value::as_str)
                    .map(ToOwned::to_owned)
            })
            .unwrap_or_else(|| "shared".to_owned());
        let membership = self
            .rooms
            .state_event_in(&state, "m.room.member", self.user_id.as_str())?
            .and_then(|pdu| {
                pdu.content_value()
                    .get("membership")
                    .and_then(Value::as_str)
                    .map(ToOwned::to_owned)
            });
        let visible = match visibility.as_str() {
            "world_readable" => true,
            _ if membership.as_deref() == Some("join") => true,
            "shared" => self.currently_joined,
            "invited" => membership.as_deref() == Some("invite"),
            _ => false,
        };
        self.by_state.insert(hash, visible);
        Ok(visible || self.is_own_membership(event_id)?)
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
