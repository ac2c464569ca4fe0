//! `POST /createRoom`.

use std::sync::Arc;

use ruma::api::client::room::create_room;

use crate::api::Ruma;
use crate::error::Result;
use crate::service::Services;
use crate::service::rooms::creation;

pub async fn create_room(
    services: Arc<Services>,
    request: Ruma<create_room::v3::Request>,
) -> Result<create_room::v3::Response> {
    let room_id = creation::create_room(&services, request.user()?, &request.body).await?;
    Ok(create_room::v3::Response::new(room_id))
}
