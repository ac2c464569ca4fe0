//! `Ruma<T>`: a request of a ruma endpoint type, parsed from path, query and body and
//! authenticated according to the endpoint's auth scheme.
//!
//! The work that does not depend on the endpoint (reading the body under the size limit,
//! resolving the access token, finding the client IP) is done by non-generic code, so each
//! endpoint adds only its own parsing to the binary.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::Method;
use http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ruma::api::auth_scheme::{
    AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken,
    NoAuthentication,
};
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::{IncomingRequest, IncomingRequestExt};
use ruma::{DeviceId, OwnedDeviceId, OwnedServerName, OwnedUserId, ServerName, UserId};

use super::body::{self, Shape};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::appservice::Appservice;
use crate::service::users::TokenLookup;

/// How an endpoint authenticates its caller, as a value the shared code can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    AccessToken,
    AccessTokenOptional,
    AppserviceToken,
    AppserviceTokenOptional,
    /// Another server's signed request (`X-Matrix`).
    ServerSignatures,
}

/// Maps ruma's auth scheme types to [`AuthKind`].
pub trait AuthSchemeKind {
    const KIND: AuthKind;
}

impl AuthSchemeKind for NoAuthentication {
    const KIND: AuthKind = AuthKind::None;
}
impl AuthSchemeKind for NoAccessToken {
    const KIND: AuthKind = AuthKind::None;
}
impl AuthSchemeKind for AccessToken {
    const KIND: AuthKind = AuthKind::AccessToken;
}
impl AuthSchemeKind for AccessTokenOptional {
    const KIND: AuthKind = AuthKind::AccessTokenOptional;
}
impl AuthSchemeKind for AppserviceToken {
    const KIND: AuthKind = AuthKind::AppserviceToken;
}
/// Only application services send a token to these endpoints (login, register).
impl AuthSchemeKind for AppserviceTokenOptional {
    const KIND: AuthKind = AuthKind::AppserviceTokenOptional;
}

impl AuthSchemeKind for ruma::api::federation::authentication::ServerSignatures {
    const KIND: AuthKind = AuthKind::ServerSignatures;
}

/// A parsed, authenticated request.
pub struct Ruma<T> {
    pub body: T,
    pub sender_user: Option<OwnedUserId>,
    pub sender_device: Option<OwnedDeviceId>,
    /// The server that signed a federation request.
    pub origin: Option<OwnedServerName>,
    pub client_ip: IpAddr,
    /// The application service whose token authenticated the request.
    pub appservice: Option<Arc<Appservice>>,
}

impl<T> Ruma<T> {
    /// Whose transaction IDs these are: the device's, or for an application service acting
    /// without one (most do), the service's own scope.
    pub fn txn_device(&self) -> Result<std::borrow::Cow<'_, DeviceId>> {
        match (&self.sender_device, &self.appservice) {
            (Some(device), _) => Ok(std::borrow::Cow::Borrowed(&**device)),
            (None, Some(service)) => Ok(std::borrow::Cow::Owned(
                format!("\u{1}appservice:{}", service.id()).into(),
            )),
            (None, None) => Err(Error::new(ErrorCode::MissingToken, "Missing access token")),
        }
    }

    /// The authenticated user; endpoints requiring a token always have one.
    pub fn user(&self) -> Result<&UserId> {
        self.sender_user
            .as_deref()
            .ok_or_else(|| Error::new(ErrorCode::MissingToken, "Missing access token"))
    }

    /// The server a federation request came from (its signature checked).
    pub fn origin(&self) -> Result<&ServerName> {
        self.origin
            .as_deref()
            .ok_or_else(|| Error::new(ErrorCode::Unauthorized, "Missing request signature"))
    }

    pub fn device(&self) -> Result<&DeviceId> {
        match (&self.sender_device, &self.appservice) {
            (Some(device), _) => Ok(device),
            (None, Some(_)) => Err(Error::new(
                ErrorCode::Unknown,
                "This needs a device: pass device_id with the application service's token",
            )
            .with_bad_request()),
            (None, None) => Err(Error::new(ErrorCode::MissingToken, "Missing access token")),
        }
    }
}

