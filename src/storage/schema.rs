//! The schema version stored in the database, and forward-only migrations.

use std::sync::Arc;

use super::Engine;
use crate::error::{Error, Result};

/// The schema this build writes. Bump it and add a step to [`MIGRATIONS`] when a tree's layout
/// changes.
pub const CURRENT_VERSION: u64 = 1;

const VERSION_KEY: &[u8] = b"schema_version";

/// One forward migration step.
type Migration = fn(&Arc<Engine>) -> Result<()>;

/// Migration `i` brings a database from version `i + 1` to `i + 2`.
const MIGRATIONS: &[Migration] = &[];

/// Checks the stored version, migrating older databases forward and refusing newer ones.
pub fn check_and_migrate(engine: &Arc<Engine>) -> Result<()> {
    let global = engine.tree("global");
    let stored = global
        .get(VERSION_KEY)?
        .map(|v| decode_u64(&v))
        .transpose()?;
    let Some(mut version) = stored else {
        // A fresh database starts at the current schema.
        return global.insert(VERSION_KEY, &CURRENT_VERSION.to_be_bytes());
    };
    if version > CURRENT_VERSION {
        return Err(Error::Database(format!(
            "the database was written by a newer Conclave (schema version {version}; this build \
             understands up to {CURRENT_VERSION}). Run the newer version or restore a backup."
        )));
    }
    while version < CURRENT_VERSION {
        let step = MIGRATIONS.get((version - 1) as usize).ok_or_else(|| {
            Error::Database(format!("no migration from schema version {version}"))
        })?;
        tracing::info!(
            from = version,
            to = version + 1,
            "migrating database schema"
        );
        step(engine)?;
        version += 1;
        global.insert(VERSION_KEY, &version.to_be_bytes())?;
    }
    Ok(())
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Database("stored integer is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(array))
}
