//! Reporting content, rooms and users to the server's administrators: stored, and announced in
//! the admin room.

use std::sync::Arc;

use ruma::api::client::reporting::report_user;
use ruma::api::client::room::{report_content, report_room};

use crate::api::Ruma;
use crate::config::RateLimit;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::now_millis;
use crate::service::reports::Report;
use crate::service::rooms::pdu::PduEvent;

/// Reports per user: enough for anyone reporting in good faith, not enough to flood the
/// administrators.
const REPORTS: RateLimit = RateLimit {
    per_second: 0.1,
    burst: 10,
};

async fn file(services: &Services, report: Report, about: String) -> Result<()> {
    services
        .rate_limit
        .check(format!("report:{}", report.user_id), &REPORTS)?;
    let report = services.reports.add(report)?;
    let reason = report.reason.as_deref().unwrap_or("(no reason given)");
    let text = format!(
        "New report #{} from `{}` about {about}: {reason}",
        report.id, report.user_id
    );
    if let Err(error) = crate::admin::announce(services, &text).await {
        tracing::warn!(%error, "cannot announce a report in the admin room");
    }
    Ok(())
}

pub async fn report_event(
    services: Arc<Services>,
    request: Ruma<report_content::v3::Request>,
) -> Result<report_content::v3::Response> {
    let user = request.user()?;
    let body = &request.body;
    // As Synapse: an event the reporter cannot see is not found.
    let not_found = || Error::not_found("Unable to find event");
    let json = services
        .rooms
        .get_pdu_json(&body.event_id)?
        .ok_or_else(not_found)?;
    let pdu = PduEvent::from_json(&json)?;
    if pdu.room_id.as_deref() != Some(&*body.room_id)
        || !services
            .rooms
            .visibility(user, &body.room_id)?
            .can_see(&pdu.event_id)?
    {
        return Err(not_found());
    }
    let report = Report {
        id: 0,
        received_ts: now_millis(),
        user_id: user.to_owned(),
        room_id: Some(body.room_id.clone()),
        event_id: Some(body.event_id.clone()),
        target_user_id: Some(pdu.sender.clone()),
        reason: body.reason.clone(),
    };
    let about = format!(
        "event `{}` by `{}` in `{}`",
        body.event_id, pdu.sender, body.room_id
    );
    file(&services, report, about).await?;
    Ok(report_content::v3::Response::new())
}

pub async fn report_a_room(
    services: Arc<Services>,
    request: Ruma<report_room::v3::Request>,
) -> Result<report_room::v3::Response> {
    let user = request.user()?;
    let body = &request.body;
    if !services.rooms.exists(&body.room_id)? {
        return Err(Error::not_found("Room not found"));
    }
    let report = Report {
        id: 0,
        received_ts: now_millis(),
        user_id: user.to_owned(),
        room_id: Some(body.room_id.clone()),
        event_id: None,
        target_user_id: None,
        reason: Some(body.reason.clone()).filter(|r| !r.is_empty()),
    };
    file(&services, report, format!("room `{}`", body.room_id)).await?;
    Ok(report_room::v3::Response::new())
}

pub async fn report_a_user(
    services: Arc<Services>,
    request: Ruma<report_user::v3::Request>,
) -> Result<report_user::v3::Response> {
    let user = request.user()?;
    let body = &request.body;
    if body.user_id.server_name() == services.server_name()
        && !services.users.exists(&body.user_id)?
    {
        return Err(Error::not_found("User not found"));
    }
    let report = Report {
        id: 0,
        received_ts: now_millis(),
        user_id: user.to_owned(),
        room_id: None,
        event_id: None,
        target_user_id: Some(body.user_id.clone()),
        reason: Some(body.reason.clone()).filter(|r| !r.is_empty()),
    };
    file(&services, report, format!("user `{}`", body.user_id)).await?;
    Ok(report_user::v3::Response::new())
}
