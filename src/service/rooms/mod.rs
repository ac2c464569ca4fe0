//! Rooms: events (PDUs) built, authorised, signed and stored; room state as delta snapshots;
//! the timeline; membership indexes.

mod alias;
pub mod authorise;
mod backfill;
mod builder;
pub mod changes;
pub mod count;
pub mod creation;
pub mod error;
mod event_cache;
mod fanout;
pub mod member_change;
mod membership;
pub mod pdu;
mod persist;
mod pipeline;
pub mod power;
pub mod purge;
pub mod receive;
pub mod redaction;
pub mod relations;
pub mod remote_invite;
mod remote_join;
mod resolution;
pub mod room_list;
pub mod search;
mod server_acl;
pub mod server_visibility;
mod serving;
mod short;
pub mod state;
pub mod summary;
#[cfg(test)]
pub(crate) mod test_room;
mod timeline;
pub mod upgrade;
#[cfg(test)]
mod verify_tests;
pub mod visibility;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ruma::room_version_rules::RoomVersionRules;
use ruma::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId};
use tokio::sync::OwnedMutexGuard;

pub use builder::PduBuilder;
pub use timeline::{PduCount, StoredEvent};

use super::{Services, server_keys};
use crate::error::{Error, Result};
use crate::storage::{Engine, Tree};

pub struct Service {
    engine: Arc<Engine>,
    server_name: OwnedServerName,
    keys: Arc<server_keys::Service>,
    roomid_shortroomid: Tree,
    shortroomid_roomid: Tree,
    eventid_shorteventid: Tree,
    shorteventid_eventid: Tree,
    statekey_shortstatekey: Tree,
    shortstatekey_statekey: Tree,
    pduid_pdu: Tree,
    eventid_pduid: Tree,
    eventid_outlierpdu: Tree,
    eventid_rejected: Tree,
    eventid_softfailed: Tree,
    useridroomid_remoteinvite: Tree,
    eventid_pendingredaction: Tree,
    senderpduid_empty: Tree,
    shorteventid_shortstatehash: Tree,
    shortstatehash_statediff: Tree,
    roomid_shortstatehash: Tree,
    roomid_pduleaves: Tree,
    roomid_roomversion: Tree,
    userroomid_membership: Tree,
    roomuserid_membership: Tree,
    userdevicetxnid_eventid: Tree,
    eventid_devicetxnid: Tree,
    alias_roomid: Tree,
    roomid_alias: Tree,
    publicroomids: Tree,
    roomid_blocked: Tree,
    relatestoeventid_relation: Tree,
    eventid_hasrelations: Tree,
    roomid_threadroot: Tree,
    tokenshortroomidcount_empty: Tree,
    useridcount_roomid: Tree,
    useridroomid_count: Tree,
    roomid_bumpcount: Tree,
    useridstamproomid_membership: Tree,
    useridroomid_stamp: Tree,
    useridmembership_roomcount: Tree,
    shortstatekey_lock: Mutex<()>,
    /// Last `origin_server_ts` given to a create event (see `unique_create_timestamp`).
    last_create_timestamp: std::sync::atomic::AtomicU64,
    state_cache: state::StateCache,
    member_cache: membership::MemberCache,
    event_cache: event_cache::EventCache,
    fanout: fanout::FanOut,
    room_latest: changes::RoomLatest,
    /// One async mutex per room: events of a room are appended one at a time, so each sees the
    /// previous one as its parent; different rooms proceed in parallel.
    room_locks: Mutex<HashMap<OwnedRoomId, RoomLock>>,
    /// The other services, for the checks before an append (suspension) and the work after
    /// it (push, device lists, the admin bot). Given at construction; weak because
    /// `Services` owns this service, so it fails to upgrade only while the server stops.
    services: Weak<Services>,
}

/// Held while appending to a room. Work that follows an append but needs no lock (push-rule
/// evaluation, device-list tracking) is run when the guard is dropped, after the room is
/// unlocked: senders to a busy room then queue only behind each other's appends, and that work
/// proceeds in parallel. It still finishes before the handler that holds the guard answers.
pub struct RoomGuard {
    guard: Option<OwnedMutexGuard<()>>,
    /// Tasks waiting for this room's lock.
    waiting: Arc<AtomicUsize>,
    after_unlock: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
}

/// A room's lock and how many tasks wait for it.
#[derive(Default, Clone)]
struct RoomLock {
    mutex: Arc<tokio::sync::Mutex<()>>,
    waiting: Arc<AtomicUsize>,
}

