//! Sliding sync extensions: to-device messages, E2EE key state, account data, receipts and
//! typing.

use std::collections::{BTreeMap, BTreeSet};

use ruma::api::client::sync::sync_events::v5::request;
use ruma::{DeviceId, OwnedRoomId, UserId};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::service::Services;
use crate::service::keys::DeviceListChanges;
use crate::service::sync::joined;
use crate::service::sync::{global_account_data, room_account_data};
use crate::service::to_device::MAX_PER_SYNC;

pub struct Extensions {
    pub body: Value,
    pub has_updates: bool,
}

/// Rooms of this answer: all of them, those the client sees for the first time, and those the
/// user is joined to.
pub struct RoomsInView<'a> {
    pub all: &'a BTreeSet<OwnedRoomId>,
    pub new: &'a BTreeSet<OwnedRoomId>,
    pub joined: &'a BTreeSet<OwnedRoomId>,
}

pub fn extensions(
    services: &Services,
    user_id: &UserId,
    device_id: &DeviceId,
    config: &request::Extensions,
    rooms: &RoomsInView<'_>,
    since: Option<u64>,
    next: u64,
) -> Result<Extensions> {
    let mut body = Map::new();
    let mut has_updates = false;

    if config.to_device.enabled == Some(true) {
        let after = config
            .to_device
            .since
            .as_deref()
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(after) = after {
            services.to_device.acknowledge(user_id, device_id, after)?;
        }
        let limit = config
            .to_device
            .limit
            .map_or(MAX_PER_SYNC, |l| {
                usize::try_from(u64::from(l)).unwrap_or(MAX_PER_SYNC)
            })
            .clamp(1, MAX_PER_SYNC);
        let (events, last) =
            services
                .to_device
                .pending(user_id, device_id, after.unwrap_or(0), next, limit)?;
        // When the limit cut the batch short, continue from the last message handed out.
        let next_batch = match last {
            Some(last) if events.len() == limit => last,
            _ => next,
        };
        has_updates |= !events.is_empty();
        body.insert(
            "to_device".into(),
            json!({ "next_batch": next_batch.to_string(), "events": events }),
        );
    }

    if config.e2ee.enabled == Some(true) {
        let device_lists = match since {
            Some(since) => services.keys.device_list_changes(user_id, since, next)?,
            None => DeviceListChanges::default(),
        };
        has_updates |= !device_lists.is_empty();
        let counts = services.keys.one_time_key_counts_json(user_id, device_id)?;
        body.insert(
            "e2ee".into(),
            json!({
                "device_lists": { "changed": device_lists.changed, "left": device_lists.left },
                "device_one_time_keys_count": counts,
                "device_unused_fallback_key_types":
                    services.keys.unused_fallback_key_types(user_id, device_id)?,
            }),
        );
    }

    if config.account_data.enabled == Some(true) {
        let global = serde_json::to_value(global_account_data(
            services,
            user_id,
            since.unwrap_or(0),
            since.is_none(),
        )?)?;
        let changed = room_account_data(services, user_id, since.unwrap_or(0), since.is_none())?;
        let all = if rooms.new.is_empty() || since.is_none() {
            BTreeMap::new()
        } else {
            room_account_data(services, user_id, 0, true)?
        };
        let mut by_room = Map::new();
        for room_id in rooms.all {
            let source = if rooms.new.contains(room_id) && since.is_some() {
                &all
            } else {
                &changed
            };
            if let Some(events) = source.get(room_id).filter(|e| !e.is_empty()) {
                by_room.insert(room_id.to_string(), json!(events));
            }
        }
        let global_changed = global.as_array().is_some_and(|g| !g.is_empty());
        has_updates |= global_changed && since.is_some() || !by_room.is_empty();
        body.insert(
            "account_data".into(),
            json!({ "global": global, "rooms": by_room }),
        );
    }

    let want_receipts = config.receipts.enabled == Some(true);
    let want_typing = config.typing.enabled == Some(true);
    if want_receipts || want_typing {
        let mut receipts = Map::new();
        let mut typing = Map::new();
        // Only members see who is typing and reading: an invite, or a room the user left, shows
        // none of it.
        for room_id in rooms.joined {
            let from = if rooms.new.contains(room_id) {
                0
            } else {
                since.unwrap_or(0)
            };
            for event in joined::ephemeral(services, room_id, user_id, from, next)? {
                match event["type"].as_str() {
                    Some("m.receipt") if want_receipts => {
                        receipts.insert(room_id.to_string(), event);
                    }
                    Some("m.typing") if want_typing => {
                        typing.insert(room_id.to_string(), event);
                    }
                    _ => {}
                }
            }
        }
        has_updates |= !receipts.is_empty() || !typing.is_empty();
        if want_receipts {
            body.insert("receipts".into(), json!({ "rooms": receipts }));
        }
        if want_typing {
            body.insert("typing".into(), json!({ "rooms": typing }));
        }
    }
    Ok(Extensions {
        body: Value::Object(body),
        has_updates,
    })
}
