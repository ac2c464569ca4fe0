//! Operator functions on the media repository: what the admin room, the console and Synapse's
//! admin API call to quarantine, protect, list and delete media.
//!
//! Quarantined media stays stored (as evidence) but is never served. Protected media (Synapse's
//! `safe_from_quarantine`) is left alone by every quarantine and by deleting old media.

use std::collections::BTreeSet;

use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde_json::Value;

use super::{MediaMeta, Service, StoredFile, ThumbnailMeta, valid_media_id};
use crate::error::{Error, Result};
use crate::service::now_millis;
use crate::storage::{Batch, Key};

/// What quarantining one media item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineOutcome {
    Quarantined,
    /// It was quarantined before.
    Already,
    /// Protected from quarantine: left as it was.
    Protected,
}

/// What quarantining a set of media did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineCount {
    /// Newly quarantined.
    pub quarantined: usize,
    /// Left alone because protected.
    pub protected: usize,
}

/// The server and media ID of an `mxc://` URI, if it is one.
fn parse_mxc(uri: &str) -> Option<(OwnedServerName, String)> {
    let (server, media_id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    let server = ServerName::parse(server).ok()?;
    valid_media_id(media_id).then(|| (server, media_id.to_owned()))
}

/// The media that events of a room refer to, as Synapse finds it for a room quarantine:
/// `url` (files, images, the room avatar), `info.thumbnail_url`, and the encrypted-attachment
/// forms `file.url` and `info.thumbnail_file.url`. Reads the whole timeline.
pub fn mxcs_in_room(
    rooms: &crate::service::rooms::Service,
    room_id: &RoomId,
) -> Result<BTreeSet<(OwnedServerName, String)>> {
    const PAGE: usize = 500;
    let mut found = BTreeSet::new();
    let mut from = crate::service::rooms::PduCount::MIN;
    loop {
        let page = rooms.timeline_page(room_id, from, false, PAGE)?;
        for (_, json) in &page {
            let Ok(event) = serde_json::from_slice::<Value>(json) else {
                continue;
            };
            let content = &event["content"];
            let uris = [
                &content["url"],
                &content["info"]["thumbnail_url"],
                &content["file"]["url"],
                &content["info"]["thumbnail_file"]["url"],
            ];
            found.extend(
                uris.into_iter()
                    .filter_map(Value::as_str)
                    .filter_map(parse_mxc),
            );
        }
        match page.last() {
            Some((count, _)) if page.len() == PAGE => from = *count,
            _ => return Ok(found),
        }
    }
}

impl Service {
    /// Records a copy of another server's media (the remote media cache), its content already
    /// stored by [`Service::write_stream`]. `sender` is the remote user known to have shared it;
    /// cached media never counts as a local user's upload.
    pub fn cache_remote(
        &self,
        origin: &ServerName,
        media_id: &str,
        sender: &UserId,
        file: &StoredFile,
        content_type: Option<String>,
    ) -> Result<()> {
        if !valid_media_id(media_id) {
            return Err(Error::invalid_param("Invalid media ID"));
        }
        let meta = MediaMeta {
            sha256: file.sha256.clone(),
            size: file.size,
            content_type,
            filename: None,
            uploader: sender.to_owned(),
            created_ms: now_millis(),
            quarantined: false,
            quarantined_by: None,
            protected: false,
            pending: false,
        };
        self.save(origin, media_id, &meta, None)
    }

    /// Changes what is stored about media; `change` says whether it changed anything.
    /// `None` when there is no such media.
    fn update_meta(
        &self,
        server: &ServerName,
        media_id: &str,
        change: impl FnOnce(&mut MediaMeta) -> bool,
    ) -> Result<Option<bool>> {
        let Some(mut meta) = self.get(server, media_id)? else {
            return Ok(None);
        };
        if !change(&mut meta) {
            return Ok(Some(false));
        }
        self.mediaid_meta.insert(
            &(server.as_str(), media_id).encode(),
            &serde_json::to_vec(&meta)?,
        )?;
        Ok(Some(true))
    }

    /// Quarantines media unless it is protected; `by` is who asked (a user ID, `console`).
    /// `None` when there is no such media.
    pub fn quarantine(
        &self,
        server: &ServerName,
        media_id: &str,
        by: &str,
    ) -> Result<Option<QuarantineOutcome>> {
        let mut outcome = QuarantineOutcome::Quarantined;
        let found = self.update_meta(server, media_id, |meta| {
            if meta.protected {
                outcome = QuarantineOutcome::Protected;
                return false;
            }
            if meta.quarantined {
                outcome = QuarantineOutcome::Already;
                return false;
            }
            meta.quarantined = true;
            meta.quarantined_by = Some(by.to_owned());
            true
        })?;
        Ok(found.map(|_| outcome))
    }

    /// Serves quarantined media again. `None` when there is no such media; `Some(false)` when
    /// it was not quarantined.
    pub fn unquarantine(&self, server: &ServerName, media_id: &str) -> Result<Option<bool>> {
        self.update_meta(server, media_id, |meta| {
            let was = meta.quarantined;
            meta.quarantined = false;
            meta.quarantined_by = None;
            was
        })
    }

    /// Protects media from quarantine (or lifts the protection). `None` when there is no such
    /// media; `Some(false)` when it already was as asked.
    pub fn set_protected(
        &self,
        server: &ServerName,
        media_id: &str,
        protected: bool,
    ) -> Result<Option<bool>> {
        self.update_meta(server, media_id, |meta| {
            let changed = meta.protected != protected;
            meta.protected = protected;
            changed
        })
    }

    /// Quarantines every stored item among `media` (others are skipped), protected ones aside.
    pub fn quarantine_many(
        &self,
        media: impl IntoIterator<Item = (OwnedServerName, String)>,
        by: &str,
    ) -> Result<QuarantineCount> {
        let mut count = QuarantineCount::default();
        for (server, media_id) in media {
            match self.quarantine(&server, &media_id, by)? {
                Some(QuarantineOutcome::Quarantined) => count.quarantined += 1,
                Some(QuarantineOutcome::Protected) => count.protected += 1,
                Some(QuarantineOutcome::Already) | None => {}
            }
        }
        Ok(count)
    }

    /// Quarantines all media a user uploaded, protected media aside.
    pub fn quarantine_by_uploader(
        &self,
        server: &ServerName,
        uploader: &UserId,
        by: &str,
    ) -> Result<QuarantineCount> {
        let ids = self.uploads(server, uploader)?;
        self.quarantine_many(
            ids.into_iter()
                .map(|(media_id, _)| (server.to_owned(), media_id)),
            by,
        )
    }

    /// Deletes media, its thumbnails, and the files no other media shares.
    pub async fn delete(&self, server: &ServerName, media_id: &str) -> Result<bool> {
        let Some(meta) = self.get(server, media_id)? else {
            return Ok(false);
        };
        let mut batch = Batch::default();
        let mut hashes = Vec::new();
        if !meta.sha256.is_empty() {
            batch.delete(
                &self.sha256mediaid_ref,
                &(meta.sha256.as_str(), server.as_str(), media_id, "").encode(),
            )?;
            hashes.push(meta.sha256.clone());
        }
        for entry in self
            .mediaidthumbnail_meta
            .scan_prefix((server.as_str(), media_id).prefix())
        {
            let (key, value) = entry?;
            let (_, _, spec): (&str, &str, &str) = Key::decode(&key)?;
            let thumbnail: ThumbnailMeta = serde_json::from_slice(&value)?;
            batch.delete(
                &self.sha256mediaid_ref,
                &(thumbnail.sha256.as_str(), server.as_str(), media_id, spec).encode(),
            )?;
            batch.delete(&self.mediaidthumbnail_meta, &key)?;
            hashes.push(thumbnail.sha256);
        }
        batch.delete(&self.mediaid_meta, &(server.as_str(), media_id).encode())?;
        batch.delete(
            &self.useridmediaid_empty,
            &(meta.uploader.as_str(), server.as_str(), media_id).encode(),
        )?;
        self.engine.write(batch)?;
        for sha256 in hashes {
            let still_used = self
                .sha256mediaid_ref
                .scan_prefix((sha256.as_str(),).prefix())
                .next()
                .is_some();
            if !still_used {
                let _ = tokio::fs::remove_file(self.path_of(&sha256)).await;
            }
        }
        Ok(true)
    }

    /// The media a user uploaded to `server` (this server: their uploads), with what is stored
    /// about each, in media ID order.
    pub fn uploads(
        &self,
        server: &ServerName,
        uploader: &UserId,
    ) -> Result<Vec<(String, MediaMeta)>> {
        let mut uploads = Vec::new();
        for entry in self
            .useridmediaid_empty
            .scan_prefix((uploader.as_str(), server.as_str()).prefix())
        {
            let (key, _) = entry?;
            let (_, _, media_id): (&str, &str, &str) = Key::decode(&key)?;
            if let Some(meta) = self.get(server, media_id)? {
                uploads.push((media_id.to_owned(), meta));
            }
        }
        Ok(uploads)
    }

    /// Deletes all media a user uploaded; returns how many.
    pub async fn delete_by_uploader(
        &self,
        server: &ServerName,
        uploader: &UserId,
    ) -> Result<usize> {
        let ids = self.uploads(server, uploader)?;
        let mut deleted = 0;
        for (media_id, _) in ids {
            if self.delete(server, &media_id).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Every media item: its server, ID and what is stored about it (for administration: a
    /// full scan).
    pub fn all(&self) -> Result<Vec<(String, String, MediaMeta)>> {
        self.mediaid_meta
            .iter_from(&[], rocksdb::Direction::Forward)
            .map(|entry| {
                let (key, value) = entry?;
                let (server, media_id): (&str, &str) = Key::decode(&key)?;
                Ok((
                    server.to_owned(),
                    media_id.to_owned(),
                    serde_json::from_slice(&value)?,
                ))
            })
            .collect()
    }

    /// Deletes every media item for which `doomed(server, media ID, meta)` holds; returns the
    /// server and ID of each one deleted.
    pub async fn delete_matching(
        &self,
        doomed: impl Fn(&str, &str, &MediaMeta) -> bool,
    ) -> Result<Vec<(String, String)>> {
        let mut chosen = Vec::new();
        for (server, media_id, meta) in self.all()? {
            if doomed(&server, &media_id, &meta) {
                chosen.push((server, media_id));
            }
        }
        let mut deleted = Vec::new();
        for (server, media_id) in chosen {
            let Ok(name) = ServerName::parse(&server) else {
                continue;
            };
            if self.delete(&name, &media_id).await? {
                deleted.push((server, media_id));
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_before_protection_still_parse() {
        let old = br#"{"sha256":"ab","size":3,"content_type":null,"filename":null,
            "uploader":"@a:localhost","created_ms":1,"quarantined":true}"#;
        let meta: MediaMeta = serde_json::from_slice(old).unwrap();
        assert!(meta.quarantined && !meta.protected && !meta.pending);
        assert_eq!(meta.quarantined_by, None);
    }

    #[test]
    fn mxc_uris_are_parsed() {
        assert_eq!(
            parse_mxc("mxc://example.org/abc_DEF-1"),
            Some((
                ServerName::parse("example.org").unwrap(),
                "abc_DEF-1".to_owned()
            ))
        );
        assert_eq!(parse_mxc("https://example.org/abc"), None);
        assert_eq!(parse_mxc("mxc://example.org/a/b"), None);
        assert_eq!(parse_mxc("mxc://exa mple/a"), None);
    }
}
