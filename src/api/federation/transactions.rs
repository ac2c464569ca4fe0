//! `PUT /_matrix/federation/v1/send/{txnId}`: PDUs and EDUs another server pushes to us.

use std::sync::Arc;

use ruma::api::federation::transactions::send_transaction_message;

use crate::api::Ruma;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::federation::inbound;

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

pub async fn send(
    services: Arc<Services>,
    request: Ruma<send_transaction_message::v1::Request>,
) -> Result<send_transaction_message::v1::Response> {
    let origin = request.origin()?.to_owned();
    let body = &request.body;
    if body.origin != origin {
        return Err(Error::forbidden(
            "The transaction's origin is not the server that signed the request",
        ));
    }
    if body.pdus.len() > MAX_PDUS || body.edus.len() > MAX_EDUS {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"),
        ));
    }
    let results = inbound::handle_transaction(
        &services,
        &origin,
        body.transaction_id.as_str(),
        &body.pdus,
        &body.edus,
    )
    .await;
    Ok(send_transaction_message::v1::Response::new(results))
}
