//! What the replicator needs from durable storage.
//!
//! The replicator talks to a [`CrdtValueStore`]: it hands over the current state of every key
//! that changed (after a local update or a merge from gossip that changed the value), and on start
//! it loads every stored entry of its replica before it serves anything. `dd-durable` implements
//! this trait on top of any [`DurableStateStore`](crate::store::DurableStateStore), adding the
//! versioned record format, revision tracking, write modes and conflict merging.
//!
//! A key's "pruning performed" markers ([`PrunedIncarnations`]) travel next to it in the same
//! `store` call, under [`markers_key`]`(key)`. A store should write them atomically with the
//! key's value (dd-durable keeps them inside the value's record) and must hand them back at load,
//! under the same key, whether it keeps them inside the value's record or as a record of their
//! own: a value from which pruned entries were dropped must never be loaded without them.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::data::{DataError, ErasedData, TypeRegistry};
use crate::replica::ReplicaId;
use crate::store::StoreError;

pub use crate::pruning_record::{MARKERS_PREFIX, PrunedIncarnations, marked_key, markers_key};

/// A key's value or tombstone: the one such enum of the crate, what the replicator holds for a
/// key (its `Value`) and what it stores and loads.
#[derive(Debug, Clone)]
pub enum DurableValue {
    /// The key's current CRDT state.
    Data(Box<dyn ErasedData>),
    /// The key was deleted; the tombstone keeps it deleted across restarts.
    Deleted,
}

/// Errors of durable storage, each naming the backend (and the replica and key where one is
/// concerned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The underlying store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record is damaged (bad magic, bad checksum, truncated). It is left untouched.
    #[error("{backend}: record of replica '{replica}' key '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The backend.
        backend: String,
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored record was written in a format version this build cannot read.
    #[error(
        "{backend}: record of replica '{replica}' key '{key}' has format version {version}, this build reads up to {supported}"
    )]
    UnsupportedFormat {
        /// The backend.
        backend: String,
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// The version found.
        version: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The key is deleted in the store (a tombstone written by another process under the same
    /// replica name, found by a conflicting write): a deleted key stays deleted, so this write of
    /// a value was not applied, and the replicator adopts the tombstone.
    #[error(
        "{backend}: key '{key}' of replica '{replica}' is deleted in the store (another process wrote its tombstone); the write was not applied"
    )]
    Deleted {
        /// The backend.
        backend: String,
        /// The replica.
        replica: String,
        /// The key.
        key: String,
    },
    /// A stored value could not be decoded or merged as its CRDT type.
    #[error("{backend}: record of replica '{replica}' key '{key}': {source}")]
    Data {
        /// The backend.
        backend: String,
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// The decoding or merging error.
        #[source]
        source: DataError,
    },
}

/// The stream returned by [`CrdtValueStore::load`].
pub type DurableEntryStream<'a> =
    Pin<Box<dyn Stream<Item = Result<(String, DurableValue), DurableError>> + Send + 'a>>;

/// What a [`CrdtValueStore::store`] call did besides writing.
#[derive(Debug, Default)]
pub struct StoreReport {
    /// Keys whose stored record had been written by someone else since this replica last saw it
    /// (another process with the same replica name). The stored value was merged with ours and
    /// the merge written; here are the merged values, for the replicator to adopt.
    pub merged_conflicts: Vec<(String, Box<dyn ErasedData>)>,
    /// Keys found deleted in the store (a tombstone written by another process with the same
    /// replica name): their write was not applied, and the replicator should adopt the
    /// tombstone.
    pub deleted: Vec<String>,
}

/// What a [`CrdtValueStore::store_each`] call did, key by key.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Merged conflicts and keys found deleted, as in [`StoreReport`].
    pub report: StoreReport,
    /// Keys that were not written, each with its error; every other key of the call was
    /// written. A key found deleted in the store is here too, with [`DurableError::Deleted`].
    pub failed: Vec<(String, DurableError)>,
}

/// Whether a durable store keeps up with the writes handed to it, for `/health` and metrics.
///
/// A store is unhealthy from its first failed write until every entry whose write failed has
/// been written. Meanwhile the replicator serves from memory and the store retries with backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableHealth {
    /// False while writes fail or entries whose write failed still wait for a retry.
    pub healthy: bool,
    /// Entries handed to the store and not yet written (the write-behind queue and failed
    /// writes waiting for a retry).
    pub pending: usize,
    /// Failed write attempts since the store was last healthy.
    pub consecutive_failures: u64,
    /// How long the store has been unhealthy.
    pub unhealthy_for: Option<std::time::Duration>,
    /// The last write error since the store was last healthy.
    pub last_error: Option<String>,
}

impl DurableHealth {
    /// A healthy store with nothing pending.
    pub fn healthy() -> Self {
        Self {
            healthy: true,
            pending: 0,
            consecutive_failures: 0,
            unhealthy_for: None,
            last_error: None,
        }
    }
}

impl Default for DurableHealth {
    fn default() -> Self {
        Self::healthy()
    }
}

/// Durable storage as the replicator sees it. Implemented by `dd_durable::DurableDistributedDataStore`.
#[async_trait]
pub trait CrdtValueStore: Send + Sync + 'static {
    /// The backend and its location, for logs and errors.
    fn describe(&self) -> String;

    /// Gives the store the type registry of the replicator of `replica`, once, when the
    /// replicator starts with this store (before [`load`](Self::load)). A store that decodes
    /// stored values outside `load` (dd-durable, to merge a conflicting record into a write)
    /// decodes with it from then on; [`store`](Self::store) and
    /// [`store_each`](Self::store_each) do not carry it. Types registered later in the same
    /// registry are seen too (a [`TypeRegistry`] is a shared handle). The default does nothing,
    /// for stores that never decode.
    fn attach(&self, replica: &ReplicaId, registry: &TypeRegistry) {
        let _ = (replica, registry);
    }

    /// Every stored entry of `replica`, streamed. An entry that cannot be read is an error (never
    /// skipped): the replicator then refuses to start rather than start without it.
    fn load<'a>(
        &'a self,
        replica: &'a ReplicaId,
        registry: &'a TypeRegistry,
    ) -> DurableEntryStream<'a>;

    /// Stores the current state of the given keys of `replica`. Depending on the write mode this
    /// returns after the store acknowledged the write (`Sync`) or after the entries were queued
    /// (`WriteBehind`).
    ///
    /// A newer state of a key replaces an older one. When the write fails, the error is returned
    /// and an implementation should keep the entries and retry them in the background until they
    /// are written (reporting this in [`health`](Self::health)); a later `store` of the same key
    /// supersedes the kept entry.
    async fn store(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<StoreReport, DurableError>;

    /// Like [`store`](Self::store), answering key by key: `Ok` names the keys that failed (every
    /// other key was written, or queued in write-behind), `Err` means the call failed as a whole.
    /// The replicator stores through this method, so that one bad key of a batch fails that key
    /// only. The default calls `store` and so fails every key of the call with its error.
    async fn store_each(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<BatchReport, DurableError> {
        self.store(replica, entries)
            .await
            .map(|report| BatchReport {
                report,
                failed: Vec::new(),
            })
    }

    /// Writes everything still queued (write-behind, or kept after a failed write) and returns
    /// once it is stored.
    async fn flush(&self) -> Result<(), DurableError>;

    /// Whether the store keeps up with the writes. The default says healthy, for stores that
    /// neither queue nor retry.
    fn health(&self) -> DurableHealth {
        DurableHealth::healthy()
    }
}
