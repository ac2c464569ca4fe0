//! Media in Synapse's admin API: quarantine (by ID, room or user) and its undoing, protection
//! from quarantine, deletion (by ID, age and size, user, and of the remote media cache), a
//! user's uploads and the uploads per user.
//!
//! Downloads are not tracked, so `last_access_ts` is the upload time, as Synapse reports for
//! media never downloaded, and "last used before" means "uploaded before".

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ruma::{OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};

use super::endpoints::*;
use super::users::{local_account, require_admin};
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::media::{MediaMeta, QuarantineOutcome, mxcs_in_room, valid_media_id};

/// Timestamps below this are seconds, not milliseconds (Synapse's check: Dec 1970 in
/// milliseconds is Aug 2920 in seconds).
const SMALLEST_MILLIS: u64 = 30_000_000_000;

fn record(services: &Services, admin: &UserId, ip: std::net::IpAddr, action: String, ok: bool) {
    crate::admin::record_api_call(services, admin, ip, action, ok);
}

fn unknown_media() -> Error {
    Error::not_found("Unknown media")
}

/// A media ID that can name stored media, else 404.
fn media_id(media_id: &str) -> Result<&str> {
    if valid_media_id(media_id) {
        Ok(media_id)
    } else {
        Err(unknown_media())
    }
}

/// `before_ts`, required and in milliseconds.
fn before_ts(before_ts: Option<u64>) -> Result<u64> {
    let before = before_ts.ok_or_else(|| {
        Error::new(
            ErrorCode::MissingParam,
            "Missing integer query parameter 'before_ts'",
        )
    })?;
    if before < SMALLEST_MILLIS {
        return Err(Error::invalid_param(
            "Query parameter before_ts you provided is from the year 1970. Double check that you \
             are providing a timestamp in milliseconds.",
        ));
    }
    Ok(before)
}

/// `dir`: `f` (or absent: `default`) or `b`; true for backwards.
fn backwards(dir: Option<&str>, default: bool) -> Result<bool> {
    match dir {
        None => Ok(default),
        Some("f") => Ok(false),
        Some("b") => Ok(true),
        Some(_) => Err(Error::invalid_param("Unknown direction: use f or b")),
    }
}

/// Synapse's page answer: `total`, and `next_token` (a number here, as Synapse's media
/// endpoints give it) while more follows.
fn page_answer(key: &str, items: Vec<Value>, from: usize, limit: usize) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(from).take(limit).collect();
    let shown = page.len();
    let mut answer = json!({ key: page, "total": total });
    if from.saturating_add(limit) < total {
        answer["next_token"] = json!(from + shown);
    }
    answer
}

pub async fn quarantine(
    services: Arc<Services>,
    request: Ruma<quarantine_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let outcome =
        services
            .media
            .quarantine(&body.server, media_id(&body.media_id)?, admin.as_str());
    let action = format!(
        "POST /_synapse/admin/v1/media/quarantine/{}/{} ({})",
        body.server,
        body.media_id,
        match &outcome {
            Ok(Some(QuarantineOutcome::Protected)) => "protected: left alone",
            Ok(Some(QuarantineOutcome::Already)) => "already quarantined",
            _ => "quarantined",
        }
    );
    record(
        &services,
        &admin,
        request.client_ip,
        action,
        matches!(outcome, Ok(Some(_))),
    );
    outcome?.ok_or_else(unknown_media)?;
    Ok(RawJson(json!({})))
}

pub async fn unquarantine(
    services: Arc<Services>,
    request: Ruma<unquarantine_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let outcome = services
        .media
        .unquarantine(&body.server, media_id(&body.media_id)?);
    record(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/media/unquarantine/{}/{}",
            body.server, body.media_id
        ),
        matches!(outcome, Ok(Some(_))),
    );
    outcome?.ok_or_else(unknown_media)?;
    Ok(RawJson(json!({})))
}

async fn set_protected(
    services: &Services,
    admin: &UserId,
    ip: std::net::IpAddr,
    id: &str,
    protected: bool,
) -> Result<RawJson> {
    let outcome = services
        .media
        .set_protected(services.server_name(), media_id(id)?, protected);
    let verb = if protected { "protect" } else { "unprotect" };
    record(
        services,
        admin,
        ip,
        format!("POST /_synapse/admin/v1/media/{verb}/{id}"),
        matches!(outcome, Ok(Some(_))),
    );
    outcome?.ok_or_else(unknown_media)?;
    Ok(RawJson(json!({})))
}

