//! Limits per origin server on inbound federation requests, so that one misbehaving partner
//! cannot starve the server: a token bucket on the rate of its requests (answered
//! `429 M_LIMIT_EXCEEDED` past it, see [`crate::service::rate_limit`]) and a cap on how many
//! of its requests run at once (more wait their turn, as Synapse queues them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ruma::{OwnedServerName, ServerName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct OriginLimits {
    concurrent: usize,
    running: Mutex<HashMap<OwnedServerName, Arc<Semaphore>>>,
}

impl OriginLimits {
    pub fn new(concurrent: usize) -> Self {
        Self {
            concurrent: concurrent.max(1),
            running: Mutex::default(),
        }
    }

    /// Waits until `origin` has fewer than the allowed requests running; the permit ends
    /// this one's turn when dropped.
    pub async fn admit(&self, origin: &ServerName) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.len() >= 10_000 {
                // Idle origins (no request running or waiting) are forgotten.
                running.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            Arc::clone(
                running
                    .entry(origin.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.concurrent))),
            )
        };
        semaphore
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Requests of `origin` running now (for the admin commands and tests).
    pub fn running(&self, origin: &ServerName) -> usize {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .get(origin)
            .map_or(0, |s| self.concurrent - s.available_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_origin_waits_past_its_share_and_others_do_not() {
        let limits = Arc::new(OriginLimits::new(2));
        let busy: OwnedServerName = "busy.example".try_into().unwrap();
        let other: OwnedServerName = "other.example".try_into().unwrap();
        let first = limits.admit(&busy).await;
        let _second = limits.admit(&busy).await;
        let waiting = {
            let limits = Arc::clone(&limits);
            let busy = busy.clone();
            tokio::spawn(async move { limits.admit(&busy).await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a third request of the same origin waits"
        );
        let _elsewhere = limits.admit(&other).await;
        assert_eq!(limits.running(&busy), 2);
        drop(first);
        let _third = waiting.await.unwrap();
        assert_eq!(limits.running(&busy), 2);
    }
}
