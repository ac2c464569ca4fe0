//! The outgoing queue: events for other servers, one queue per destination, persisted in
//! RocksDB in the event's own batch (so a restart resends what was not acknowledged, and a
//! crash cannot store an event without queueing it). One worker per destination sends
//! transactions of at most [`MAX_PDUS_PER_TXN`] PDUs, one at a time; after a failure it waits
//! with exponential backoff (capped), reset as soon as the destination contacts us.
//!
//! Sending never slows a local send: the event's batch only gains one small entry per
//! destination, and the workers run on their own tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use rocksdb::Direction;
use ruma::{EventId, OwnedServerName, ServerName};
use serde_json::Value;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::error::Result;
use crate::service::Services;
use crate::storage::{Batch, Engine, Key, Tree};

/// Most PDUs in one transaction (the spec's limit).
pub const MAX_PDUS_PER_TXN: usize = 50;
/// Most EDUs in one transaction (the spec's limit).
pub const MAX_EDUS_PER_TXN: usize = 100;
/// Most EDUs waiting for one destination: typing and receipts are worth little once old, so
/// a destination that is down keeps only the newest.
const MAX_WAITING_EDUS: usize = 1000;
/// First wait after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// After an outage, a room with more events than this queued for the destination is caught
/// up as Synapse does: only its newest event is sent, and the destination fetches what it
/// wants of the rest (`get_missing_events`, then the state at the gap). A shorter backlog is
/// sent whole, so that a brief outage leaves no gap in the destination's timeline.
pub const CATCH_UP_ROOM_BACKLOG: usize = MAX_PDUS_PER_TXN;

