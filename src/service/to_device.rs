//! Send-to-device messages: queued per device, delivered by /sync, and deleted once the device
//! syncs past them (acknowledging it has them).

use std::sync::Arc;

use ruma::{DeviceId, OwnedDeviceId, UserId};
use serde_json::{Value, json};

use crate::error::Result;
use crate::storage::schema::decode_u64;
use crate::storage::{Batch, Engine, Key, Tree};

/// Most messages one /sync hands a device; the rest follow in the next syncs.
pub const MAX_PER_SYNC: usize = 100;

pub struct Service {
    engine: Arc<Engine>,
    userdevicecount_todevice: Tree,
    userdevicetxnid_todevice: Tree,
}

/// Where one message goes: a device, or every device of the user.
#[derive(Debug, Clone)]
pub enum Target {
    Device(OwnedDeviceId),
    AllDevices,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            engine: Arc::clone(engine),
            userdevicecount_todevice: engine.tree("userdevicecount_todevice"),
            userdevicetxnid_todevice: engine.tree("userdevicetxnid_todevice"),
        }
    }

    /// Queues messages from `sender`'s device, once per transaction ID: a retried request
    /// changes nothing (and answers false). `devices_of` lists a user's devices for `*`
    /// targets.
    pub fn send(
        &self,
        sender: &UserId,
        sender_device: &DeviceId,
        txn_id: &str,
        event_type: &str,
        messages: &[(&UserId, Target, Value)],
        devices_of: impl Fn(&UserId) -> Result<Vec<OwnedDeviceId>>,
    ) -> Result<bool> {
        let txn_key = (sender.as_str(), sender_device.as_str(), txn_id).encode();
        if self.userdevicetxnid_todevice.contains(&txn_key)? {
            return Ok(false);
        }
        let writing = self.engine.begin_write();
        let mut batch = Batch::default();
        for (user_id, target, content) in messages {
            let devices = match target {
                Target::Device(device) => vec![device.clone()],
                Target::AllDevices => devices_of(user_id)?,
            };
            let event = serde_json::to_vec(&json!({
                "sender": sender,
                "type": event_type,
                "content": content,
            }))?;
            for device in devices {
                let count = self.engine.next_count()?;
                batch.put(
                    &self.userdevicecount_todevice,
                    &(user_id.as_str(), device.as_str(), count).encode(),
                    &event,
                )?;
            }
        }
        batch.put(&self.userdevicetxnid_todevice, &txn_key, &[])?;
        self.engine.write(batch)?;
        drop(writing);
        Ok(true)
    }

    /// Deletes the device's messages up to `acknowledged` (the `since` position of a sync,
    /// which proves the client received everything an earlier answer held).
    pub fn acknowledge(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        acknowledged: u64,
    ) -> Result<()> {
        let prefix = (user_id.as_str(), device_id.as_str()).prefix();
        let mut batch = Batch::default();
        let mut any = false;
        for entry in self.userdevicecount_todevice.scan_prefix(prefix.clone()) {
            let (key, _) = entry?;
            if decode_u64(&key[prefix.len()..])? > acknowledged {
                break;
            }
            batch.delete(&self.userdevicecount_todevice, &key)?;
            any = true;
        }
        if any {
            self.engine.write(batch)?;
        }
        Ok(())
    }

    /// The device's messages after `after` up to `until`, oldest first, at most `limit`
    /// (and never more than [`MAX_PER_SYNC`]), with the position of the last one returned.
    pub fn pending(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<(Vec<Value>, Option<u64>)> {
        let limit = limit.clamp(1, MAX_PER_SYNC);
        let prefix = (user_id.as_str(), device_id.as_str()).prefix();
        let start = (
            user_id.as_str(),
            device_id.as_str(),
            after.saturating_add(1),
        )
            .encode();
        let mut events = Vec::new();
        let mut last = None;
        for entry in self
            .userdevicecount_todevice
            .iter_from(&start, rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let count = decode_u64(&key[prefix.len()..])?;
            if count > until || events.len() == limit {
                break;
            }
            events.push(serde_json::from_slice(&value)?);
            last = Some(count);
        }
        Ok((events, last))
    }

    /// Drops the queue of a removed device.
    pub fn remove_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        let mut batch = Batch::default();
        for entry in self
            .userdevicecount_todevice
            .scan_prefix((user_id.as_str(), device_id.as_str()).prefix())
        {
            let (key, _) = entry?;
            batch.delete(&self.userdevicecount_todevice, &key)?;
        }
        self.engine.write(batch)
    }

    /// Resolves when a message is queued for the device.
    pub fn watch(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> impl Future<Output = ()> + Send + use<> {
        self.userdevicecount_todevice
            .watch_prefix(&(user_id.as_str(), device_id.as_str()).prefix())
    }
}
