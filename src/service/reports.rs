//! Reports of content, rooms and users by local users (the spec's reporting endpoints), kept
//! for the administrators: listed and removed through Synapse's admin API, and announced in
//! the admin room.

use std::sync::Mutex;

use rocksdb::Direction;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::storage::{Engine, Tree};

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
    reportid_report: Tree,
    last: Mutex<u64>,
}

impl Service {
    pub fn new(engine: &std::sync::Arc<Engine>) -> Result<Self> {
        let reportid_report = engine.tree("reportid_report");
        let last = match reportid_report
            .iter_from(&u64::MAX.to_be_bytes(), Direction::Reverse)
            .next()
            .transpose()?
        {
            Some((key, _)) => <[u8; 8]>::try_from(&*key).map_or(0, u64::from_be_bytes),
            None => 0,
        };
        Ok(Self {
            reportid_report,
            last: Mutex::new(last),
        })
    }

    /// Stores a report, giving it the next ID.
    pub fn add(&self, mut report: Report) -> Result<Report> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        report.id = *last + 1;
        self.reportid_report
            .insert(&report.id.to_be_bytes(), &serde_json::to_vec(&report)?)?;
        *last = report.id;
        Ok(report)
    }

    pub fn get(&self, id: u64) -> Result<Option<Report>> {
        self.reportid_report.get_json(&id.to_be_bytes())
    }

    /// Removes a report; false if there was none.
    pub fn remove(&self, id: u64) -> Result<bool> {
        if !self.reportid_report.contains(&id.to_be_bytes())? {
            return Ok(false);
        }
        self.reportid_report.remove(&id.to_be_bytes())?;
        Ok(true)
    }

    /// Every report, oldest first.
    pub fn all(&self) -> Result<Vec<Report>> {
        self.reportid_report
            .iter_from(&[], Direction::Forward)
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
            .collect()
    }
}
