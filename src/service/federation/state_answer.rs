//! A room's state from another server — the answer to `send_join`, or to `/state` at a gap —
//! taken in without holding it in memory: a large room's answer (tens of thousands of member
//! events, hundreds of MiB of JSON) is written to an unlinked temporary file, read back one
//! event at a time, each event checked and staged in RocksDB (`stageid_eventid_pdu`), then
//! stored as an outlier after its auth events. What stays in memory is event IDs: the state's
//! list, and the chain of auth events being walked.

use std::collections::HashSet;
use std::io::{BufReader, Seek};

use ruma::room_version_rules::RoomVersionRules;
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, ServerName};
use serde::Deserializer as _;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::incoming::{self, Checked};
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::error::PduError;
use crate::service::rooms::pdu::PduEvent;
use crate::storage::{Batch, Key, Tree};

/// The tree where checked events wait for their auth events to be stored.
const STAGE: &str = "stageid_eventid_pdu";
/// Staged events written per batch.
const STAGE_BATCH: usize = 256;

/// A request whose answer holds a room's state.
pub struct StateRequest<'a> {
    pub method: http::Method,
    pub path: String,
    pub body: Option<Value>,
    /// The answer's field listing the state (`state` for `send_join`, `pdus` for `/state`).
    pub state_field: &'a str,
    /// Most bytes of answer taken (on disk, not in memory).
    pub limit: u64,
}

/// What the answer held, once its events are stored.
pub struct StateAnswer {
    /// The state's event IDs (those that passed their checks).
    pub state_ids: Vec<OwnedEventId>,
    /// The answer's `event` (a restricted join countersigned by the resident server), checked.
    pub event: Option<Checked>,
}

/// One element of the answer, as the reader finds it.
enum Item {
    AuthChain(Box<RawValue>),
    State(Box<RawValue>),
    Event(Box<RawValue>),
}

/// Asks `server`, and stores every event of its answer as an outlier of `room_id`, auth events
/// before the events they authorise.
pub async fn fetch_state(
    services: &Services,
    server: &ServerName,
    rules: &RoomVersionRules,
    room_id: &RoomId,
    request: StateRequest<'_>,
) -> Result<StateAnswer> {
    let file = tempfile::tempfile().map_err(Error::internal)?;
    let mut file = tokio::fs::File::from_std(file);
    let bytes = services
        .federation
        .send_signed_to_file(
            request.method,
            server,
            &request.path,
            request.body.as_ref(),
            services.server_name(),
            &services.server_keys.key_pair(),
            &mut file,
            request.limit,
        )
        .await?;
    tracing::debug!(%server, %room_id, bytes, "room state answer received");
    let mut file = file.into_std().await;
    file.rewind().map_err(Error::internal)?;

    let (sender, mut items) = mpsc::channel::<Item>(64);
    let state_field = request.state_field.to_owned();
    let reader = tokio::task::spawn_blocking(move || read_answer(file, &state_field, &sender));

    let stage_id = services.engine.next_count()?;
    let stage = services.engine.tree(STAGE);
    let mut staging = Staging {
        tree: &stage,
        stage_id,
        batch: Batch::default(),
        pending: 0,
    };
    let mut answer = StateAnswer {
        state_ids: Vec::new(),
        event: None,
    };
    let result = async {
        while let Some(item) = items.recv().await {
            let (raw, is_state, is_event) = match item {
                Item::AuthChain(raw) => (raw, false, false),
                Item::State(raw) => (raw, true, false),
                Item::Event(raw) => (raw, false, true),
            };
            let Ok(object) = serde_json::from_str::<CanonicalJsonObject>(raw.get()) else {
                continue;
            };
            drop(raw);
            let checked = match incoming::check_pdu(services, rules, object).await {
                Ok(checked) if belongs_to(&checked.pdu, room_id) => checked,
                Ok(_) => continue,
                Err(error) => {
                    tracing::info!(%server, %error, "an event of the room's state failed its checks");
                    continue;
                }
            };
            if is_event {
                answer.event = Some(checked);
                continue;
            }
            if is_state {
                answer.state_ids.push(checked.pdu.event_id.clone());
            }
            staging.put(&checked)?;
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(Error::Internal(format!(
                    "{server} answered a room state that is not valid JSON: {error}"
                )));
            }
            Err(error) => return Err(Error::internal(error)),
        }
        staging.flush()?;
        store_staged(services, server, rules, &stage, stage_id)
    }
    .await;
    // Whatever happened, the staged events go (stored ones are outliers now).
    let cleared = clear_stage(&stage, stage_id);
    result?;
    cleared?;
    Ok(answer)
}

/// Whether `pdu` is an event of `room_id`: it names the room, or (a version 12 create event,
/// which names none) the room's ID is made from its own.
fn belongs_to(pdu: &PduEvent, room_id: &RoomId) -> bool {
    match pdu.room_id.as_deref() {
        Some(id) => id == room_id,
        None => room_id.as_str().get(1..) == pdu.event_id.as_str().get(1..),
    }
}

