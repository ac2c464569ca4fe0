//! What other servers ask before anything else: who we are and which keys sign our events.

use std::sync::Arc;

use ruma::api::federation::discovery::{get_server_keys, get_server_version};
use ruma::serde::Raw;

use crate::api::Ruma;
use crate::error::{Error, Result};
use crate::service::Services;

/// `GET /_matrix/key/v2/server`: our verify keys, signed by themselves.
pub async fn server_keys(
    services: Arc<Services>,
    _: Ruma<get_server_keys::v2::Request>,
) -> Result<get_server_keys::v2::Response> {
    let keys = services
        .server_keys
        .published_keys(services.server_name())?;
    let raw = serde_json::value::to_raw_value(&keys).map_err(Error::internal)?;
    Ok(get_server_keys::v2::Response::new(Raw::from_json(raw)))
}

/// `GET /_matrix/federation/v1/version`.
pub async fn server_version(
    _: Arc<Services>,
    _: Ruma<get_server_version::v1::Request>,
) -> Result<get_server_version::v1::Response> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Conclave".to_owned());
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = get_server_version::v1::Response::new();
    response.server = Some(server);
    Ok(response)
}
