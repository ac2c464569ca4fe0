//! Pushers: where a user's phones and desktops want notifications sent (their push gateway,
//! e.g. Sygnal, and the device's push key), as `/pushers/set` registers them.
//!
//! A pusher belongs to the device that registered it and goes when that device does (log
//! out, deletion, a password change that logs other devices out).

pub mod delivery;

use std::sync::{Arc, Mutex, Weak};

use ruma::api::client::push::{Pusher, PusherIds, PusherKind};
use ruma::{DeviceId, OwnedDeviceId, UserId};

use crate::error::{Error, Result};
use crate::storage::{Batch, Engine, Key, Tree};

/// The spec's limits on the identifiers.
const MAX_APP_ID: usize = 64;
const MAX_PUSHKEY: usize = 512;
/// The path every HTTP pusher's gateway URL must have (the Push Gateway API).
const NOTIFY_PATH: &str = "/_matrix/push/v1/notify";

/// A pusher as stored: what the client registered, the device that did, and when.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredPusher {
    pub pusher: Pusher,
    pub device_id: Option<OwnedDeviceId>,
    /// When the push key was registered, in seconds (`pushkey_ts` of the Push Gateway API).
    pub pushkey_ts: u64,
    /// The position in the user's notification log up to which this pusher was sent
    /// everything (it starts where the log stood at registration).
    #[serde(default)]
    pub delivered_up_to: u64,
}

pub struct Service {
    engine: Arc<Engine>,
    useridpushkey_pusher: Tree,
    apppushkey_userid: Tree,
    /// Serialises changes, so the two trees stay in step.
    write_lock: Mutex<()>,
    /// Sends the notifications to the gateways.
    pub delivery: delivery::Delivery,
}

impl Service {
    pub fn new(
        engine: &Arc<Engine>,
        http: delivery::PushClient,
        services: Weak<crate::service::Services>,
    ) -> Self {
        Self {
            engine: Arc::clone(engine),
            useridpushkey_pusher: engine.tree("useridpushkey_pusher"),
            apppushkey_userid: engine.tree("apppushkey_userid"),
            write_lock: Mutex::new(()),
            delivery: delivery::Delivery::new(http, services),
        }
    }

