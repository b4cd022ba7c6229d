//! Options of a [`DurableDistributedDataStore`](crate::DurableDistributedDataStore).

use std::time::Duration;

use dd_core::store::DEFAULT_SCAN_PAGE_SIZE;

/// When [`store`](dd_core::durable::CrdtValueStore::store) writes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// `store()` returns after the backend acknowledged one batch with the entries.
    #[default]
    Sync,
    /// `store()` queues the entries (only the latest state per key is kept) and returns; a
    /// background task writes the queue every `interval`, and
    /// [`flush`](dd_core::durable::CrdtValueStore::flush) writes it on demand. Entries queued
    /// but not yet written are lost if the process dies.
    WriteBehind {
        /// How often the queue is written.
        interval: Duration,
    },
}

/// Options of a [`DurableDistributedDataStore`](crate::DurableDistributedDataStore).
///
/// ```
/// use std::time::Duration;
/// use dd_durable::{DurableOptions, WriteMode};
/// let options = DurableOptions {
///     write_mode: WriteMode::WriteBehind { interval: Duration::from_millis(200) },
///     ..DurableOptions::default()
/// };
/// assert_eq!(options.max_batch_size, 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableOptions {
    /// When writes happen. Default: [`WriteMode::Sync`].
    pub write_mode: WriteMode,
    /// Records per page when loading. Default: [`DEFAULT_SCAN_PAGE_SIZE`].
    pub scan_page_size: usize,
    /// Most entries per backend batch when writing the write-behind queue. Default: 500.
    pub max_batch_size: usize,
    /// How often a key whose write conflicts is re-read, merged and written again before the
    /// write of that key fails. Default: 5.
    pub max_conflict_retries: u32,
    /// In [`WriteMode::Sync`], how long after a failed write its entries are first retried in
    /// the background (the wait then doubles up to `max_retry_backoff`). Default: 500 ms.
    pub retry_interval: Duration,
    /// The longest wait between two attempts to write the write-behind queue, or the entries of
    /// failed writes, while the backend fails (the wait starts at the write-behind interval or
    /// `retry_interval` and doubles). Default: 30 s.
    pub max_retry_backoff: Duration,
    /// How long one backend call (a batch write, a read of a conflicting record) may take before
    /// it counts as failed; `None` waits as long as the backend does. A batch that timed out may
    /// still land: the next write of its keys then finds a newer revision than expected and
    /// merges, so nothing is lost. Default: 30 s.
    pub operation_timeout: Option<Duration>,
    /// A conflict means another live process writes under the same replica name; this is logged
    /// as an error at most once per key per this interval. Default: 60 s.
    pub conflict_alarm_interval: Duration,
}

impl Default for DurableOptions {
    fn default() -> Self {
        Self {
            write_mode: WriteMode::Sync,
            scan_page_size: DEFAULT_SCAN_PAGE_SIZE,
            max_batch_size: 500,
            max_conflict_retries: 5,
            retry_interval: Duration::from_millis(500),
            max_retry_backoff: Duration::from_secs(30),
            operation_timeout: Some(Duration::from_secs(30)),
            conflict_alarm_interval: Duration::from_secs(60),
        }
    }
}