/// The endpoint-independent part of a request, ready for ruma to parse.
pub struct Prepared {
    pub parts: Parts,
    pub body: Bytes,
    pub sender_user: Option<OwnedUserId>,
    pub sender_device: Option<OwnedDeviceId>,
    pub origin: Option<OwnedServerName>,
    pub client_ip: IpAddr,
    pub appservice: Option<Arc<Appservice>>,
    /// The origin server's turn among its requests running at once (held until answered).
    pub origin_turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Endpoints a locked account may still call: logging out (MSC3939).
pub fn locked_may_call<Req: 'static>() -> bool {
    use ruma::api::client::session::{logout, logout_all};
    let id = std::any::TypeId::of::<Req>();
    id == std::any::TypeId::of::<logout::v3::Request>()
        || id == std::any::TypeId::of::<logout_all::v3::Request>()
}

/// Reads the body (within `max_request_size`) and authenticates the caller.
pub async fn prepare(
    services: &Services,
    request: axum::extract::Request,
    auth: AuthKind,
    allow_locked: bool,
) -> Result<Prepared> {
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(services.config.max_request_size).unwrap_or(usize::MAX);
    let too_large = || Error::new(ErrorCode::TooLarge, "Request body is too large");
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > services.config.max_request_size) {
        return Err(too_large());
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(_) => {
            return Err(Error::with_status(
                ErrorCode::Unknown,
                http::StatusCode::BAD_REQUEST,
                "Could not read the request body",
            ));
        }
    };

    let client_ip = client_ip(services, &parts);
    let (origin, origin_turn) = match auth {
        AuthKind::ServerSignatures => {
            let origin = super::server_auth::verify(services, &parts, &body).await?;
            tracing::Span::current().record("origin", origin.as_str());
            let turn = services.origin_limits.admit(&origin).await;
            (Some(origin), Some(turn))
        }
        _ => (None, None),
    };
    let token = match auth {
        AuthKind::None | AuthKind::ServerSignatures => None,
        _ => access_token(&parts)?,
    };
    let is_appservice = |token: &str| services.appservices.by_token(token).is_some();
    let caller = match (auth, token) {
        (AuthKind::None | AuthKind::ServerSignatures, _) => Caller::default(),
        // As Synapse: a user's token is no application service's.
        (AuthKind::AppserviceToken, Some(token)) if !is_appservice(&token) => {
            return Err(Error::forbidden(
                "Only application services may call this endpoint",
            ));
        }
        // Login and registration: only an application service's token means something.
        (AuthKind::AppserviceTokenOptional, Some(token)) if !is_appservice(&token) => {
            Caller::default()
        }
        (_, Some(token)) => {
            // Registering names a user that does not exist yet (mautrix masquerades as it).
            let registered = auth != AuthKind::AppserviceTokenOptional;
            resolve_caller(
                services,
                &parts,
                &token,
                client_ip,
                allow_locked,
                registered,
            )?
        }
        (AuthKind::AccessTokenOptional | AuthKind::AppserviceTokenOptional, None) => {
            Caller::default()
        }
        (_, None) => return Err(Error::new(ErrorCode::MissingToken, "Missing access token")),
    };
    Ok(Prepared {
        parts,
        body,
        sender_user: caller.user,
        sender_device: caller.device,
        origin,
        client_ip,
        appservice: caller.appservice,
        origin_turn,
    })
}

/// Who a token belongs to.
#[derive(Default)]
struct Caller {
    user: Option<OwnedUserId>,
    device: Option<OwnedDeviceId>,
    appservice: Option<Arc<Appservice>>,
}

/// A user's access token, or an application service's: the service acts as its own user, or
/// as the user its `user_id` parameter names (inside its namespace, registered already),
/// with that user's device when `device_id` names one (MSC3202/MSC4326).
fn resolve_caller(
    services: &Services,
    parts: &Parts,
    token: &str,
    ip: IpAddr,
    allow_locked: bool,
    registered: bool,
) -> Result<Caller> {
    let caller = caller_of_token(services, parts, token, ip, allow_locked, registered)?;
    // The request's span (router::layers) names who made it, for every log line inside it.
    let span = tracing::Span::current();
    if let Some(user) = &caller.user {
        span.record("user", user.as_str());
    }
    if let Some(service) = &caller.appservice {
        span.record("appservice", service.id());
    }
    Ok(caller)
}

