//! Another server's media, fetched for our clients and cached: first with the federation
//! endpoint (`GET /_matrix/federation/v1/media/download/{mediaId}`, signed, answered as
//! `multipart/mixed`: metadata, then the bytes or a `Location` to fetch them from), and only
//! for a server that does not know it (`M_UNRECOGNIZED`) with the legacy unauthenticated
//! `/_matrix/media/v3/download`, as the spec allows. The bytes are streamed to disk within
//! the upload size limit, never held whole in memory; one fetch per media ID at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{OwnedServerName, ServerName, UserId};

use super::{MediaMeta, StoredFile};
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::service::federation::incoming::utf8_percent_encode;
use crate::service::now_millis;
use crate::storage::Key;

/// One media ID's fetch: whoever holds it is fetching.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// Fetches in progress, so that concurrent requests for one media ID make one fetch.
#[derive(Default)]
pub struct InFlight {
    fetches: Mutex<HashMap<(OwnedServerName, String), Turn>>,
}

/// What a remote media is recorded as having been uploaded by: someone on that server.
fn remote_uploader(server: &ServerName) -> Result<ruma::OwnedUserId> {
    UserId::parse(format!("@_remote:{server}")).map_err(Error::internal)
}

/// `server`'s media `media_id`: cached, or fetched from `server` now.
pub async fn fetch(services: &Services, server: &ServerName, media_id: &str) -> Result<MediaMeta> {
    if let Some(meta) = services.media.get(server, media_id)? {
        return Ok(meta);
    }
    let turn = {
        let mut fetches = services
            .media
            .in_flight
            .fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            fetches
                .entry((server.to_owned(), media_id.to_owned()))
                .or_default(),
        )
    };
    let result = {
        let _turn = turn.lock().await;
        match services.media.get(server, media_id)? {
            Some(meta) => Ok(meta),
            None => fetch_now(services, server, media_id).await,
        }
    };
    let mut fetches = services
        .media
        .in_flight
        .fetches
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if Arc::strong_count(&turn) <= 2 {
        fetches.remove(&(server.to_owned(), media_id.to_owned()));
    }
    result
}

async fn fetch_now(services: &Services, server: &ServerName, media_id: &str) -> Result<MediaMeta> {
    services.federation.partners().check(server)?;
    let max = services.config.max_upload_size;
    let path = format!(
        "/_matrix/federation/v1/media/download/{}",
        utf8_percent_encode(media_id)
    );
    let response = services
        .federation
        .get_signed_response(
            server,
            &path,
            services.server_name(),
            &services.server_keys.key_pair(),
        )
        .await;
    let (stored, content_type, filename) = match response {
        Ok(response) => from_multipart(services, server, response, max).await?,
        Err(Error::Matrix {
            code: ErrorCode::Unrecognized,
            ..
        }) => {
            // A server from before authenticated media.
            let path = format!(
                "/_matrix/media/v3/download/{server}/{}?allow_remote=false&allow_redirect=true",
                utf8_percent_encode(media_id)
            );
            let response = services
                .federation
                .get_unsigned_response(server, &path)
                .await?;
            from_plain(services, response, max).await?
        }
        Err(error) => return Err(error),
    };
    let meta = MediaMeta {
        sha256: stored.sha256,
        size: stored.size,
        content_type,
        filename,
        uploader: remote_uploader(server)?,
        created_ms: now_millis(),
        quarantined: false,
        quarantined_by: None,
        protected: false,
        pending: false,
    };
    services.media.save_remote(server, media_id, &meta)?;
    tracing::info!(%server, media_id, size = meta.size, "cached another server's media");
    Ok(meta)
}

/// A part's `Content-Type`, `Content-Disposition` filename.
type Described = (StoredFile, Option<String>, Option<String>);

/// Reads the `multipart/mixed` answer: a JSON part (metadata, empty today), then the content
/// or a `Location` to fetch it from.
async fn from_multipart(
    services: &Services,
    server: &ServerName,
    response: reqwest::Response,
    max: u64,
) -> Result<Described> {
    let bad = |why: String| Error::Internal(format!("{server}'s media answer: {why}"));
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let boundary = multipart_boundary(&content_type).ok_or_else(|| {
        bad(format!(
            "not multipart/mixed with a boundary: {content_type}"
        ))
    })?;
    let mut multipart = multer::Multipart::new(response.bytes_stream(), boundary);
    let metadata = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no metadata part".into()))?;
    // Read and dropped: it holds nothing we use yet, and is bounded by the next read.
    let _ = metadata.bytes().await.map_err(|e| bad(e.to_string()))?;
    let content = multipart
        .next_field()
        .await
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no content part".into()))?;
    if let Some(location) = content
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        let response = services.federation.get_url(location).await?;
        return from_plain(services, response, max).await;
    }
    let part_type = content.content_type().map(ToString::to_string);
    let filename = content.file_name().map(str::to_owned);
    let stored = services.media.write_stream(content, max).await?;
    Ok((stored, part_type, filename))
}

/// The boundary of a `multipart/…; boundary=…` content type (multer reads only form-data's).
fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// A plain answer's body (a redirect's target, or the legacy endpoint).
async fn from_plain(
    services: &Services,
    response: reqwest::Response,
    max: u64,
) -> Result<Described> {
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let stored = services
        .media
        .write_stream(response.bytes_stream(), max)
        .await?;
    Ok((stored, content_type, None))
}

impl super::Service {
    /// Records another server's media, cached here (no uploader of ours to list it under).
    pub fn save_remote(&self, server: &ServerName, media_id: &str, meta: &MediaMeta) -> Result<()> {
        let mut batch = crate::storage::Batch::default();
        batch.put(
            &self.mediaid_meta,
            &(server.as_str(), media_id).encode(),
            &serde_json::to_vec(meta)?,
        )?;
        batch.put(
            &self.sha256mediaid_ref,
            &(meta.sha256.as_str(), server.as_str(), media_id, "").encode(),
            &[],
        )?;
        self.engine.write(batch)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boundaries_are_read_from_multipart_content_types() {
        let read = super::multipart_boundary;
        assert_eq!(
            read("multipart/mixed; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            read("Multipart/Mixed;Boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(read("multipart/mixed"), None);
        assert_eq!(read("image/png; boundary=abc"), None);
        assert_eq!(read("multipart/mixed; boundary="), None);
    }
}
