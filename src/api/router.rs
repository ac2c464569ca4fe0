//! The router: every endpoint registered under all paths its ruma metadata lists, plus the
//! layers every request passes (CORS, tracing span) and the spec's answers for unknown routes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use bytes::BytesMut;
use http::{Method, StatusCode, header};
use ruma::api::{
    IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt,
    path_builder::PathBuilder,
};
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

use super::client;
use super::ruma_wrapper::{AuthSchemeKind, Ruma, parse_error, prepare};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

pub type AppRouter = Router<Arc<Services>>;

/// Registration of ruma-typed handlers.
pub trait RumaRouter {
    /// Registers `handler` under every path of `Req`. Handlers return ruma's typed response,
    /// or [`RawJson`] where ruma's serialisation omits something clients rely on.
    fn ruma<Req, Out, F, Fut>(self, handler: F) -> Self
    where
        Req: IncomingRequest + Send + 'static,
        Req::Authentication: AuthSchemeKind,
        Out: HandlerOutput + 'static,
        F: Fn(Arc<Services>, Ruma<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Out>> + Send + 'static;
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

/// A JSON answer of any serialisable type, written straight to the body (a large answer
/// assembled from pre-rendered parts, like /sync's).
pub struct JsonBody<T>(pub T);

impl<T: serde::Serialize> HandlerOutput for JsonBody<T> {
    fn into_http(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl RumaRouter for AppRouter {
    fn ruma<Req, Out, F, Fut>(mut self, handler: F) -> Self
    where
        Req: IncomingRequest + Send + 'static,
        Req::Authentication: AuthSchemeKind,
        Out: HandlerOutput + 'static,
        F: Fn(Arc<Services>, Ruma<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Out>> + Send + 'static,
    {
        let filter = method_filter(&Req::METHOD);
        let mut routes: Vec<(String, bool)> = Vec::new();
        for path in Req::PATH_BUILDER.all_paths() {
            // An empty trailing state key has no segment of its own: `/state/m.room.name/` and
            // `/state/m.room.name` mean state key "". Route both to the same handler.
            if let Some(prefix) = path.strip_suffix("/{state_key}") {
                routes.push((prefix.to_owned(), true));
                routes.push((format!("{prefix}/"), true));
            }
            routes.push((path.to_owned(), false));
        }
        routes.dedup();
        for (path, empty_state_key) in routes {
            let handler = handler.clone();
            self = self.route(
                &path,
                on(
                    filter,
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
                        call::<Req, Out, F, Fut>(handler.clone(), services, args, request)
                    },
                ),
            );
        }
        self
    }
}

async fn call<Req, Out, F, Fut>(
    handler: F,
    services: Arc<Services>,
    args: Option<Vec<String>>,
    request: axum::extract::Request,
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
    let http_request = http::Request::from_parts(prepared.parts, prepared.body.as_ref());
    let body = match Req::try_from_http_request(http_request, &args) {
        Ok(body) => body,
        Err(error) => return parse_error(error, &prepared.body).into_response(),
    };
    let request = Ruma {
        body,
        sender_user: prepared.sender_user,
        sender_device: prepared.sender_device,
        client_ip: prepared.client_ip,
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
    let request_ids = Arc::new(AtomicU64::new(0));
    let router = client::routes(Router::new())
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services);
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(move |request: &http::Request<_>| {
                let id = request_ids.fetch_add(1, Ordering::Relaxed);
                // The path only: the query may carry an access token.
                tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(cors())
}

/// Element Web calls from another origin; the spec asks for these headers on every response.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
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
