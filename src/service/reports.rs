//! Reports of content, rooms and users by local users (the spec's reporting endpoints), kept
//! for the administrators: listed and removed through Synapse's admin API, and announced in
//! the admin room.

use rocksdb::Direction;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::Engine;
use crate::storage::numbered::Numbered;

/// One report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub id: u64,
    pub received_ts: u64,
    /// Who reported.
    pub user_id: OwnedUserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<OwnedRoomId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<OwnedEventId>,
    /// The reported user, for a report about a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user_id: Option<OwnedUserId>,
    pub reason: Option<String>,
}

pub struct Service {
    reports: Numbered,
}

impl Service {
    pub fn new(engine: &std::sync::Arc<Engine>) -> Result<Self> {
        Ok(Self {
            reports: Numbered::open(engine.tree("reportid_report"))?,
        })
    }

    /// Stores a report, giving it the next ID.
    pub fn add(&self, mut report: Report) -> Result<Report> {
        report.id = self.reports.append(|id| {
            report.id = id;
            Ok(serde_json::to_vec(&report)?)
        })?;
        Ok(report)
    }

    pub fn get(&self, id: u64) -> Result<Option<Report>> {
        self.reports.tree().get_json(&id.to_be_bytes())
    }

    /// Removes a report; false if there was none.
    pub fn remove(&self, id: u64) -> Result<bool> {
        let tree = self.reports.tree();
        if !tree.contains(&id.to_be_bytes())? {
            return Ok(false);
        }
        tree.remove(&id.to_be_bytes())?;
        Ok(true)
    }

    /// Every report, oldest first.
    pub fn all(&self) -> Result<Vec<Report>> {
        self.reports
            .tree()
            .iter_from(&[], Direction::Forward)
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
            .collect()
    }
}
