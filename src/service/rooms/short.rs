//! Short IDs: a u64 handed out once for each room, event and (event type, state key), so that
//! indexes and state snapshots store 8 bytes instead of long identifiers.

use ruma::{EventId, OwnedEventId, RoomId};

use super::Service;
use crate::error::{Error, Result};
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Key, decode_id};

impl Service {
    /// The room's short ID, allocating one (in `batch`) if the room is new.
    pub(super) fn get_or_create_shortroomid(
        &self,
        room_id: &RoomId,
        batch: &mut Batch,
    ) -> Result<u64> {
        if let Some(short) = self.shortroomid(room_id)? {
            return Ok(short);
        }
        let short = self.engine.next_count()?;
        batch.put(
            &self.roomid_shortroomid,
            room_id.as_bytes(),
            &short.to_be_bytes(),
        )?;
        batch.put(
            &self.shortroomid_roomid,
            &short.to_be_bytes(),
            room_id.as_bytes(),
        )?;
        Ok(short)
    }

    pub fn shortroomid(&self, room_id: &RoomId) -> Result<Option<u64>> {
        self.roomid_shortroomid
            .get(room_id.as_bytes())?
            .map(|v| decode_u64(&v))
            .transpose()
    }

    /// The event's short ID, allocated (in `batch`) on first sight: an event first stored as
    /// an outlier and later placed in the timeline keeps the ID that state snapshots name.
    pub(super) fn get_or_create_shorteventid(
        &self,
        event_id: &EventId,
        batch: &mut Batch,
    ) -> Result<u64> {
        if let Some(short) = self.shorteventid(event_id)? {
            return Ok(short);
        }
        let short = self.engine.next_count()?;
        batch.put(
            &self.eventid_shorteventid,
            event_id.as_bytes(),
            &short.to_be_bytes(),
        )?;
        batch.put(
            &self.shorteventid_eventid,
            &short.to_be_bytes(),
            event_id.as_bytes(),
        )?;
        Ok(short)
    }

    pub fn shorteventid(&self, event_id: &EventId) -> Result<Option<u64>> {
        self.eventid_shorteventid
            .get(event_id.as_bytes())?
            .map(|v| decode_u64(&v))
            .transpose()
    }

    pub fn event_id_of_short(&self, short: u64) -> Result<OwnedEventId> {
        let bytes = self
            .shorteventid_eventid
            .get(&short.to_be_bytes())?
            .ok_or_else(|| Error::Database(format!("short event ID {short} has no event")))?;
        decode_id(&bytes)
    }

    /// The short ID of a (type, state key) pair, allocating one if it is new. Allocation is
    /// written immediately: the pair's ID is stable whether or not the caller's batch lands.
    pub(super) fn get_or_create_shortstatekey(
        &self,
        event_type: &str,
        state_key: &str,
    ) -> Result<u64> {
        let key = (event_type, state_key).encode();
        if let Some(short) = self.statekey_shortstatekey.get(&key)? {
            return decode_u64(&short);
        }
        let _guard = self
            .shortstatekey_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(short) = self.statekey_shortstatekey.get(&key)? {
            return decode_u64(&short);
        }
        let short = self.engine.next_count()?;
        let mut batch = Batch::default();
        batch.put(&self.statekey_shortstatekey, &key, &short.to_be_bytes())?;
        batch.put(&self.shortstatekey_statekey, &short.to_be_bytes(), &key)?;
        self.engine.write(batch)?;
        Ok(short)
    }

    pub fn shortstatekey(&self, event_type: &str, state_key: &str) -> Result<Option<u64>> {
        self.statekey_shortstatekey
            .get(&(event_type, state_key).encode())?
            .map(|v| decode_u64(&v))
            .transpose()
    }

    /// The (type, state key) of a short state key.
    pub fn statekey_of_short(&self, short: u64) -> Result<(String, String)> {
        let bytes = self
            .shortstatekey_statekey
            .get(&short.to_be_bytes())?
            .ok_or_else(|| Error::Database(format!("short state key {short} unknown")))?;
        let (kind, state_key) = <(String, String)>::decode(&bytes)?;
        Ok((kind, state_key))
    }
}
