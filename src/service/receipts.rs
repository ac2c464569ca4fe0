//! Read receipts (`m.read`, `m.read.private`, threaded): the latest per user, type and thread,
//! with a per-room change log that /sync reads since a stream position.

use std::sync::{Arc, Mutex};

use ruma::{EventId, OwnedEventId, OwnedUserId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::service::now_millis;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Engine, Key, Tree};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub user_id: OwnedUserId,
    pub receipt_type: String,
    pub event_id: OwnedEventId,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
}

pub struct Service {
    engine: Arc<Engine>,
    roomidcount_receipt: Tree,
    roomiduserreceipt_count: Tree,
    write_lock: Mutex<()>,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            roomidcount_receipt: engine.tree("roomidcount_receipt"),
            roomiduserreceipt_count: engine.tree("roomiduserreceipt_count"),
            write_lock: Mutex::new(()),
        }
    }

    /// Records a receipt, replacing the user's previous one of that type and thread.
    pub fn set(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        receipt_type: &str,
        event_id: &EventId,
        thread_id: Option<&str>,
    ) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (
            room_id.as_str(),
            user_id.as_str(),
            receipt_type,
            thread_id.unwrap_or(""),
        )
            .encode();
        let mut batch = Batch::default();
        if let Some(previous) = self.roomiduserreceipt_count.get(&slot)? {
            batch.delete(
                &self.roomidcount_receipt,
                &(room_id.as_str(), decode_u64(&previous)?).encode(),
            )?;
        }
        let _writing = self.engine.begin_write();
        let count = self.engine.next_count()?;
        let receipt = Receipt {
            user_id: user_id.to_owned(),
            receipt_type: receipt_type.to_owned(),
            event_id: event_id.to_owned(),
            ts: now_millis(),
            thread_id: thread_id.map(ToOwned::to_owned),
        };
        batch.put(
            &self.roomidcount_receipt,
            &(room_id.as_str(), count).encode(),
            &serde_json::to_vec(&receipt)?,
        )?;
        batch.put(&self.roomiduserreceipt_count, &slot, &count.to_be_bytes())?;
        self.engine.write(batch)
    }

    /// Deletes every receipt in a room (the room is being purged).
    pub fn forget_room(&self, room_id: &RoomId) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::default();
        let prefix = (room_id.as_str(),).prefix();
        for tree in [&self.roomidcount_receipt, &self.roomiduserreceipt_count] {
            for entry in tree.scan_prefix(prefix.clone()) {
                batch.delete(tree, &entry?.0)?;
            }
        }
        self.engine.write(batch)
    }

    /// Receipts of the room set after `since` (all current ones for `since` 0).
    pub fn since(&self, room_id: &RoomId, since: u64) -> Result<Vec<Receipt>> {
        let prefix = (room_id.as_str(),).prefix();
        let start = (room_id.as_str(), since.saturating_add(1)).encode();
        let mut receipts = Vec::new();
        for entry in self
            .roomidcount_receipt
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            receipts.push(serde_json::from_slice(&value)?);
        }
        Ok(receipts)
    }

    /// The user's latest unthreaded receipt of a type in a room.
    pub fn latest(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        receipt_type: &str,
    ) -> Result<Option<Receipt>> {
        self.latest_in_thread(room_id, user_id, receipt_type, "")
    }

    /// The user's latest receipt of a type for a thread (`main`, a root event ID, or "" for
    /// unthreaded).
    pub fn latest_in_thread(
        &self,
        room_id: &RoomId,
        user_id: &UserId,
        receipt_type: &str,
        thread: &str,
    ) -> Result<Option<Receipt>> {
        let slot = (room_id.as_str(), user_id.as_str(), receipt_type, thread).encode();
        let Some(count) = self.roomiduserreceipt_count.get(&slot)? else {
            return Ok(None);
        };
        self.roomidcount_receipt
            .get_json(&(room_id.as_str(), decode_u64(&count)?).encode())
    }

    pub fn watch(&self, room_id: &RoomId) -> impl Future<Output = ()> + Send + use<> {
        self.roomidcount_receipt
            .watch_prefix(&(room_id.as_str(),).prefix())
    }
}
