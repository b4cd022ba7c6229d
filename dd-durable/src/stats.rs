//! Counters for metrics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the counters of a
/// [`DurableDistributedDataStore`](crate::DurableDistributedDataStore), for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurableStats {
    /// Records written (including merged conflict writes).
    pub records_written: u64,
    /// Batches the backend acknowledged.
    pub batches_written: u64,
    /// Failed writes: failed batches and keys whose write failed.
    pub write_errors: u64,
    /// Conflicts with another writer that were merged.
    pub conflicts_merged: u64,
    /// Entries queued for write-behind and not yet written.
    pub pending: usize,
    /// How long the last acknowledged batch took.
    pub last_batch_latency: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    records_written: AtomicU64,
    batches_written: AtomicU64,
    write_errors: AtomicU64,
    conflicts_merged: AtomicU64,
    last_batch_latency: Mutex<Option<Duration>>,
}

impl StatsCounters {
    pub(crate) fn record_batch(&self, records: usize, latency: Duration) {
        self.batches_written.fetch_add(1, Ordering::Relaxed);
        self.add_records(records);
        match self.last_batch_latency.lock() {
            Ok(mut l) => *l = Some(latency),
            Err(p) => *p.into_inner() = Some(latency),
        }
    }

    pub(crate) fn add_records(&self, records: usize) {
        self.records_written
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_error(&self) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_conflict(&self) {
        self.conflicts_merged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pending: usize) -> DurableStats {
        let last_batch_latency = match self.last_batch_latency.lock() {
            Ok(l) => *l,
            Err(p) => *p.into_inner(),
        };
        DurableStats {
            records_written: self.records_written.load(Ordering::Relaxed),
            batches_written: self.batches_written.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            conflicts_merged: self.conflicts_merged.load(Ordering::Relaxed),
            pending,
            last_batch_latency,
        }
    }
}
