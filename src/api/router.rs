//! The router: every endpoint registered under all paths its ruma metadata lists, plus the
//! layers every request passes (Matrix error bodies, catch-panic, tracing span, CORS) and the
//! spec's answers for unknown routes. [`table`] lists what is registered, so tests can walk every route.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bytes::BytesMut;
use http::{Method, StatusCode, header};
use ruma::api::{
    IncomingRequest, OutgoingResponse, OutgoingResponseExt, path_builder::PathBuilder,
};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{self, CorsLayer};
use tower_http::trace::TraceLayer;

use super::ruma_wrapper::{AuthSchemeKind, Ruma, locked_may_call, parse, prepare};
use super::{body, client, synapse_admin};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// The router under construction, with the table of what it serves.
pub struct Routes {
    router: Router<Arc<Services>>,
    table: Vec<Route>,
}

/// One method on one path, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// axum's template: `{name}` for a segment.
    pub path: String,
}

/// What an endpoint's requests are held to beyond its ruma metadata, fixed at registration.
#[derive(Debug, Clone, Copy)]
struct Policy {
    body: body::Rule,
    /// A locked account may call it (logout).
    allow_locked: bool,
}

/// What a handler may return.
pub trait HandlerOutput {
    fn into_http(self) -> Response;
}

impl<T: OutgoingResponse> HandlerOutput for T {
    fn into_http(self) -> Response {
        match self.try_into_http_response::<BytesMut>() {
            Ok(response) => response.map(|body| axum::body::Body::from(body.freeze())),
            Err(error) => {
                Error::internal(format!("response serialization failed: {error}")).into_response()
            }
        }
    }
}

/// A JSON body sent as it is, with status 200.
pub struct RawJson(pub serde_json::Value);

