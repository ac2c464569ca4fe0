//! Incoming transactions (`PUT /send/{txnId}`): each PDU checked and placed on its own (one
//! bad PDU never fails the others), the events of one room in order and rooms in parallel.
//! A repeated transaction is answered from memory; after a restart it is processed again,
//! which places nothing twice. The recent transactions are kept for `federation incoming`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ruma::{CanonicalJsonValue, OwnedEventId, OwnedRoomId, OwnedServerName, RoomId, ServerName};
use serde_json::value::RawValue;

use super::incoming::{self, PduResults};
use crate::service::Services;
use crate::service::rooms::error::PduError;
use crate::service::rooms::receive::Received;

/// Transactions remembered (for repeats and the admin command).
const RECENT: usize = 256;

/// One incoming transaction and what became of it.
#[derive(Debug, Clone)]
pub struct InboundTxn {
    pub origin: OwnedServerName,
    pub txn_id: String,
    pub received: SystemTime,
    pub edus: usize,
    pub results: PduResults,
}

#[derive(Default)]
pub struct Inbound {
    recent: Mutex<VecDeque<InboundTxn>>,
}

impl Inbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<InboundTxn>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer already given to this transaction.
    pub fn answered(&self, origin: &ServerName, txn_id: &str) -> Option<PduResults> {
        self.lock()
            .iter()
            .find(|txn| txn.origin == origin && txn.txn_id == txn_id)
            .map(|txn| txn.results.clone())
    }

    fn record(&self, txn: InboundTxn) {
        let mut recent = self.lock();
        if recent.len() >= RECENT {
            recent.pop_front();
        }
        recent.push_back(txn);
    }

    /// The most recent transactions, newest first.
    pub fn recent(&self, limit: usize) -> Vec<InboundTxn> {
        self.lock().iter().rev().take(limit).cloned().collect()
    }
}

/// Processes a transaction's PDUs and answers each one's result.
pub async fn handle_transaction(
    services: &Arc<Services>,
    origin: &ServerName,
    txn_id: &str,
    pdus: &[Box<RawValue>],
    edus: &[ruma::serde::Raw<ruma::api::federation::transactions::edu::Edu>],
) -> PduResults {
    if let Some(results) = services.inbound.answered(origin, txn_id) {
        return results;
    }
    services.sending.contacted(origin);
    // To-device messages first: a room key sent with the message it decrypts must be there
    // when a client's sync wakes up for the message.
    let (to_device, other_edus): (Vec<_>, Vec<_>) = edus.iter().cloned().partition(|edu| {
        edu.get_field::<String>("edu_type")
            .ok()
            .flatten()
            .as_deref()
            == Some("m.direct_to_device")
    });
    super::edus::receive_edus(services, origin, &to_device);

    // Grouped by room, in the order given.
    let mut by_room: HashMap<OwnedRoomId, Vec<ruma::CanonicalJsonObject>> = HashMap::new();
    for raw in pdus {
        let Ok(object) = incoming::parse_object(raw) else {
            tracing::info!(%origin, "a transaction carried a PDU that is not a JSON object");
            continue;
        };
        let room_id = match object.get("room_id") {
            Some(CanonicalJsonValue::String(room)) => RoomId::parse(room).ok(),
            _ => None,
        };
        match room_id {
            Some(room_id) => by_room.entry(room_id.to_owned()).or_default().push(object),
            None => tracing::info!(%origin, "a transaction carried a PDU without a room"),
        }
    }

    let mut tasks = tokio::task::JoinSet::new();
    for (room_id, objects) in by_room {
        let services = Arc::clone(services);
        let origin = origin.to_owned();
        tasks.spawn(async move {
            let mut results = BTreeMap::new();
            // The room's ACL may refuse the sending server: its PDUs for the room are not
            // looked at further.
            let acl_refuses = !services
                .rooms
                .server_acl_allows(&room_id, &origin)
                .unwrap_or(true);
            for object in objects {
                let Some(event_id) = event_id_for_result(&services, &room_id, &object) else {
                    continue;
                };
                if acl_refuses {
                    results.insert(
                        event_id,
                        Err(format!(
                            "{origin} is banned from this room by its server ACL"
                        )),
                    );
                    continue;
                }
                let result = incoming::receive_pdu(&services, &origin, &room_id, object).await;
                results.insert(event_id, outcome(result));
            }
            results
        });
    }
    let mut results = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(room_results) => results.extend(room_results),
            Err(error) => tracing::error!(%origin, %error, "processing a room's PDUs failed"),
        }
    }
    // After the PDUs: a receipt may name an event of this very transaction.
    super::edus::receive_edus(services, origin, &other_edus);
    services.inbound.record(InboundTxn {
        origin: origin.to_owned(),
        txn_id: txn_id.to_owned(),
        received: SystemTime::now(),
        edus: edus.len(),
        results: results.clone(),
    });
    results
}

/// The ID to report a PDU's result under (none for a room we are not in, whose version, and
/// so whose event ID format, is unknown).
fn event_id_for_result(
    services: &Services,
    room_id: &RoomId,
    object: &ruma::CanonicalJsonObject,
) -> Option<OwnedEventId> {
    let rules = services.rooms.rules(room_id).ok()?;
    incoming::event_id_of(object, &rules).ok()
}

fn outcome(result: Result<Received, PduError>) -> Result<(), String> {
    match result {
        // A soft-failed event was accepted and stored, only kept from clients (as Synapse
        // answers too).
        Ok(Received::Timeline | Received::Known | Received::SoftFailed(_)) => Ok(()),
        Ok(Received::Rejected(reason)) => Err(format!("rejected: {reason}")),
        Err(error) => Err(error.to_string()),
    }
}
