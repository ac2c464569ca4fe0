//! Events arriving from other servers, checked in the spec's order before any is stored
//! ("Checks performed on receipt of a PDU"): format and size for the room version, event ID,
//! the signatures of the servers that must have signed it, the content hash (an event whose
//! content does not match is kept redacted). Then it is placed through the rooms service's
//! one pipeline ([`crate::service::rooms::receive`]) — after its missing auth events are
//! fetched as outliers and its missing `prev_events` with `get_missing_events`, without
//! holding the room's lock meanwhile.

use std::collections::BTreeMap;

use ruma::canonical_json::redact;
use ruma::room_version_rules::{EventIdFormatVersion, RoomVersionRules};
use ruma::serde::Base64;
use ruma::signatures::{
    PublicKeyMap, PublicKeySet, Verified, reference_hash,
    required_server_signatures_to_verify_event, verify_event,
};
use ruma::state_res::check_pdu_format;
use ruma::{CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, RoomId, ServerName};
use serde_json::{Value, json};

use crate::service::Services;
use crate::service::rooms::error::PduError;
use crate::service::rooms::pdu::PduEvent;
use crate::service::rooms::receive::Received;
use crate::storage::Purge;

/// Most events fetched to fill the gap before one received event (missing prev events,
/// and auth events of those), so that a peer cannot make us walk its whole history.
const MAX_FETCHED: usize = 100;
/// Most `get_missing_events` rounds for one event.
const MISSING_EVENTS_LIMIT: u64 = 20;

/// A PDU whose format, ID, signatures and hash were checked.
pub struct Checked {
    pub pdu: PduEvent,
    /// The PDU as stored: `event_id` added, `unsigned` dropped, redacted if its content
    /// hash did not match.
    pub object: CanonicalJsonObject,
}

fn invalid(reason: impl std::fmt::Display) -> PduError {
    PduError::Invalid(reason.to_string())
}

/// The event ID a PDU has in a room of these rules.
pub fn event_id_of(
    object: &CanonicalJsonObject,
    rules: &RoomVersionRules,
) -> Result<OwnedEventId, PduError> {
    if rules.event_id_format == EventIdFormatVersion::V1 {
        return match object.get("event_id") {
            Some(CanonicalJsonValue::String(id)) => EventId::parse(id).map_err(invalid),
            _ => Err(invalid("no event_id")),
        };
    }
    let hash = reference_hash(object, rules).map_err(invalid)?;
    EventId::parse(format!("${hash}")).map_err(invalid)
}

/// Checks a PDU received for a room of `rules` (see the module).
pub async fn check_pdu(
    services: &Services,
    rules: &RoomVersionRules,
    mut object: CanonicalJsonObject,
) -> Result<Checked, PduError> {
    // What another server keeps for itself (`age_ts`, the invite's stripped state) is not
    // part of the event.
    object.remove("unsigned");
    check_pdu_format(&object, &rules.event_format).map_err(invalid)?;
    let event_id = event_id_of(&object, rules)?;
    let keys = key_map(services, rules, &object).await?;
    let verified = verify_event(&keys, &object, rules)
        .map_err(|e| invalid(format!("{event_id} has a bad signature: {e}")))?;
    if verified == Verified::Signatures {
        // Signed, but its content is not what was signed: keep only what the redaction
        // algorithm keeps.
        tracing::info!(%event_id, "content hash mismatch: stored redacted");
        object = redact(object, &rules.redaction, None).map_err(invalid)?;
    }
    object.insert(
        "event_id".to_owned(),
        CanonicalJsonValue::String(event_id.to_string()),
    );
    let json = serde_json::to_vec(&object).map_err(invalid)?;
    let pdu = PduEvent::from_incoming(&json).map_err(invalid)?;
    Ok(Checked { pdu, object })
}