fn caller_of_token(
    services: &Services,
    parts: &Parts,
    token: &str,
    ip: IpAddr,
    allow_locked: bool,
    registered: bool,
) -> Result<Caller> {
    let Some(service) = services.appservices.by_token(token) else {
        let (user, device) = resolve_token(services, token, ip, allow_locked)?;
        return Ok(Caller {
            user: Some(user),
            device: Some(device),
            appservice: None,
        });
    };
    let user = match query_param(parts, "user_id") {
        None => service.sender.clone(),
        Some(text) => {
            let user = UserId::parse(text.as_str())
                .map_err(|_| Error::invalid_param(format!("user_id {text:?} is not a user ID")))?;
            if user.server_name() != services.server_name() || !service.may_act_as(&user) {
                return Err(Error::forbidden(
                    "The application service cannot act as users outside its namespace",
                ));
            }
            if registered && !services.users.exists(&user)? {
                return Err(Error::forbidden(format!(
                    "The application service has not registered {user}"
                )));
            }
            user
        }
    };
    let device = match query_param(parts, "device_id")
        .or_else(|| query_param(parts, "org.matrix.msc3202.device_id"))
    {
        None => None,
        Some(device) => {
            let device = OwnedDeviceId::from(device);
            if services.users.device(&user, &device)?.is_none() {
                return Err(Error::forbidden(format!("{user} has no device {device}")));
            }
            Some(device)
        }
    };
    Ok(Caller {
        user: Some(user),
        device,
        appservice: Some(service),
    })
}

/// A query string parameter, decoded.
fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        (key == name).then(|| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Authenticates a request handled outside [`Ruma`] (streaming media endpoints): the access
/// token is required.
pub fn authenticate(services: &Services, parts: &Parts) -> Result<OwnedUserId> {
    let ip = client_ip(services, parts);
    let token = access_token(parts)?
        .ok_or_else(|| Error::new(ErrorCode::MissingToken, "Missing access token"))?;
    let caller = resolve_caller(services, parts, &token, ip, false, true)?;
    caller
        .user
        .ok_or_else(|| Error::new(ErrorCode::MissingToken, "Missing access token"))
}

fn resolve_token(
    services: &Services,
    token: &str,
    ip: IpAddr,
    allow_locked: bool,
) -> Result<(OwnedUserId, OwnedDeviceId)> {
    match services.users.find_access_token(token, ip)? {
        TokenLookup::Valid { user_id, .. }
            if !allow_locked && services.users.is_locked(&user_id) =>
        {
            Err(Error::new(
                ErrorCode::UserLocked,
                "This account has been locked by an administrator",
            ))
        }
        TokenLookup::Valid { user_id, device_id } => Ok((user_id, device_id)),
        TokenLookup::Expired => Err(Error::new(
            ErrorCode::UnknownToken { soft_logout: true },
            "Access token has expired; refresh it",
        )),
        TokenLookup::Unknown => Err(Error::new(
            ErrorCode::UnknownToken { soft_logout: false },
            "Unknown access token",
        )),
    }
}

/// The token from `Authorization: Bearer`, or the deprecated `access_token` query parameter.
fn access_token(parts: &Parts) -> Result<Option<String>> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::MissingToken,
                    "The Authorization header must be 'Bearer <token>'",
                )
            })?;
        return Ok(Some(token.to_owned()));
    }
    let Some(query) = parts.uri.query() else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(raw) = pair.strip_prefix("access_token=") {
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            return Ok(Some(decoded.replace('+', " ")));
        }
    }
    Ok(None)
}

/// The peer address, or the left-most `X-Forwarded-For` entry when configured to trust a
/// reverse proxy (otherwise every client would share the proxy's rate limits).
fn client_ip(services: &Services, parts: &Parts) -> IpAddr {
    if services.config.trust_forwarded_for {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip())
}

