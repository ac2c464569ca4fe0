//! The events each application service is sent, as the federation queues do it: an event an
//! application service is interested in is queued for it in the event's own batch
//! (`appserviceidcount_eventid`), and one worker per service sends the queue in transactions
//! (`PUT /_matrix/app/v1/transactions/{txnId}`), removing what the service acknowledged and
//! backing off while it is down. Nothing is lost across a restart or an outage.
//!
//! A service is interested in an event (as Synapse decides) when the room is in its rooms
//! namespace or has an alias in its aliases namespace, when the sender or a member event's
//! target is in its users namespace, or when one of its users is joined to the room. The
//! room's part is cached per service and dropped when one of the service's users changes
//! membership there (or the room's aliases change), so the send path matches a few regexes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use ruma::events::TimelineEventType;
use ruma::{OwnedEventId, OwnedRoomId, RoomId};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::Instrument;

use super::Appservice;
use super::outgoing::Outgoing;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::pdu::PduEvent;
use crate::storage::{Batch, Engine, Key, Tree};

/// Events per transaction (Synapse sends at most 100).
const MAX_EVENTS: usize = 100;
/// Ephemeral events waiting per service while it is down; the oldest go first.
const MAX_EPHEMERAL: usize = 1000;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

pub struct Queue {
    engine: Arc<Engine>,
    tree: Tree,
    http: Outgoing,
    /// Per service and room: whether the room itself interests the service.
    room_interest: Mutex<HashMap<(String, OwnedRoomId), bool>>,
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    state: Mutex<HashMap<String, ServiceState>>,
    services: Weak<Services>,
}

/// In memory per service: ephemeral events to send and the delivery record.
#[derive(Default)]
struct ServiceState {
    ephemeral: VecDeque<Value>,
    to_device: VecDeque<Value>,
    failures: u32,
    retry_at: Option<Instant>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
}

/// One service's queue, for the admin commands.
#[derive(Debug, Clone)]
pub struct Status {
    pub queued: usize,
    pub failures: u32,
    pub retry_in: Option<Duration>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
}

impl Queue {
    pub fn new(engine: &Arc<Engine>, http: Outgoing, services: Weak<Services>) -> Self {
        Self {
            engine: Arc::clone(engine),
            tree: engine.tree("appserviceidcount_eventid"),
            http,
            room_interest: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            state: Mutex::new(HashMap::new()),
            services,
        }
    }

    pub fn http(&self) -> &Outgoing {
        &self.http
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, ServiceState>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every cached room interest (the registrations changed).
    pub fn forget_interest(&self) {
        self.room_interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Forgets the room's cached interest (its aliases changed).
    pub fn forget_room(&self, room_id: &RoomId) {
        self.room_interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, room), _| room != room_id);
    }

    /// Queues a stored timeline event, in its own batch, for the services interested in it;
    /// answers their IDs, to wake their workers once written.
    pub fn queue_pdu(
        &self,
        services: &Services,
        room_id: &RoomId,
        pdu: &PduEvent,
        batch: &mut Batch,
    ) -> Result<Vec<String>> {
        let all = services.appservices.all();
        if all.is_empty() {
            return Ok(Vec::new());
        }
        let mut queued = Vec::new();
        for service in all.iter() {
            if service.registration.url.is_none() {
                continue;
            }
            if self.is_interested(services, service, room_id, pdu)? {
                let position = self.engine.next_count()?;
                batch.put(
                    &self.tree,
                    &(service.id(), position).encode(),
                    pdu.event_id.as_bytes(),
                )?;
                queued.push(service.id().to_owned());
            }
        }
        Ok(queued)
    }

