//! Our media as other servers fetch it for their users:
//! `GET /_matrix/federation/v1/media/download/{mediaId}` and `…/thumbnail/{mediaId}`,
//! signed requests answered `multipart/mixed` — a JSON part (metadata, empty) and the
//! content, streamed from disk.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use rand::Rng;
use rand::distr::Alphanumeric;
use tokio_util::io::ReaderStream;

use crate::api::router::Routes;
use crate::error::{Error, Result};
use crate::service::Services;
use crate::service::media::files::{self, FileToServe, ThumbnailRequest};
use crate::service::media::valid_media_id;

/// How long a request waits for one of our uploads still pending.
const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

pub fn routes(router: Routes) -> Routes {
    router
        .on(
            http::Method::GET,
            "/_matrix/federation/v1/media/download/{media_id}",
            download,
        )
        .on(
            http::Method::GET,
            "/_matrix/federation/v1/media/thumbnail/{media_id}",
            thumbnail,
        )
}

/// The requesting server, once its signature is checked, and its turn among its requests.
async fn origin_of(
    services: &Services,
    request: Request,
) -> Result<tokio::sync::OwnedSemaphorePermit> {
    let (parts, _) = request.into_parts();
    let origin = crate::api::server_auth::verify(services, &parts, &[]).await?;
    Ok(services.origin_limits.admit(&origin).await)
}

async fn download(
    State(services): State<Arc<Services>>,
    Path(media_id): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            let _turn = origin_of(&services, request).await?;
            let media_id = ours(&media_id)?;
            files::media_file(&services, services.server_name(), media_id, WAIT).await
        }
        .await,
    )
    .await
}

async fn thumbnail(
    State(services): State<Arc<Services>>,
    Path(media_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    answer(
        async {
            let _turn = origin_of(&services, request).await?;
            let media_id = ours(&media_id)?;
            let wanted = ThumbnailRequest::from_query(&query)?;
            files::thumbnail_file(&services, services.server_name(), media_id, WAIT, &wanted).await
        }
        .await,
    )
    .await
}

fn ours(media_id: &str) -> Result<&str> {
    if valid_media_id(media_id) {
        Ok(media_id)
    } else {
        Err(Error::not_found("Unknown media ID"))
    }
}

/// The file as `multipart/mixed`, or the error.
async fn answer(file: Result<FileToServe>) -> Response {
    let file = match file {
        Ok(file) => file,
        Err(error) => return error.into_response(),
    };
    let opened = match tokio::fs::File::open(&file.path).await {
        Ok(opened) => opened,
        Err(error) => {
            return Error::Internal(format!("media file {}: {error}", file.path.display()))
                .into_response();
        }
    };
    let boundary: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    let mut head = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: {}\r\n",
        file.content_type
            .as_deref()
            .filter(|t| !t.contains(['\r', '\n']))
            .unwrap_or("application/octet-stream")
    );
    if let Some(name) = file
        .filename
        .as_deref()
        .filter(|n| !n.contains(['\r', '\n', '"']))
    {
        head.push_str(&format!(
            "Content-Disposition: attachment; filename=\"{name}\"\r\n"
        ));
    }
    head.push_str("\r\n");
    let tail = format!("\r\n--{boundary}--\r\n");
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
            .chain(ReaderStream::new(opened))
            .chain(futures_util::stream::once(async move {
                Ok::<_, std::io::Error>(Bytes::from(tail))
            }));
    Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            format!("multipart/mixed; boundary={boundary}"),
        )
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| Error::internal(e).into_response())
}