/// Parses `Req` from the prepared request under the shared body rule ([`body`]).
///
/// `rule`: what the endpoint adds to the shared rule ([`body::Rule`]).
pub fn parse<Req: IncomingRequest>(
    parts: Parts,
    body: &[u8],
    path_args: &[&str],
    rule: body::Rule,
) -> Result<Req> {
    // Ruma reads no body for GET and HEAD: nothing to check.
    let shape = if parts.method == Method::GET || parts.method == Method::HEAD {
        Shape::Object
    } else {
        body::shape(body)
    };
    let body: &[u8] = match shape {
        Shape::Object => {
            if let Some(field) = rule.missing_string_field(body) {
                return Err(Error::bad_json(format!(
                    "Request body lacks the string field `{field}`"
                )));
            }
            body
        }
        irregular => {
            // Does this endpoint take a body at all? Ask its parser with one that cannot be
            // JSON: an endpoint without body fields never looks at it and parses fine.
            let probe = http::Request::from_parts(copy_parts(&parts), NOT_JSON.as_slice());
            match try_parse::<Req>(probe, path_args) {
                Ok(request) => return Ok(request),
                Err(Parsing::Other(error)) => return Err(error),
                Err(Parsing::Body(_)) => {}
            }
            match irregular {
                Shape::Empty if rule.empty_is_object => b"{}",
                Shape::Empty => {
                    return Err(Error::new(
                        ErrorCode::NotJson,
                        "Request body is empty; this endpoint expects a JSON object",
                    ));
                }
                Shape::NotJson => {
                    return Err(Error::new(
                        ErrorCode::NotJson,
                        "Request body is not valid JSON",
                    ));
                }
                Shape::NotObject | Shape::Object => {
                    return Err(Error::bad_json("Request body must be a JSON object"));
                }
            }
        }
    };
    Ok(try_parse(
        http::Request::from_parts(parts, body),
        path_args,
    )?)
}

/// A body no JSON parser accepts.
const NOT_JSON: [u8; 1] = [0xff];

/// Why ruma could not parse a request.
enum Parsing {
    /// The body has the wrong shape: `M_BAD_JSON`.
    Body(Error),
    /// A path segment, query parameter or header: `M_INVALID_PARAM`.
    Other(Error),
}

impl From<Parsing> for Error {
    fn from(parsing: Parsing) -> Self {
        match parsing {
            Parsing::Body(error) | Parsing::Other(error) => error,
        }
    }
}

/// Runs ruma's parser; a panic in it (some of its deserialisers index maps without checking)
/// is a malformed body, not a dropped connection.
fn try_parse<Req: IncomingRequest>(
    request: http::Request<&[u8]>,
    path_args: &[&str],
) -> std::result::Result<Req, Parsing> {
    let body = *request.body();
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Req::try_from_http_request(request, path_args)
    }));
    match parsed {
        Ok(Ok(request)) => Ok(request),
        Ok(Err(FromHttpRequestError::Deserialization(DeserializationError::Json(e)))) => {
            let message = match body::path_at(body, e.line(), e.column()) {
                Some(path) => format!("Request body has the wrong shape at `{path}`: {e}"),
                None => format!("Request body has the wrong shape: {e}"),
            };
            Err(Parsing::Body(Error::bad_json(message)))
        }
        Ok(Err(FromHttpRequestError::Deserialization(e))) => {
            Err(Parsing::Other(Error::invalid_param(e.to_string())))
        }
        Ok(Err(other)) => Err(Parsing::Other(Error::invalid_param(other.to_string()))),
        Err(_) => {
            tracing::warn!("the request parser panicked; answering M_BAD_JSON");
            Err(Parsing::Body(Error::bad_json(
                "Request body has the wrong shape: a required field is missing or has the wrong type",
            )))
        }
    }
}

/// Method, URI and headers of `parts`, for a second parse of the same request.
fn copy_parts(parts: &Parts) -> Parts {
    let mut request = http::Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}