pub async fn protect(
    services: Arc<Services>,
    request: Ruma<protect_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    set_protected(
        &services,
        &admin,
        request.client_ip,
        &request.body.media_id,
        true,
    )
    .await
}

pub async fn unprotect(
    services: Arc<Services>,
    request: Ruma<unprotect_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    set_protected(
        &services,
        &admin,
        request.client_ip,
        &request.body.media_id,
        false,
    )
    .await
}

/// Quarantines the media a room's events refer to (this server's uploads and cached remote
/// media, as Synapse does), protected media aside.
pub async fn quarantine_room(
    services: Arc<Services>,
    request: Ruma<quarantine_room_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let room_id = &request.body.room_id;
    if !services.rooms.exists(room_id)? {
        return Err(Error::not_found("Room not found"));
    }
    let result = mxcs_in_room(&services.rooms, room_id)
        .and_then(|media| services.media.quarantine_many(media, admin.as_str()));
    record(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/room/{room_id}/media/quarantine ({})",
            result.as_ref().map_or(String::new(), |count| format!(
                "{} quarantined, {} protected left alone",
                count.quarantined, count.protected
            ))
        ),
        result.is_ok(),
    );
    Ok(RawJson(json!({ "num_quarantined": result?.quarantined })))
}

pub async fn quarantine_user(
    services: Arc<Services>,
    request: Ruma<quarantine_user_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let user = &request.body.user_id;
    local_account(&services, user)?;
    let result =
        services
            .media
            .quarantine_by_uploader(services.server_name(), user, admin.as_str());
    record(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/user/{user}/media/quarantine ({})",
            result.as_ref().map_or(String::new(), |count| format!(
                "{} quarantined, {} protected left alone",
                count.quarantined, count.protected
            ))
        ),
        result.is_ok(),
    );
    Ok(RawJson(json!({ "num_quarantined": result?.quarantined })))
}

/// This server's name, or Synapse's refusal for another's.
fn local_server<'a>(services: &'a Services, server: &ServerName) -> Result<&'a ServerName> {
    if server != services.server_name() {
        return Err(Error::invalid_param("Can only delete local media"));
    }
    Ok(services.server_name())
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let body = &request.body;
    let server = local_server(&services, &body.server)?;
    let id = media_id(&body.media_id)?;
    let result = services.media.delete(server, id).await;
    record(
        &services,
        &admin,
        request.client_ip,
        format!("DELETE /_synapse/admin/v1/media/{server}/{id}"),
        matches!(result, Ok(true)),
    );
    if !result? {
        return Err(unknown_media());
    }
    Ok(RawJson(json!({ "deleted_media": [id], "total": 1 })))
}

