//! Account data (global and per room), room tags and filters.

use std::sync::Arc;

use http::StatusCode;
use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use ruma::api::client::filter::{FilterDefinition, create_filter, get_filter};
use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use ruma::events::tag::Tags;
use ruma::serde::Raw;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

const TAG_TYPE: &str = "m.tag";

fn ensure_own(request_user: &UserId, target: &UserId) -> Result<()> {
    if request_user != target {
        return Err(Error::forbidden(
            "You cannot access another user's account data",
        ));
    }
    Ok(())
}

/// Account data types the server manages through dedicated endpoints.
fn ensure_settable(kind: &str) -> Result<()> {
    if matches!(kind, "m.fully_read" | "m.push_rules") {
        return Err(Error::with_status(
            ErrorCode::BadJson,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{kind} cannot be set through this endpoint"),
        ));
    }
    Ok(())
}

fn content_object<T>(raw: &Raw<T>) -> Result<Value> {
    let value: Value =
        serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !value.is_object() {
        return Err(Error::bad_json(
            "Account data content must be a JSON object",
        ));
    }
    Ok(value)
}

fn get_content(
    services: &Services,
    user_id: &UserId,
    room_id: Option<&RoomId>,
    kind: &str,
) -> Result<Value> {
    services
        .account_data
        .get(user_id, room_id, kind)?
        .ok_or_else(|| Error::not_found("Account data not found"))
}

pub async fn get_global(
    services: Arc<Services>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<get_global_account_data::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let kind = body.event_type.to_string();
    let content = match get_content(&services, &body.user_id, None, &kind) {
        // Push rules exist for everyone: the defaults until the user changes one.
        Err(_) if kind == "m.push_rules" => {
            json!({ "global": super::push_rules::load(&services, &body.user_id)? })
        }
        other => other?,
    };
    Ok(get_global_account_data::v3::Response::new(
        Raw::new(&content)
            .map_err(Error::internal)?
            .cast_unchecked(),
    ))
}

pub async fn set_global(
    services: Arc<Services>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<set_global_account_data::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let kind = body.event_type.to_string();
    ensure_settable(&kind)?;
    services
        .account_data
        .set(&body.user_id, None, &kind, &content_object(&body.data)?)?;
    Ok(set_global_account_data::v3::Response::new())
}

pub async fn get_room(
    services: Arc<Services>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<get_room_account_data::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let content = get_content(
        &services,
        &body.user_id,
        Some(&body.room_id),
        &body.event_type.to_string(),
    )?;
    Ok(get_room_account_data::v3::Response::new(
        Raw::new(&content)
            .map_err(Error::internal)?
            .cast_unchecked(),
    ))
}

pub async fn set_room(
    services: Arc<Services>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<set_room_account_data::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let kind = body.event_type.to_string();
    ensure_settable(&kind)?;
    services.account_data.set(
        &body.user_id,
        Some(&body.room_id),
        &kind,
        &content_object(&body.data)?,
    )?;
    Ok(set_room_account_data::v3::Response::new())
}

/// The room's tags; none stored means an empty set.
fn tags(services: &Services, user_id: &UserId, room_id: &RoomId) -> Result<Tags> {
    let content = services
        .account_data
        .get(user_id, Some(room_id), TAG_TYPE)?;
    let tags = content.and_then(|mut content| content.get_mut("tags").map(Value::take));
    match tags {
        Some(tags) => Ok(serde_json::from_value(tags).unwrap_or_default()),
        None => Ok(Tags::new()),
    }
}

fn store_tags(services: &Services, user_id: &UserId, room_id: &RoomId, tags: &Tags) -> Result<()> {
    services
        .account_data
        .set(user_id, Some(room_id), TAG_TYPE, &json!({ "tags": tags }))
}

pub async fn get_tags(
    services: Arc<Services>,
    request: Ruma<get_tags::v3::Request>,
) -> Result<get_tags::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    Ok(get_tags::v3::Response::new(tags(
        &services,
        &body.user_id,
        &body.room_id,
    )?))
}

pub async fn set_tag(
    services: Arc<Services>,
    request: Ruma<create_tag::v3::Request>,
) -> Result<create_tag::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let mut current = tags(&services, &body.user_id, &body.room_id)?;
    current.insert(body.tag.as_str().into(), body.tag_info.clone());
    store_tags(&services, &body.user_id, &body.room_id, &current)?;
    Ok(create_tag::v3::Response::new())
}

pub async fn delete_tag(
    services: Arc<Services>,
    request: Ruma<delete_tag::v3::Request>,
) -> Result<delete_tag::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let mut current = tags(&services, &body.user_id, &body.room_id)?;
    current.remove(&ruma::events::tag::TagName::from(body.tag.as_str()));
    store_tags(&services, &body.user_id, &body.room_id, &current)?;
    Ok(delete_tag::v3::Response::new())
}

pub async fn create_filter(
    services: Arc<Services>,
    request: Ruma<create_filter::v3::Request>,
) -> Result<create_filter::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let filter = serde_json::to_value(&body.filter).map_err(Error::internal)?;
    let filter_id = services
        .account_data
        .create_filter(&body.user_id, &filter)?;
    Ok(create_filter::v3::Response::new(filter_id))
}

pub async fn get_filter(
    services: Arc<Services>,
    request: Ruma<get_filter::v3::Request>,
) -> Result<get_filter::v3::Response> {
    let body = &request.body;
    ensure_own(request.user()?, &body.user_id)?;
    let filter = services
        .account_data
        .filter(&body.user_id, &body.filter_id)?
        .ok_or_else(|| Error::not_found("Filter not found"))?;
    let filter: FilterDefinition = serde_json::from_value(filter)?;
    Ok(get_filter::v3::Response::new(filter))
}
