//! Sending notifications to push gateways (the Push Gateway API's
//! `POST /_matrix/push/v1/notify`), off the send path.
//!
//! The queue is the user's notification log (`useridcount_notification`, written with the
//! event that notifies): each pusher remembers the position it delivered up to, so nothing
//! is lost across a restart or while a gateway is down. One worker per user walks their
//! pushers; a gateway that fails is retried with backoff, and one that answers the push key
//! as `rejected` has that pusher removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::Instrument;

use super::StoredPusher;
use crate::config::PushConfig;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::net::{IpPolicy, PolicyResolver};

/// Notifications sent per pusher before the others get a turn.
const BATCH: usize = 20;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// Longest a gateway may take to answer.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP client of push delivery, under the push address policy (made before the
/// services, since building it can fail).
pub struct PushClient {
    client: reqwest::Client,
    policy: Arc<IpPolicy>,
}

impl PushClient {
    pub fn new(config: &PushConfig) -> Result<Self> {
        let policy = Arc::new(IpPolicy::from_lists(
            &config.ip_range_denylist,
            &config.ip_range_allowlist,
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver::new(Arc::clone(&policy))))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(GATEWAY_TIMEOUT)
            .user_agent(concat!("Conclave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the push client: {e}")))?;
        Ok(Self { client, policy })
    }
}

pub struct Delivery {
    http: PushClient,
    /// Users whose worker runs, and how to wake it.
    workers: Mutex<HashMap<OwnedUserId, Arc<Notify>>>,
    /// Users who read something since: their apps' badges are updated.
    badges_due: Mutex<std::collections::HashSet<OwnedUserId>>,
    /// The badge last sent to each user's pushers.
    last_badge: Mutex<HashMap<OwnedUserId, Badge>>,
    services: Weak<Services>,
}

/// What became of one notification.
enum Sent {
    Delivered,
    /// The gateway no longer knows the push key: the pusher is removed.
    Rejected,
}

impl Delivery {
    pub fn new(http: PushClient, services: Weak<Services>) -> Self {
        Self {
            http,
            workers: Mutex::new(HashMap::new()),
            badges_due: Mutex::new(std::collections::HashSet::new()),
            last_badge: Mutex::new(HashMap::new()),
            services,
        }
    }

