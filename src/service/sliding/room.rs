//! One room of a sliding sync answer.

use std::collections::BTreeSet;

use ruma::api::client::filter::FilterDefinition;
use ruma::events::StateEventType;
use ruma::{DeviceId, OwnedUserId, RoomId, UInt, UserId};
use serde_json::{Map, Value, json};

use super::lists::{self, Context};
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::PduCount;
use crate::service::rooms::pdu::{PduEvent, client_event};
use crate::service::rooms::state::StateMap;
use crate::service::sync::joined;
use crate::service::sync::{SyncRequest, stripped_state};

/// What the client asked to see of a room (merged over the lists and subscriptions it is in).
#[derive(Debug, Default, Clone)]
pub struct Settings {
    required_state: Vec<(String, String)>,
    timeline_limit: usize,
}

impl Settings {
    pub fn merge(&mut self, required_state: &[(StateEventType, String)], timeline_limit: UInt) {
        for (kind, key) in required_state {
            let entry = (kind.to_string(), key.clone());
            if !self.required_state.contains(&entry) {
                self.required_state.push(entry);
            }
        }
        let limit = usize::try_from(u64::from(timeline_limit)).unwrap_or(usize::MAX);
        self.timeline_limit = self.timeline_limit.max(limit.min(1000));
    }

    /// Whether the client wants the state entry (type, key), given the user and the senders of
    /// the timeline events (`$LAZY`).
    fn wants(&self, kind: &str, key: &str, user: &UserId, senders: &BTreeSet<OwnedUserId>) -> bool {
        self.required_state.iter().any(|(want_kind, want_key)| {
            let kind_ok = want_kind == "*" || want_kind == kind;
            let key_ok = match want_key.as_str() {
                "*" => true,
                "$ME" => key == user.as_str(),
                "$LAZY" => kind == "m.room.member" && senders.iter().any(|s| s.as_str() == key),
                exact => exact == key,
            };
            kind_ok && key_ok
        })
    }
}

