//! The error of the harness.

use std::time::Duration;

use dd_core::replicator::ReplicatorError;
use dd_core::store::StoreError;
use dd_core::transport::TransportError;
use dd_durable::OpenError;

/// Why a harness step failed. Every variant says what was being done and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A temporary directory could not be created.
    #[error("cannot create a temporary directory for a {backend} store: {source}")]
    TempDir {
        /// The backend.
        backend: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backend is not available here (no endpoint configured).
    #[error("backend {backend} is not available: {reason}")]
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// The store could not be opened.
    #[error("cannot open the {backend} store at {location}: {source}")]
    Open {
        /// The backend.
        backend: &'static str,
        /// Its location (URL).
        location: String,
        /// The error of `open_store`.
        #[source]
        source: OpenError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A replicator call or start failed.
    #[error("replica '{replica}': {source}")]
    Replicator {
        /// The replica.
        replica: String,
        /// The replicator's error.
        #[source]
        source: ReplicatorError,
    },
    /// A transport could not be bound.
    #[error("replica '{replica}': transport: {source}")]
    Transport {
        /// The replica.
        replica: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// A condition polled for did not become true within its bound.
    #[error("not reached within {bound:?}: {what}")]
    NotReached {
        /// The condition.
        what: String,
        /// The bound.
        bound: Duration,
    },
    /// The test double (Cassandra) could not be started.
    #[error("cannot start the {backend} test double: {message}")]
    TestDouble {
        /// The backend.
        backend: &'static str,
        /// What failed.
        message: String,
    },
}

impl HarnessError {
    /// Wraps a replicator error of `replica`.
    pub fn replicator(replica: impl Into<String>, source: ReplicatorError) -> Self {
        HarnessError::Replicator {
            replica: replica.into(),
            source,
        }
    }
}
