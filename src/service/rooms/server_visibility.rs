//! What another server may read of a room's history (spec: "Serving events to other
//! servers"): an event is visible to a server if the room was world-readable at it, or
//! shared and the server is in the room now, or one of the server's users was joined (or,
//! for `invited`, invited) at it. Checked per state snapshot, with the server's own users
//! only — never the whole member list per event.

use std::collections::HashMap;

use ruma::{EventId, OwnedUserId, RoomId, ServerName};
use serde_json::Value;

use super::Service;
use crate::error::Result;

pub struct ServerVisibility<'a> {
    rooms: &'a Service,
    /// The server's users that are or were members (from the membership index).
    users: Vec<OwnedUserId>,
    in_room_now: bool,
    by_state: HashMap<u64, bool>,
}

impl Service {
    /// Whether `server` is in `room_id`: one of its users is joined.
    pub fn server_in_room(&self, server: &ServerName, room_id: &RoomId) -> Result<bool> {
        if server == self.server_name {
            return Ok(true);
        }
        Ok(self.remote_servers(room_id)?.iter().any(|s| s == server))
    }

    /// Whether any user of `server` has a membership in the room (joined, invited, left,
    /// banned): a server that took part in it.
    pub fn server_ever_in_room(&self, server: &ServerName, room_id: &RoomId) -> Result<bool> {
        if server == self.server_name {
            return Ok(true);
        }
        Ok(self
            .members_shared(room_id)?
            .iter()
            .any(|(user, _)| user.server_name() == server))
    }

    pub fn server_visibility<'a>(
        &'a self,
        server: &ServerName,
        room_id: &RoomId,
    ) -> Result<ServerVisibility<'a>> {
        let users = self
            .members_shared(room_id)?
            .iter()
            .filter(|(user, _)| user.server_name() == server)
            .map(|(user, _)| user.clone())
            .collect();
        Ok(ServerVisibility {
            rooms: self,
            users,
            in_room_now: self.server_in_room(server, room_id)?,
            by_state: HashMap::new(),
        })
    }
}

impl ServerVisibility<'_> {
    pub fn can_see(&mut self, event_id: &EventId) -> Result<bool> {
        let rooms = self.rooms;
        let Some(short) = rooms.shorteventid(event_id)? else {
            return Ok(false);
        };
        let Some(hash) = rooms
            .shorteventid_shortstatehash
            .get(&short.to_be_bytes())?
            .map(|v| crate::storage::schema::decode_u64(&v))
            .transpose()?
        else {
            // An outlier (an auth or state event): visible to servers that may see the room.
            return Ok(self.in_room_now);
        };
        if let Some(known) = self.by_state.get(&hash) {
            return Ok(*known);
        }
        let state = rooms.state_map(hash)?;
        let field = |kind: &str, key: &str, field: &str| -> Result<Option<String>> {
            let Some(short_key) = rooms.shortstatekey(kind, key)? else {
                return Ok(None);
            };
            let Some(event) = state.get(&short_key) else {
                return Ok(None);
            };
            Ok(rooms.pdu_by_short(*event)?.and_then(|pdu| {
                pdu.content_value()
                    .get(field)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }))
        };
        let setting = field("m.room.history_visibility", "", "history_visibility")?
            .unwrap_or_else(|| "shared".to_owned());
        let visible = if setting == "world_readable" || (setting == "shared" && self.in_room_now) {
            true
        } else {
            let mut visible = false;
            for user in &self.users {
                match field("m.room.member", user.as_str(), "membership")?.as_deref() {
                    Some("join") => visible = true,
                    Some("invite") if setting == "invited" => visible = true,
                    _ => {}
                }
                if visible {
                    break;
                }
            }
            visible
        };
        self.by_state.insert(hash, visible);
        Ok(visible)
    }
}
