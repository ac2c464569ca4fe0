//! Which room members' membership events a device has already been sent, so lazy-loading
//! syncs (`lazy_load_members` without `include_redundant_members`) send each one once.
//!
//! An entry records the member event sent and the `next_batch` position of the answer that
//! carried it. It counts as delivered only for a request whose `since` is at or after that
//! position: a client that retries a sync with the same token (because it never saw the
//! answer) gets the events again, so the same `since` always gives the same result.

use std::sync::Arc;

use ruma::{DeviceId, RoomId, UserId};

use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Engine, Key, Tree};

pub struct Service {
    engine: Arc<Engine>,
    sent: Tree,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            sent: engine.tree("userdeviceroommember_lazysent"),
        }
    }

    /// Forgets what the device was sent in a room: an initial sync starts the client afresh.
    pub fn reset(&self, user_id: &UserId, device_id: &DeviceId, room_id: &RoomId) -> Result<()> {
        self.delete_prefix((user_id.as_str(), device_id.as_str(), room_id.as_str()).prefix())
    }

    fn delete_prefix(&self, prefix: Vec<u8>) -> Result<()> {
        let mut batch = Batch::default();
        for entry in self.sent.scan_prefix(prefix) {
            let (key, _) = entry?;
            batch.delete(&self.sent, &key)?;
        }
        self.engine.write(batch)
    }

    /// Drops everything recorded for a removed device.
    pub fn forget_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        self.delete_prefix((user_id.as_str(), device_id.as_str()).prefix())
    }

    /// Whether the device already holds `member`'s membership event `shorteventid`, delivered
    /// by an answer at or before `since`.
    pub fn delivered(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        member: &str,
        shorteventid: u64,
        since: u64,
    ) -> Result<bool> {
        let key = (
            user_id.as_str(),
            device_id.as_str(),
            room_id.as_str(),
            member,
        )
            .encode();
        Ok(self
            .sent
            .get(&key)?
            .and_then(|value| decode_entry(&value))
            .is_some_and(|(event, at)| event == shorteventid && at <= since))
    }

    /// Records membership events (member, short event ID) sent in an answer at `next`. An
    /// earlier record of the same event is kept: it was delivered no later than this one.
    pub fn record(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
        sent: &[(String, u64)],
        next: u64,
    ) -> Result<()> {
        let mut batch = Batch::default();
        for (member, shorteventid) in sent {
            let key = (
                user_id.as_str(),
                device_id.as_str(),
                room_id.as_str(),
                member.as_str(),
            )
                .encode();
            let known = self.sent.get(&key)?.and_then(|value| decode_entry(&value));
            if known.is_some_and(|(event, _)| event == *shorteventid) {
                continue;
            }
            let mut value = shorteventid.to_be_bytes().to_vec();
            value.extend_from_slice(&next.to_be_bytes());
            batch.put(&self.sent, &key, &value)?;
        }
        self.engine.write(batch)
    }
}

/// Value: ShortEventId (u64), then the position (u64) of the answer that sent it.
fn decode_entry(value: &[u8]) -> Option<(u64, u64)> {
    if value.len() != 16 {
        return None;
    }
    Some((decode_u64(&value[..8]).ok()?, decode_u64(&value[8..]).ok()?))
}
