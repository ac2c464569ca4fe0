//! `/relations` (with optional relation and event type, and recursion) and `/threads`.

use std::sync::Arc;

use ruma::api::Direction;
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type,
    get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::threads::get_threads;
use ruma::serde::Raw;
use ruma::{EventId, RoomId, UInt, UserId};

use super::message::{ensure_may_read, parse_token, token};
use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::rooms::relations::Relation;

/// How deep `recurse=true` follows relations of relations (the spec suggests at least 3).
const MAX_DEPTH: usize = 3;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

struct Query<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    dir: Direction,
    limit: Option<UInt>,
    recurse: bool,
}

struct Page {
    chunk: Vec<Raw<ruma::events::AnyMessageLikeEvent>>,
    next_batch: Option<String>,
    recursion_depth: Option<UInt>,
}

fn relating_events(services: &Services, user: &UserId, query: Query<'_>) -> Result<Page> {
    ensure_may_read(services, user, query.room_id)?;
    let rooms = &services.rooms;
    let mut visibility = rooms.visibility(user, query.room_id)?;
    let in_room = rooms
        .pdu_position(query.event_id)?
        .is_some_and(|(short, _)| rooms.shortroomid(query.room_id).ok().flatten() == Some(short));
    if !in_room || !visibility.can_see(query.event_id)? {
        return Err(Error::not_found("Event not found"));
    }

    // Collect relations, following children of children when asked.
    let mut found: Vec<Relation> = Vec::new();
    let mut frontier = vec![query.event_id.to_owned()];
    let depth_limit = if query.recurse { MAX_DEPTH } else { 1 };
    let mut depth = 0;
    while depth < depth_limit && !frontier.is_empty() {
        let mut next = Vec::new();
        for parent in &frontier {
            for relation in rooms.relations(parent)? {
                next.push(relation.event_id.clone());
                found.push(relation);
            }
        }
        frontier = next;
        depth += 1;
    }
    found.retain(|r| {
        query.rel_type.as_ref().is_none_or(|t| *t == r.rel_type)
            && query.event_type.as_ref().is_none_or(|t| *t == r.event_type)
    });
    found.sort_by_key(|r| r.count);
    if query.dir == Direction::Backward {
        found.reverse();
    }

    let from = query.from.map(parse_token).transpose()?;
    let to = query.to.map(parse_token).transpose()?;
    let backwards = query.dir == Direction::Backward;
    let limit = query
        .limit
        .map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(MAX_LIMIT)
        })
        .clamp(1, MAX_LIMIT);
    let mut chunk = Vec::new();
    let mut last = None;
    let mut more = false;
    for relation in found {
        if from.is_some_and(|from| {
            if backwards {
                relation.count > from
            } else {
                relation.count <= from
            }
        }) {
            continue;
        }
        if to.is_some_and(|to| {
            if backwards {
                relation.count <= to
            } else {
                relation.count > to
            }
        }) {
            break;
        }
        if !visibility.can_see(&relation.event_id)? {
            continue;
        }
        if chunk.len() >= limit {
            more = true;
            break;
        }
        if let Some(json) = rooms.get_pdu_json(&relation.event_id)? {
            chunk.push(
                rooms
                    .client_event_bundled(&json, query.room_id, user)?
                    .cast_unchecked(),
            );
            last = Some(relation.count);
        }
    }
    let next_batch = if more {
        last.map(|count| token(if backwards { count.prev() } else { count }))
    } else {
        None
    };
    let recursion_depth = query.recurse.then(|| UInt::from(depth as u32));
    Ok(Page {
        chunk,
        next_batch,
        recursion_depth,
    })
}

macro_rules! relations_handler {
    ($name:ident, $module:ident, $rel_type:expr, $event_type:expr) => {
        pub async fn $name(
            services: Arc<Services>,
            request: Ruma<$module::v1::Request>,
        ) -> Result<$module::v1::Response> {
            let body = &request.body;
            #[allow(clippy::redundant_closure_call)]
            let page = relating_events(
                &services,
                request.user()?,
                Query {
                    room_id: &body.room_id,
                    event_id: &body.event_id,
                    rel_type: ($rel_type)(body),
                    event_type: ($event_type)(body),
                    from: body.from.as_deref(),
                    to: body.to.as_deref(),
                    dir: body.dir.clone(),
                    limit: body.limit,
                    recurse: body.recurse,
                },
            )?;
            let mut response = $module::v1::Response::new(page.chunk);
            response.next_batch = page.next_batch;
            response.recursion_depth = page.recursion_depth;
            Ok(response)
        }
    };
}

relations_handler!(all, get_relating_events, |_| None, |_| None);
relations_handler!(
    by_rel_type,
    get_relating_events_with_rel_type,
    |b: &get_relating_events_with_rel_type::v1::Request| Some(b.rel_type.to_string()),
    |_| None
);
relations_handler!(
    by_rel_and_event_type,
    get_relating_events_with_rel_type_and_event_type,
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.rel_type.to_string()
    ),
    |b: &get_relating_events_with_rel_type_and_event_type::v1::Request| Some(
        b.event_type.to_string()
    )
);

pub async fn threads(
    services: Arc<Services>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<get_threads::v1::Response> {
    let body = &request.body;
    let room_id = &body.room_id;
    let user = request.user()?;
    ensure_may_read(&services, user, room_id)?;
    let rooms = &services.rooms;
    let mut visibility = rooms.visibility(user, room_id)?;
    let participated_only = body.include == get_threads::v1::IncludeThreads::Participated;

    // Threads ordered by their latest reply, newest first; the token is that reply's count.
    let mut threads = Vec::new();
    for root in rooms.thread_roots(room_id)? {
        let replies: Vec<Relation> = rooms
            .relations(&root)?
            .into_iter()
            .filter(|r| r.rel_type == "m.thread")
            .collect();
        let Some(latest) = replies.iter().map(|r| r.count).max() else {
            continue;
        };
        if !visibility.can_see(&root)? {
            continue;
        }
        if participated_only {
            let root_sender = rooms.get_pdu(&root)?.map(|p| p.sender);
            let mut took_part = root_sender.as_deref() == Some(user);
            for reply in &replies {
                if took_part {
                    break;
                }
                took_part = rooms
                    .get_pdu(&reply.event_id)?
                    .is_some_and(|p| p.sender == user);
            }
            if !took_part {
                continue;
            }
        }
        threads.push((latest, root));
    }
    threads.sort_by_key(|(latest, _)| std::cmp::Reverse(*latest));
    let from = body.from.as_deref().map(parse_token).transpose()?;
    let limit = body
        .limit
        .map_or(DEFAULT_LIMIT, |l| {
            usize::try_from(u64::from(l)).unwrap_or(MAX_LIMIT)
        })
        .clamp(1, MAX_LIMIT);
    let mut chunk = Vec::new();
    let mut next_batch = None;
    for (latest, root) in threads
        .into_iter()
        .filter(|(latest, _)| from.is_none_or(|from| *latest <= from))
    {
        if chunk.len() >= limit {
            next_batch = Some(token(latest));
            break;
        }
        if let Some(json) = rooms.get_pdu_json(&root)? {
            chunk.push(rooms.client_event_bundled(&json, room_id, user)?);
        }
    }
    let mut response = get_threads::v1::Response::new(chunk);
    response.next_batch = next_batch;
    Ok(response)
}
