//! The media repository's endpoints: uploads (streamed to disk), authenticated downloads and
//! thumbnails, the legacy unauthenticated ones behind a switch, config and URL previews.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::Method as HttpMethod;
use ruma::api::client::authenticated_media::{get_media_config, get_media_preview};
use ruma::api::client::media::create_mxc_uri;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedMxcUri, ServerName, UInt};
use serde_json::json;

use super::media_serve::{Served, serve};
use crate::api::Ruma;
use crate::api::router::{RawJson, Routes};
use crate::api::ruma_wrapper::authenticate;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::media::files;
use crate::service::media::valid_media_id;

/// Longest a download waits for an asynchronous upload to arrive.
const MAX_WAIT: Duration = Duration::from_secs(120);
const DEFAULT_WAIT: Duration = Duration::from_secs(20);

pub fn routes(router: Routes) -> Routes {
    let router = router
        .ruma(create)
        .ruma(config)
        .ruma(legacy_config)
        .ruma(preview)
        .ruma(legacy_preview);
    let mut router = router;
    for prefix in ["/_matrix/media/v3", "/_matrix/media/r0"] {
        router = router
            .on(HttpMethod::POST, &format!("{prefix}/upload"), upload)
            .on(
                HttpMethod::PUT,
                &format!("{prefix}/upload/{{server}}/{{media_id}}"),
                upload_to,
            )
            .on(
                HttpMethod::GET,
                &format!("{prefix}/download/{{server}}/{{media_id}}"),
                legacy_download,
            )
            .on(
                HttpMethod::GET,
                &format!("{prefix}/download/{{server}}/{{media_id}}/{{filename}}"),
                legacy_download_named,
            )
            .on(
                HttpMethod::GET,
                &format!("{prefix}/thumbnail/{{server}}/{{media_id}}"),
                legacy_thumbnail,
            );
    }
    router
        .on(
            HttpMethod::GET,
            "/_matrix/client/v1/media/download/{server}/{media_id}",
            download,
        )
        .on(
            HttpMethod::GET,
            "/_matrix/client/v1/media/download/{server}/{media_id}/{filename}",
            download_named,
        )
        .on(
            HttpMethod::GET,
            "/_matrix/client/v1/media/thumbnail/{server}/{media_id}",
            thumbnail_handler,
        )
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn own_server<'a>(services: &'a Services, server: &str) -> Result<&'a ServerName> {
    if server != services.server_name().as_str() {
        // Remote media needs federation, which does not exist yet.
        return Err(Error::not_found(
            "Remote media is not available on this server",
        ));
    }
    Ok(services.server_name())
}

fn media_id_of(media_id: &str) -> Result<&str> {
    if valid_media_id(media_id) {
        Ok(media_id)
    } else {
        Err(Error::not_found("Unknown media ID"))
    }
}

/// Reads (and drops) what is left of a refused upload's body, up to a bound, before the error
/// is answered: a server that answers and closes while the client is still sending makes the
/// client's kernel see a reset, and the client may lose the answer (seen as a flaky test).
async fn drained(body: &mut axum::body::BodyDataStream, error: Error) -> Error {
    use futures_util::StreamExt;
    const DRAIN_LIMIT: usize = 1 << 20;
    let mut read = 0usize;
    let drain = async {
        while read <= DRAIN_LIMIT {
            match body.next().await {
                Some(Ok(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    error
}

/// The upload's declared type, and a size check before reading a byte of it.
fn upload_headers(services: &Services, request: &Request) -> Result<Option<String>> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > services.config.max_upload_size) {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "The file is larger than the server's limit of {} bytes",
                services.config.max_upload_size
            ),
        ));
    }
    Ok(request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned))
}

