//! The metrics listener's application (`GET /metrics`, Prometheus' text format) and the layer
//! that counts every answered request by its route template.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};

use crate::service::Services;

/// Adds the request-counting layer when metrics are on.
pub fn count_requests(router: Router, services: &Arc<Services>) -> Router {
    if services.metrics.is_none() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(
        Arc::clone(services),
        record,
    ))
}

async fn record(State(services): State<Arc<Services>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // The template (`/rooms/{room_id}/send/…`), never the path itself: room and user IDs
    // would make a series per room, and unmatched paths one per scanner's guess.
    let endpoint = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    if let Some(metrics) = &services.metrics {
        metrics.observe_request(
            method,
            endpoint.as_ref().map_or("unmatched", MatchedPath::as_str),
            response.status(),
            started.elapsed(),
        );
    }
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The metrics listener: `/metrics` only.
pub fn router(services: Arc<Services>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(services)
}

async fn scrape(State(services): State<Arc<Services>>) -> Response {
    // Counting the queues reads the database: off the async workers.
    let rendered = tokio::task::spawn_blocking(move || {
        services
            .metrics
            .as_ref()
            .map(|metrics| metrics.render(&services))
    })
    .await;
    match rendered {
        Ok(Some(Ok(text))) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Ok(Some(Err(error))) => {
            tracing::error!(%error, "rendering the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(error) => {
            tracing::error!(%error, "rendering the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