/// The verify keys of the servers whose signatures the event needs.
async fn key_map(
    services: &Services,
    rules: &RoomVersionRules,
    object: &CanonicalJsonObject,
) -> Result<PublicKeyMap, PduError> {
    let servers =
        required_server_signatures_to_verify_event(object, &rules.signatures).map_err(invalid)?;
    let signatures = match object.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => signatures,
        _ => return Err(invalid("no signatures")),
    };
    // From room version 5, a key must have been valid when the event was sent.
    let valid_at = if rules.enforce_key_validity {
        match object.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(ts)) => u64::try_from(i64::from(*ts)).unwrap_or(0),
            _ => 0,
        }
    } else {
        0
    };
    let ours = services.server_name();
    let mut map = PublicKeyMap::new();
    for server in servers {
        if server == ours {
            map.extend(services.server_keys.public_key_map(ours, valid_at));
            continue;
        }
        let Some(CanonicalJsonValue::Object(by_key)) = signatures.get(server.as_str()) else {
            return Err(invalid(format!("not signed by {server}")));
        };
        let mut set = PublicKeySet::new();
        for key_id in by_key.keys().filter(|id| id.starts_with("ed25519:")) {
            let key = services
                .server_keys
                .remote_key(&services.federation, &server, key_id, valid_at)
                .await
                .map_err(|e| invalid(format!("cannot get {server}'s key {key_id}: {e}")))?;
            if let Some(key) = key {
                let key = Base64::parse(&key.key)
                    .map_err(|_| invalid(format!("{server}'s key {key_id} is not base64")))?;
                set.insert(key_id.clone(), key);
            }
        }
        if set.is_empty() {
            return Err(invalid(format!(
                "no valid key of {server} signed it at that time"
            )));
        }
        map.insert(server.to_string(), set);
    }
    Ok(map)
}

/// Parses one PDU of a transaction or an answer.
pub fn parse_object(raw: &serde_json::value::RawValue) -> Result<CanonicalJsonObject, PduError> {
    serde_json::from_str(raw.get())
        .map_err(|e| invalid(format!("not a canonical JSON object: {e}")))
}

/// Checks a received PDU and places it in its room, fetching from `origin` what it refers to
/// and is not stored here. The room must be known (joined or being joined).
pub async fn receive_pdu(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    object: CanonicalJsonObject,
) -> Result<Received, PduError> {
    let rules = services
        .rooms
        .rules(room_id)
        .map_err(|_| invalid(format!("this server is not in {room_id}")))?;
    let checked = check_pdu(services, &rules, object).await?;
    if checked.pdu.room_id.as_deref() != Some(room_id) {
        return Err(invalid("the event is for another room"));
    }
    let mut budget = MAX_FETCHED;
    Box::pin(place(
        services,
        origin,
        room_id,
        &rules,
        checked,
        &mut budget,
    ))
    .await
}

/// Places a checked event, filling gaps from `origin` within `budget` fetched events.
async fn place(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    checked: Checked,
    budget: &mut usize,
) -> Result<Received, PduError> {
    let mut filled_prev = false;
    let mut filled_state = false;
    loop {
        let guard = services.rooms.lock_room(room_id).await;
        let result = services.rooms.place_received(
            &guard,
            room_id,
            rules,
            &checked.pdu,
            checked.object.clone(),
            None,
        );
        guard.release().await;
        match result {
            Ok((received, purge)) => {
                purge_later(services, purge);
                return Ok(received);
            }
            Err(PduError::Missing(_)) => {}
            Err(other) => return Err(other),
        }
        // Nothing fetched under the lock: first the auth events, then the history between
        // what we hold and the event.
        let missing_auth = services.rooms.missing_auth_events(rules, &checked.pdu)?;
        if !missing_auth.is_empty() {
            fetch_auth_events(services, origin, rules, missing_auth, budget).await?;
            continue;
        }
        if !filled_prev {
            filled_prev = true;
            fill_prev_events(services, origin, room_id, rules, &checked.pdu, budget).await?;
            continue;
        }
        let missing = services.rooms.missing_prev_events(&checked.pdu)?;
        if filled_state || missing.is_empty() {
            return Err(PduError::Missing(missing));
        }
        // A gap deeper than `get_missing_events` fills: the state at each missing parent is
        // asked for instead, and the event placed across the gap.
        filled_state = true;
        for prev in missing.iter().take(MAX_GAP_PARENTS) {
            fill_gap_with_state(services, origin, room_id, rules, prev, budget).await?;
        }
    }
}

