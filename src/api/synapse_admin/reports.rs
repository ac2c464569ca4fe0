//! Event reports in Synapse's admin API: `v1/event_reports` (reports about events; room and
//! user reports are announced in the admin room and kept, but Synapse lists only these).

use std::sync::Arc;

use serde_json::{Value, json};

use super::endpoints::*;
use super::users::require_admin;
use crate::api::Ruma;
use crate::api::router::RawJson;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::reports::Report;

fn report_id(text: &str) -> Result<u64> {
    text.parse()
        .map_err(|_| Error::invalid_param("The report ID must be a positive integer"))
}

/// Synapse's report object; `details` adds the reported event.
fn report_json(services: &Services, report: &Report, details: bool) -> Result<Value> {
    let room = report.room_id.as_deref();
    let summary = room
        .filter(|room| services.rooms.exists(room).unwrap_or(false))
        .map(|room| services.rooms.summary(room))
        .transpose()?;
    let mut out = json!({
        "id": report.id,
        "received_ts": report.received_ts,
        "room_id": report.room_id,
        "event_id": report.event_id,
        "user_id": report.user_id,
        "reason": report.reason,
        "score": null,
        "sender": report.target_user_id,
        "name": summary.as_ref().and_then(|s| s.name.clone()),
        "canonical_alias": summary.as_ref().and_then(|s| s.canonical_alias.clone()),
    });
    if details
        && let Some(event_id) = &report.event_id
        && let Some(json) = services.rooms.get_pdu_json(event_id)?
    {
        out["event_json"] = serde_json::from_slice(&json)?;
    }
    Ok(out)
}

pub async fn list(
    services: Arc<Services>,
    request: Ruma<event_reports::Request>,
) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let query = &request.body;
    let (from, limit) = super::paging(query.from.as_deref(), query.limit)?;
    let mut reports: Vec<Report> = services
        .reports
        .all()?
        .into_iter()
        .filter(|report| report.event_id.is_some())
        .filter(|report| {
            query
                .room_id
                .as_deref()
                .is_none_or(|room| report.room_id.as_deref().map(|r| r.as_str()) == Some(room))
        })
        .filter(|report| {
            query
                .user_id
                .as_deref()
                .is_none_or(|user| report.user_id.as_str() == user)
        })
        .collect();
    // Newest first unless `dir=f`, as Synapse.
    match query.dir.as_deref() {
        None | Some("b") => reports.reverse(),
        Some("f") => {}
        Some(_) => return Err(Error::invalid_param("Unknown direction: use f or b")),
    }
    let total = reports.len();
    let page = reports
        .iter()
        .skip(from)
        .take(limit)
        .map(|report| report_json(&services, report, false))
        .collect::<Result<Vec<_>>>()?;
    let mut answer = json!({ "event_reports": page, "total": total });
    if from + limit < total {
        answer["next_token"] = json!(from + limit);
    }
    Ok(RawJson(answer))
}

pub async fn get(services: Arc<Services>, request: Ruma<event_report::Request>) -> Result<RawJson> {
    require_admin(&services, &request)?;
    let report = services
        .reports
        .get(report_id(&request.body.report_id)?)?
        .filter(|report| report.event_id.is_some())
        .ok_or_else(|| Error::not_found("Event report not found"))?;
    Ok(RawJson(report_json(&services, &report, true)?))
}

pub async fn delete(
    services: Arc<Services>,
    request: Ruma<delete_event_report::Request>,
) -> Result<RawJson> {
    let admin = require_admin(&services, &request)?;
    let id = report_id(&request.body.report_id)?;
    let removed = services.reports.remove(id)?;
    crate::admin::record_api_call(
        &services,
        &admin,
        request.client_ip,
        format!("DELETE /_synapse/admin/v1/event_reports/{id}"),
        removed,
    );
    if !removed {
        return Err(Error::not_found("Event report not found"));
    }
    Ok(RawJson(json!({})))
}
