//! Power levels as the current state says, for checks the server makes on a client's behalf
//! before building an event (the authorization rules themselves are ruma's).

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::Value;

use super::Service;
use crate::error::Result;

/// A user's power: a number, or unlimited for the creators of a room whose version privileges
/// them (12 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Power {
    Level(i64),
    Infinite,
}

impl Service {
    /// The current `m.room.power_levels` content (empty object if none).
    pub fn power_levels(&self, room_id: &RoomId) -> Result<Value> {
        Ok(self
            .current_state_event(room_id, "m.room.power_levels", "")?
            .map_or_else(|| serde_json::json!({}), |pdu| pdu.content_value()))
    }

    pub fn user_power(&self, room_id: &RoomId, user_id: &UserId) -> Result<Power> {
        let create = self.current_state_event(room_id, "m.room.create", "")?;
        if let Some(create) = &create {
            let rules = self.rules(room_id)?.authorization;
            if rules.explicitly_privilege_room_creators {
                let content = create.content_value();
                let additional = content
                    .get("additional_creators")
                    .filter(|_| rules.additional_room_creators)
                    .and_then(Value::as_array);
                let is_creator = create.sender == user_id
                    || additional.is_some_and(|list| {
                        list.iter().any(|u| u.as_str() == Some(user_id.as_str()))
                    });
                if is_creator {
                    return Ok(Power::Infinite);
                }
            }
        }
        let levels = self.power_levels(room_id)?;
        if levels.as_object().is_none_or(|o| o.is_empty()) {
            // Without power levels the creator has 100 and everyone else 0.
            let is_creator = create.is_some_and(|c| c.sender == user_id);
            return Ok(Power::Level(if is_creator { 100 } else { 0 }));
        }
        let level = levels
            .get("users")
            .and_then(|users| users.get(user_id.as_str()))
            .or_else(|| levels.get("users_default"))
            .and_then(as_level)
            .unwrap_or(0);
        Ok(Power::Level(level))
    }

    /// A member of this server who may invite to `room_id`: the one a restricted join names
    /// (`join_authorised_via_users_server`) as the authorization rules require. Looks at the
    /// users power levels name (and the creators) first, a handful; only when everyone may
    /// invite does it take the first local member found.
    pub fn local_inviter(&self, room_id: &RoomId) -> Result<Option<OwnedUserId>> {
        let levels = self.power_levels(room_id)?;
        let needed = Power::Level(levels.get("invite").and_then(as_level).unwrap_or(0));
        let local_member = |user: &UserId| -> Result<bool> {
            Ok(user.server_name() == self.server_name && self.is_joined(user, room_id)?)
        };
        let mut candidates: Vec<OwnedUserId> = Vec::new();
        if let Some(create) = self.current_state_event(room_id, "m.room.create", "")? {
            candidates.push(create.sender.clone());
            if let Some(more) = create.content_value()["additional_creators"].as_array() {
                candidates.extend(more.iter().filter_map(|u| UserId::parse(u.as_str()?).ok()));
            }
        }
        if let Some(users) = levels.get("users").and_then(Value::as_object) {
            candidates.extend(users.keys().filter_map(|u| UserId::parse(u).ok()));
        }
        for candidate in candidates {
            if local_member(&candidate)? && self.user_power(room_id, &candidate)? >= needed {
                return Ok(Some(candidate));
            }
        }
        let default = levels.get("users_default").and_then(as_level).unwrap_or(0);
        if Power::Level(default) >= needed {
            for (member, membership) in self.members(room_id)? {
                if membership == "join" && member.server_name() == self.server_name {
                    return Ok(Some(member));
                }
            }
        }
        Ok(None)
    }

    /// Whether `user_id` has at least the level named `key` (e.g. `redact`, default 50).
    pub fn has_power(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        key: &str,
        default: i64,
    ) -> Result<bool> {
        let levels = self.power_levels(room_id)?;
        let needed = levels.get(key).and_then(as_level).unwrap_or(default);
        Ok(self.user_power(room_id, user_id)? >= Power::Level(needed))
    }
}

/// Power levels are integers, but older rooms may hold them as strings.
fn as_level(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}