/// The media IDs of this server used as avatars: users' and rooms'.
fn avatar_media(services: &Services) -> Result<HashSet<String>> {
    let prefix = format!("mxc://{}/", services.server_name());
    let mut avatars = Vec::new();
    for (user, _) in services.users.all_accounts()? {
        if let Some(Value::String(url)) = services.users.profile_field(&user, "avatar_url")? {
            avatars.push(url);
        }
    }
    for room_id in services.rooms.room_ids()? {
        if let Some(url) = services.rooms.summary(&room_id)?.avatar_url {
            avatars.push(url);
        }
    }
    Ok(avatars
        .iter()
        .filter_map(|url| url.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect())
}

/// Deletes this server's media uploaded before `before_ts` and larger than `size_gt`, except
/// quarantined and protected media and (unless `keep_profiles=false`) avatars, as Synapse does.
pub async fn delete_old(
    services: Arc<Services>,
    request: Ruma<delete_old_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let query = &request.body;
    delete_old_media(
        &services,
        &admin,
        request.client_ip,
        "/_synapse/admin/v1/media/delete",
        (query.before_ts, query.size_gt, query.keep_profiles),
    )
    .await
}

pub async fn delete_old_of_server(
    services: Arc<Services>,
    request: Ruma<delete_old_server_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let query = &request.body;
    if query.server_name != services.server_name() {
        return Err(Error::invalid_param("Can only delete local media"));
    }
    delete_old_media(
        &services,
        &admin,
        request.client_ip,
        &format!("/_synapse/admin/v1/media/{}/delete", query.server_name),
        (query.before_ts, query.size_gt, query.keep_profiles),
    )
    .await
}

/// The query of both paths: `before_ts`, `size_gt`, `keep_profiles`.
type DeleteQuery = (Option<u64>, Option<u64>, Option<bool>);

async fn delete_old_media(
    services: &Services,
    admin: &UserId,
    ip: std::net::IpAddr,
    path: &str,
    (before_ms, size_gt, keep_profiles): DeleteQuery,
) -> Result<RawJson> {
    let before = before_ts(before_ms)?;
    let size_gt = size_gt.unwrap_or(0);
    let keep_profiles = keep_profiles.unwrap_or(true);
    let kept = if keep_profiles {
        avatar_media(services)?
    } else {
        HashSet::new()
    };
    let own = services.server_name().as_str();
    let result = services
        .media
        .delete_matching(|server, id, meta| {
            server == own
                && meta.created_ms < before
                && meta.size > size_gt
                && !meta.quarantined
                && !meta.protected
                && !kept.contains(id)
        })
        .await;
    record(
        services,
        admin,
        ip,
        format!(
            "POST {path} (before_ts: {before}, size_gt: {size_gt}, keep_profiles: \
             {keep_profiles}; {} deleted)",
            result.as_ref().map_or(0, Vec::len)
        ),
        result.is_ok(),
    );
    let deleted: Vec<String> = result?.into_iter().map(|(_, id)| id).collect();
    Ok(RawJson(
        json!({ "total": deleted.len(), "deleted_media": deleted }),
    ))
}

/// Deletes cached copies of other servers' media from before `before_ts` (quarantined media
/// stays, as evidence).
pub async fn purge_cache(
    services: Arc<Services>,
    request: Ruma<purge_media_cache::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let before = before_ts(request.body.before_ts)?;
    let own = services.server_name().as_str();
    let result = services
        .media
        .delete_matching(|server, _, meta| {
            server != own && meta.created_ms < before && !meta.quarantined
        })
        .await;
    record(
        &services,
        &admin,
        request.client_ip,
        format!(
            "POST /_synapse/admin/v1/purge_media_cache (before_ts: {before}; {} deleted)",
            result.as_ref().map_or(0, Vec::len)
        ),
        result.is_ok(),
    );
    Ok(RawJson(json!({ "deleted": result?.len() })))
}

/// Uploads per local user: count and bytes, paged and sorted as Synapse's statistics.
pub async fn statistics(
    services: Arc<Services>,
    request: Ruma<media_statistics::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let from_ts = query.from_ts.unwrap_or(0);
    if let Some(until) = query.until_ts
        && until <= from_ts
    {
        return Err(Error::invalid_param(
            "Query parameter until_ts must be greater than from_ts.",
        ));
    }
    let search = match query.search_term.as_deref() {
        Some("") => {
            return Err(Error::invalid_param(
                "Query parameter search_term cannot be an empty string.",
            ));
        }
        other => other.map(str::to_lowercase),
    };
    let order_by = query.order_by.as_deref().unwrap_or("user_id");
    if !["user_id", "displayname", "media_length", "media_count"].contains(&order_by) {
        return Err(Error::invalid_param(format!(
            "Unknown value for order_by: {order_by}"
        )));
    }
    let backwards = backwards(query.dir.as_deref(), false)?;

    let own = services.server_name();
    let mut usage: BTreeMap<OwnedUserId, (u64, u64)> = BTreeMap::new();
    for (server, _, meta) in services.media.all()? {
        if server != own.as_str()
            || meta.uploader.server_name() != own
            || meta.created_ms < from_ts
            || query.until_ts.is_some_and(|until| meta.created_ms > until)
        {
            continue;
        }
        let entry = usage.entry(meta.uploader).or_default();
        entry.0 += 1;
        entry.1 += meta.size;
    }
    let mut rows = Vec::new();
    for (user, (count, length)) in usage {
        let displayname = match services.users.profile_field(&user, "displayname")? {
            Some(Value::String(name)) => Some(name),
            _ => None,
        };
        if let Some(search) = &search
            && !user.localpart().to_lowercase().contains(search)
            && !displayname
                .as_deref()
                .is_some_and(|name| name.to_lowercase().contains(search))
        {
            continue;
        }
        rows.push((user, displayname, count, length));
    }
    rows.sort_by(|a, b| {
        let primary = match order_by {
            "displayname" => a.1.cmp(&b.1),
            "media_length" => a.3.cmp(&b.3),
            "media_count" => a.2.cmp(&b.2),
            _ => Ordering::Equal,
        };
        primary.then_with(|| a.0.cmp(&b.0))
    });
    if backwards {
        rows.reverse();
    }
    let users = rows
        .into_iter()
        .map(|(user, displayname, count, length)| {
            json!({
                "user_id": user,
                "displayname": displayname,
                "media_count": count,
                "media_length": length,
            })
        })
        .collect();
    Ok(RawJson(page_answer("users", users, from, limit)))
}

/// Synapse's media item of a user's listing.
fn media_json(media_id: &str, meta: &MediaMeta) -> Value {
    let quarantined_by = meta.quarantined.then(|| {
        meta.quarantined_by
            .clone()
            .unwrap_or_else(|| "unknown".to_owned())
    });
    json!({
        "media_id": media_id,
        "media_type": meta.content_type,
        "media_length": meta.size,
        "upload_name": meta.filename,
        "created_ts": meta.created_ms,
        "last_access_ts": meta.created_ms,
        "quarantined_by": quarantined_by,
        "safe_from_quarantine": meta.protected,
        "url_cache": null,
        "user_id": meta.uploader,
        "sha256": (!meta.sha256.is_empty()).then_some(&meta.sha256),
    })
}

/// A user's uploads in the order asked for (Synapse's default: newest first).
fn sorted_uploads(
    services: &Services,
    user: &UserId,
    order_by: Option<&str>,
    dir: Option<&str>,
) -> Result<Vec<(String, MediaMeta)>> {
    let default_newest_first = order_by.is_none() && dir.is_none();
    let backwards = backwards(dir, default_newest_first)?;
    let order_by = order_by.unwrap_or("created_ts");
    let key = |id: &str, meta: &MediaMeta| -> Value {
        match order_by {
            "media_id" => json!(id),
            "upload_name" => json!(meta.filename),
            "created_ts" | "last_access_ts" => json!(meta.created_ms),
            "media_length" => json!(meta.size),
            "media_type" => json!(meta.content_type),
            "quarantined_by" => json!(meta.quarantined_by),
            _ => json!(meta.protected),
        }
    };
    if ![
        "media_id",
        "upload_name",
        "created_ts",
        "last_access_ts",
        "media_length",
        "media_type",
        "quarantined_by",
        "safe_from_quarantine",
    ]
    .contains(&order_by)
    {
        return Err(Error::invalid_param(format!(
            "Unknown value for order_by: {order_by}"
        )));
    }
    let mut uploads = services.media.uploads(services.server_name(), user)?;
    uploads.sort_by(|(a_id, a), (b_id, b)| {
        compare(&key(a_id, a), &key(b_id, b)).then_with(|| a_id.cmp(b_id))
    });
    if backwards {
        uploads.reverse();
    }
    Ok(uploads)
}

/// Orders JSON scalars: null first, then booleans, numbers, strings.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_u64().cmp(&b.as_u64()).then_with(|| {
            a.as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(Ordering::Equal)
        }),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        _ => 3,
    }
}

