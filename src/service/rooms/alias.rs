//! Local room aliases (`#name:server`).

use ruma::{OwnedRoomAliasId, OwnedRoomId, RoomAliasId, RoomId};

use super::Service;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Batch, Key};

impl Service {
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Result<Option<OwnedRoomId>> {
        let Some(bytes) = self.alias_roomid.get(alias.as_bytes())? else {
            return Ok(None);
        };
        let text =
            String::from_utf8(bytes).map_err(|_| Error::Database("room ID is not UTF-8".into()))?;
        RoomId::parse(text)
            .map(Some)
            .map_err(|e| Error::Database(format!("stored room ID invalid: {e}")))
    }

    /// Points a new alias at a room; `M_ROOM_IN_USE` if the alias is taken.
    pub fn set_alias(&self, alias: &RoomAliasId, room_id: &RoomId) -> Result<()> {
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
        batch.put(&self.alias_roomid, alias.as_bytes(), room_id.as_bytes())?;
        batch.put(
            &self.roomid_alias,
            &(room_id.as_str(), alias.as_str()).encode(),
            &[],
        )?;
        self.engine.write(batch)
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
        self.engine.write(batch)
    }

    pub fn local_aliases(&self, room_id: &RoomId) -> Result<Vec<OwnedRoomAliasId>> {
        self.roomid_alias
            .scan_prefix((room_id.as_str(),).prefix())
            .map(|entry| {
                let (key, _) = entry?;
                let (_, alias) = <(&str, &str)>::decode(&key)?;
                RoomAliasId::parse(alias)
                    .map_err(|e| Error::Database(format!("stored alias invalid: {e}")))
            })
            .collect()
    }
}
