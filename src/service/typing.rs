//! Typing notifications: in memory only (they expire within seconds), with a stream position
//! per room change so /sync reports them once, and a wake-up for long-polling /sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use tokio::sync::watch;

use crate::error::Result;
use crate::storage::Engine;

/// Longest a client may claim to be typing for.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    rooms: Mutex<HashMap<OwnedRoomId, RoomTyping>>,
}

struct RoomTyping {
    users: HashMap<OwnedUserId, Instant>,
    /// Stream position of the last change.
    count: u64,
    changed: watch::Sender<u64>,
}

impl Service {
    pub fn new(engine: &Arc<Engine>) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine: Arc::clone(engine),
                rooms: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts (with a timeout) or stops (`None`) a user's typing notice.
    pub fn set(&self, room_id: &RoomId, user_id: &UserId, timeout: Option<Duration>) -> Result<()> {
        let _writing = self.inner.engine.begin_write();
        let count = self.inner.engine.next_count()?;
        let mut rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let room = rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RoomTyping {
                users: HashMap::new(),
                count: 0,
                changed: watch::channel(0).0,
            });
        match timeout {
            Some(timeout) => {
                let timeout = timeout.min(MAX_TIMEOUT);
                room.users
                    .insert(user_id.to_owned(), Instant::now() + timeout);
                self.expire_later(room_id.to_owned(), timeout);
            }
            None => {
                room.users.remove(user_id);
            }
        }
        room.count = count;
        room.changed.send_replace(count);
        Ok(())
    }

    /// Drops expired notices after `after`, reporting the change to waiting syncs.
    fn expire_later(&self, room_id: OwnedRoomId, after: Duration) {
        let service = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after + Duration::from_millis(10)).await;
            let now = Instant::now();
            let _writing = service.inner.engine.begin_write();
            let count = match service.inner.engine.next_count() {
                Ok(count) => count,
                Err(error) => {
                    tracing::warn!(%error, "typing expiry could not take a stream position");
                    return;
                }
            };
            let mut rooms = service
                .inner
                .rooms
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(room) = rooms.get_mut(&room_id) {
                let before = room.users.len();
                room.users.retain(|_, expiry| *expiry > now);
                if room.users.len() != before {
                    room.count = count;
                    room.changed.send_replace(count);
                }
            }
        });
    }

    /// The users typing in a room, if that changed after `since`.
    pub fn changed_since(&self, room_id: &RoomId, since: u64) -> Option<Vec<OwnedUserId>> {
        let rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let room = rooms.get(room_id)?;
        if room.count <= since {
            return None;
        }
        let now = Instant::now();
        Some(
            room.users
                .iter()
                .filter(|(_, expiry)| **expiry > now)
                .map(|(user, _)| user.clone())
                .collect(),
        )
    }

    /// Resolves at the room's next typing change.
    pub fn watch(&self, room_id: &RoomId) -> impl Future<Output = ()> + Send + use<> {
        let mut rx = {
            let mut rooms = self.inner.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms
                .entry(room_id.to_owned())
                .or_insert_with(|| RoomTyping {
                    users: HashMap::new(),
                    count: 0,
                    changed: watch::channel(0).0,
                })
                .changed
                .subscribe()
        };
        async move {
            let _ = rx.changed().await;
        }
    }
}
