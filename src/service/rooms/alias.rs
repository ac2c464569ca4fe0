//! Local room aliases (`#name:server`) and the public room directory.

use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};

use super::Service;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Batch, Key, decode_id};

impl Service {
    /// The room an alias points to, and who created the alias.
    pub fn alias_entry(&self, alias: &RoomAliasId) -> Result<Option<(OwnedRoomId, OwnedUserId)>> {
        let Some(bytes) = self.alias_roomid.get(alias.as_bytes())? else {
            return Ok(None);
        };
        let (room_id, creator) = <(OwnedRoomId, OwnedUserId)>::decode(&bytes)?;
        Ok(Some((room_id, creator)))
    }

    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
        Ok(self.alias_entry(alias)?.map(|(room_id, _)| room_id))
    }

    /// Points a new alias at a room; fails if the alias is taken.
    pub fn set_alias(&self, alias: &RoomAliasId, room_id: &RoomId, creator: &UserId) -> Result<()> {
        let _guard = self
            .shortstatekey_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.alias_roomid.contains(alias.as_bytes())? {
            return Err(Error::new(
                ErrorCode::RoomInUse,
                "The room alias is already in use",
            ));
        }
        let mut batch = Batch::default();
        batch.put(
            &self.alias_roomid,
            alias.as_bytes(),
            &(room_id.as_str(), creator.as_str()).encode(),
        )?;
        batch.put(
            &self.roomid_alias,
            &(room_id.as_str(), alias.as_str()).encode(),
            &[],
        )?;
        self.engine.write(batch)?;
        self.aliases_changed(room_id);
        Ok(())
    }

    /// Application services' interest in a room follows its aliases.
    fn aliases_changed(&self, room_id: &RoomId) {
        if let Some(services) = self.services.upgrade() {
            services.appservices.queue.forget_room(room_id);
        }
    }

    pub fn remove_alias(&self, alias: &RoomAliasId) -> Result<()> {
        let Some(room_id) = self.resolve_alias(alias)? else {
            return Err(Error::not_found("Unknown room alias"));
        };
        let mut batch = Batch::default();
        batch.delete(&self.alias_roomid, alias.as_bytes())?;
        batch.delete(
            &self.roomid_alias,
            &(room_id.as_str(), alias.as_str()).encode(),
        )?;
        self.engine.write(batch)?;
        self.aliases_changed(&room_id);
        Ok(())
    }

    pub fn local_aliases(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
        self.roomid_alias.second_parts(room_id.as_str())
    }

    /// Whether administrators blocked the room for local users.
    pub fn is_blocked(&self, room_id: &RoomId) -> Result<bool> {
        self.roomid_blocked.contains(room_id.as_bytes())
    }

    pub fn set_blocked(&self, room_id: &RoomId, blocked: bool) -> Result<()> {
        if blocked {
            self.roomid_blocked.insert(room_id.as_bytes(), &[])?;
            self.set_public(room_id, false)
        } else {
            self.roomid_blocked.remove(room_id.as_bytes())
        }
    }

    pub fn is_public(&self, room_id: &RoomId) -> Result<bool> {
        self.publicroomids.contains(room_id.as_bytes())
    }

    pub fn set_public(&self, room_id: &RoomId, public: bool) -> Result<()> {
        if public {
            self.publicroomids.insert(room_id.as_bytes(), &[])
        } else {
            self.publicroomids.remove(room_id.as_bytes())
        }
    }

    /// Publishes a room in an application service's directory of a third-party network
    /// (`instance`: `<service id>|<network id>`), or takes it out of that directory (and only
    /// that one).
    pub fn set_public_in_network(
        &self,
        room_id: &RoomId,
        instance: &str,
        public: bool,
    ) -> Result<()> {
        if public {
            return self
                .publicroomids
                .insert(room_id.as_bytes(), instance.as_bytes());
        }
        match self.publicroomids.get(room_id.as_bytes())? {
            Some(listed) if listed == instance.as_bytes() => {
                self.publicroomids.remove(room_id.as_bytes())
            }
            _ => Ok(()),
        }
    }

    /// Rooms in the public directories, each with the network directory it is in (`None`:
    /// this server's own); a blocked room is never listed.
    pub fn public_rooms_by_network(&self) -> Result<Vec<(OwnedRoomId, Option<String>)>> {
        let mut rooms = Vec::new();
        for entry in self
            .publicroomids
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            let room: OwnedRoomId = decode_id(&key)?;
            if !self.is_blocked(&room)? {
                let network =
                    (!value.is_empty()).then(|| String::from_utf8_lossy(&value).into_owned());
                rooms.push((room, network));
            }
        }
        Ok(rooms)
    }

    /// Rooms in the public directory (a blocked room is never listed).
    pub fn public_rooms(&self) -> Result<Vec<OwnedRoomId>> {
        let mut rooms = Vec::new();
        for entry in self
            .publicroomids
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let room: OwnedRoomId = decode_id(&entry?.0)?;
            if !self.is_blocked(&room)? {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }
}
