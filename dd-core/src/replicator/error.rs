//! Errors of the replicator.

use crate::data::DataError;
use crate::durable::DurableError;

/// A boxed error from a user's modify function: the crate's one boxed error type, defined with
/// the store's errors and re-exported here.
pub use crate::store::BoxError;

/// Errors of [`Replicator`](super::Replicator) calls and of starting one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicatorError {
    /// The key has no value (on the replicas that were consulted).
    #[error("key '{key}' not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The key was deleted; it stays deleted.
    #[error("key '{key}' was deleted")]
    Deleted {
        /// The key.
        key: String,
    },
    /// Not enough replicas answered in time. A write was still applied locally when
    /// `applied_locally` is true and spreads by gossip later.
    #[error(
        "key '{key}': timed out waiting for {required} replicas ({received} answered); applied locally: {applied_locally}"
    )]
    Timeout {
        /// The key.
        key: String,
        /// Replicas needed (including this one).
        required: usize,
        /// Replicas that answered (including this one).
        received: usize,
        /// Whether the write was applied to the local replica.
        applied_locally: bool,
    },
    /// The durable store failed; an update stays applied in memory (and is gossiped), and the
    /// store keeps the value and retries writing it until it succeeds (see
    /// [`CrdtValueStore::health`](crate::durable::CrdtValueStore::health)).
    #[error(
        "key '{key}': durable store failed (the value is applied in memory and its write is retried): {source}"
    )]
    StoreFailure {
        /// The key (or keys, comma-separated).
        key: String,
        /// The store's error.
        #[source]
        source: Box<DurableError>,
    },
    /// The key holds a value of another type.
    #[error("key '{key}' holds a '{found}', not a '{expected}'")]
    WrongType {
        /// The key.
        key: String,
        /// The type the caller asked for.
        expected: String,
        /// The type stored under the key.
        found: String,
    },
    /// The modify function failed; the value is unchanged.
    #[error("key '{key}': modify failed: {source}")]
    ModifyFailed {
        /// The key.
        key: String,
        /// The modify function's error.
        #[source]
        source: BoxError,
    },
    /// The replicator was shut down (or its task ended).
    #[error("the replicator is shut down")]
    Shutdown,
    /// Loading the durable store at start failed; the replicator did not start.
    #[error("loading durable data from {store} failed: {source}")]
    LoadFailure {
        /// The store's description.
        store: String,
        /// The store's error.
        #[source]
        source: Box<DurableError>,
    },
    /// A value could not be encoded, decoded or merged.
    #[error("key '{key}': {source}")]
    Data {
        /// The key.
        key: String,
        /// The data error.
        #[source]
        source: Box<DataError>,
    },
    /// The transport could not be used (e.g. its incoming stream was already taken).
    #[error("transport: {0}")]
    Transport(String),
    /// The key starts with the prefix reserved for the replicator's own records
    /// ([`RESERVED_PREFIX`](super::RESERVED_PREFIX)).
    #[error("key '{key}' uses the prefix reserved for the replicator's records")]
    ReservedKey {
        /// The key.
        key: String,
    },
    /// This replica's current incarnation was removed from the cluster and its entries were
    /// pruned by the other replicas (for example it was taken out of a static member list and
    /// added back, or a membership grace period expired while it was running). Its writes would
    /// be dropped by every merge, so it takes none; restart the replica (a new incarnation) to
    /// rejoin. Reads and gossip keep working.
    #[error(
        "key '{key}': incarnation {incarnation} of this replica was removed from the cluster and \
         pruned; it takes no more writes (they would be dropped): restart the replica to rejoin \
         with a new incarnation"
    )]
    IncarnationPruned {
        /// The key of the refused write.
        key: String,
        /// This replica's pruned incarnation.
        incarnation: String,
    },
    /// Invalid settings.
    #[error("invalid settings: {0}")]
    Settings(String),
}
