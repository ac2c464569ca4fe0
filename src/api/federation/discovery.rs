//! What other servers ask before anything else: who we are and which keys sign our events.

use std::sync::Arc;

use ruma::api::federation::discovery::{
    get_remote_server_keys, get_remote_server_keys_batch, get_server_keys, get_server_version,
};
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

/// Most servers one notary query may ask about: each may need a fetch from that server.
const MAX_NOTARY_SERVERS: usize = 20;

fn raw_documents(
    documents: Vec<ruma::CanonicalJsonObject>,
) -> Result<Vec<Raw<ruma::api::federation::discovery::ServerSigningKeys>>> {
    documents
        .into_iter()
        .map(|document| {
            serde_json::value::to_raw_value(&document)
                .map(Raw::from_json)
                .map_err(Error::internal)
        })
        .collect()
}

/// `GET /_matrix/key/v2/query/{serverName}`: a server's keys, vouched for by this server.
pub async fn notary_query(
    services: Arc<Services>,
    request: Ruma<get_remote_server_keys::v2::Request>,
) -> Result<get_remote_server_keys::v2::Response> {
    let body = &request.body;
    let minimum = u64::from(body.minimum_valid_until_ts.get());
    let documents = services
        .server_keys
        .notary_documents(
            &services.federation,
            services.server_name(),
            &body.server_name,
            minimum,
        )
        .await?;
    Ok(get_remote_server_keys::v2::Response::new(raw_documents(
        documents,
    )?))
}

/// `POST /_matrix/key/v2/query`: several servers' keys, vouched for by this server.
pub async fn notary_query_batch(
    services: Arc<Services>,
    request: Ruma<get_remote_server_keys_batch::v2::Request>,
) -> Result<get_remote_server_keys_batch::v2::Response> {
    let wanted = &request.body.server_keys;
    if wanted.len() > MAX_NOTARY_SERVERS {
        return Err(Error::invalid_param(format!(
            "Ask about at most {MAX_NOTARY_SERVERS} servers at once"
        )));
    }
    let now = crate::service::now_millis();
    let mut documents = Vec::new();
    for (server, keys) in wanted {
        let minimum = keys
            .values()
            .filter_map(|criteria| criteria.minimum_valid_until_ts)
            .map(|ts| u64::from(ts.get()))
            .max()
            .unwrap_or(now);
        documents.extend(
            services
                .server_keys
                .notary_documents(
                    &services.federation,
                    services.server_name(),
                    server,
                    minimum,
                )
                .await?,
        );
    }
    Ok(get_remote_server_keys_batch::v2::Response::new(
        raw_documents(documents)?,
    ))
}
