//! What a room is, in a few fields: for the public directory, space hierarchies and room
//! summaries.

use ruma::{OwnedRoomAliasId, OwnedRoomId, RoomId, RoomVersionId};
use serde_json::Value;

use super::Service;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room_id: OwnedRoomId,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub canonical_alias: Option<OwnedRoomAliasId>,
    pub avatar_url: Option<String>,
    pub join_rule: String,
    pub world_readable: bool,
    pub guest_can_join: bool,
    pub num_joined_members: u64,
    pub room_type: Option<String>,
    pub room_version: RoomVersionId,
    pub encryption: Option<String>,
}

impl Service {
    fn state_string(&self, room_id: &RoomId, kind: &str, field: &str) -> Result<Option<String>> {
        Ok(self
            .current_state_event(room_id, kind, "")?
            .and_then(|pdu| {
                pdu.content_value()
                    .get(field)
                    .and_then(Value::as_str)
                    .map(ToOwned::to_owned)
            }))
    }

    pub fn summary(&self, room_id: &RoomId) -> Result<RoomSummary> {
        let num_joined_members = self
            .members(room_id)?
            .iter()
            .filter(|(_, membership)| membership == "join")
            .count() as u64;
        Ok(RoomSummary {
            room_id: room_id.to_owned(),
            name: self
                .state_string(room_id, "m.room.name", "name")?
                .filter(|n| !n.is_empty()),
            topic: self
                .state_string(room_id, "m.room.topic", "topic")?
                .filter(|t| !t.is_empty()),
            canonical_alias: self
                .state_string(room_id, "m.room.canonical_alias", "alias")?
                .and_then(|alias| alias.try_into().ok()),
            avatar_url: self.state_string(room_id, "m.room.avatar", "url")?,
            join_rule: self
                .state_string(room_id, "m.room.join_rules", "join_rule")?
                .unwrap_or_else(|| "invite".into()),
            world_readable: self.history_visibility(room_id)? == "world_readable",
            guest_can_join: self
                .state_string(room_id, "m.room.guest_access", "guest_access")?
                .as_deref()
                == Some("can_join"),
            num_joined_members,
            room_type: self.state_string(room_id, "m.room.create", "type")?,
            room_version: self.room_version(room_id)?,
            encryption: self.state_string(room_id, "m.room.encryption", "algorithm")?,
        })
    }

    /// The room's current history visibility (`shared` when unset, as the spec says).
    pub fn history_visibility(&self, room_id: &RoomId) -> Result<String> {
        Ok(self
            .state_string(room_id, "m.room.history_visibility", "history_visibility")?
            .unwrap_or_else(|| "shared".into()))
    }
}
