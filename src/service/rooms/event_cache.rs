//! Parsed state events, shared. Authorising every new event reads the same few state events
//! (the create event, power levels, the sender's membership, join rules) two or three times;
//! reading and parsing them each time was about a tenth of a message send.
//!
//! Only state events are kept: they are the ones read again and again, and a room has few of
//! them compared with its messages. A stored event changes only when it is redacted, which
//! drops it here (see [`Service::forget_cached_event`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::EventId;

use super::Service;
use super::pdu::PduEvent;
use crate::error::Result;

/// Events kept; the cache is emptied when it fills (a room's auth events are back after one
/// read each).
const CACHED_EVENTS: usize = 8_192;
/// Bytes of content kept at most: state events may be large (64 KiB), and anyone able to send
/// state could otherwise fill memory by reading many of them back.
const CACHED_CONTENT_BYTES: usize = 8 << 20;
/// Larger events are not kept (big power-level maps stay well below this).
const LARGEST_CACHED_CONTENT: usize = 16 << 10;

#[derive(Default)]
pub(super) struct EventCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_short: HashMap<u64, Arc<PduEvent>>,
    /// Content bytes of the events in `by_short`.
    content_bytes: usize,
    /// Bumped by every redaction: a read that overlapped one is not cached.
    epoch: u64,
}

impl EventCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events held, and their content bytes.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.by_short.len(), inner.content_bytes)
    }

    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.by_short.clear();
        inner.content_bytes = 0;
        // A read that overlapped the clearing is not cached.
        inner.epoch += 1;
    }
}

impl Service {
    /// The event with this short ID, parsed (`None` if it is not stored).
    pub fn pdu_by_short(&self, shorteventid: u64) -> Result<Option<Arc<PduEvent>>> {
        let epoch = {
            let cache = self.event_cache.lock();
            if let Some(pdu) = cache.by_short.get(&shorteventid) {
                return Ok(Some(Arc::clone(pdu)));
            }
            cache.epoch
        };
        let event_id = self.event_id_of_short(shorteventid)?;
        let Some(pdu) = self.get_pdu(&event_id)? else {
            return Ok(None);
        };
        let pdu = Arc::new(pdu);
        let size = pdu.content.get().len();
        if pdu.state_key.is_some() && size <= LARGEST_CACHED_CONTENT {
            let mut cache = self.event_cache.lock();
            // A redaction since the read above may have replaced what was read.
            if cache.epoch == epoch {
                if cache.by_short.len() >= CACHED_EVENTS
                    || cache.content_bytes + size > CACHED_CONTENT_BYTES
                {
                    cache.by_short.clear();
                    cache.content_bytes = 0;
                }
                if cache
                    .by_short
                    .insert(shorteventid, Arc::clone(&pdu))
                    .is_none()
                {
                    cache.content_bytes += size;
                }
            }
        }
        Ok(Some(pdu))
    }

    /// [`Self::get_pdu`], through the cache of state events.
    pub fn get_pdu_shared(&self, event_id: &EventId) -> Result<Option<Arc<PduEvent>>> {
        match self.shorteventid(event_id)? {
            Some(short) => self.pdu_by_short(short),
            None => Ok(None),
        }
    }

    /// Drops an event whose stored form has just changed (a redaction): called after the new
    /// form is written, so no later read can cache the old one. Cannot fail, so the old form
    /// never outlives a write that went through.
    pub(super) fn forget_cached_event(&self, shorteventid: Option<u64>) {
        let mut cache = self.event_cache.lock();
        cache.epoch += 1;
        if let Some(pdu) = shorteventid.and_then(|short| cache.by_short.remove(&short)) {
            cache.content_bytes = cache.content_bytes.saturating_sub(pdu.content.get().len());
        }
    }
}