impl RoomGuard {
    fn defer(&self, work: impl FnOnce() + Send + 'static) {
        self.after_unlock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(work));
    }
}

impl RoomGuard {
    /// Unlocks the room and does the deferred work, after letting other tasks run if another
    /// appender waits: woken by the unlock, it is queued on this worker where no other worker
    /// can take it, so working first would leave the room's lock idle meanwhile. With nobody
    /// waiting, yielding would only wake an idle worker to take this task over, a hop between
    /// CPUs in the middle of the request. (Dropping the guard does the work at once.)
    pub async fn release(mut self) {
        self.guard.take();
        let work = Deferred(std::mem::take(
            self.after_unlock
                .get_mut()
                .unwrap_or_else(|e| e.into_inner()),
        ));
        if !work.0.is_empty() && self.waiting.load(Ordering::Relaxed) > 0 {
            tokio::task::yield_now().await;
        }
        // Run on drop, so a cancelled request still completes it.
        drop(work);
    }
}

/// Sizes of the room caches, for `server status`.
#[derive(Debug, Clone, Copy)]
pub struct CacheSizes {
    pub state_entries: usize,
    pub member_entries: usize,
    pub events: usize,
    pub event_bytes: usize,
}

/// One task waiting for a room's lock, for as long as this lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Work that runs when dropped.
struct Deferred(Vec<Box<dyn FnOnce() + Send>>);

impl Drop for Deferred {
    fn drop(&mut self) {
        for work in self.0.drain(..) {
            work();
        }
    }
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        self.guard.take();
        drop(Deferred(std::mem::take(
            self.after_unlock
                .get_mut()
                .unwrap_or_else(|e| e.into_inner()),
        )));
    }
}

impl Service {
    pub fn new(
        engine: &Arc<Engine>,
        server_name: OwnedServerName,
        keys: Arc<server_keys::Service>,
        services: Weak<Services>,
    ) -> Self {
        Self {
            engine: Arc::clone(engine),
            server_name,
            keys,
            roomid_shortroomid: engine.tree("roomid_shortroomid"),
            shortroomid_roomid: engine.tree("shortroomid_roomid"),
            eventid_shorteventid: engine.tree("eventid_shorteventid"),
            shorteventid_eventid: engine.tree("shorteventid_eventid"),
            statekey_shortstatekey: engine.tree("statekey_shortstatekey"),
            shortstatekey_statekey: engine.tree("shortstatekey_statekey"),
            pduid_pdu: engine.tree("pduid_pdu"),
            eventid_pduid: engine.tree("eventid_pduid"),
            eventid_outlierpdu: engine.tree("eventid_outlierpdu"),
            eventid_rejected: engine.tree("eventid_rejected"),
            eventid_softfailed: engine.tree("eventid_softfailed"),
            useridroomid_remoteinvite: engine.tree("useridroomid_remoteinvite"),
            eventid_pendingredaction: engine.tree("eventid_pendingredaction"),
            senderpduid_empty: engine.tree("senderpduid_empty"),
            shorteventid_shortstatehash: engine.tree("shorteventid_shortstatehash"),
            shortstatehash_statediff: engine.tree("shortstatehash_statediff"),
            roomid_shortstatehash: engine.tree("roomid_shortstatehash"),
            roomid_pduleaves: engine.tree("roomid_pduleaves"),
            roomid_roomversion: engine.tree("roomid_roomversion"),
            userroomid_membership: engine.tree("userroomid_membership"),
            roomuserid_membership: engine.tree("roomuserid_membership"),
            userdevicetxnid_eventid: engine.tree("userdevicetxnid_eventid"),
            eventid_devicetxnid: engine.tree("eventid_devicetxnid"),
            alias_roomid: engine.tree("alias_roomid"),
            roomid_alias: engine.tree("roomid_alias"),
            publicroomids: engine.tree("publicroomids"),
            roomid_blocked: engine.tree("roomid_blocked"),
            relatestoeventid_relation: engine.tree("relatestoeventid_relation"),
            eventid_hasrelations: engine.tree("eventid_hasrelations"),
            roomid_threadroot: engine.tree("roomid_threadroot"),
            tokenshortroomidcount_empty: engine.tree("tokenshortroomidcount_empty"),
            useridcount_roomid: engine.tree("useridcount_roomid"),
            useridroomid_count: engine.tree("useridroomid_count"),
            roomid_bumpcount: engine.tree("roomid_bumpcount"),
            useridstamproomid_membership: engine.tree("useridstamproomid_membership"),
            useridroomid_stamp: engine.tree("useridroomid_stamp"),
            useridmembership_roomcount: engine.tree("useridmembership_roomcount"),
            shortstatekey_lock: Mutex::new(()),
            last_create_timestamp: std::sync::atomic::AtomicU64::new(0),
            state_cache: state::StateCache::default(),
            member_cache: membership::MemberCache::default(),
            event_cache: event_cache::EventCache::default(),
            fanout: fanout::FanOut::default(),
            room_latest: changes::RoomLatest::default(),
            room_locks: Mutex::new(HashMap::new()),
            services,
        }
    }