    fn is_interested(
        &self,
        services: &Services,
        service: &Appservice,
        room_id: &RoomId,
        pdu: &PduEvent,
    ) -> Result<bool> {
        // One of its users' membership changes (whoever sent it): the room's answer may change
        // with it, so the cached one goes first.
        if pdu.kind == TimelineEventType::RoomMember
            && let Some(target) = pdu.state_key.as_deref()
            && (target == service.sender.as_str() || service.users.matches(target))
        {
            self.room_interest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(service.id().to_owned(), room_id.to_owned()));
            return Ok(true);
        }
        if service.may_act_as(&pdu.sender) {
            return Ok(true);
        }
        self.room_interest_cached(services, service, room_id)
    }

    /// Adds an ephemeral event (typing, a receipt) for the services that asked for them
    /// (MSC2409's `receive_ephemeral`) and are interested in the room. They wait in memory
    /// for the next transaction: like typing itself, they are not worth keeping on disk.
    fn queue_ephemeral(&self, services: &Services, room_id: &RoomId, edu: &Value) {
        let all = services.appservices.all();
        if all.is_empty() {
            return;
        }
        let mut woken = Vec::new();
        for service in all.iter() {
            if !service.registration.receive_ephemeral || service.registration.url.is_none() {
                continue;
            }
            // Read, not filled, outside the room's lock: a membership change being written
            // could otherwise leave a stale answer cached.
            let cached = self
                .room_interest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(service.id().to_owned(), room_id.to_owned()))
                .copied();
            let interested =
                match cached.map_or_else(|| room_interests(services, service, room_id), Ok) {
                    Ok(interested) => interested,
                    Err(error) => {
                        tracing::warn!(%error, "cannot decide an appservice's interest");
                        false
                    }
                };
            if !interested {
                continue;
            }
            let mut edu = edu.clone();
            edu["room_id"] = json!(room_id);
            let mut state = self.state();
            let queue = &mut state.entry(service.id().to_owned()).or_default().ephemeral;
            if queue.len() >= MAX_EPHEMERAL {
                queue.pop_front();
            }
            queue.push_back(edu);
            woken.push(service.id().to_owned());
        }
        self.wake(&woken);
    }

    /// The room's typing users changed: services that take ephemeral events hear of it.
    pub fn typing_changed(&self, services: &Services, room_id: &RoomId) {
        if services.appservices.all().is_empty() {
            return;
        }
        let typing = services
            .typing
            .changed_since(room_id, 0)
            .unwrap_or_default();
        let edu = json!({ "type": "m.typing", "content": { "user_ids": typing } });
        self.queue_ephemeral(services, room_id, &edu);
    }

    /// A public read receipt: services that take ephemeral events hear of it.
    pub fn receipt(
        &self,
        services: &Services,
        room_id: &RoomId,
        user_id: &ruma::UserId,
        event_id: &ruma::EventId,
        thread: Option<&str>,
    ) {
        if services.appservices.all().is_empty() {
            return;
        }
        let mut receipt = json!({ "ts": crate::service::now_millis() });
        if let Some(thread) = thread {
            receipt["thread_id"] = json!(thread);
        }
        let edu = json!({
            "type": "m.receipt",
            "content": { event_id.as_str(): { "m.read": { user_id.as_str(): receipt } } },
        });
        self.queue_ephemeral(services, room_id, &edu);
    }

    /// To-device messages for the devices of services' users (MSC2409's to-device part, as
    /// Synapse sends it): the service gets them in its transactions, for its bridged
    /// encryption. They stay in the devices' queues too.
    pub fn to_device(
        &self,
        services: &Services,
        sender: &ruma::UserId,
        event_type: &str,
        messages: &[(&ruma::UserId, crate::service::to_device::Target, Value)],
    ) {
        let all = services.appservices.all();
        if all.is_empty() {
            return;
        }
        let mut woken = Vec::new();
        for (user, target, content) in messages {
            let Some(service) = all.iter().find(|s| {
                s.registration.receive_ephemeral
                    && s.registration.url.is_some()
                    && s.may_act_as(user)
            }) else {
                continue;
            };
            let devices = match target {
                crate::service::to_device::Target::Device(device) => vec![device.clone()],
                crate::service::to_device::Target::AllDevices => {
                    services.users.device_ids(user).unwrap_or_default()
                }
            };
            let mut state = self.state();
            let queue = &mut state.entry(service.id().to_owned()).or_default().to_device;
            for device in devices {
                if queue.len() >= MAX_EPHEMERAL {
                    queue.pop_front();
                }
                queue.push_back(json!({
                    "type": event_type,
                    "sender": sender,
                    "content": content,
                    "to_user_id": user,
                    "to_device_id": device,
                }));
            }
            woken.push(service.id().to_owned());
        }
        self.wake(&woken);
    }

    /// The room's part of the interest, cached. Filled only under the room's lock (by the
    /// event pipeline), after the previous event's membership changes were applied.
    fn room_interest_cached(
        &self,
        services: &Services,
        service: &Appservice,
        room_id: &RoomId,
    ) -> Result<bool> {
        let key = (service.id().to_owned(), room_id.to_owned());
        if let Some(known) = self
            .room_interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(*known);
        }
        let interested = room_interests(services, service, room_id)?;
        self.room_interest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, interested);
        Ok(interested)
    }

    /// Starts the workers of `ids`, or wakes them.
    pub fn wake(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let Some(services) = self.services.upgrade() else {
            return;
        };
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if let Some(notify) = workers.get(id) {
                notify.notify_one();
                continue;
            }
            let notify = Arc::new(Notify::new());
            workers.insert(id.clone(), Arc::clone(&notify));
            let services = Arc::clone(&services);
            let id = id.clone();
            let span = tracing::info_span!("appservice_sender", appservice = %id);
            tokio::spawn(async move { run(&services, &id, &notify).await }.instrument(span));
        }
    }

    /// Sends what was queued before a stop.
    pub fn resume(&self, services: &Services) -> Result<()> {
        let mut due = Vec::new();
        for service in services.appservices.all().iter() {
            let prefix = (service.id(),).prefix();
            if self.tree.scan_prefix(prefix).next().is_some() {
                due.push(service.id().to_owned());
            }
        }
        self.wake(&due);
        Ok(())
    }

    /// Removes everything queued for an unregistered service.
    pub fn drop_queue(&self, id: &str) -> Result<()> {
        let mut batch = Batch::default();
        for entry in self.tree.scan_prefix((id,).prefix()) {
            batch.delete(&self.tree, &entry?.0)?;
        }
        self.engine.write(batch)?;
        self.state().remove(id);
        Ok(())
    }

    pub fn status(&self, id: &str) -> Result<Status> {
        let queued = self.tree.scan_prefix((id,).prefix()).count();
        let state = self.state();
        let service = state.get(id);
        Ok(Status {
            queued,
            failures: service.map_or(0, |s| s.failures),
            retry_in: service
                .and_then(|s| s.retry_at)
                .map(|at| at.saturating_duration_since(Instant::now())),
            last_success: service.and_then(|s| s.last_success),
            last_error: service.and_then(|s| s.last_error.clone()),
        })
    }

    /// The next transaction: up to [`MAX_EVENTS`] queued events (their queue keys, to remove
    /// once acknowledged) and the waiting ephemeral events.
    fn next_transaction(&self, services: &Services, id: &str) -> Result<Transaction> {
        let prefix = (id,).prefix();
        // Positions are handed out before their batches land: stop below the first one that
        // may still be in flight, so nothing queued earlier is skipped.
        let safe = self.engine.safe_count();
        let mut keys = Vec::new();
        let mut events = Vec::new();
        for entry in self.tree.scan_prefix(prefix).take(MAX_EVENTS) {
            let (key, value) = entry?;
            let (_, position) = <(&str, u64)>::decode(&key)?;
            if position > safe {
                break;
            }
            let event_id = OwnedEventId::try_from(String::from_utf8_lossy(&value).as_ref())
                .map_err(|e| crate::error::Error::Database(format!("queued event ID: {e}")))?;
            keys.push((position, key));
            // An event purged since is skipped.
            if let Some(json) = services.rooms.get_pdu_json(&event_id)?
                && let Ok(pdu) = PduEvent::from_json(&json)
                && let Some(room_id) = pdu.room_id.as_deref()
            {
                events.push(crate::service::rooms::pdu::client_event_value(
                    &json, room_id,
                )?);
            }
        }
        let (ephemeral, to_device) = self
            .state()
            .get_mut(id)
            .map(|s| {
                (
                    s.ephemeral.drain(..).collect(),
                    s.to_device.drain(..).collect(),
                )
            })
            .unwrap_or_default();
        Ok(Transaction {
            keys,
            events,
            ephemeral,
            to_device,
        })
    }
}