struct Staging<'a> {
    tree: &'a Tree,
    stage_id: u64,
    batch: Batch,
    pending: usize,
}

impl Staging<'_> {
    fn put(&mut self, checked: &Checked) -> Result<()> {
        let json = serde_json::to_vec(&checked.object).map_err(Error::internal)?;
        let key = (self.stage_id, checked.pdu.event_id.as_str()).encode();
        self.batch.put(self.tree, &key, &json)?;
        self.pending += 1;
        if self.pending >= STAGE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.pending = 0;
        self.tree.engine().write(std::mem::take(&mut self.batch))
    }
}

/// Reads the answer's lists one element at a time and hands each over; the rest is skipped.
fn read_answer(
    file: std::fs::File,
    state_field: &str,
    sender: &mpsc::Sender<Item>,
) -> serde_json::Result<()> {
    let mut reader = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 16, file));
    (&mut reader).deserialize_map(AnswerVisitor {
        state_field,
        sender,
    })?;
    reader.end()
}

struct AnswerVisitor<'a> {
    state_field: &'a str,
    sender: &'a mpsc::Sender<Item>,
}

impl<'de> Visitor<'de> for AnswerVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object with the room's state")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "auth_chain" {
                map.next_value_seed(ListSeed {
                    sender: self.sender,
                    wrap: Item::AuthChain,
                })?;
            } else if key == self.state_field {
                map.next_value_seed(ListSeed {
                    sender: self.sender,
                    wrap: Item::State,
                })?;
            } else if key == "event" {
                let event: Box<RawValue> = map.next_value()?;
                send(self.sender, Item::Event(event))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

fn send<E: serde::de::Error>(
    sender: &mpsc::Sender<Item>,
    item: Item,
) -> std::result::Result<(), E> {
    sender
        .blocking_send(item)
        .map_err(|_| E::custom("the reader of the answer stopped"))
}

/// A list of events, handed over one by one.
struct ListSeed<'a> {
    sender: &'a mpsc::Sender<Item>,
    wrap: fn(Box<RawValue>) -> Item,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        // `any`, so that `null` (read as no events) reaches `visit_unit`.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(event) = seq.next_element::<Box<RawValue>>()? {
            send(self.sender, (self.wrap)(event))?;
        }
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