pub struct Sender {
    /// Key: destination ServerName, queue position (u64). Value: EventId.
    queue: Tree,
    /// EDUs that must not be lost (to-device messages, device list updates). Key:
    /// destination ServerName, queue position (u64). Value: the EDU's JSON.
    edu_queue: Tree,
    /// The services the workers use (the client, keys, events); weak because `Services`
    /// owns this sender. It fails to upgrade only while the server stops.
    services: Weak<Services>,
    engine: Arc<Engine>,
    destinations: Mutex<HashMap<OwnedServerName, Destination>>,
    /// Recent events in their federation form, shared by the destinations' workers.
    wire_pdus: super::transaction::WirePdus,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What the worker of one destination knows, for itself and for `federation destinations`.
#[derive(Default)]
struct Destination {
    running: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_success: Option<SystemTime>,
    last_error: Option<String>,
    /// A transaction failed since the last success: the queue is trimmed before the next try.
    catching_up: bool,
    /// EDUs to send, oldest first. In memory only: they are ephemeral (typing, receipts).
    edus: std::collections::VecDeque<Value>,
    wake: Arc<Notify>,
    /// Where the unsent part of each queue starts.
    sent_below: SentBelow,
}

/// Queue positions below which everything was sent (of the PDU and the EDU queue), so a
/// worker reads its queue from there rather than stepping again over every entry deleted
/// since RocksDB last compacted (which made each read cost the whole recent history).
/// Advanced only up to the engine's safe position: an entry with a lower position that a
/// writer had not committed yet when the worker read the queue is still found later.
#[derive(Default, Clone, Copy)]
struct SentBelow {
    pdus: u64,
    edus: u64,
}

/// One destination as the admin command lists it.
#[derive(Debug, Clone)]
pub struct DestinationStatus {
    pub server: OwnedServerName,
    pub queued: usize,
    pub failures: u32,
    pub retry_in: Option<Duration>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
}

impl Sender {
    pub fn new(engine: &Arc<Engine>, services: Weak<Services>) -> Self {
        Self {
            queue: engine.tree("servernamecount_eventid"),
            edu_queue: engine.tree("servernamecount_edu"),
            services,
            engine: Arc::clone(engine),
            destinations: Mutex::new(HashMap::new()),
            wire_pdus: super::transaction::WirePdus::default(),
            workers: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnedServerName, Destination>> {
        self.destinations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event_id` for each of `servers`, in the event's own batch.
    pub fn queue_pdu(
        &self,
        servers: &[OwnedServerName],
        event_id: &EventId,
        batch: &mut Batch,
    ) -> Result<()> {
        for server in servers {
            let position = self.engine.next_count()?;
            batch.put(
                &self.queue,
                &(server.as_str(), position).encode(),
                event_id.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Queues an EDU for each of `servers` and starts their workers.
    pub fn queue_edu(&self, servers: &[OwnedServerName], edu: Value) {
        {
            let mut destinations = self.lock();
            for server in servers {
                let edus = &mut destinations.entry(server.clone()).or_default().edus;
                if edus.len() >= MAX_WAITING_EDUS {
                    edus.pop_front();
                }
                edus.push_back(edu.clone());
            }
        }
        self.wake(servers);
    }

    /// Queues an EDU that must not be lost (stored until `server` acknowledges it) for each
    /// of `servers`, and starts their workers.
    pub fn queue_persistent_edu(&self, servers: &[OwnedServerName], edu: &Value) -> Result<()> {
        let edus = servers.iter().map(|server| (server.clone(), edu.clone()));
        self.queue_persistent_edus(Batch::default(), edus)
    }

    /// Queues EDUs that must not be lost, each for its server, in one write with `batch`
    /// (what the caller records alongside), and starts the servers' workers.
    pub fn queue_persistent_edus(
        &self,
        mut batch: Batch,
        edus: impl IntoIterator<Item = (OwnedServerName, Value)>,
    ) -> Result<()> {
        // Positions taken here are committed before the safe position passes them, which the
        // workers rely on (see `SentBelow`).
        let _writing = self.engine.begin_write();
        let mut servers = Vec::new();
        for (server, edu) in edus {
            let json = serde_json::to_vec(&edu).map_err(crate::error::Error::internal)?;
            let position = self.engine.next_count()?;
            batch.put(
                &self.edu_queue,
                &(server.as_str(), position).encode(),
                &json,
            )?;
            if !servers.contains(&server) {
                servers.push(server);
            }
        }
        self.engine.write(batch)?;
        self.wake(&servers);
        Ok(())
    }

    /// The stored EDUs for `server`'s next transaction: keys and EDUs, oldest first.
    fn next_persistent_edus(
        &self,
        server: &ServerName,
        from: u64,
    ) -> Result<Vec<(Vec<u8>, Value)>> {
        let mut edus = Vec::new();
        for entry in queue_from(&self.edu_queue, server, from).take(MAX_EDUS_PER_TXN) {
            let (key, value) = entry?;
            match serde_json::from_slice(&value) {
                Ok(edu) => edus.push((key.to_vec(), edu)),
                Err(error) => {
                    tracing::error!(%server, %error, "a queued EDU is unreadable; dropped");
                    self.edu_queue.remove(&key)?;
                }
            }
        }
        Ok(edus)
    }

    /// Takes up to `room` of the ephemeral EDUs waiting for `server`.
    fn take_edus(&self, server: &ServerName, room: usize) -> Vec<Value> {
        let mut destinations = self.lock();
        let Some(destination) = destinations.get_mut(server) else {
            return Vec::new();
        };
        let take = destination.edus.len().min(room);
        destination.edus.drain(..take).collect()
    }

    /// Puts back EDUs a failed transaction carried, before those queued since.
    fn requeue_edus(&self, server: &ServerName, edus: Vec<Value>) {
        let mut destinations = self.lock();
        let waiting = &mut destinations.entry(server.to_owned()).or_default().edus;
        for edu in edus.into_iter().rev() {
            if waiting.len() >= MAX_WAITING_EDUS {
                break;
            }
            waiting.push_front(edu);
        }
    }

    /// Starts (or wakes) the workers of `servers`, once what was queued for them is written.
    pub fn wake(&self, servers: &[OwnedServerName]) {
        for server in servers {
            self.start(server, false);
        }
    }

    /// `server` contacted us: it is up, so its backoff ends and its queue is sent now.
    pub fn contacted(&self, server: &ServerName) {
        let pending = {
            let mut destinations = self.lock();
            match destinations.get_mut(server) {
                Some(destination) if destination.retry_at.is_some() => {
                    destination.retry_at = None;
                    destination.failures = 0;
                    true
                }
                _ => false,
            }
        };
        if pending {
            self.start(server, true);
        }
    }

    /// Retries `server` at once (the admin's `federation retry`).
    pub fn retry(&self, server: &ServerName) {
        self.start(server, true);
    }

    /// Starts a worker for every destination with queued events or EDUs (after a restart).
    pub fn resume(&self) -> Result<()> {
        let mut servers: std::collections::BTreeSet<OwnedServerName> = Default::default();
        for tree in [&self.queue, &self.edu_queue] {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let from = after.clone().unwrap_or_default();
                let next = tree.iter_from(&from, Direction::Forward).next();
                let Some(entry) = next else { break };
                let (key, _) = entry?;
                let (server, _) = <(&str, u64)>::decode(&key)?;
                let server = ServerName::parse(server).map_err(|e| {
                    crate::error::Error::Database(format!("queued destination: {e}"))
                })?;
                // Skip the rest of this destination's queue: its keys are the prefix and
                // eight bytes of position, so nine 0xFF bytes sort after all of them (server
                // names are ASCII, so no other server's key lies in between).
                let mut past = (server.as_str(),).prefix();
                past.extend_from_slice(&[0xFF; 9]);
                after = Some(past);
                servers.insert(server);
            }
        }
        let servers: Vec<OwnedServerName> = servers.into_iter().collect();
        if !servers.is_empty() {
            tracing::info!(
                destinations = servers.len(),
                "resuming the federation queues"
            );
        }
        self.wake(&servers);
        Ok(())
    }

    fn start(&self, server: &ServerName, retry_now: bool) {
        let Some(services) = self.services.upgrade() else {
            return;
        };
        let mut destinations = self.lock();
        let destination = destinations.entry(server.to_owned()).or_default();
        if retry_now {
            destination.retry_at = None;
        }
        if destination.running {
            destination.wake.notify_one();
            return;
        }
        destination.running = true;
        drop(destinations);
        let server = server.to_owned();
        let span = tracing::info_span!("federation_sender", destination = %server);
        let handle = tokio::spawn(
            async move {
                run(&services, &server).await;
            }
            .instrument(span),
        );
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.retain(|worker| !worker.is_finished());
        workers.push(handle);
    }

    /// Stops every worker (the server stops; what they had not sent stays queued).
    pub async fn stop(&self) {
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for worker in &workers {
            worker.abort();
        }
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Every destination known since start or with a queue, for `federation destinations`.
    pub fn status(&self) -> Result<Vec<DestinationStatus>> {
        let now = Instant::now();
        let destinations = self.lock();
        let mut list = Vec::new();
        for (server, destination) in destinations.iter() {
            list.push(DestinationStatus {
                server: server.clone(),
                queued: self.queued_from(server, destination.sent_below.pdus)?,
                failures: destination.failures,
                retry_in: destination
                    .retry_at
                    .map(|at| at.saturating_duration_since(now)),
                last_success: destination.last_success,
                last_error: destination.last_error.clone(),
            });
        }
        list.sort_by(|a, b| a.server.cmp(&b.server));
        Ok(list)
    }

    /// Events queued for `server`.
    pub fn queued(&self, server: &ServerName) -> Result<usize> {
        let from = self.sent_below(server).pdus;
        self.queued_from(server, from)
    }

    fn queued_from(&self, server: &ServerName, from: u64) -> Result<usize> {
        let mut count = 0;
        for entry in queue_from(&self.queue, server, from) {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    fn sent_below(&self, server: &ServerName) -> SentBelow {
        self.lock()
            .get(server)
            .map(|destination| destination.sent_below)
            .unwrap_or_default()
    }

    /// The next transaction's entries for `server`: keys and event IDs, oldest first.
    fn next_batch(
        &self,
        server: &ServerName,
        from: u64,
    ) -> Result<Vec<(Vec<u8>, ruma::OwnedEventId)>> {
        let mut entries = Vec::new();
        for entry in queue_from(&self.queue, server, from).take(MAX_PDUS_PER_TXN) {
            let (key, value) = entry?;
            entries.push((key.to_vec(), crate::storage::decode_id(&value)?));
        }
        Ok(entries)
    }

    /// Trims the queue of `server` after an outage: of each room with more than
    /// [`CATCH_UP_ROOM_BACKLOG`] events queued, only the newest stays. Returns how many
    /// entries were dropped. Two passes over the queue, so memory stays per room, not per
    /// queued event.
    fn trim_for_catch_up(&self, services: &Services, server: &ServerName) -> Result<usize> {
        let prefix = (server.as_str(),).prefix();
        // The room of each entry, or None for an event no longer in a timeline.
        let room_of = |value: &[u8]| -> Result<Option<u64>> {
            let event_id = crate::storage::decode_id::<ruma::OwnedEventId>(value)?;
            Ok(services
                .rooms
                .pdu_position(&event_id)?
                .map(|(room, _)| room))
        };
        let mut rooms: HashMap<u64, (usize, Vec<u8>)> = HashMap::new();
        for entry in self.queue.scan_prefix(prefix.clone()) {
            let (key, value) = entry?;
            if let Some(room) = room_of(&value)? {
                let newest = rooms.entry(room).or_default();
                newest.0 += 1;
                newest.1 = key.to_vec();
            }
        }
        rooms.retain(|_, (count, _)| *count > CATCH_UP_ROOM_BACKLOG);
        if rooms.is_empty() {
            return Ok(0);
        }
        let mut dropped = 0;
        let mut batch = Batch::default();
        for entry in self.queue.scan_prefix(prefix) {
            let (key, value) = entry?;
            let Some(room) = room_of(&value)? else {
                continue;
            };
            if rooms
                .get(&room)
                .is_some_and(|(_, newest)| newest[..] != key[..])
            {
                batch.delete(&self.queue, &key)?;
                dropped += 1;
                if dropped % 1024 == 0 {
                    self.engine.write(std::mem::take(&mut batch))?;
                }
            }
        }
        self.engine.write(batch)?;
        Ok(dropped)
    }

    /// Drops everything queued for `server`; answers how many events and EDUs were dropped.
    fn drop_queue(&self, server: &ServerName) -> Result<usize> {
        let mut batch = Batch::default();
        let mut dropped = 0;
        for tree in [&self.queue, &self.edu_queue] {
            for entry in tree.scan_prefix((server.as_str(),).prefix()) {
                let (key, _) = entry?;
                batch.delete(tree, &key)?;
                dropped += 1;
            }
        }
        self.engine.write(batch)?;
        Ok(dropped)
    }

    fn acknowledge(&self, pdu_keys: &[Vec<u8>], edu_keys: &[Vec<u8>]) -> Result<()> {
        let mut batch = Batch::default();
        for key in pdu_keys {
            batch.delete(&self.queue, key)?;
        }
        for key in edu_keys {
            batch.delete(&self.edu_queue, key)?;
        }
        self.engine.write(batch)
    }
}

/// One destination's worker: sends its queue until it is empty, waiting out failures.
async fn run(services: &Arc<Services>, server: &ServerName) {
    let sender = &services.sending;
    let mut shutdown = services.shutdown.subscribe();
    loop {
        let wake = {
            let destinations = sender.lock();
            let Some(destination) = destinations.get(server) else {
                return;
            };
            match destination.retry_at {
                Some(at) if at > Instant::now() => Some((at, Arc::clone(&destination.wake))),
                _ => None,
            }
        };
        if let Some((at, notify)) = wake {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = notify.notified() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let catching_up = {
            let mut destinations = sender.lock();
            destinations
                .get_mut(server)
                .is_some_and(|destination| std::mem::take(&mut destination.catching_up))
        };
        if catching_up {
            match sender.trim_for_catch_up(services, server) {
                Ok(0) => {}
                Ok(dropped) => {
                    tracing::info!(%server, dropped, "caught up: only the newest event of each busy room is sent")
                }
                Err(error) => tracing::error!(%server, %error, "cannot trim the federation queue"),
            }
        }
        if !services.federation.partners().allows(server) {
            // Excluded by the partner policy since this was queued: nothing more goes there.
            match sender.drop_queue(server) {
                Ok(dropped) => {
                    tracing::info!(%server, dropped, "the partner policy excludes this server; its queue is dropped")
                }
                Err(error) => tracing::error!(%server, %error, "cannot drop the federation queue"),
            }
            let mut destinations = sender.lock();
            if let Some(destination) = destinations.get_mut(server) {
                destination.running = false;
            }
            return;
        }
        // Read before the queues: every entry at or below it is committed, so seen by them.
        let safe = services.engine.safe_count();
        let from = sender.sent_below(server);
        let entries = match sender.next_batch(server, from.pdus) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(%server, %error, "cannot read the federation queue");
                failed(sender, server, error.to_string());
                continue;
            }
        };
        let stored_edus = match sender.next_persistent_edus(server, from.edus) {
            Ok(edus) => edus,
            Err(error) => {
                tracing::error!(%server, %error, "cannot read the federation EDU queue");
                failed(sender, server, error.to_string());
                continue;
            }
        };
        let ephemeral = sender.take_edus(server, MAX_EDUS_PER_TXN - stored_edus.len());
        let edus: Vec<Value> = stored_edus
            .iter()
            .map(|(_, edu)| edu.clone())
            .chain(ephemeral.iter().cloned())
            .collect();
        if entries.is_empty() && edus.is_empty() {
            let mut destinations = sender.lock();
            // Checked again under the lock: an event queued meanwhile found us running.
            if sender
                .next_batch(server, from.pdus)
                .map(|e| e.is_empty())
                .unwrap_or(false)
                && let Some(destination) = destinations.get_mut(server)
                && destination.edus.is_empty()
                && sender
                    .next_persistent_edus(server, from.edus)
                    .map(|e| e.is_empty())
                    .unwrap_or(false)
            {
                destination.running = false;
                return;
            }
            continue;
        }
        let result = tokio::select! {
            result = send_transaction(services, server, &entries, &edus) => result,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => {
                let keys: Vec<Vec<u8>> = entries.into_iter().map(|(key, _)| key).collect();
                let edu_keys: Vec<Vec<u8>> = stored_edus.into_iter().map(|(key, _)| key).collect();
                let acknowledged = sender.acknowledge(&keys, &edu_keys);
                if let Err(error) = &acknowledged {
                    tracing::error!(%server, %error, "cannot remove sent events from the queue");
                }
                let mut destinations = sender.lock();
                if let Some(destination) = destinations.get_mut(server) {
                    if acknowledged.is_ok() {
                        let sent = &mut destination.sent_below;
                        sent.pdus = sent.pdus.max(past_last(&keys, safe));
                        sent.edus = sent.edus.max(past_last(&edu_keys, safe));
                    }
                    destination.failures = 0;
                    destination.retry_at = None;
                    destination.last_success = Some(SystemTime::now());
                    destination.last_error = None;
                }
            }
            Err(error) => {
                tracing::info!(%server, %error, "transaction failed; backing off");
                sender.requeue_edus(server, ephemeral);
                failed(sender, server, error.to_string());
            }
        }
    }
}

/// A queue's entries for `server` from position `from` on.
fn queue_from<'a>(
    tree: &'a Tree,
    server: &ServerName,
    from: u64,
) -> impl Iterator<Item = Result<crate::storage::Entry>> + 'a {
    tree.scan_prefix_from(
        (server.as_str(),).prefix(),
        &(server.as_str(), from).encode(),
    )
}

/// The position after the last of `keys` (queue keys, in order), but at most one past `safe`:
/// where the next read of the queue may start. 0 (the start) when there are none.
fn past_last(keys: &[Vec<u8>], safe: u64) -> u64 {
    keys.last()
        .and_then(|last| <(&str, u64)>::decode(last).ok())
        .map_or(0, |(_, position)| {
            position.saturating_add(1).min(safe.saturating_add(1))
        })
}

fn failed(sender: &Sender, server: &ServerName, error: String) {
    let mut destinations = sender.lock();
    let destination = destinations.entry(server.to_owned()).or_default();
    destination.failures = destination.failures.saturating_add(1);
    let backoff = FIRST_BACKOFF
        .saturating_mul(1 << destination.failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    destination.retry_at = Some(Instant::now() + backoff);
    destination.last_error = Some(error);
    destination.catching_up = true;
}

/// `PUT /_matrix/federation/v1/send/{txnId}` with the queued events. The transaction ID
/// names the queue positions it carries, so a retry after a lost answer (even across a
/// restart) repeats the same transaction, which the destination answers from memory.
async fn send_transaction(
    services: &Services,
    server: &ServerName,
    entries: &[(Vec<u8>, ruma::OwnedEventId)],
    edus: &[Value],
) -> Result<()> {
    let mut pdus = Vec::with_capacity(entries.len());
    for (_, event_id) in entries {
        if let Some(wire) = services.sending.wire_pdus.get(services, event_id)? {
            pdus.push(wire);
        }
    }
    // PDUs alone: the queue positions, stable across retries and restarts. With EDUs, which
    // differ from one try to the next, a fresh number as well, so that the destination does
    // not answer a retry carrying new EDUs from its memory of the last try.
    let mut txn_id = match (entries.first(), entries.last()) {
        (Some((first, _)), Some((last, _))) => format!(
            "{}-{}",
            <(&str, u64)>::decode(first)?.1,
            <(&str, u64)>::decode(last)?.1
        ),
        _ => String::new(),
    };
    if !edus.is_empty() {
        txn_id.push_str(&format!("e{}", services.engine.next_count()?));
    }
    let body = super::transaction::body(
        services.server_name().as_str(),
        crate::service::now_millis(),
        &pdus,
        edus,
    )?;
    let path = format!("/_matrix/federation/v1/send/{txn_id}");
    let answer = services
        .federation
        .send_signed_canonical(
            http::Method::PUT,
            server,
            &path,
            body,
            services.server_name(),
            &services.server_keys.key_pair(),
            1 << 20,
        )
        .await?;
    if let Some(results) = answer["pdus"].as_object() {
        for (event_id, result) in results {
            if let Some(error) = result.get("error") {
                tracing::info!(%server, %event_id, %error, "the destination refused an event");
            }
        }
    }
    Ok(())
}
