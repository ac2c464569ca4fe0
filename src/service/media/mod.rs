//! The media repository: files on disk, content-addressed by SHA-256 so identical uploads
//! share bytes, with their metadata in RocksDB.
//!
//! A file is written to a temporary name, fsynced and renamed into place before any metadata
//! points at it, so a crash mid-upload leaves at most an orphaned temporary file, never a
//! half-written file that something references.

pub mod files;
mod operator;
pub mod preview;
pub mod remote;
pub mod thumbnail;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rand::Rng;
use rand::distr::Alphanumeric;
use ruma::{OwnedUserId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub use self::operator::{QuarantineCount, QuarantineOutcome, mxcs_in_room};
use crate::error::{Error, ErrorCode, Result};
pub use crate::service::net::{IpRange, may_fetch_from};
use crate::service::now_millis;
use crate::storage::{Batch, Engine, Key, Tree};

/// Most uploads one user may have created with `/create` and not yet sent.
pub const MAX_PENDING_UPLOADS: usize = 5;
/// How long a media ID from `/create` stays reserved for its upload.
pub const PENDING_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;

/// What is stored about one media ID.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaMeta {
    /// Hex SHA-256 of the content; empty while an asynchronous upload is pending.
    pub sha256: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub uploader: OwnedUserId,
    pub created_ms: u64,
    #[serde(default)]
    pub quarantined: bool,
    /// Who quarantined it: a user ID, or `console`. Absent for quarantines recorded before
    /// this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_by: Option<String>,
    /// Protected from quarantine (Synapse's `safe_from_quarantine`): quarantining a room's or
    /// a user's media, or this ID, leaves it alone; deleting old media keeps it.
    #[serde(default)]
    pub protected: bool,
    /// Reserved by `/create`; the content has not arrived yet.
    #[serde(default)]
    pub pending: bool,
}

/// A stored thumbnail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThumbnailMeta {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
}

/// Content written to disk, not yet referenced.
pub struct StoredFile {
    pub sha256: String,
    pub size: u64,
}

