//! Request authentication between servers (spec: "Request Authentication"): every request to
//! an endpoint that needs it carries `Authorization: X-Matrix origin=…,destination=…,key=…,
//! sig=…`, a signature by the origin's key over the method, URI, both server names and the
//! body. The origin's key is fetched from the origin (and cached) to check it.

use http::request::Parts;
use ruma::OwnedServerName;
use ruma::api::federation::authentication::XMatrix;
use ruma::serde::Base64;
use ruma::signatures::{PublicKeyMap, PublicKeySet};

use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

fn unauthorized(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorCode::Unauthorized, message)
}

/// The server that signed this request, once its signature is checked.
pub async fn verify(services: &Services, parts: &Parts, body: &[u8]) -> Result<OwnedServerName> {
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("Missing X-Matrix Authorization header"))?;
    let x_matrix = XMatrix::try_from(header)
        .map_err(|e| unauthorized(format!("Invalid X-Matrix Authorization header: {e}")))?;
    let ours = services.server_name();
    if x_matrix.destination.as_deref().is_some_and(|d| d != ours) {
        return Err(unauthorized("The request is addressed to another server"));
    }
    if x_matrix.origin == *ours {
        return Err(unauthorized(
            "Requests from this server's own name are refused",
        ));
    }
    // A server the partner policy excludes is refused before any work (no key fetch).
    services.federation.partners().check(&x_matrix.origin)?;
    let key = services
        .server_keys
        .remote_key(
            &services.federation,
            &x_matrix.origin,
            x_matrix.key.as_str(),
            crate::service::now_millis(),
        )
        .await
        .map_err(|e| {
            tracing::info!(origin = %x_matrix.origin, error = %e, "cannot get the key of a request's origin");
            unauthorized(format!(
                "Cannot check the signature: the key {} of {} is not available",
                x_matrix.key, x_matrix.origin
            ))
        })?
        .ok_or_else(|| {
            unauthorized(format!(
                "{} has no valid key {}",
                x_matrix.origin, x_matrix.key
            ))
        })?;
    let public = Base64::parse(&key.key)
        .map_err(|_| Error::Database("cached server key is not base64".into()))?;
    let map = PublicKeyMap::from([(
        x_matrix.origin.to_string(),
        PublicKeySet::from([(x_matrix.key.to_string(), public)]),
    )]);
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let request = http::Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(body)
        .map_err(Error::internal)?;
    x_matrix
        .verify_http_request(&request, ours, &map)
        .map_err(|e| unauthorized(format!("Invalid request signature: {e}")))?;
    // Counted once the origin is proven, so that nobody can spend a partner's share.
    services.rate_limit.check(
        format!("federation:{}", x_matrix.origin),
        &services.config.federation.rate_limit,
    )?;
    Ok(x_matrix.origin)
}