pub async fn user_media(
    services: Arc<Services>,
    request: Ruma<user_media::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    local_account(&services, &query.user_id)?;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let uploads = sorted_uploads(
        &services,
        &query.user_id,
        query.order_by.as_deref(),
        query.dir.as_deref(),
    )?;
    let items = uploads
        .iter()
        .map(|(id, meta)| media_json(id, meta))
        .collect();
    Ok(RawJson(page_answer("media", items, from, limit)))
}

/// Deletes one page of a user's uploads (the same paging and order as the listing).
pub async fn delete_user_media(
    services: Arc<Services>,
    request: Ruma<delete_user_media::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let query = &request.body;
    local_account(&services, &query.user_id)?;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let uploads = sorted_uploads(
        &services,
        &query.user_id,
        query.order_by.as_deref(),
        query.dir.as_deref(),
    )?;
    let mut deleted = Vec::new();
    let mut result = Ok(());
    for (id, _) in uploads.into_iter().skip(from).take(limit) {
        match services.media.delete(services.server_name(), &id).await {
            Ok(true) => deleted.push(id),
            Ok(false) => {}
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    record(
        &services,
        &admin,
        request.client_ip,
        format!(
            "DELETE /_synapse/admin/v1/users/{}/media ({} deleted)",
            query.user_id,
            deleted.len()
        ),
        result.is_ok(),
    );
    result?;
    Ok(RawJson(
        json!({ "total": deleted.len(), "deleted_media": deleted }),
    ))
}