    /// The other services; an error only while the server is stopping.
    fn services(&self) -> Result<Arc<Services>> {
        self.services
            .upgrade()
            .ok_or_else(|| Error::internal("the server is shutting down"))
    }

    /// Waits for exclusive append access to a room.
    pub async fn lock_room(&self, room_id: &RoomId) -> RoomGuard {
        let lock = {
            let mut locks = self.room_locks.lock().unwrap_or_else(|e| e.into_inner());
            if locks.len() > 10_000 {
                locks.retain(|_, lock| Arc::strong_count(&lock.mutex) > 1);
            }
            locks.entry(room_id.to_owned()).or_default().clone()
        };
        let guard = match Arc::clone(&lock.mutex).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                // Counted while waiting; a cancelled wait uncounts itself on drop.
                let _waiting = Waiting::new(&lock.waiting);
                lock.mutex.lock_owned().await
            }
        };
        RoomGuard {
            guard: Some(guard),
            waiting: lock.waiting,
            after_unlock: Mutex::new(Vec::new()),
        }
    }

    /// Runs disk-heavy work (purges, compactions, rewrites) on the blocking pool, so it does
    /// not hold up an async worker meanwhile.
    pub async fn off_the_workers<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Services) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let services = self.services()?;
        tokio::task::spawn_blocking(move || work(&services))
            .await
            .map_err(Error::internal)?
    }

    pub fn exists(&self, room_id: &RoomId) -> Result<bool> {
        self.roomid_roomversion.contains(room_id.as_bytes())
    }

    /// What the room caches hold: state entries, member entries, events and their bytes.
    pub fn cache_sizes(&self) -> CacheSizes {
        let (events, event_bytes) = self.event_cache.size();
        CacheSizes {
            state_entries: self.state_cache.entries(),
            member_entries: self.member_cache.entries(),
            events,
            event_bytes,
        }
    }

    /// Empties the room caches (they refill from the database as they are used).
    pub fn clear_caches(&self) {
        self.state_cache.clear();
        self.member_cache.clear();
        self.event_cache.clear();
    }

    /// Every room this server knows (a scan of the room index: for administration, not for
    /// hot paths).
    pub fn room_ids(&self) -> Result<Vec<OwnedRoomId>> {
        self.roomid_roomversion
            .iter_from(&[], rocksdb::Direction::Forward)
            .map(|entry| crate::storage::decode_id(&entry?.0))
            .collect()
    }

    /// The rules of the room's version: room-version behaviour is read from these, never by
    /// matching version IDs.
    pub fn rules(&self, room_id: &RoomId) -> Result<RoomVersionRules> {
        rules_of(&self.room_version(room_id)?)
    }

    pub fn room_version(&self, room_id: &RoomId) -> Result<RoomVersionId> {
        let bytes = self
            .roomid_roomversion
            .get(room_id.as_bytes())?
            .ok_or_else(|| Error::not_found("Unknown room"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Database("room version is not UTF-8".into()))?;
        RoomVersionId::try_from(text.as_str())
            .map_err(|e| Error::Database(format!("stored room version invalid: {e}")))
    }
}

/// The room versions this server creates and joins, all stable, oldest first.
pub const SUPPORTED_VERSIONS: [RoomVersionId; 12] = [
    RoomVersionId::V1,
    RoomVersionId::V2,
    RoomVersionId::V3,
    RoomVersionId::V4,
    RoomVersionId::V5,
    RoomVersionId::V6,
    RoomVersionId::V7,
    RoomVersionId::V8,
    RoomVersionId::V9,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

/// The rules of `version`, or `M_UNSUPPORTED_ROOM_VERSION`.
pub fn rules_of(version: &RoomVersionId) -> Result<RoomVersionRules> {
    version
        .rules()
        .filter(|_| SUPPORTED_VERSIONS.contains(version))
        .ok_or_else(|| {
            Error::new(
                crate::error::ErrorCode::UnsupportedRoomVersion,
                format!("Room version {version} is not supported"),
            )
        })
}
