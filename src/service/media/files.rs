//! Which file answers a request for media or a thumbnail — for our clients (any server's
//! media: another server's is fetched and cached first, see [`super::remote`]) and for other
//! servers (our media only). The HTTP side streams the file it is given.

use std::path::PathBuf;
use std::time::Duration;

use ruma::ServerName;

use super::MediaMeta;
use super::thumbnail::{self, Method};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;

/// A stored file to send.
pub struct FileToServe {
    pub path: PathBuf,
    pub size: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
}

/// A thumbnail as asked for.
pub struct ThumbnailRequest {
    pub width: u32,
    pub height: u32,
    pub method: Method,
    pub animated: bool,
}

impl ThumbnailRequest {
    /// `width`, `height` (1 to 10,000), `method` (`scale` by default, or `crop`) and
    /// `animated` from a request's query.
    pub fn from_query(query: &std::collections::HashMap<String, String>) -> Result<Self> {
        let dimension = |name: &str| -> Result<u32> {
            query
                .get(name)
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| (1..=10_000).contains(v))
                .ok_or_else(|| {
                    Error::invalid_param(format!("{name} must be a whole number from 1 to 10000"))
                })
        };
        let method = match query.get("method").map(String::as_str) {
            None | Some("scale") => Method::Scale,
            Some("crop") => Method::Crop,
            Some(_) => return Err(Error::invalid_param("method must be crop or scale")),
        };
        Ok(Self {
            width: dimension("width")?,
            height: dimension("height")?,
            method,
            animated: query.get("animated").is_some_and(|a| a == "true"),
        })
    }
}

/// The media's metadata once it has content: our media waits (up to `wait`) for a pending
/// asynchronous upload; another server's is fetched from it unless cached. Quarantined media
/// is treated as absent.
pub async fn ready_media(
    services: &Services,
    server: &ServerName,
    media_id: &str,
    wait: Duration,
) -> Result<MediaMeta> {
    if server != services.server_name() {
        let meta = super::remote::fetch(services, server, media_id).await?;
        if meta.quarantined {
            return Err(Error::not_found("Unknown media ID"));
        }
        return Ok(meta);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let watch = services.media.watch(server, media_id);
        let meta = services
            .media
            .get(server, media_id)?
            .filter(|meta| !meta.quarantined)
            .ok_or_else(|| Error::not_found("Unknown media ID"))?;
        if !meta.pending {
            return Ok(meta);
        }
        if tokio::time::timeout_at(deadline, watch).await.is_err() {
            return Err(Error::new(
                ErrorCode::NotYetUploaded,
                "The media has not been uploaded yet",
            ));
        }
    }
}

/// The media itself.
pub async fn media_file(
    services: &Services,
    server: &ServerName,
    media_id: &str,
    wait: Duration,
) -> Result<FileToServe> {
    let meta = ready_media(services, server, media_id, wait).await?;
    Ok(FileToServe {
        path: services.media.path_of(&meta.sha256),
        size: meta.size,
        content_type: meta.content_type,
        filename: meta.filename,
    })
}

/// A thumbnail of the media, made here (and kept) on first request; the original when it is
/// small enough already, or an animation asked to stay animated.
pub async fn thumbnail_file(
    services: &Services,
    server: &ServerName,
    media_id: &str,
    wait: Duration,
    request: &ThumbnailRequest,
) -> Result<FileToServe> {
    let meta = ready_media(services, server, media_id, wait).await?;
    let content_type = meta
        .content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .unwrap_or_default();
    let original = FileToServe {
        path: services.media.path_of(&meta.sha256),
        size: meta.size,
        content_type: meta.content_type.clone(),
        filename: None,
    };
    if !thumbnail::can_thumbnail(&content_type) {
        return Err(Error::with_status(
            ErrorCode::Unknown,
            http::StatusCode::BAD_REQUEST,
            "This media cannot be thumbnailed",
        ));
    }
    // An animation stays animated when the client asks for it.
    if request.animated && matches!(content_type.as_str(), "image/gif" | "image/webp") {
        return Ok(original);
    }
    let (width, height, method) =
        thumbnail::pick_size(request.width, request.height, request.method);
    let spec = format!("{width}x{height}-{}", method.as_str());
    if let Some(stored) = services.media.thumbnail(server, media_id, &spec)? {
        return Ok(FileToServe {
            path: services.media.path_of(&stored.sha256),
            size: stored.size,
            content_type: Some(stored.content_type),
            filename: None,
        });
    }
    let source = original.path.clone();
    let generated =
        tokio::task::spawn_blocking(move || thumbnail::generate(&source, width, height, method))
            .await
            .map_err(Error::internal)??;
    let Some(generated) = generated else {
        return Ok(original);
    };
    let bytes = bytes::Bytes::from(generated.bytes);
    let stored = services
        .media
        .write_stream(
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) }),
            u64::MAX,
        )
        .await?;
    let thumbnail_meta = super::ThumbnailMeta {
        sha256: stored.sha256.clone(),
        size: stored.size,
        content_type: generated.content_type.to_owned(),
        width: generated.width,
        height: generated.height,
    };
    services
        .media
        .save_thumbnail(server, media_id, &spec, &thumbnail_meta)?;
    Ok(FileToServe {
        path: services.media.path_of(&stored.sha256),
        size: stored.size,
        content_type: Some(generated.content_type.to_owned()),
        filename: None,
    })
}