/// Stores every staged event as an outlier, each after its auth events: a depth-first walk
/// down each event's auth events, so that memory holds one chain of IDs, not the events.
fn store_staged(
    services: &Services,
    server: &ServerName,
    rules: &RoomVersionRules,
    stage: &Tree,
    stage_id: u64,
) -> Result<()> {
    let staged = |id: &EventId| -> Result<Option<(PduEvent, CanonicalJsonObject)>> {
        let Some(json) = stage.get(&(stage_id, id.as_str()).encode())? else {
            return Ok(None);
        };
        let pdu = PduEvent::from_json(&json)?;
        let object = serde_json::from_slice(&json)
            .map_err(|e| Error::Database(format!("staged event unreadable: {e}")))?;
        Ok(Some((pdu, object)))
    };
    for entry in stage.scan_prefix((stage_id,).prefix()) {
        let (key, _) = entry?;
        let (_, root) = <(u64, &str)>::decode(&key)?;
        let root = EventId::parse(root)
            .map_err(|e| Error::Database(format!("staged event ID unreadable: {e}")))?;
        if services.rooms.is_known(&root)? {
            continue;
        }
        // (event, its auth events already pushed); `walking` holds the chain being walked, so
        // that an answer whose auth events form a cycle ends instead of looping.
        let mut stack = vec![(root, false)];
        let mut walking: HashSet<OwnedEventId> = HashSet::new();
        while let Some((id, expanded)) = stack.pop() {
            if services.rooms.is_known(&id)? {
                continue;
            }
            let Some((pdu, object)) = staged(&id)? else {
                continue;
            };
            if !expanded {
                stack.push((id.clone(), true));
                walking.insert(id);
                // With the create event that room version 12 implies.
                for auth in services.rooms.missing_auth_events(rules, &pdu)? {
                    if !walking.contains(&auth) {
                        stack.push((auth, false));
                    }
                }
                continue;
            }
            walking.remove(&id);
            match services.rooms.store_outlier(rules, &pdu, object) {
                Ok(_) => {}
                Err(PduError::Missing(missing)) => {
                    return Err(Error::Internal(format!(
                        "{server} answered a room state whose auth events are missing: {} \
                         needs {missing:?}",
                        pdu.event_id
                    )));
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
    Ok(())
}

fn clear_stage(stage: &Tree, stage_id: u64) -> Result<()> {
    let mut batch = Batch::default();
    let mut pending = 0;
    for entry in stage.scan_prefix((stage_id,).prefix()) {
        let (key, _) = entry?;
        batch.delete(stage, &key)?;
        pending += 1;
        if pending % 4096 == 0 {
            stage.engine().write(std::mem::take(&mut batch))?;
        }
    }
    stage.engine().write(batch)
}

/// Drops what a stop in the middle of a join left staged.
pub fn clear_stale_stages(services: &Services) -> Result<()> {
    let stage = services.engine.tree(STAGE);
    let mut batch = Batch::default();
    for entry in stage.iter_from(&[], rocksdb::Direction::Forward) {
        let (key, _) = entry?;
        batch.delete(&stage, &key)?;
    }
    services.engine.write(batch)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Reads `json` as an answer and lists what it handed over: (kind, element).
    fn read(
        json: &str,
        state_field: &str,
    ) -> (serde_json::Result<()>, Vec<(&'static str, String)>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(json.as_bytes()).unwrap();
        file.rewind().unwrap();
        let (sender, mut receiver) = mpsc::channel(1024);
        let result = read_answer(file, state_field, &sender);
        drop(sender);
        let mut items = Vec::new();
        while let Ok(item) = receiver.try_recv() {
            items.push(match item {
                Item::AuthChain(raw) => ("auth", raw.get().to_owned()),
                Item::State(raw) => ("state", raw.get().to_owned()),
                Item::Event(raw) => ("event", raw.get().to_owned()),
            });
        }
        (result, items)
    }

    #[test]
    fn lists_are_handed_over_one_element_at_a_time_in_any_field_order() {
        let (result, items) = read(
            r#"{"state":[{"s":1},{"s":2}],"origin":"x","members_omitted":false,
                "event":{"e":1},"servers_in_room":["a","b"],"auth_chain":[{"a":1}]}"#,
            "state",
        );
        result.unwrap();
        assert_eq!(
            items,
            [
                ("state", r#"{"s":1}"#.to_owned()),
                ("state", r#"{"s":2}"#.to_owned()),
                ("event", r#"{"e":1}"#.to_owned()),
                ("auth", r#"{"a":1}"#.to_owned()),
            ]
        );
    }

    #[test]
    fn the_state_field_is_chosen_by_the_request_and_null_lists_are_empty() {
        let (result, items) = read(
            r#"{"pdus":[{"p":1}],"auth_chain":null,"state":[{"s":1}]}"#,
            "pdus",
        );
        result.unwrap();
        assert_eq!(items, [("state", r#"{"p":1}"#.to_owned())]);
    }

    #[test]
    fn a_truncated_or_malformed_answer_is_an_error() {
        for bad in [
            r#"{"state":[{"s":1},"#,
            r#"{"state":{"not":"a list"}}"#,
            r#"["not an object"]"#,
            r#"{"state":[]} trailing"#,
        ] {
            let (result, _) = read(bad, "state");
            assert!(result.is_err(), "{bad}");
        }
    }

    /// A room's state and auth chain, as a resident server would answer them, staged on
    /// another server in the order of their IDs (unrelated to their auth order): each event
    /// is stored after its auth events, none is rejected — in a room version that lists the
    /// create event among auth events, and in version 12, which implies it.
    #[tokio::test]
    async fn staged_events_are_stored_after_their_auth_events() {
        use crate::service::rooms::test_room::{alices_room, member, user};
        for version in [ruma::RoomVersionId::V10, ruma::RoomVersionId::V12] {
            let dir_a = tempfile::tempdir().unwrap();
            let resident = Services::for_tests(dir_a.path());
            let room = alices_room(&resident, &version).await;
            let mut head = room.head.clone();
            for name in ["bob", "carol", "dan"] {
                let who = user(&resident, name);
                head = resident
                    .rooms
                    .build_and_append(
                        member(&who, serde_json::json!({ "membership": "join" })),
                        &who,
                        &room.room_id,
                        &room.guard,
                    )
                    .unwrap();
            }
            let mut state = resident.rooms.state_ids_before(&head).unwrap().unwrap();
            state.push(head);
            let mut all = resident.rooms.auth_chain_ids(&state).unwrap();
            all.extend(state);
            all.sort();
            all.dedup();

            let dir_b = tempfile::tempdir().unwrap();
            let joining = Services::for_tests(dir_b.path());
            let rules = version.rules().unwrap();
            joining
                .rooms
                .prepare_remote_room(&room.room_id, &version)
                .unwrap();
            let stage = joining.engine.tree(STAGE);
            for id in &all {
                let json = resident.rooms.get_pdu_json(id).unwrap().unwrap();
                stage.insert(&(7_u64, id.as_str()).encode(), &json).unwrap();
            }
            let server = ruma::server_name!("localhost");
            store_staged(&joining, server, &rules, &stage, 7).unwrap();
            for id in &all {
                let stored = joining.rooms.get_pdu(id).unwrap();
                assert!(stored.is_some_and(|pdu| !pdu.rejected), "{version}: {id}");
            }
            clear_stage(&stage, 7).unwrap();
            assert_eq!(stage.scan_prefix(Vec::new()).count(), 0);
        }
    }
}