/// Most missing parents of one event whose state is fetched to place it across a gap.
const MAX_GAP_PARENTS: usize = 5;

/// Fetches a missing parent and the state before it (`/state`), stores them as outliers and
/// gives the parent the state after it, so that its children can be placed.
async fn fill_gap_with_state(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    prev: &EventId,
    budget: &mut usize,
) -> Result<(), PduError> {
    let path = format!(
        "/_matrix/federation/v1/state/{}?event_id={}",
        utf8_percent_encode(room_id.as_str()),
        utf8_percent_encode(prev.as_str())
    );
    let request = super::state_answer::StateRequest {
        method: http::Method::GET,
        path,
        body: None,
        state_field: "pdus",
        limit: 256 << 20,
    };
    let state = super::state_answer::fetch_state(services, origin, rules, room_id, request)
        .await
        .map_err(|e| not_fetched(origin, vec![prev.to_owned()], e))?
        .state_ids;
    let parent = fetch_event(services, origin, rules, prev).await?;
    if parent.pdu.room_id.as_deref() != Some(room_id) {
        return Err(invalid("a missing parent is in another room"));
    }
    let missing = services.rooms.missing_auth_events(rules, &parent.pdu)?;
    if !missing.is_empty() {
        fetch_auth_events(services, origin, rules, missing, budget).await?;
    }
    services
        .rooms
        .store_outlier(rules, &parent.pdu, parent.object.clone())?;
    let stored = services
        .rooms
        .get_pdu(prev)?
        .ok_or_else(|| PduError::Missing(vec![prev.to_owned()]))?;
    services.rooms.give_outlier_state(room_id, &stored, &state)
}

/// Fetches auth events (and theirs, depth first) and stores them as outliers.
pub(super) async fn fetch_auth_events(
    services: &Services,
    origin: &ServerName,
    rules: &RoomVersionRules,
    ids: Vec<OwnedEventId>,
    budget: &mut usize,
) -> Result<(), PduError> {
    let mut stack: Vec<Checked> = Vec::new();
    let mut wanted = ids;
    while let Some(id) = wanted.pop() {
        if services.rooms.is_known(&id)? || stack.iter().any(|c| c.pdu.event_id == id) {
            continue;
        }
        if *budget == 0 {
            return Err(PduError::Missing(vec![id]));
        }
        *budget -= 1;
        let checked = fetch_event(services, origin, rules, &id).await?;
        for auth in &checked.pdu.auth_events {
            if !services.rooms.is_known(auth)? {
                wanted.push(auth.clone());
            }
        }
        stack.push(checked);
    }
    // Stored oldest first: each one's auth events are stored before it.
    let mut pending = stack;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for checked in pending {
            match services
                .rooms
                .store_outlier(rules, &checked.pdu, checked.object.clone())
            {
                Ok(_) => {}
                Err(PduError::Missing(_)) => rest.push(checked),
                Err(other) => return Err(other),
            }
        }
        if rest.len() == before {
            let ids = rest.iter().map(|c| c.pdu.event_id.clone()).collect();
            return Err(PduError::Missing(ids));
        }
        pending = rest;
    }
    Ok(())
}

/// `GET /_matrix/federation/v1/event/{eventId}` from `origin`, checked.
pub async fn fetch_event(
    services: &Services,
    origin: &ServerName,
    rules: &RoomVersionRules,
    id: &EventId,
) -> Result<Checked, PduError> {
    let path = format!(
        "/_matrix/federation/v1/event/{}",
        utf8_percent_encode(id.as_str())
    );
    let answer = signed(services, http::Method::GET, origin, &path, None, 1 << 20)
        .await
        .map_err(|e| not_fetched(origin, vec![id.to_owned()], e))?;
    let pdu = answer["pdus"]
        .as_array()
        .and_then(|pdus| pdus.first())
        .cloned()
        .ok_or_else(|| invalid(format!("{origin} answered no event for {id}")))?;
    let object: CanonicalJsonObject =
        serde_json::from_value(pdu).map_err(|e| invalid(format!("{id}: {e}")))?;
    let checked = check_pdu(services, rules, object).await?;
    if checked.pdu.event_id != id {
        return Err(invalid(format!("{origin} answered another event for {id}")));
    }
    Ok(checked)
}

