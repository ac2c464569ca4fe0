//! `POST /search`: message bodies, room names and topics in the rooms the user may read.

use std::sync::Arc;

use ruma::api::client::search::search_events;
use ruma::api::client::search::search_events::v3::{OrderBy, SearchKeys};
use ruma::{OwnedRoomId, UserId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::pdu::{PduEvent, client_event};
use crate::service::rooms::search::{searchable_text, words};

const DEFAULT_LIMIT: usize = 10;

struct Hit {
    room_id: OwnedRoomId,
    count: crate::service::rooms::PduCount,
    rank: f64,
    json: Vec<u8>,
}

pub async fn search(
    services: Arc<Services>,
    request: Ruma<search_events::v3::Request>,
) -> Result<RawJson> {
    let user_id = request.user()?;
    let body = &request.body;
    let Some(criteria) = &body.search_categories.room_events else {
        return Ok(RawJson(json!({ "search_categories": {} })));
    };
    let terms = words(&criteria.search_term);
    if terms.is_empty() {
        return Err(Error::invalid_param("The search term has no words"));
    }
    let keys: Vec<String> = criteria
        .keys
        .clone()
        .unwrap_or_else(|| {
            vec![
                SearchKeys::ContentBody,
                SearchKeys::ContentName,
                SearchKeys::ContentTopic,
            ]
        })
        .iter()
        .map(|key| key.to_string())
        .collect();
    let filter = &criteria.filter;
    let rooms = &services.rooms;

    let mut hits = Vec::new();
    for room_id in rooms.rooms_with_membership(user_id, "join")? {
        if filter.rooms.as_ref().is_some_and(|r| !r.contains(&room_id))
            || filter.not_rooms.contains(&room_id)
        {
            continue;
        }
        let mut visibility = rooms.visibility(user_id, &room_id)?;
        for count in rooms.search_room(&room_id, &terms)? {
            let Some(json) = rooms.pdu_at(&room_id, count)? else {
                continue;
            };
            let pdu = PduEvent::from_json(&json)?;
            let key = match pdu.kind.to_string().as_str() {
                "m.room.message" => "content.body",
                "m.room.name" => "content.name",
                _ => "content.topic",
            };
            let wanted = keys.iter().any(|k| k == key)
                && filter
                    .senders
                    .as_ref()
                    .is_none_or(|s| s.contains(&pdu.sender))
                && !filter.not_senders.contains(&pdu.sender)
                && filter
                    .types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| *t == pdu.kind.to_string()))
                && !filter.not_types.iter().any(|t| *t == pdu.kind.to_string());
            if !wanted || !visibility.can_see(&pdu.event_id)? {
                continue;
            }
            hits.push(Hit {
                room_id: room_id.clone(),
                count,
                rank: rank(&pdu, &terms),
                json,
            });
        }
    }
    match criteria.order_by {
        Some(OrderBy::Recent) => hits.sort_by_key(|hit| std::cmp::Reverse(hit.count)),
        _ => hits.sort_by(|a, b| {
            b.rank
                .total_cmp(&a.rank)
                .then_with(|| b.count.cmp(&a.count))
        }),
    }

    let offset = match &body.next_batch {
        Some(token) => token
            .trim_start_matches('o')
            .parse::<usize>()
            .map_err(|_| Error::invalid_param("Invalid next_batch"))?,
        None => 0,
    };
    let limit = filter
        .limit
        .map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(DEFAULT_LIMIT)
        })
        .clamp(1, 100);
    let total = hits.len();
    let before_limit = usize::try_from(u64::from(criteria.event_context.before_limit))
        .unwrap_or(5)
        .min(20);
    let after_limit = usize::try_from(u64::from(criteria.event_context.after_limit))
        .unwrap_or(5)
        .min(20);
    let mut results = Vec::new();
    for hit in hits.iter().skip(offset).take(limit) {
        let event: Value =
            serde_json::from_str(client_event(&hit.json, &hit.room_id)?.json().get())?;
        let context = context(
            &services,
            user_id,
            hit,
            before_limit,
            after_limit,
            criteria.event_context.include_profile,
        )?;
        results.push(json!({ "rank": hit.rank, "result": event, "context": context }));
    }
    let mut room_events = json!({
        "count": total,
        "highlights": terms,
        "results": results,
    });
    if offset + limit < total {
        room_events["next_batch"] = json!(format!("o{}", offset + limit));
    }
    Ok(RawJson(
        json!({ "search_categories": { "room_events": room_events } }),
    ))
}

/// How well an event matches: the share of its words that are search words.
fn rank(pdu: &PduEvent, terms: &std::collections::BTreeSet<String>) -> f64 {
    let Some(text) = searchable_text(pdu) else {
        return 0.0;
    };
    let all: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if all.is_empty() {
        return 0.0;
    }
    all.iter().filter(|w| terms.contains(*w)).count() as f64 / all.len() as f64
}

/// Events around a result, as `/context` would give them.
fn context(
    services: &Services,
    user_id: &UserId,
    hit: &Hit,
    before: usize,
    after: usize,
    profiles: bool,
) -> Result<Value> {
    let rooms = &services.rooms;
    let mut visibility = rooms.visibility(user_id, &hit.room_id)?;
    let mut collect = |events: Vec<crate::service::rooms::StoredEvent>| -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for (_, json) in events {
            let pdu = PduEvent::from_json(&json)?;
            if visibility.can_see(&pdu.event_id)? {
                out.push(serde_json::from_str(
                    client_event(&json, &hit.room_id)?.json().get(),
                )?);
            }
        }
        Ok(out)
    };
    let events_before = if before > 0 {
        collect(rooms.timeline_page(&hit.room_id, hit.count, true, before)?)?
    } else {
        Vec::new()
    };
    let events_after = if after > 0 {
        collect(rooms.timeline_page(&hit.room_id, hit.count, false, after)?)?
    } else {
        Vec::new()
    };
    let mut context = json!({
        "events_before": events_before,
        "events_after": events_after,
        "start": hit.count.prev().token(),
        "end": hit.count.token(),
    });
    if profiles {
        let mut info = serde_json::Map::new();
        for event in events_before.iter().chain(&events_after) {
            if let Some(sender) = event.get("sender").and_then(Value::as_str)
                && let Ok(sender) = UserId::parse(sender)
            {
                let name = services.users.profile_field(&sender, "displayname")?;
                let avatar = services.users.profile_field(&sender, "avatar_url")?;
                info.insert(
                    sender.to_string(),
                    json!({ "displayname": name, "avatar_url": avatar }),
                );
            }
        }
        context["profile_info"] = Value::Object(info);
    }
    Ok(context)
}
