//! Tracks whether writes succeed, for [`DurableHealth`].

use std::sync::Mutex;
use std::time::Instant;

use dd_core::durable::DurableHealth;

use crate::lock;

#[derive(Default)]
struct Failing {
    since: Option<Instant>,
    consecutive: u64,
    last_error: Option<String>,
    /// The last batch failed as a whole (backend down, timed out): new writes are queued for the
    /// background writer instead of being tried one by one against a failing backend.
    backend_down: bool,
}

/// Unhealthy from the first failed write until the writer says it caught up.
#[derive(Default)]
pub(crate) struct HealthTracker {
    failing: Mutex<Failing>,
}

impl HealthTracker {
    /// A write attempt failed with `error`; `whole_batch` says whether the backend failed the
    /// batch as a whole (rather than one key). Returns whether the store was healthy before.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display, whole_batch: bool) -> bool {
        let mut failing = lock(&self.failing);
        failing.backend_down = whole_batch;
        let was_healthy = failing.since.is_none();
        failing.since.get_or_insert_with(Instant::now);
        failing.consecutive = failing.consecutive.saturating_add(1);
        failing.last_error = Some(error.to_string());
        was_healthy
    }

    /// The backend acknowledged a batch: it is up, whatever else still waits for a retry.
    pub(crate) fn batch_succeeded(&self) {
        lock(&self.failing).backend_down = false;
    }

    /// Whether the last batch failed as a whole and none succeeded since; if so, the last error.
    pub(crate) fn backend_down(&self) -> Option<(std::time::Duration, String)> {
        let failing = lock(&self.failing);
        match (failing.backend_down, failing.since) {
            (true, Some(since)) => Some((
                since.elapsed(),
                failing.last_error.clone().unwrap_or_default(),
            )),
            _ => None,
        }
    }

    /// Everything whose write had failed is written. Returns whether the store was unhealthy.
    pub(crate) fn caught_up(&self) -> bool {
        let mut failing = lock(&self.failing);
        let was_unhealthy = failing.since.is_some();
        *failing = Failing::default();
        was_unhealthy
    }

    pub(crate) fn snapshot(&self, pending: usize) -> DurableHealth {
        let failing = lock(&self.failing);
        DurableHealth {
            healthy: failing.since.is_none(),
            pending,
            consecutive_failures: failing.consecutive,
            unhealthy_for: failing.since.map(|since| since.elapsed()),
            last_error: failing.last_error.clone(),
        }
    }
}