    /// Whether the user has any pusher (only then is there anything to deliver).
    /// Starts delivery for every user with pushers, so what was not delivered before a stop
    /// goes out now rather than with the user's next notification.
    pub fn resume(&self) -> Result<()> {
        let mut last: Option<String> = None;
        for entry in self
            .useridpushkey_pusher
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let (key, _) = entry?;
            let (user, _, _) = <(&str, &str, &str)>::decode(&key)?;
            if last.as_deref() == Some(user) {
                continue;
            }
            last = Some(user.to_owned());
            if let Ok(user_id) = UserId::parse(user) {
                self.delivery.wake(&user_id);
            }
        }
        Ok(())
    }

    pub fn has_pushers(&self, user_id: &UserId) -> Result<bool> {
        Ok(self
            .useridpushkey_pusher
            .scan_prefix((user_id.as_str(),).prefix())
            .next()
            .transpose()?
            .is_some())
    }

    /// Records that the pusher was sent everything up to `count` (if it still exists).
    pub fn set_delivered(&self, user_id: &UserId, ids: &PusherIds, count: u64) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let key = (user_id.as_str(), ids.app_id.as_str(), ids.pushkey.as_str()).encode();
        if let Some(mut stored) = self.useridpushkey_pusher.get_json::<StoredPusher>(&key)? {
            stored.delivered_up_to = stored.delivered_up_to.max(count);
            self.useridpushkey_pusher
                .insert(&key, &serde_json::to_vec(&stored)?)?;
        }
        Ok(())
    }

    /// The user's pushers.
    pub fn pushers(&self, user_id: &UserId) -> Result<Vec<StoredPusher>> {
        self.useridpushkey_pusher
            .scan_prefix((user_id.as_str(),).prefix())
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
            .collect()
    }

    /// Adds or replaces the user's pusher of this app ID and push key. Without `append`, the
    /// same push key of the same app is taken from any other user (the device changed hands:
    /// one person's notifications must not reach another).
    pub fn set(
        &self,
        user_id: &UserId,
        device_id: Option<&DeviceId>,
        pusher: Pusher,
        append: bool,
    ) -> Result<()> {
        check(&pusher)?;
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let PusherIds {
            app_id, pushkey, ..
        } = pusher.ids.clone();
        let mut batch = Batch::default();
        if !append {
            for entry in self
                .apppushkey_userid
                .scan_prefix((app_id.as_str(), pushkey.as_str()).prefix())
            {
                let (key, _) = entry?;
                let (_, _, other): (&str, &str, &str) = Key::decode(&key)?;
                if other != user_id.as_str() {
                    batch.delete(&self.apppushkey_userid, &key)?;
                    batch.delete(
                        &self.useridpushkey_pusher,
                        &(other, app_id.as_str(), pushkey.as_str()).encode(),
                    )?;
                }
            }
        }
        let key = (user_id.as_str(), app_id.as_str(), pushkey.as_str()).encode();
        let (pushkey_ts, delivered_up_to) =
            match self.useridpushkey_pusher.get_json::<StoredPusher>(&key)? {
                Some(existing) => (existing.pushkey_ts, existing.delivered_up_to),
                // A new pusher gets what notifies from now on, not the backlog.
                None => (
                    crate::service::now_millis() / 1000,
                    self.engine.current_count(),
                ),
            };
        let stored = StoredPusher {
            pusher,
            device_id: device_id.map(ToOwned::to_owned),
            pushkey_ts,
            delivered_up_to,
        };
        batch.put(
            &self.useridpushkey_pusher,
            &key,
            &serde_json::to_vec(&stored)?,
        )?;
        batch.put(
            &self.apppushkey_userid,
            &(app_id.as_str(), pushkey.as_str(), user_id.as_str()).encode(),
            &[],
        )?;
        self.engine.write(batch)
    }

    /// Removes the user's pusher of this app ID and push key, if there is one.
    pub fn remove(&self, user_id: &UserId, ids: &PusherIds) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::default();
        self.remove_in(&mut batch, user_id, &ids.app_id, &ids.pushkey)?;
        self.engine.write(batch)
    }

    fn remove_in(
        &self,
        batch: &mut Batch,
        user_id: &UserId,
        app_id: &str,
        pushkey: &str,
    ) -> Result<()> {
        batch.delete(
            &self.useridpushkey_pusher,
            &(user_id.as_str(), app_id, pushkey).encode(),
        )?;
        batch.delete(
            &self.apppushkey_userid,
            &(app_id, pushkey, user_id.as_str()).encode(),
        )
    }

    /// Removes the pushers a device registered (it was logged out or deleted).
    pub fn remove_for_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Batch::default();
        for stored in self.pushers(user_id)? {
            if stored.device_id.as_deref() == Some(device_id) {
                let ids = &stored.pusher.ids;
                self.remove_in(&mut batch, user_id, &ids.app_id, &ids.pushkey)?;
            }
        }
        self.engine.write(batch)
    }
}

/// What the spec asks of a new pusher.
fn check(pusher: &Pusher) -> Result<()> {
    let ids = &pusher.ids;
    if ids.app_id.is_empty() || ids.app_id.len() > MAX_APP_ID {
        return Err(Error::invalid_param(format!(
            "app_id must be 1 to {MAX_APP_ID} characters"
        )));
    }
    if ids.pushkey.is_empty() || ids.pushkey.len() > MAX_PUSHKEY {
        return Err(Error::invalid_param(format!(
            "pushkey must be 1 to {MAX_PUSHKEY} bytes"
        )));
    }
    match &pusher.kind {
        PusherKind::Http(data) => {
            let url = reqwest::Url::parse(&data.url)
                .map_err(|e| Error::invalid_param(format!("data.url is not a URL: {e}")))?;
            if !matches!(url.scheme(), "https" | "http") || url.path() != NOTIFY_PATH {
                return Err(Error::invalid_param(format!(
                    "data.url must be an http(s) URL with the path {NOTIFY_PATH}"
                )));
            }
            Ok(())
        }
        PusherKind::Email(_) => Err(Error::invalid_param(
            "Email pushers are not supported: this server sends no e-mail",
        )),
        _ => Err(Error::invalid_param("Unknown pusher kind")),
    }
}