async fn upload(
    State(services): State<Arc<Services>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(
        async {
            let (parts, body) = request.into_parts();
            let mut body = body.into_data_stream();
            let user = match authenticate(&services, &parts)
                .and_then(|user| services.users.ensure_not_suspended(&user).map(|()| user))
            {
                Ok(found) => found,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            let content_type = match upload_headers(
                &services,
                &Request::from_parts(parts, axum::body::Body::empty()),
            ) {
                Ok(content_type) => content_type,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            let stored = match services
                .media
                .write_stream(&mut body, services.config.max_upload_size)
                .await
            {
                Ok(stored) => stored,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            let server = services.server_name();
            let media_id = services.media.create(
                server,
                &user,
                &stored,
                content_type,
                query.get("filename").cloned(),
            )?;
            tracing::info!(%user, %media_id, size = stored.size, "media uploaded");
            Ok(
                axum::Json(json!({ "content_uri": format!("mxc://{server}/{media_id}") }))
                    .into_response(),
            )
        }
        .await,
    )
}

async fn upload_to(
    State(services): State<Arc<Services>>,
    Path((server, media_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(
        async {
            let (parts, body) = request.into_parts();
            let mut body = body.into_data_stream();
            let user = match authenticate(&services, &parts)
                .and_then(|user| services.users.ensure_not_suspended(&user).map(|()| user))
            {
                Ok(found) => found,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            let content_type = match upload_headers(
                &services,
                &Request::from_parts(parts, axum::body::Body::empty()),
            ) {
                Ok(content_type) => content_type,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            // Refuse before reading the body when the ID is not this user's to fill (the
            // body is drained still, or the client may find its connection closed mid-send).
            let target = own_server(&services, &server)
                .map_err(|_| Error::forbidden("Media IDs of other servers cannot be uploaded to"))
                .and_then(|server| Ok((server, media_id_of(&media_id)?)))
                .and_then(|(server, media_id)| {
                    services.media.check_pending(server, media_id, &user)?;
                    Ok((server, media_id))
                });
            let (server, media_id) = match target {
                Ok(target) => target,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            let stored = match services
                .media
                .write_stream(&mut body, services.config.max_upload_size)
                .await
            {
                Ok(stored) => stored,
                Err(error) => return Err(drained(&mut body, error).await),
            };
            services.media.complete_pending(
                server,
                media_id,
                &user,
                &stored,
                content_type,
                query.get("filename").cloned(),
            )?;
            Ok(axum::Json(json!({})).into_response())
        }
        .await,
    )
}

async fn create(
    services: Arc<Services>,
    request: Ruma<create_mxc_uri::v1::Request>,
) -> Result<create_mxc_uri::v1::Response> {
    let server = services.server_name();
    services.users.ensure_not_suspended(request.user()?)?;
    let (media_id, expires) = services.media.create_pending(server, request.user()?)?;
    let uri: OwnedMxcUri = format!("mxc://{server}/{media_id}").into();
    let mut response = create_mxc_uri::v1::Response::new(uri);
    response.unused_expires_at = Some(MilliSecondsSinceUnixEpoch(
        UInt::new(expires).unwrap_or_default(),
    ));
    Ok(response)
}

async fn config(
    services: Arc<Services>,
    _: Ruma<get_media_config::v1::Request>,
) -> Result<RawJson> {
    Ok(RawJson(
        json!({ "m.upload.size": services.config.max_upload_size }),
    ))
}

// The unauthenticated v3 forms stay for clients older than spec v1.11.
#[allow(deprecated)]
async fn legacy_config(
    services: Arc<Services>,
    _: Ruma<ruma::api::client::media::get_media_config::v3::Request>,
) -> Result<RawJson> {
    Ok(RawJson(
        json!({ "m.upload.size": services.config.max_upload_size }),
    ))
}

async fn preview(
    services: Arc<Services>,
    request: Ruma<get_media_preview::v1::Request>,
) -> Result<RawJson> {
    let user = request.user()?;
    preview_of(&services, user, &request.body.url).await
}

#[allow(deprecated)]
async fn legacy_preview(
    services: Arc<Services>,
    request: Ruma<ruma::api::client::media::get_media_preview::v3::Request>,
) -> Result<RawJson> {
    let user = request.user()?;
    preview_of(&services, user, &request.body.url).await
}

async fn preview_of(services: &Services, user: &ruma::UserId, url: &str) -> Result<RawJson> {
    let Some(fetcher) = &services.preview_fetcher else {
        return Err(Error::new(
            ErrorCode::Unrecognized,
            "URL previews are disabled on this server",
        ));
    };
    let preview = services
        .media
        .preview(fetcher, services.server_name(), user, url)
        .await?;
    Ok(RawJson(preview))
}

/// How long to wait for a pending upload (`timeout_ms`, bounded).
fn wait_of(query: &HashMap<String, String>) -> Duration {
    query
        .get("timeout_ms")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT)
}

/// The server a media request names: ours, or (with federation on) another one, whose media
/// is fetched and cached.
fn media_server(services: &Services, server: &str) -> Result<ruma::OwnedServerName> {
    if server == services.server_name().as_str() {
        return Ok(services.server_name().to_owned());
    }
    if !services.config.allow_federation {
        return Err(Error::not_found(
            "Remote media is not available: federation is off on this server",
        ));
    }
    ServerName::parse(server).map_err(|_| Error::not_found("Unknown media ID"))
}

async fn send_media(
    services: &Services,
    server: &str,
    media_id: &str,
    filename: Option<&str>,
    query: &HashMap<String, String>,
    headers: &http::HeaderMap,
) -> Result<Response> {
    let server = media_server(services, server)?;
    let media_id = media_id_of(media_id)?;
    let file = files::media_file(services, &server, media_id, wait_of(query)).await?;
    serve(
        Served {
            path: &file.path,
            size: file.size,
            content_type: file.content_type.as_deref(),
            filename: filename.or(file.filename.as_deref()),
        },
        headers,
    )
    .await
}

async fn download(
    State(services): State<Arc<Services>>,
    Path((server, media_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(
        async {
            let (parts, _) = request.into_parts();
            authenticate(&services, &parts)?;
            send_media(&services, &server, &media_id, None, &query, &parts.headers).await
        }
        .await,
    )
}

async fn download_named(
    State(services): State<Arc<Services>>,
    Path((server, media_id, filename)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(
        async {
            let (parts, _) = request.into_parts();
            authenticate(&services, &parts)?;
            send_media(
                &services,
                &server,
                &media_id,
                Some(&filename),
                &query,
                &parts.headers,
            )
            .await
        }
        .await,
    )
}

/// The legacy endpoints serve only what the operator allows: nothing, or media older than
/// the cut-over date.
fn legacy_allowed(services: &Services, server: &str, media_id: &str) -> Result<()> {
    let media = &services.config.media;
    let refuse = || Error::not_found("Unknown media ID (use the authenticated media endpoints)");
    if !media.allow_legacy_media {
        return Err(refuse());
    }
    if let Some(cutoff) = services.config.legacy_media_cutoff_ms() {
        let server = own_server(services, server)?;
        let created = services
            .media
            .get(server, media_id_of(media_id)?)?
            .map(|meta| meta.created_ms);
        if created.is_none_or(|created| created >= cutoff) {
            return Err(refuse());
        }
    }
    Ok(())
}

async fn legacy_download(
    State(services): State<Arc<Services>>,
    Path((server, media_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Response {
    respond(
        async {
            legacy_allowed(&services, &server, &media_id)?;
            send_media(&services, &server, &media_id, None, &query, &headers).await
        }
        .await,
    )
}

async fn legacy_download_named(
    State(services): State<Arc<Services>>,
    Path((server, media_id, filename)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Response {
    respond(
        async {
            legacy_allowed(&services, &server, &media_id)?;
            send_media(
                &services,
                &server,
                &media_id,
                Some(&filename),
                &query,
                &headers,
            )
            .await
        }
        .await,
    )
}

async fn thumbnail_handler(
    State(services): State<Arc<Services>>,
    Path((server, media_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    respond(
        async {
            let (parts, _) = request.into_parts();
            authenticate(&services, &parts)?;
            send_thumbnail(&services, &server, &media_id, &query, &parts.headers).await
        }
        .await,
    )
}

async fn legacy_thumbnail(
    State(services): State<Arc<Services>>,
    Path((server, media_id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: http::HeaderMap,
) -> Response {
    respond(
        async {
            legacy_allowed(&services, &server, &media_id)?;
            send_thumbnail(&services, &server, &media_id, &query, &headers).await
        }
        .await,
    )
}

async fn send_thumbnail(
    services: &Services,
    server: &str,
    media_id: &str,
    query: &HashMap<String, String>,
    headers: &http::HeaderMap,
) -> Result<Response> {
    let request = files::ThumbnailRequest::from_query(query)?;
    let server = media_server(services, server)?;
    let media_id = media_id_of(media_id)?;
    let file = files::thumbnail_file(services, &server, media_id, wait_of(query), &request).await?;
    serve(
        Served {
            path: &file.path,
            size: file.size,
            content_type: file.content_type.as_deref(),
            filename: None,
        },
        headers,
    )
    .await
}