impl HandlerOutput for RawJson {
    fn into_http(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body sent as it is, with status 201 (Synapse's answer when a PUT created something).
pub struct CreatedJson(pub serde_json::Value);

impl HandlerOutput for CreatedJson {
    fn into_http(self) -> Response {
        (StatusCode::CREATED, axum::Json(self.0)).into_response()
    }
}

/// A JSON answer of any serialisable type, written straight to the body (a large answer
/// assembled from pre-rendered parts, like /sync's).
pub struct JsonBody<T>(pub T);

impl<T: serde::Serialize> HandlerOutput for JsonBody<T> {
    fn into_http(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl Routes {
    fn new() -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Registers a ruma-typed `handler` under every path of `Req`. Handlers return ruma's
    /// typed response, or [`RawJson`] where ruma's serialisation omits something clients
    /// rely on.
    pub fn ruma<Req, Out, F, Fut>(mut self, handler: F) -> Self
    where
        Req: IncomingRequest + Send + 'static,
        Req::Authentication: AuthSchemeKind,
        Out: HandlerOutput + 'static,
        F: Fn(Arc<Services>, Ruma<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Out>> + Send + 'static,
    {
        let policy = Policy {
            body: body::Rule::of::<Req>(),
            allow_locked: locked_may_call::<Req>(),
        };
        let mut paths: Vec<(String, bool)> = Vec::new();
        for path in Req::PATH_BUILDER.all_paths() {
            // An empty trailing state key has no segment of its own: `/state/m.room.name/` and
            // `/state/m.room.name` mean state key "". Route both to the same handler.
            if let Some(prefix) = path.strip_suffix("/{state_key}") {
                paths.push((prefix.to_owned(), true));
                paths.push((format!("{prefix}/"), true));
            }
            paths.push((path.to_owned(), false));
        }
        paths.dedup();
        for (path, empty_state_key) in paths {
            let handler = handler.clone();
            let method_router = on(
                method_filter(&Req::METHOD),
                move |State(services): State<Arc<Services>>,
                      params: Result<RawPathParams, RawPathParamsRejection>,
                      request: axum::extract::Request| {
                    // Path segments that are not valid percent-encoded UTF-8 fail here.
                    let args: Option<Vec<String>> = params.ok().map(|params| {
                        let mut args: Vec<String> =
                            params.iter().map(|(_, value)| value.to_owned()).collect();
                        if empty_state_key {
                            args.push(String::new());
                        }
                        args
                    });
                    call::<Req, Out, F, Fut>(handler.clone(), services, args, request, policy)
                },
            );
            self = self.route(Req::METHOD, &path, method_router);
        }
        self
    }

    /// Registers a plain axum handler (streamed media, `.well-known`).
    pub fn on<H, T>(self, method: Method, path: &str, handler: H) -> Self
    where
        H: Handler<T, Arc<Services>>,
        T: 'static,
    {
        let method_router = on(method_filter(&method), handler);
        self.route(method, path, method_router)
    }

    fn route(
        mut self,
        method: Method,
        path: &str,
        method_router: MethodRouter<Arc<Services>>,
    ) -> Self {
        self.router = self.router.route(path, method_router);
        self.table.push(Route {
            method,
            path: path.to_owned(),
        });
        self
    }
}

async fn call<Req, Out, F, Fut>(
    handler: F,
    services: Arc<Services>,
    args: Option<Vec<String>>,
    request: axum::extract::Request,
    policy: Policy,
) -> Response
where
    Req: IncomingRequest,
    Req::Authentication: AuthSchemeKind,
    Out: HandlerOutput,
    F: Fn(Arc<Services>, Ruma<Req>) -> Fut,
    Fut: Future<Output = Result<Out>>,
{
    let prepared = match prepare(
        &services,
        request,
        <Req::Authentication as AuthSchemeKind>::KIND,
        policy.allow_locked,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let Some(args) = args else {
        return Error::invalid_param("Invalid path parameter").into_response();
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let body = match parse::<Req>(prepared.parts, &prepared.body, &args, policy.body) {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    // Held until the answer is made: the origin's turn among its requests.
    let _origin_turn = prepared.origin_turn;
    let request = Ruma {
        body,
        sender_user: prepared.sender_user,
        sender_device: prepared.sender_device,
        origin: prepared.origin,
        client_ip: prepared.client_ip,
        appservice: prepared.appservice,
    };
    match handler(services, request).await {
        Ok(response) => response.into_http(),
        Err(error) => error.into_response(),
    }
}

fn method_filter(method: &Method) -> MethodFilter {
    match *method {
        Method::GET => MethodFilter::GET,
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        Method::PATCH => MethodFilter::PATCH,
        Method::HEAD => MethodFilter::HEAD,
        _ => MethodFilter::OPTIONS,
    }
}

/// The whole application: routes, fallbacks and layers.
pub fn build(services: Arc<Services>) -> Router {
    let router = synapse_admin::routes(client::routes(Routes::new()))
        .router
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&services));
    layers(super::metrics::count_requests(router, &services))
}

/// The federation listener's application: the Server-Server API only.
pub fn build_federation(services: Arc<Services>) -> Router {
    let router = super::federation::routes(Routes::new())
        .router
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&services));
    layers(super::metrics::count_requests(router, &services))
}

/// Every method and path the application serves, for tests that walk all of them.
pub fn table() -> Vec<Route> {
    synapse_admin::routes(client::routes(Routes::new())).table
}

/// The layers every request passes, outermost last: every failure answered with a Matrix
/// error body, a panic answered as a 500 inside the request's span, the span itself, CORS.
pub fn layers(router: Router) -> Router {
    let request_ids = Arc::new(AtomicU64::new(0));
    router
        .layer(axum::middleware::map_response(matrix_error_body))
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(
            TraceLayer::new_for_http().make_span_with(move |request: &http::Request<_>| {
                let id = request_ids.fetch_add(1, Ordering::Relaxed);
                // The path only: the query may carry an access token.
                // `user`/`appservice` (or `origin` for a server) are filled in once the
                // request is authenticated.
                tracing::info_span!(
                    "request",
                    id,
                    method = %request.method(),
                    path = %request.uri().path(),
                    user = tracing::field::Empty,
                    appservice = tracing::field::Empty,
                    origin = tracing::field::Empty,
                )
            }),
        )
        .layer(cors())
}

/// Turns a failure answered in plain text into the spec's error body. Only axum's own
/// rejections answer so (a path segment of the plain routes that is not UTF-8, say); clients
/// read `errcode` from every failure.
async fn matrix_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::Unrecognized,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        status if status.is_server_error() => ErrorCode::Unknown,
        _ => ErrorCode::InvalidParam,
    };
    let text = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("Request failed")
            .to_owned()
    } else {
        text
    };
    Error::with_status(code, status, message).into_response()
}

/// A handler that panicked: logged, and answered as the spec's internal error instead of a
/// dropped connection.
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    // Logged (in the request's span) by the internal error's answer.
    Error::internal(format!("request handler panicked: {message}")).into_response()
}

/// Element Web calls from another origin; the spec asks for these headers on every response.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(cors::Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            http::HeaderName::from_static("x-requested-with"),
        ])
}

async fn unrecognized() -> Response {
    Error::new(ErrorCode::Unrecognized, "Unrecognized request").into_response()
}

async fn method_not_allowed() -> Response {
    Error::with_status(
        ErrorCode::Unrecognized,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed for this endpoint",
    )
    .into_response()
}
