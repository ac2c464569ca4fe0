//! Invites from rooms on other servers that this server is not in (and our users' knocks on
//! such rooms): the membership event and the room's stripped state as the other server sent
//! it, kept per user until they join, reject or withdraw. The membership index says `invite`
//! (or `knock`) meanwhile, so `/sync` and the room lists show it like a local one.

use ruma::{RoomId, RoomVersionId, UserId};
use serde_json::{Value, json};

use super::Service;
use super::fanout::Appended;
use crate::error::{Error, Result};
use crate::storage::{Batch, Key};

/// A stored invite to (or knock on) a remote room.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RemoteInvite {
    /// `invite`, or `knock` for a knock of ours.
    #[serde(default = "invite")]
    pub membership: String,
    pub room_version: RoomVersionId,
    /// The invite event as signed by both servers (federation form).
    pub event: Value,
    /// The room's stripped state, as the inviting server sent it.
    pub stripped: Vec<Value>,
}

impl Service {
    /// Whether one of our users is joined to the room (we are one of its resident servers).
    pub fn has_local_member(&self, room_id: &RoomId) -> Result<bool> {
        Ok(self
            .members_shared(room_id)?
            .iter()
            .any(|(user, membership)| {
                membership == "join" && user.server_name() == self.server_name
            }))
    }

    /// Keeps an invite of `invitee` to a remote room (or a knock of theirs: `membership`) and
    /// lists it for them.
    pub fn store_remote_invite(
        &self,
        room_id: &RoomId,
        room_version: &RoomVersionId,
        invitee: &UserId,
        membership: &str,
        event: ruma::CanonicalJsonObject,
        stripped: Vec<Value>,
    ) -> Result<()> {
        let invite = RemoteInvite {
            membership: membership.to_owned(),
            room_version: room_version.clone(),
            event: serde_json::to_value(event).map_err(Error::internal)?,
            stripped,
        };
        let mut batch = Batch::default();
        batch.put(
            &self.useridroomid_remoteinvite,
            &(invitee.as_str(), room_id.as_str()).encode(),
            &serde_json::to_vec(&invite).map_err(Error::internal)?,
        )?;
        self.set_remote_membership(room_id, invitee, membership, batch)
    }

    /// The remote invite of `user` to `room_id`, if one is kept.
    pub fn remote_invite(&self, user: &UserId, room_id: &RoomId) -> Result<Option<RemoteInvite>> {
        self.useridroomid_remoteinvite
            .get(&(user.as_str(), room_id.as_str()).encode())?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Database(format!("remote invite unreadable: {e}")))
            })
            .transpose()
    }

    /// Ends a remote invite (rejected, or the room joined): the user's membership becomes
    /// `membership` unless the room's own state says otherwise later.
    pub fn end_remote_invite(
        &self,
        user: &UserId,
        room_id: &RoomId,
        membership: &str,
    ) -> Result<()> {
        let mut batch = Batch::default();
        batch.delete(
            &self.useridroomid_remoteinvite,
            &(user.as_str(), room_id.as_str()).encode(),
        )?;
        if membership == "join" {
            // The join's own indexes follow from the room's state.
            return self.engine.write(batch);
        }
        self.set_remote_membership(room_id, user, membership, batch)
    }

    /// Writes a membership of a room we hold no state for, and fans it out to the user.
    fn set_remote_membership(
        &self,
        room_id: &RoomId,
        user: &UserId,
        membership: &str,
        mut batch: Batch,
    ) -> Result<()> {
        let writing = self.engine.begin_write_owned();
        let mut server_deltas = Vec::new();
        let change = self.index_membership(
            room_id,
            user.as_str(),
            &json!({ "membership": membership }),
            &mut batch,
            &mut server_deltas,
        )?;
        let count = self.engine.next_count()?;
        self.engine.write(batch)?;
        self.forget_members(room_id);
        self.queue_fanout(
            room_id,
            Appended {
                count,
                bump: false,
                membership: change.into_iter().collect(),
                members_changed: true,
                server_deltas,
                floor: Some(writing),
            },
        );
        self.flush_fanout(room_id);
        Ok(())
    }
}

/// The stripped state of a remote invite, with the invite itself, as `/sync` shows it.
pub fn stripped_of(invite: &RemoteInvite) -> Vec<Value> {
    let mut events = invite.stripped.clone();
    let event = &invite.event;
    events.push(json!({
        "type": event["type"],
        "state_key": event["state_key"],
        "content": event["content"],
        "sender": event["sender"],
    }));
    events
}

fn invite() -> String {
    "invite".to_owned()
}
