//! The room the rooms service's unit tests start from: created by @alice (named as creator
//! where the version wants it), who has joined and holds power 100 (implicitly, from room
//! version 12), with public join rules so others may join.

use ruma::events::TimelineEventType;
use ruma::{OwnedEventId, OwnedRoomId, RoomVersionId, UserId};
use serde_json::{Value, json};

use super::{PduBuilder, RoomGuard};
use crate::service::Services;

pub struct TestRoom {
    pub room_id: OwnedRoomId,
    pub guard: RoomGuard,
    /// The last event of the set-up: a parent for branches.
    pub head: OwnedEventId,
}

/// `@<localpart>:localhost`, with an account.
pub fn user(services: &Services, localpart: &str) -> ruma::OwnedUserId {
    let user = UserId::parse(format!("@{localpart}:localhost")).unwrap();
    if !services.users.exists(&user).unwrap() {
        services.users.create_account(&user, "x", None).unwrap();
    }
    user
}

/// A member event for `user` with `content`.
pub fn member(user: &UserId, content: Value) -> PduBuilder {
    PduBuilder::state(TimelineEventType::RoomMember, user.as_str(), content)
}

/// Alice's room of `version` (see the module).
pub async fn alices_room(services: &Services, version: &RoomVersionId) -> TestRoom {
    let rooms = &services.rooms;
    let alice = user(services, "alice");
    let rules = version.rules().unwrap();
    let mut create = json!({ "room_version": version });
    if !rules.authorization.use_room_create_sender {
        create["creator"] = json!(alice);
    }
    let (room_id, guard) = rooms.create_room(&alice, version, create).await.unwrap();
    let send = |builder| {
        rooms
            .build_and_append(builder, &alice, &room_id, &guard)
            .unwrap()
    };
    send(member(&alice, json!({ "membership": "join" })));
    let mut power = json!({ "users": {} });
    if !rules.authorization.explicitly_privilege_room_creators {
        power["users"][alice.as_str()] = json!(100);
    }
    send(PduBuilder::state(
        TimelineEventType::RoomPowerLevels,
        "",
        power,
    ));
    let head = send(PduBuilder::state(
        TimelineEventType::RoomJoinRules,
        "",
        json!({ "join_rule": "public" }),
    ));
    TestRoom {
        room_id,
        guard,
        head,
    }
}