    /// The user read something (a receipt): their apps' badges may need to go down.
    pub fn badge_changed(&self, services: &Services, user_id: &UserId) -> Result<()> {
        if !services.pushers.has_pushers(user_id)? {
            return Ok(());
        }
        self.badges_due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user_id.to_owned());
        self.wake(user_id);
        Ok(())
    }

    /// Whether a badge update is due for the user (taken: it is sent once).
    fn take_badge_due(&self, user_id: &UserId) -> bool {
        self.badges_due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user_id)
    }

    /// Records the badge count sent; whether it differs from the one sent before.
    fn badge_sent(&self, user_id: &UserId, badge: Badge) -> bool {
        let mut last = self.last_badge.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(user_id.to_owned(), badge) != Some(badge)
    }

    /// Users whose delivery worker runs (it stops once their notifications are delivered).
    pub fn busy_users(&self) -> usize {
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Something new may be due for the user's pushers: starts their worker, or wakes it.
    pub fn wake(&self, user_id: &UserId) {
        let Some(services) = self.services.upgrade() else {
            return;
        };
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = workers.get(user_id) {
            notify.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        workers.insert(user_id.to_owned(), Arc::clone(&notify));
        drop(workers);
        let user_id = user_id.to_owned();
        let span = tracing::info_span!("push_delivery", user = %user_id);
        tokio::spawn(async move { run(&services, &user_id, &notify).await }.instrument(span));
    }

    /// POSTs one notification to the pusher's gateway.
    async fn send(&self, url: &str, body: &Value, pushkey: &str) -> Result<Sent> {
        let url = reqwest::Url::parse(url).map_err(|e| Error::Internal(e.to_string()))?;
        if self.http.policy.refuses_literal(&url) {
            return Err(Error::Internal(format!(
                "the push gateway {url} is on an address push.ip_range_denylist refuses"
            )));
        }
        let response = self
            .http
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| Error::Internal(format!("push gateway unreachable: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Internal(format!("push gateway answered {status}")));
        }
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let rejected = answer["rejected"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|key| key == pushkey));
        Ok(if rejected {
            Sent::Rejected
        } else {
            Sent::Delivered
        })
    }
}

/// The worker of one user's pushers: delivers until every pusher is up to date, waiting out
/// failing gateways.
async fn run(services: &Arc<Services>, user_id: &UserId, notify: &Notify) {
    let delivery = &services.pushers.delivery;
    let mut retry: HashMap<(String, String), (Instant, Duration)> = HashMap::new();
    let mut shutdown = services.shutdown.subscribe();
    loop {
        if delivery.take_badge_due(user_id)
            && let Err(error) = send_badge(services, user_id).await
        {
            tracing::info!(%error, "badge update failed");
        }
        let mut next_try: Option<Instant> = None;
        let mut more = false;
        let pushers = services.pushers.pushers(user_id).unwrap_or_else(|error| {
            tracing::error!(%error, "cannot read the user's pushers");
            Vec::new()
        });
        for stored in pushers {
            let ids = (
                stored.pusher.ids.app_id.clone(),
                stored.pusher.ids.pushkey.clone(),
            );
            if let Some((at, _)) = retry.get(&ids)
                && *at > Instant::now()
            {
                next_try = Some(next_try.map_or(*at, |next| next.min(*at)));
                continue;
            }
            match deliver(services, user_id, &stored).await {
                Ok(done) => {
                    retry.remove(&ids);
                    more |= !done;
                }
                Err(error) => {
                    let backoff = retry.get(&ids).map_or(FIRST_BACKOFF, |(_, last)| {
                        last.saturating_mul(2).min(MAX_BACKOFF)
                    });
                    tracing::info!(app_id = %ids.0, %error, ?backoff, "push delivery failed; retrying later");
                    let at = Instant::now() + backoff;
                    retry.insert(ids, (at, backoff));
                    next_try = Some(next_try.map_or(at, |next| next.min(at)));
                }
            }
        }
        if more {
            continue;
        }
        if next_try.is_none() {
            // Nothing left: the worker ends, unless something was queued meanwhile (its wake
            // found this worker registered and left a permit).
            let mut workers = delivery.workers.lock().unwrap_or_else(|e| e.into_inner());
            let badge_due = delivery
                .badges_due
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(user_id);
            if badge_due || pending(services, user_id).unwrap_or(false) {
                continue;
            }
            workers.remove(user_id);
            return;
        }
        let sleep = tokio::time::sleep_until(next_try.unwrap_or_else(Instant::now).into());
        tokio::select! {
            _ = sleep => {}
            _ = notify.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Whether any of the user's pushers has notifications left to deliver.
fn pending(services: &Services, user_id: &UserId) -> Result<bool> {
    for stored in services.pushers.pushers(user_id)? {
        if !services
            .push
            .notifications_after(user_id, stored.delivered_up_to, 1)?
            .is_empty()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Delivers up to [`BATCH`] notifications to one pusher; answers whether it is up to date.
async fn deliver(services: &Services, user_id: &UserId, stored: &StoredPusher) -> Result<bool> {
    let ruma::api::client::push::PusherKind::Http(data) = &stored.pusher.kind else {
        return Ok(true);
    };
    let due = services
        .push
        .notifications_after(user_id, stored.delivered_up_to, BATCH)?;
    let done = due.len() < BATCH;
    let event_id_only = data
        .format
        .as_ref()
        .is_some_and(|format| format.as_str() == "event_id_only");
    for (count, record) in due {
        let body = notification(services, user_id, stored, &record, event_id_only)?;
        if let Some(body) = body {
            let sent = services
                .pushers
                .delivery
                .send(&data.url, &body, &stored.pusher.ids.pushkey)
                .await?;
            if let Sent::Rejected = sent {
                tracing::info!(app_id = %stored.pusher.ids.app_id, "the gateway rejected the push key; pusher removed");
                services.pushers.remove(user_id, &stored.pusher.ids)?;
                return Ok(true);
            }
        }
        services
            .pushers
            .set_delivered(user_id, &stored.pusher.ids, count)?;
    }
    Ok(done)
}

/// The Push Gateway API's request for one notification (`None` when its event is gone).
fn notification(
    services: &Services,
    user_id: &UserId,
    stored: &StoredPusher,
    record: &Value,
    event_id_only: bool,
) -> Result<Option<Value>> {
    let Some(event_id) = record["event_id"]
        .as_str()
        .and_then(|id| ruma::EventId::parse(id).ok())
    else {
        return Ok(None);
    };
    let Some(json) = services.rooms.get_pdu_json(&event_id)? else {
        return Ok(None);
    };
    let pdu = crate::service::rooms::pdu::PduEvent::from_json(&json)?;
    // The rule's tweaks (`sound`, `highlight`), as the actions stored them.
    let mut tweaks = serde_json::Map::new();
    for action in record["actions"].as_array().into_iter().flatten() {
        if let Some(tweak) = action["set_tweak"].as_str() {
            let value = action.get("value").cloned().unwrap_or(json!(true));
            tweaks.insert(tweak.to_owned(), value);
        }
    }
    // As Synapse: encrypted messages, highlights and sounds wake the phone.
    let high = pdu.kind.to_string() == "m.room.encrypted"
        || tweaks.contains_key("sound")
        || tweaks.get("highlight") == Some(&json!(true));
    let room_id = record["room_id"].as_str().unwrap_or_default();
    let badge = badge_count(services, user_id)?;
    services.pushers.delivery.badge_sent(user_id, badge);
    let mut notification = json!({
        "event_id": event_id,
        "room_id": room_id,
        "prio": if high { "high" } else { "low" },
        "counts": badge.counts(),
        "devices": [device_entry(stored, tweaks)],
    });
    if !event_id_only {
        notification["type"] = json!(pdu.kind.to_string());
        notification["sender"] = json!(pdu.sender);
        notification["content"] = pdu.content_value();
        if let Ok(room) = ruma::RoomId::parse(room_id) {
            if let Some(name) = services
                .rooms
                .current_state_event(&room, "m.room.name", "")?
                .and_then(|event| event.content_value()["name"].as_str().map(str::to_owned))
            {
                notification["room_name"] = json!(name);
            }
            if let Some(name) = services
                .rooms
                .current_state_event(&room, "m.room.member", pdu.sender.as_str())?
                .and_then(|event| {
                    event.content_value()["displayname"]
                        .as_str()
                        .map(str::to_owned)
                })
            {
                notification["sender_display_name"] = json!(name);
            }
        }
        if pdu.state_key.as_deref() == Some(user_id.as_str()) {
            notification["user_is_target"] = json!(true);
        }
    }
    Ok(Some(json!({ "notification": notification })))
}

/// The pusher as the gateway's `devices` entry: its data without the URL, and the tweaks of
/// the rule that matched.
fn device_entry(stored: &StoredPusher, tweaks: serde_json::Map<String, Value>) -> Value {
    let mut data = serde_json::to_value(&stored.pusher.kind)
        .ok()
        .and_then(|kind| kind.get("data").cloned())
        .unwrap_or_else(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        data.remove("url");
    }
    json!({
        "app_id": stored.pusher.ids.app_id,
        "pushkey": stored.pusher.ids.pushkey,
        "pushkey_ts": stored.pushkey_ts,
        "data": data,
        "tweaks": tweaks,
    })
}

/// After the user read something: the new badge count, without an event, to each pusher
/// (when it changed since the last one sent). A failed one is not retried: the next
/// notification carries the count anyway.
async fn send_badge(services: &Services, user_id: &UserId) -> Result<()> {
    let badge = badge_count(services, user_id)?;
    let delivery = &services.pushers.delivery;
    if !delivery.badge_sent(user_id, badge) {
        return Ok(());
    }
    for stored in services.pushers.pushers(user_id)? {
        let ruma::api::client::push::PusherKind::Http(data) = &stored.pusher.kind else {
            continue;
        };
        let body = json!({ "notification": {
            "counts": badge.counts(),
            "prio": "low",
            "devices": [device_entry(&stored, serde_json::Map::new())],
        } });
        if let Sent::Rejected = delivery
            .send(&data.url, &body, &stored.pusher.ids.pushkey)
            .await?
        {
            services.pushers.remove(user_id, &stored.pusher.ids)?;
        }
    }
    Ok(())
}

/// The push gateway's `counts`: the app badge (how many rooms have unread notifications,
/// Synapse's default) and the call invites not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Badge {
    pub unread_rooms: u64,
    pub missed_calls: u64,
}

impl Badge {
    fn counts(self) -> Value {
        json!({ "unread": self.unread_rooms, "missed_calls": self.missed_calls })
    }
}

pub fn badge_count(services: &Services, user_id: &UserId) -> Result<Badge> {
    let mut badge = Badge {
        unread_rooms: 0,
        missed_calls: 0,
    };
    for room_id in services.rooms.rooms_with_membership(user_id, "join")? {
        let counts = crate::service::sync::joined::unread_counts(services, &room_id, user_id)?;
        if counts.total().0 > 0 {
            badge.unread_rooms += 1;
        }
        badge.missed_calls += counts.missed_calls;
    }
    Ok(badge)
}