/// What the room itself gives the service: its rooms namespace, an alias in its aliases
/// namespace, or one of its users joined.
fn room_interests(services: &Services, service: &Appservice, room_id: &RoomId) -> Result<bool> {
    if service.is_interested_in_room(room_id) {
        return Ok(true);
    }
    for alias in services.rooms.local_aliases(room_id)? {
        if service.is_interested_in_alias(&alias) {
            return Ok(true);
        }
    }
    if let Some(event) =
        services
            .rooms
            .current_state_event(room_id, "m.room.canonical_alias", "")?
        && let Some(alias) = event.content_value()["alias"]
            .as_str()
            .and_then(|a| ruma::RoomAliasId::parse(a).ok())
        && service.is_interested_in_alias(&alias)
    {
        return Ok(true);
    }
    let members = services.rooms.members_shared(room_id)?;
    Ok(members.iter().any(|(user, membership)| {
        membership == "join"
            && user.server_name() == services.server_name()
            && service.may_act_as(user)
    }))
}

struct Transaction {
    keys: Vec<(u64, Box<[u8]>)>,
    events: Vec<Value>,
    ephemeral: Vec<Value>,
    to_device: Vec<Value>,
}

impl Transaction {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.ephemeral.is_empty() && self.to_device.is_empty()
    }

    /// The body, with the unstable key of the to-device messages too (mautrix reads either).
    fn body(&self) -> Value {
        let mut body = json!({ "events": self.events, "ephemeral": self.ephemeral });
        if !self.to_device.is_empty() {
            body["to_device"] = json!(self.to_device);
            body["de.sorunome.msc2409.to_device"] = json!(self.to_device);
        }
        body
    }
}

