//! Backups and restores: a RocksDB checkpoint of the database and a copy of the media files,
//! with a small manifest, and the way back into a stopped server's directories.
//!
//! A backup is consistent at the checkpoint: media files are written (and renamed into place)
//! before the database learns of them, and are copied after the checkpoint, so every file the
//! database knows of is in the copy. Files uploaded during the copy may be there too, unknown to
//! the database and harmless.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::{Engine, EngineOptions};

/// Written last into a backup: a directory without it is an unfinished backup.
pub const MANIFEST: &str = "conclave-backup.json";
/// The media files inside a backup.
pub const MEDIA_DIR: &str = "media";

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub server_name: String,
    pub conclave_version: String,
    /// Milliseconds since the epoch at the checkpoint.
    pub taken_at: u64,
    pub database_bytes: u64,
    pub media_bytes: u64,
}

/// Writes a backup of the open database and of the media in `media` into the new directory
/// `dir`.
pub fn write(engine: &Engine, media: &Path, dir: &Path, server_name: &str) -> Result<Manifest> {
    if dir.exists() {
        return Err(Error::invalid_param(format!(
            "`{}` exists already; name a new directory",
            dir.display()
        )));
    }
    let taken_at = crate::service::now_millis();
    engine.checkpoint(dir)?;
    let database_bytes = directory_size(dir);
    // Not `tmp/`: uploads still being received, unknown to the database.
    let media_bytes = copy_tree(media, &dir.join(MEDIA_DIR), &["tmp"])
        .map_err(|e| Error::internal(format!("copying the media failed: {e}")))?;
    let manifest = Manifest {
        server_name: server_name.to_owned(),
        conclave_version: env!("CARGO_PKG_VERSION").to_owned(),
        taken_at,
        database_bytes,
        media_bytes,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    write_durably(&dir.join(MANIFEST), &json)
        .map_err(|e| Error::internal(format!("writing the manifest failed: {e}")))?;
    Ok(manifest)
}

/// Backs up a stopped server's database (opened here, so it fails while a server holds it).
pub fn write_offline(config: &Config, dir: &Path) -> Result<Manifest> {
    // Opening an absent database would create an empty one and back that up.
    if is_empty_or_absent(&config.database_path) {
        return Err(Error::invalid_param(format!(
            "there is no database at `{}`",
            config.database_path.display()
        )));
    }
    let engine = open(config)?;
    write(
        &engine,
        &config.media_path(),
        dir,
        config.server_name.as_str(),
    )
}

/// What a restore put back.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub database: PathBuf,
    pub media: PathBuf,
}

/// Copies a backup into the configured (absent or empty) database and media directories of a
/// stopped server, then opens the database once to check it.
pub fn restore(backup: &Path, config: &Config) -> Result<Restored> {
    let manifest: Manifest = std::fs::read(backup.join(MANIFEST))
        .map_err(|e| {
            Error::invalid_param(format!(
                "`{}` is not a finished Conclave backup (no {MANIFEST}: {e})",
                backup.display()
            ))
        })
        .and_then(|bytes| Ok(serde_json::from_slice(&bytes)?))?;
    if manifest.server_name != config.server_name.as_str() {
        return Err(Error::invalid_param(format!(
            "the backup is of {}, the configuration is for {}",
            manifest.server_name, config.server_name
        )));
    }
    // systemd's DynamicUser makes /var/lib/conclave a link to /var/lib/private/conclave: an
    // operator who moved the damaged directory aside leaves the link dangling.
    let database = follow_links(&config.database_path);
    let media = follow_links(&config.media_path());
    for target in [&database, &media] {
        if !is_empty_or_absent(target) {
            return Err(Error::invalid_param(format!(
                "`{}` is not empty: move it aside (or stop the server and delete it) first",
                target.display()
            )));
        }
    }
    std::fs::create_dir_all(&database).map_err(io)?;
    for entry in std::fs::read_dir(backup).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name == MEDIA_DIR || name == MANIFEST {
            continue;
        }
        let target = database.join(&name);
        if entry.file_type().map_err(io)?.is_dir() {
            copy_tree(&entry.path(), &target, &[]).map_err(io)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io)?;
        }
    }
    copy_tree(&backup.join(MEDIA_DIR), &media, &[]).map_err(io)?;
    drop(open(config)?);
    Ok(Restored {
        manifest,
        database,
        media,
    })
}

fn open(config: &Config) -> Result<std::sync::Arc<Engine>> {
    Engine::open(EngineOptions {
        path: &config.database_path,
        cache_capacity_bytes: 8 << 20,
        compression: config.db_compression,
        statistics: false,
    })
}

/// Where `path` leads through symbolic links, even to a target that does not exist (yet).
fn follow_links(path: &Path) -> PathBuf {
    let mut path = path.to_owned();
    for _ in 0..16 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    path
}

fn io(error: std::io::Error) -> Error {
    Error::internal(format!("restoring failed: {error}"))
}

fn is_empty_or_absent(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Copies the files under `from` into `to`, but for the entries of `from` named in `skip`;
/// returns the bytes copied.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    let mut bytes = 0;
    for entry in entries {
        let entry = entry?;
        if skip.iter().any(|name| entry.file_name() == *name) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            bytes += copy_tree(&entry.path(), &target, &[])?;
        } else {
            bytes += std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(bytes)
}

/// Bytes of the files under `path`.
pub fn directory_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
