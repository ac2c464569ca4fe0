//! Full-text search over message bodies, room names and topics: a word index in RocksDB,
//! `(word, room, count)`, so a search reads only the entries of its words in the user's rooms.

use std::collections::BTreeSet;

use ruma::RoomId;
use serde_json::Value;

use super::Service;
use super::count::PduCount;
use super::pdu::PduEvent;
use crate::error::Result;
use crate::storage::{Batch, Key, Purge};

/// Words longer than this are not indexed (they are rarely searched for and bloat the index).
const MAX_WORD: usize = 50;

/// The lower-cased words of a text.
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty() && word.len() <= MAX_WORD)
        .map(str::to_lowercase)
        .collect()
}

/// The searchable text of an event, if it has any.
pub fn searchable_text(pdu: &PduEvent) -> Option<String> {
    let content = pdu.content_value();
    let field = match pdu.kind.to_string().as_str() {
        "m.room.message" => "body",
        "m.room.name" => "name",
        "m.room.topic" => "topic",
        _ => return None,
    };
    content
        .get(field)
        .and_then(Value::as_str)
        .map(ToOwned::to_owned)
}

impl Service {
    pub(super) fn index_words(
        &self,
        shortroomid: u64,
        count: PduCount,
        pdu: &PduEvent,
        batch: &mut Batch,
    ) -> Result<()> {
        let Some(text) = searchable_text(pdu) else {
            return Ok(());
        };
        for word in words(&text) {
            batch.put(
                &self.tokenshortroomidcount_empty,
                &(word.as_str(), shortroomid, count).encode(),
                &[],
            )?;
        }
        Ok(())
    }

    /// Removes a redacted event's words, and adds their keys to `purge` so that they leave the
    /// disk: the index holds them in lower case, so they are as sensitive as the message.
    pub(super) fn unindex_words(
        &self,
        shortroomid: u64,
        count: PduCount,
        pdu: &PduEvent,
        purge: &mut Purge,
    ) -> Result<()> {
        let mut batch = Batch::default();
        self.unindex_words_in(shortroomid, count, pdu, &mut batch)?;
        let keys: Vec<Vec<u8>> = searchable_text(pdu)
            .map(|text| {
                words(&text)
                    .iter()
                    .map(|word| (word.as_str(), shortroomid, count).encode())
                    .collect()
            })
            .unwrap_or_default();
        self.engine.write(batch)?;
        purge.extend(&self.tokenshortroomidcount_empty, keys);
        Ok(())
    }

    /// Removes an event's words (in the caller's batch).
    pub(super) fn unindex_words_in(
        &self,
        shortroomid: u64,
        count: PduCount,
        pdu: &PduEvent,
        batch: &mut Batch,
    ) -> Result<()> {
        let Some(text) = searchable_text(pdu) else {
            return Ok(());
        };
        for word in words(&text) {
            batch.delete(
                &self.tokenshortroomidcount_empty,
                &(word.as_str(), shortroomid, count).encode(),
            )?;
        }
        Ok(())
    }

    /// Counts of the room's events containing every one of `words`, newest first.
    pub fn search_room(&self, room_id: &RoomId, words: &BTreeSet<String>) -> Result<Vec<PduCount>> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Ok(Vec::new());
        };
        let mut matches: Option<BTreeSet<PduCount>> = None;
        for word in words {
            let mut found = BTreeSet::new();
            for entry in self
                .tokenshortroomidcount_empty
                .scan_prefix((word.as_str(), shortroomid).prefix())
            {
                let (key, _) = entry?;
                let (_, _, count) = <(String, u64, PduCount)>::decode(&key)?;
                found.insert(count);
            }
            matches = Some(match matches {
                None => found,
                Some(previous) => previous.intersection(&found).copied().collect(),
            });
            if matches.as_ref().is_some_and(BTreeSet::is_empty) {
                break;
            }
        }
        Ok(matches.unwrap_or_default().into_iter().rev().collect())
    }

    /// The stored event at a room's timeline position.
    pub fn pdu_at(&self, room_id: &RoomId, count: PduCount) -> Result<Option<Vec<u8>>> {
        let Some(shortroomid) = self.shortroomid(room_id)? else {
            return Ok(None);
        };
        self.pduid_pdu.get(&(shortroomid, count).encode())
    }
}