/// The worker of one service: sends transactions until the queue is empty, backing off
/// while the service fails.
async fn run(services: &Arc<Services>, id: &str, notify: &Notify) {
    let queue = &services.appservices.queue;
    let mut shutdown = services.shutdown.subscribe();
    let mut backoff = FIRST_BACKOFF;
    // A transaction that failed is sent again as it was, under the same ID.
    let mut pending: Option<(String, Transaction)> = None;
    loop {
        let Some(service) = services.appservices.get(id) else {
            queue.end_worker(id);
            return;
        };
        if pending.is_none() {
            let next = match queue.next_transaction(services, id) {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(%error, "cannot read the appservice queue");
                    queue.end_worker(id);
                    return;
                }
            };
            if next.is_empty() {
                if queue.end_worker_if_idle(id) {
                    return;
                }
                // Something was queued meanwhile, perhaps not yet below the safe count.
                tokio::select! {
                    _ = notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            let txn_id = match (next.keys.first(), next.keys.last()) {
                (Some((first, _)), Some((last, _))) => format!("{first}-{last}"),
                _ => format!("e{}", queue.engine.next_count().unwrap_or_default()),
            };
            pending = Some((txn_id, next));
        }
        let Some((txn_id, transaction)) = &pending else {
            continue;
        };
        match queue
            .http
            .transaction(&service, txn_id, &transaction.body())
            .await
        {
            Ok(()) => {
                let mut batch = Batch::default();
                let mut failed = false;
                for (_, key) in &transaction.keys {
                    if let Err(error) = batch.delete(&queue.tree, key) {
                        tracing::error!(%error, "cannot dequeue");
                        failed = true;
                    }
                }
                if !failed && let Err(error) = queue.engine.write(batch) {
                    tracing::error!(%error, "cannot dequeue the sent events");
                }
                let mut state = queue.state();
                let entry = state.entry(id.to_owned()).or_default();
                entry.failures = 0;
                entry.retry_at = None;
                entry.last_success = Some(SystemTime::now());
                drop(state);
                pending = None;
                backoff = FIRST_BACKOFF;
            }
            Err(error) => {
                tracing::info!(%error, ?backoff, "appservice transaction failed; retrying later");
                let at = Instant::now() + backoff;
                {
                    let mut state = queue.state();
                    let entry = state.entry(id.to_owned()).or_default();
                    entry.failures += 1;
                    entry.retry_at = Some(at);
                    entry.last_error = Some(error.message());
                }
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

impl Queue {
    fn end_worker(&self, id: &str) {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Ends the worker unless something was queued since it looked (whoever queued it found
    /// the worker registered and only woke it).
    fn end_worker_if_idle(&self, id: &str) -> bool {
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let has_events = self.tree.scan_prefix((id,).prefix()).next().is_some();
        let has_ephemeral = self
            .state()
            .get(id)
            .is_some_and(|s| !s.ephemeral.is_empty() || !s.to_device.is_empty());
        if has_events || has_ephemeral {
            return false;
        }
        workers.remove(id);
        true
    }
}