pub struct Service {
    engine: Arc<Engine>,
    dir: PathBuf,
    mediaid_meta: Tree,
    sha256mediaid_ref: Tree,
    useridmediaid_empty: Tree,
    mediaidthumbnail_meta: Tree,
    /// Previews fetched recently, by URL (see [`preview`]).
    url_preview: Tree,
    /// Other servers' media being fetched now (see [`remote`]).
    in_flight: remote::InFlight,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh media ID: 24 random alphanumerics.
fn new_media_id() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Media IDs are opaque, but must be safe to put in keys and paths.
pub fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Service {
    pub fn new(engine: &Arc<Engine>, dir: PathBuf) -> Result<Self> {
        let temp = dir.join("tmp");
        std::fs::create_dir_all(&temp).map_err(|e| {
            Error::Internal(format!(
                "cannot create the media directory {}: {e}",
                dir.display()
            ))
        })?;
        // Uploads cut off by a crash or restart: never referenced, so removed.
        if let Ok(entries) = std::fs::read_dir(&temp) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            engine: Arc::clone(engine),
            dir,
            mediaid_meta: engine.tree("mediaid_meta"),
            sha256mediaid_ref: engine.tree("sha256mediaid_ref"),
            useridmediaid_empty: engine.tree("useridmediaid_empty"),
            mediaidthumbnail_meta: engine.tree("mediaidthumbnail_meta"),
            url_preview: engine.tree("url_preview"),
            in_flight: remote::InFlight::default(),
        })
    }

    /// Where the content with this hash lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    /// Streams `body` to disk, hashing as it goes, and moves it into place. Fails with
    /// `M_TOO_LARGE` as soon as more than `max` bytes arrive (the partial file is removed).
    pub async fn write_stream<S, E>(&self, body: S, max: u64) -> Result<StoredFile>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let temp = self.dir.join("tmp").join(new_media_id());
        let result = self.write_temp(&temp, body, max).await;
        let stored = match result {
            Ok(stored) => stored,
            Err(error) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(error);
            }
        };
        let target = self.path_of(&stored.sha256);
        let parent = target.parent().unwrap_or(&self.dir).to_owned();
        let io = |e: std::io::Error| Error::Internal(format!("media storage: {e}"));
        tokio::fs::create_dir_all(&parent).await.map_err(io)?;
        if tokio::fs::try_exists(&target).await.map_err(io)? {
            // Same bytes already stored: share them.
            let _ = tokio::fs::remove_file(&temp).await;
        } else {
            tokio::fs::rename(&temp, &target).await.map_err(io)?;
            // Make the rename itself durable.
            if let Ok(dir) = tokio::fs::File::open(&parent).await {
                let _ = dir.sync_all().await;
            }
        }
        Ok(stored)
    }

    async fn write_temp<S, E>(&self, temp: &Path, body: S, max: u64) -> Result<StoredFile>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let io = |e: std::io::Error| Error::Internal(format!("media storage: {e}"));
        let mut file = tokio::fs::File::create(temp).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::with_status(
                    ErrorCode::Unknown,
                    http::StatusCode::BAD_REQUEST,
                    format!("Could not read the upload: {e}"),
                )
            })?;
            size += chunk.len() as u64;
            if size > max {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!("The file is larger than the server's limit of {max} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(StoredFile {
            sha256: hex(&hasher.finalize()),
            size,
        })
    }

    /// Records new media with stored content; returns its media ID.
    pub fn create(
        &self,
        server: &ServerName,
        uploader: &UserId,
        file: &StoredFile,
        content_type: Option<String>,
        filename: Option<String>,
    ) -> Result<String> {
        let media_id = new_media_id();
        let meta = MediaMeta {
            sha256: file.sha256.clone(),
            size: file.size,
            content_type,
            filename,
            uploader: uploader.to_owned(),
            created_ms: now_millis(),
            quarantined: false,
            quarantined_by: None,
            protected: false,
            pending: false,
        };
        self.save(server, &media_id, &meta, None)?;
        Ok(media_id)
    }

    fn save(
        &self,
        server: &ServerName,
        media_id: &str,
        meta: &MediaMeta,
        batch: Option<Batch>,
    ) -> Result<()> {
        let mut batch = batch.unwrap_or_default();
        batch.put(
            &self.mediaid_meta,
            &(server.as_str(), media_id).encode(),
            &serde_json::to_vec(meta)?,
        )?;
        if !meta.sha256.is_empty() {
            batch.put(
                &self.sha256mediaid_ref,
                &(meta.sha256.as_str(), server.as_str(), media_id, "").encode(),
                &[],
            )?;
        }
        batch.put(
            &self.useridmediaid_empty,
            &(meta.uploader.as_str(), server.as_str(), media_id).encode(),
            &[],
        )?;
        self.engine.write(batch)
    }

    /// Reserves a media ID for an upload to come (`/create`).
    pub fn create_pending(&self, server: &ServerName, uploader: &UserId) -> Result<(String, u64)> {
        let now = now_millis();
        let mut pending = 0;
        for entry in self
            .useridmediaid_empty
            .scan_prefix((uploader.as_str(), server.as_str()).prefix())
        {
            let (key, _) = entry?;
            let (_, _, media_id): (&str, &str, &str) = Key::decode(&key)?;
            if let Some(meta) = self.get(server, media_id)?
                && meta.pending
                && meta.created_ms + PENDING_LIFETIME_MS > now
            {
                pending += 1;
            }
        }
        if pending >= MAX_PENDING_UPLOADS {
            return Err(Error::new(
                ErrorCode::LimitExceeded {
                    retry_after_ms: 60_000,
                },
                "Too many uploads are waiting for their content",
            ));
        }
        let media_id = new_media_id();
        let meta = MediaMeta {
            sha256: String::new(),
            size: 0,
            content_type: None,
            filename: None,
            uploader: uploader.to_owned(),
            created_ms: now,
            quarantined: false,
            quarantined_by: None,
            protected: false,
            pending: true,
        };
        self.save(server, &media_id, &meta, None)?;
        Ok((media_id, now + PENDING_LIFETIME_MS))
    }

    /// Checks that `uploader` may send the content of a reserved media ID.
    pub fn check_pending(
        &self,
        server: &ServerName,
        media_id: &str,
        uploader: &UserId,
    ) -> Result<()> {
        let meta = self
            .get(server, media_id)?
            .ok_or_else(|| Error::not_found("Unknown media ID"))?;
        if meta.uploader != uploader {
            return Err(Error::forbidden(
                "This media ID was reserved by another user",
            ));
        }
        if !meta.pending {
            return Err(Error::new(
                ErrorCode::CannotOverwriteMedia,
                "This media already has content",
            ));
        }
        if meta.created_ms + PENDING_LIFETIME_MS <= now_millis() {
            return Err(Error::not_found("This media ID has expired"));
        }
        Ok(())
    }

    /// Attaches content to a reserved media ID.
    pub fn complete_pending(
        &self,
        server: &ServerName,
        media_id: &str,
        uploader: &UserId,
        file: &StoredFile,
        content_type: Option<String>,
        filename: Option<String>,
    ) -> Result<()> {
        self.check_pending(server, media_id, uploader)?;
        let meta = MediaMeta {
            sha256: file.sha256.clone(),
            size: file.size,
            content_type,
            filename,
            uploader: uploader.to_owned(),
            created_ms: now_millis(),
            quarantined: false,
            quarantined_by: None,
            protected: false,
            pending: false,
        };
        self.save(server, media_id, &meta, None)
    }

    pub fn get(&self, server: &ServerName, media_id: &str) -> Result<Option<MediaMeta>> {
        self.mediaid_meta
            .get_json(&(server.as_str(), media_id).encode())
    }

    /// Resolves when the media's metadata is written (a pending upload completing).
    pub fn watch(
        &self,
        server: &ServerName,
        media_id: &str,
    ) -> impl Future<Output = ()> + Send + use<> {
        self.mediaid_meta
            .watch_prefix(&(server.as_str(), media_id).encode())
    }

    pub fn thumbnail(
        &self,
        server: &ServerName,
        media_id: &str,
        spec: &str,
    ) -> Result<Option<ThumbnailMeta>> {
        self.mediaidthumbnail_meta
            .get_json(&(server.as_str(), media_id, spec).encode())
    }

    pub fn save_thumbnail(
        &self,
        server: &ServerName,
        media_id: &str,
        spec: &str,
        thumbnail: &ThumbnailMeta,
    ) -> Result<()> {
        let mut batch = Batch::default();
        batch.put(
            &self.mediaidthumbnail_meta,
            &(server.as_str(), media_id, spec).encode(),
            &serde_json::to_vec(thumbnail)?,
        )?;
        batch.put(
            &self.sha256mediaid_ref,
            &(thumbnail.sha256.as_str(), server.as_str(), media_id, spec).encode(),
            &[],
        )?;
        self.engine.write(batch)
    }
}