/// The room's section, or `None` when the client already has everything in it.
#[allow(clippy::too_many_arguments)]
pub fn room(
    services: &Services,
    context: &Context,
    user_id: &UserId,
    device_id: &DeviceId,
    room_id: &RoomId,
    membership: &str,
    settings: &Settings,
    sent_up_to: Option<u64>,
    since: Option<u64>,
    next: u64,
) -> Result<Option<Value>> {
    let rooms = &services.rooms;
    let stamp = lists::bump_stamp(services, room_id, user_id)?;
    if membership == "invite"
        && crate::service::sync::invited_by_ignored(services, room_id, user_id, context.ignored())?
    {
        return Ok(None);
    }
    if membership == "invite" || membership == "knock" {
        let at = lists::member_position(services, room_id, user_id).unwrap_or(0);
        if sent_up_to.is_some_and(|sent| at <= sent) {
            return Ok(None);
        }
        let state_field = if membership == "invite" {
            "invite_state"
        } else {
            "knock_state"
        };
        let mut out = json!({
            "initial": true,
            state_field: stripped_state(services, room_id, user_id)?,
            "bump_stamp": stamp,
            "is_dm": context.is_dm(room_id),
        });
        if let Some(name) = room_name(services, room_id)? {
            out["name"] = json!(name);
        }
        return Ok(Some(out));
    }

    // A room the client knew as an invite is new to it once joined: send it whole.
    let sent_up_to = sent_up_to.filter(|sent| {
        membership != "join"
            || lists::member_position(services, room_id, user_id).is_none_or(|at| at <= *sent)
    });
    let initial = sent_up_to.is_none();
    let until = if membership == "join" {
        next
    } else {
        lists::member_position(services, room_id, user_id).map_or(next, |at| at.min(next))
    };
    if let Some(sent) = sent_up_to {
        let changed = rooms.room_changed_at(user_id, room_id)?.unwrap_or(0);
        if changed <= sent || sent >= until {
            return Ok(None);
        }
    }

    // The timeline: the newest `timeline_limit` events the user may see, after what the
    // client already has.
    let (events, limited) = if settings.timeline_limit == 0 {
        (Vec::new(), true)
    } else {
        let mut filter = FilterDefinition::default();
        filter.room.timeline.limit = UInt::new(settings.timeline_limit as u64);
        let request = SyncRequest {
            user_id,
            device_id,
            since: sent_up_to,
            since_to_device: None,
            full_state: false,
            filter,
            ignored: context.ignored().clone(),
        };
        let window = joined::timeline_window(
            services,
            &request,
            room_id,
            sent_up_to.unwrap_or(0),
            until,
            !initial,
        )?;
        (window.events, window.limited)
    };
    let mut senders: BTreeSet<OwnedUserId> = BTreeSet::new();
    let mut timeline = Vec::with_capacity(events.len());
    let mut num_live = 0u64;
    let txn_ids = joined::TransactionIds::new(services, user_id, device_id)?;
    for (count, json) in &events {
        senders.insert(PduEvent::from_json(json)?.sender);
        if since.is_some_and(|since| *count > PduCount::normal(since)) {
            num_live += 1;
        }
        let rendered = rooms.render_client_event(json, room_id, user_id, |event_id, sender| {
            txn_ids.find(services, *count, event_id, sender)
        })?;
        timeline.push(serde_json::from_str::<Value>(rendered.get())?);
    }

    // Required state: everything asked for on first sight; afterwards what changed.
    let state_now = joined::state_at(services, room_id, until)?;
    let state_before = match sent_up_to {
        Some(sent) => joined::state_at(services, room_id, sent)?,
        None => std::sync::Arc::new(StateMap::new()),
    };
    let mut required_state = Vec::new();
    for (shortstatekey, shorteventid) in state_now.iter() {
        let (kind, key) = rooms.statekey_of_short(*shortstatekey)?;
        if !settings.wants(&kind, &key, user_id, &senders) {
            continue;
        }
        let unchanged = state_before.get(shortstatekey) == Some(shorteventid);
        // Members of this batch's senders come along even if unchanged ($LAZY).
        let lazy_sender =
            kind == "m.room.member" && senders.iter().any(|s| s.as_str() == key.as_str());
        if unchanged && !lazy_sender {
            continue;
        }
        let event_id = rooms.event_id_of_short(*shorteventid)?;
        if let Some(json) = rooms.get_pdu_json(&event_id)? {
            required_state.push(serde_json::from_str::<Value>(
                client_event(&json, room_id)?.json().get(),
            )?);
        }
    }

    let (joined_count, invited_count, _) = joined::summary(services, room_id, user_id)?;
    let counts = joined::unread_counts(services, room_id, user_id)?.total();
    let prev_batch = events
        .first()
        .map_or(PduCount::normal(until), |(count, _)| count.prev());
    let mut out = Map::new();
    out.insert("initial".into(), json!(initial));
    out.insert("timeline".into(), json!(timeline));
    out.insert("required_state".into(), json!(required_state));
    out.insert("limited".into(), json!(limited));
    out.insert("prev_batch".into(), json!(prev_batch.token()));
    out.insert("num_live".into(), json!(num_live));
    out.insert("joined_count".into(), json!(joined_count));
    out.insert("invited_count".into(), json!(invited_count));
    out.insert("notification_count".into(), json!(counts.0));
    out.insert("highlight_count".into(), json!(counts.1));
    out.insert("bump_stamp".into(), json!(stamp));
    out.insert("is_dm".into(), json!(context.is_dm(room_id)));
    if membership != "join" {
        out.insert("membership".into(), json!(membership));
    }
    match room_name(services, room_id)? {
        Some(name) => {
            out.insert("name".into(), json!(name));
        }
        None => {
            out.insert("heroes".into(), json!(heroes(services, room_id, user_id)?));
        }
    }
    if let Some(avatar) = rooms
        .current_state_event(room_id, "m.room.avatar", "")?
        .and_then(|event| event.content_value()["url"].as_str().map(str::to_owned))
    {
        out.insert("avatar".into(), json!(avatar));
    }
    Ok(Some(Value::Object(out)))
}

/// The room's explicit name: `m.room.name`, else its canonical alias.
fn room_name(services: &Services, room_id: &RoomId) -> Result<Option<String>> {
    let rooms = &services.rooms;
    if let Some(name) = rooms
        .current_state_event(room_id, "m.room.name", "")?
        .and_then(|event| event.content_value()["name"].as_str().map(str::to_owned))
        .filter(|name| !name.is_empty())
    {
        return Ok(Some(name));
    }
    Ok(rooms
        .current_state_event(room_id, "m.room.canonical_alias", "")?
        .and_then(|event| event.content_value()["alias"].as_str().map(str::to_owned)))
}

/// Up to five other members (joined or invited) to name an unnamed room after.
fn heroes(services: &Services, room_id: &RoomId, user_id: &UserId) -> Result<Vec<Value>> {
    let (_, _, heroes) = joined::summary(services, room_id, user_id)?;
    let mut out = Vec::new();
    for hero in heroes {
        let mut entry = json!({ "user_id": hero });
        if let Some(member) =
            services
                .rooms
                .current_state_event(room_id, "m.room.member", hero.as_str())?
        {
            let content = member.content_value();
            if let Some(name) = content["displayname"].as_str() {
                entry["displayname"] = json!(name);
            }
            if let Some(avatar) = content["avatar_url"].as_str() {
                entry["avatar_url"] = json!(avatar);
            }
        }
        out.push(entry);
    }
    Ok(out)
}
