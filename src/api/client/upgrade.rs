//! `POST /rooms/{roomId}/upgrade` (the rules live in [`crate::service::rooms::upgrade`]).

use std::sync::Arc;

use ruma::api::client::room::upgrade_room;

use crate::api::Ruma;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::upgrade::upgrade_room as upgrade_room_service;

pub async fn upgrade(
    services: Arc<Services>,
    request: Ruma<upgrade_room::v3::Request>,
) -> Result<upgrade_room::v3::Response> {
    let body = &request.body;
    let new_room = upgrade_room_service(
        &services,
        request.user()?,
        &body.room_id,
        &body.new_version,
        &body.additional_creators,
    )
    .await?;
    Ok(upgrade_room::v3::Response::new(new_room))
}