/// Asks `origin` for the events between our forward extremities and `pdu`
/// (`get_missing_events`) and places them oldest first.
async fn fill_prev_events(
    services: &Services,
    origin: &ServerName,
    room_id: &RoomId,
    rules: &RoomVersionRules,
    pdu: &PduEvent,
    budget: &mut usize,
) -> Result<(), PduError> {
    let earliest = services.rooms.forward_extremities(room_id)?;
    let limit = MISSING_EVENTS_LIMIT.min(*budget as u64);
    if limit == 0 {
        return Err(PduError::Missing(pdu.prev_events.clone()));
    }
    let body = json!({
        "earliest_events": earliest,
        "latest_events": [pdu.event_id],
        "limit": limit,
        "min_depth": 0,
    });
    let path = format!(
        "/_matrix/federation/v1/get_missing_events/{}",
        utf8_percent_encode(room_id.as_str())
    );
    let answer = signed(
        services,
        http::Method::POST,
        origin,
        &path,
        Some(&body),
        8 << 20,
    )
    .await
    .map_err(|e| not_fetched(origin, pdu.prev_events.clone(), e))?;
    let mut events = Vec::new();
    for value in answer["events"].as_array().into_iter().flatten() {
        let object: CanonicalJsonObject = match serde_json::from_value(value.clone()) {
            Ok(object) => object,
            Err(_) => continue,
        };
        match check_pdu(services, rules, object).await {
            Ok(checked) if checked.pdu.room_id.as_deref() == Some(room_id) => events.push(checked),
            Ok(_) => {}
            Err(error) => tracing::info!(%origin, %error, "a missing event failed its checks"),
        }
    }
    *budget = budget.saturating_sub(events.len());
    events.sort_by_key(|c| u64::from(c.pdu.depth));
    for checked in events {
        if services.rooms.is_in_timeline(&checked.pdu.event_id)? {
            continue;
        }
        let id = checked.pdu.event_id.clone();
        // Each filled event may itself have gaps; its own placing fills them (bounded).
        match Box::pin(place(services, origin, room_id, rules, checked, budget)).await {
            Ok(_) => {}
            Err(error) => {
                tracing::info!(%origin, event_id = %id, %error, "a missing event was not placed")
            }
        }
    }
    Ok(())
}

/// Events that stay missing because `origin` did not give them.
fn not_fetched(
    origin: &ServerName,
    ids: Vec<OwnedEventId>,
    error: crate::error::Error,
) -> PduError {
    tracing::info!(%origin, %error, "cannot fetch missing events");
    PduError::Missing(ids)
}

/// A signed request to another server as this one.
pub async fn signed(
    services: &Services,
    method: http::Method,
    server: &ServerName,
    path: &str,
    body: Option<&Value>,
    limit: usize,
) -> crate::error::Result<Value> {
    services
        .federation
        .send_signed(
            method,
            server,
            path,
            body,
            services.server_name(),
            &services.server_keys.key_pair(),
            limit,
        )
        .await
}

/// A path segment, percent-encoded.
pub fn utf8_percent_encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Purges a redaction's old versions off the request's path.
pub fn purge_later(services: &Services, purge: Purge) {
    if purge.is_empty() {
        return;
    }
    let engine = std::sync::Arc::clone(&services.engine);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = engine.purge_old_versions(&purge) {
            tracing::error!(%error, "purging a redacted event failed");
        }
    });
}

/// The outcome of each PDU of a transaction, as the answer to `/send` lists them.
pub type PduResults = BTreeMap<OwnedEventId, Result<(), String>>;
