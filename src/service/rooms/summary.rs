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
    /// Rooms whose members may join a `restricted` or `knock_restricted` room.
    pub allowed_room_ids: Vec<OwnedRoomId>,
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
            .members_shared(room_id)?
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
            allowed_room_ids: self.join_rule_allowed_rooms(room_id)?,
        })
    }

    /// The rooms named by `m.room_membership` conditions of the join rules.
    pub fn join_rule_allowed_rooms(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomId>> {
        let Some(join_rules) = self.current_state_event(room_id, "m.room.join_rules", "")? else {
            return Ok(Vec::new());
        };
        let content = join_rules.content_value();
        let allow = content
            .get("allow")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(allow
            .iter()
            .filter(|condition| {
                condition.get("type").and_then(Value::as_str) == Some("m.room_membership")
            })
            .filter_map(|condition| condition.get("room_id").and_then(Value::as_str))
            .filter_map(|room| RoomId::parse(room).ok())
            .collect())
    }

    /// Whether `user_id` may see a summary of the room without being in it: members, the
    /// invited and knocking, and anyone for public, knockable or world-readable rooms, or
    /// restricted rooms whose conditions they meet.
    pub fn may_preview(&self, user_id: &ruma::UserId, summary: &RoomSummary) -> Result<bool> {
        if self
            .membership(user_id, &summary.room_id)?
            .is_some_and(|m| matches!(m.as_str(), "join" | "invite" | "knock"))
        {
            return Ok(true);
        }
        if summary.world_readable
            || matches!(
                summary.join_rule.as_str(),
                "public" | "knock" | "knock_restricted"
            )
        {
            return Ok(true);
        }
        if summary.join_rule == "restricted" {
            for allowed in &summary.allowed_room_ids {
                if self.is_joined(user_id, allowed)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The room's current history visibility (`shared` when unset, as the spec says).
    pub fn history_visibility(&self, room_id: &RoomId) -> Result<String> {
        Ok(self
            .state_string(room_id, "m.room.history_visibility", "history_visibility")?
            .unwrap_or_else(|| "shared".into()))
    }
}

impl RoomSummary {
    /// The summary as clients see it (public room directory fields plus version and
    /// encryption), shared by `/hierarchy` and `/room_summary`.
    pub fn to_json(&self) -> Value {
        let mut json = serde_json::json!({
            "room_id": self.room_id,
            "num_joined_members": self.num_joined_members,
            "join_rule": self.join_rule,
            "world_readable": self.world_readable,
            "guest_can_join": self.guest_can_join,
            "room_version": self.room_version,
        });
        let optional = [
            ("name", self.name.clone()),
            ("topic", self.topic.clone()),
            (
                "canonical_alias",
                self.canonical_alias.as_ref().map(ToString::to_string),
            ),
            ("avatar_url", self.avatar_url.clone()),
            ("room_type", self.room_type.clone()),
            ("encryption", self.encryption.clone()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                json[key] = Value::String(value);
            }
        }
        if matches!(self.join_rule.as_str(), "restricted" | "knock_restricted") {
            json["allowed_room_ids"] = serde_json::json!(self.allowed_room_ids);
        }
        json
    }
}
