//! The timeline: PDUs stored by PduId (ShortRoomId + stream count), found by event ID, and read
//! in either direction for `/messages`.

use rocksdb::Direction;
use ruma::{EventId, RoomId};

use super::Service;
use super::pdu::PduEvent;
use crate::error::{Error, Result};
use crate::storage::Key;

pub use super::count::PduCount;

/// An event's timeline position and its stored JSON.
pub type StoredEvent = (PduCount, Vec<u8>);

impl Service {
    /// The stored JSON of an event, by ID: in the timeline, or kept outside it (an outlier,
    /// a soft-failed or rejected event).
    pub fn get_pdu_json(&self, event_id: &EventId) -> Result<Option<Vec<u8>>> {
        match self.eventid_pduid.get(event_id.as_bytes())? {
            Some(pduid) => self.pduid_pdu.get(&pduid),
            None => self.eventid_outlierpdu.get(event_id.as_bytes()),
        }
    }

    /// The stored JSON of an event in the room's timeline (what clients may see).
    pub fn get_timeline_pdu_json(&self, event_id: &EventId) -> Result<Option<Vec<u8>>> {
        match self.eventid_pduid.get(event_id.as_bytes())? {
            Some(pduid) => self.pduid_pdu.get(&pduid),
            None => Ok(None),
        }
    }

    /// An event, parsed, with `rejected` set for one that failed the authorization rules
    /// (only events outside the timeline can be).
    pub fn get_pdu(&self, event_id: &EventId) -> Result<Option<PduEvent>> {
        if let Some(pduid) = self.eventid_pduid.get(event_id.as_bytes())? {
            return self
                .pduid_pdu
                .get(&pduid)?
                .map(|json| PduEvent::from_json(&json))
                .transpose();
        }
        let Some(json) = self.eventid_outlierpdu.get(event_id.as_bytes())? else {
            return Ok(None);
        };
        let mut pdu = PduEvent::from_json(&json)?;
        pdu.rejected = self.eventid_rejected.get(event_id.as_bytes())?.is_some();
        Ok(Some(pdu))
    }

    /// The short room ID and timeline position of an event in a timeline.
    pub fn pdu_position(&self, event_id: &EventId) -> Result<Option<(u64, PduCount)>> {
        let Some(pduid) = self.eventid_pduid.get(event_id.as_bytes())? else {
            return Ok(None);
        };
        let (shortroomid, count) = <(u64, PduCount)>::decode(&pduid)?;
        Ok(Some((shortroomid, count)))
    }

    /// Up to `limit` events of a room strictly before (`backwards`) or after `from`, with their
    /// counts, nearest first.
    pub fn timeline_page(
        &self,
        room_id: &RoomId,
        from: PduCount,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Ok(Vec::new());
        };
        let prefix = (shortroomid,).prefix();
        if backwards && from <= PduCount::MIN {
            return Ok(Vec::new());
        }
        let (start, direction) = if backwards {
            ((shortroomid, from.prev()).encode(), Direction::Reverse)
        } else {
            ((shortroomid, from.next()).encode(), Direction::Forward)
        };
        let mut page = Vec::new();
        for entry in self.pduid_pdu.iter_from(&start, direction) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (_, count) = <(u64, PduCount)>::decode(&key)?;
            page.push((count, value.into_vec()));
            if page.len() >= limit {
                break;
            }
        }
        Ok(page)
    }

    /// The position of the room's newest event.
    pub fn latest_count(&self, room_id: &RoomId) -> Result<PduCount> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Err(Error::not_found("Unknown room"));
        };
        self.edge_position(shortroomid, Direction::Reverse)
            .map(|found| found.unwrap_or(PduCount::normal(0)))
    }

    /// The position of the room's oldest event held (`None`: none).
    pub fn oldest_position(&self, shortroomid: u64) -> Result<Option<PduCount>> {
        self.edge_position(shortroomid, Direction::Forward)
    }

    fn edge_position(&self, shortroomid: u64, direction: Direction) -> Result<Option<PduCount>> {
        let prefix = (shortroomid,).prefix();
        let start = match direction {
            Direction::Reverse => (shortroomid, PduCount::MAX).encode(),
            Direction::Forward => (shortroomid, PduCount::MIN).encode(),
        };
        match self
            .pduid_pdu
            .iter_from(&start, direction)
            .next()
            .transpose()?
        {
            Some((key, _)) if key.starts_with(&prefix) => {
                Ok(Some(<(u64, PduCount)>::decode(&key)?.1))
            }
            _ => Ok(None),
        }
    }

    /// The first event at or after `ts` (`forwards`), or at or before it, that `may_see`
    /// admits: what `timestamp_to_event` answers, for a client or another server. Stream
    /// order follows time closely enough for a room's own events.
    pub fn event_near(
        &self,
        room_id: &RoomId,
        ts: u64,
        forwards: bool,
        mut may_see: impl FnMut(PduCount, &EventId) -> Result<bool>,
    ) -> Result<Option<PduEvent>> {
        let mut cursor = if forwards {
            PduCount::MIN
        } else {
            self.latest_count(room_id)?
        };
        loop {
            let start = if forwards { cursor } else { cursor.next() };
            let batch = self.timeline_page(room_id, start, !forwards, 200)?;
            if batch.is_empty() {
                return Ok(None);
            }
            for (count, json) in batch {
                cursor = if forwards { count } else { count.prev() };
                let pdu = PduEvent::from_json(&json)?;
                let at = u64::from(pdu.origin_server_ts.get());
                let in_range = if forwards { at >= ts } else { at <= ts };
                if in_range && may_see(count, &pdu.event_id)? {
                    return Ok(Some(pdu));
                }
            }
        }
    }
}
