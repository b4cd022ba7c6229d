#![doc = include_str!("../README.md")]

use std::fmt;
use std::pin::Pin;

pub mod blocking;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod fault;
pub mod memory;
pub mod registry;
pub mod revision;
pub mod url;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

/// The revision of a stored record: 1 for the first write, then +1 for every write.
///
/// A writer passes the revision it last saw as `expected`; `None` means "the record must not
/// exist". A mismatch is a [`WriteOutcome::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of a record's first write.
    pub const FIRST: Revision = Revision(1);

    /// The revision after this one.
    pub fn next(self) -> Revision {
        Revision(self.0.saturating_add(1))
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The key, unique within one replica.
    pub key: String,
    /// The record's current revision.
    pub revision: Revision,
    /// The stored bytes.
    pub value: Bytes,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Create or replace `key` with `value` if its current revision is `expected`.
    Put {
        /// The key.
        key: String,
        /// The revision the writer last saw (`None`: the record must not exist).
        expected: Option<Revision>,
        /// The new bytes.
        value: Bytes,
    },
    /// Remove `key` if its current revision is `expected`.
    Delete {
        /// The key.
        key: String,
        /// The revision the writer last saw.
        expected: Revision,
    },
}

impl WriteOp {
    /// The key this write is for.
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// The result of one conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write was applied; for a put, the record now has this revision (for a delete, the
    /// revision that was removed).
    Written(Revision),
    /// Nothing was written: the record's revision is `actual` (`None`: it does not exist), not the
    /// expected one.
    Conflict {
        /// The record's actual revision.
        actual: Option<Revision>,
    },
}

/// One page of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Records in ascending key order (by the bytes of their UTF-8 key).
    pub records: Vec<StoredRecord>,
    /// The cursor for the next page, or `None` after the last page.
    pub next: Option<String>,
}

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one public error of every backend. Each backend has its own typed error enum that converts
/// into this one; every variant names the backend (for example `sqlite:/var/lib/dd.db`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached or refused the operation for a reason that may pass (down,
    /// timed out, throttled, disk full). Nothing was lost; retrying may succeed.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// The backend.
        backend: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A stored record cannot be read as a record of this backend (truncated, foreign, damaged).
    /// The record is left untouched.
    #[error("{backend}: record of replica '{replica}' key '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The backend.
        backend: String,
        /// The replica the record belongs to.
        replica: String,
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store's configuration is wrong (bad URL, missing bucket, wrong schema).
    #[error("{backend}: invalid configuration: {message}")]
    Config {
        /// The backend.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// Any other backend failure.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend.
        backend: String,
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`] of `backend`, caused by `error` (a backend's typed error, in
    /// its `From` conversion).
    pub fn unavailable(
        backend: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Unavailable {
            backend: backend.into(),
            source: Box::new(error),
        }
    }

    /// [`StoreError::Config`] of `backend` whose message is `error`'s text.
    pub fn config(backend: impl Into<String>, error: impl std::fmt::Display) -> StoreError {
        StoreError::Config {
            backend: backend.into(),
            message: error.to_string(),
        }
    }

    /// [`StoreError::Backend`] of `backend` whose message is `error`'s text and whose source is
    /// `error`.
    pub fn backend(
        backend: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Backend {
            backend: backend.into(),
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// The same error again, for callers that answer several requests with one failure (store
    /// errors are not `Clone`: the copy's sources are the original sources' messages).
    pub fn duplicate(&self) -> StoreError {
        let message_of = |s: &BoxError| -> BoxError { s.to_string().into() };
        match self {
            StoreError::Unavailable { backend, source } => StoreError::Unavailable {
                backend: backend.clone(),
                source: message_of(source),
            },
            StoreError::Corrupt {
                backend,
                replica,
                key,
                reason,
            } => StoreError::Corrupt {
                backend: backend.clone(),
                replica: replica.clone(),
                key: key.clone(),
                reason: reason.clone(),
            },
            StoreError::Config { backend, message } => StoreError::Config {
                backend: backend.clone(),
                message: message.clone(),
            },
            StoreError::Backend {
                backend,
                message,
                source,
            } => StoreError::Backend {
                backend: backend.clone(),
                message: message.clone(),
                source: source.as_ref().map(message_of),
            },
        }
    }
}

/// A stream of records, as returned by [`DurableStateStore::scan`].
pub type RecordStream<'a> =
    Pin<Box<dyn Stream<Item = Result<StoredRecord, StoreError>> + Send + 'a>>;

/// The default page size of [`DurableStateStore::scan`].
pub const DEFAULT_SCAN_PAGE_SIZE: usize = 1000;

/// Revisioned bytes per `(replica, key)`. See the [module docs](self).
///
/// Keys and replica names are arbitrary non-empty UTF-8 strings (slashes, unicode, kilobytes
/// long); a backend escapes them as its medium needs. Values may be larger than 1 MiB.
#[async_trait]
pub trait DurableStateStore: Send + Sync + 'static {
    /// A short description of the backend and its location for errors and logs, for example
    /// `sqlite:/var/lib/dd.db`.
    fn describe(&self) -> String;

    /// Reads one record.
    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError>;

    /// Applies a batch of conditional writes for one replica. Each write succeeds or conflicts on
    /// its own; the outcomes are in the order of `ops`. Backends apply the batch as one
    /// transaction where they can. An `Err` means the batch as a whole failed and none of it can
    /// be assumed written.
    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError>;

    /// One page of the keys of `replica` in ascending key order, starting after the cursor
    /// `after` (from a previous page's [`ScanPage::next`]), at most `limit` records.
    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;

    /// The names of all replicas that have records in this store.
    async fn replicas(&self) -> Result<Vec<String>, StoreError>;

    /// Conditional upsert of one record.
    async fn put(
        &self,
        replica: &str,
        key: &str,
        expected: Option<Revision>,
        value: Bytes,
    ) -> Result<WriteOutcome, StoreError> {
        let op = WriteOp::Put {
            key: key.to_owned(),
            expected,
            value,
        };
        single_outcome(self.describe(), self.write_batch(replica, vec![op]).await?)
    }

    /// Conditional delete of one record.
    async fn delete(
        &self,
        replica: &str,
        key: &str,
        expected: Revision,
    ) -> Result<WriteOutcome, StoreError> {
        let op = WriteOp::Delete {
            key: key.to_owned(),
            expected,
        };
        single_outcome(self.describe(), self.write_batch(replica, vec![op]).await?)
    }

    /// Every record of `replica`, streamed page by page (`page_size` records per request), so that
    /// memory stays bounded however many keys there are.
    fn scan<'a>(&'a self, replica: &'a str, page_size: usize) -> RecordStream<'a> {
        let limit = page_size.max(1);
        let pages = futures::stream::try_unfold(Some(None::<String>), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let page = self.scan_page(replica, after.as_deref(), limit).await?;
            let next = page.next.map(Some);
            Ok(Some((
                futures::stream::iter(page.records.into_iter().map(Ok)),
                next,
            )))
        });
        Box::pin(futures::TryStreamExt::try_flatten(pages))
    }
}

/// Names the records of a batch for an error message: `replica 'r' key 'k'`, or
/// `replica 'r' keys 'a', 'b' (and 3 more)` (at most five keys are named).
///
/// ```
/// use dd_store::batch_subject;
/// assert_eq!(batch_subject("r", &["k"]), "replica 'r' key 'k'");
/// let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
/// assert_eq!(
///     batch_subject("r", &keys),
///     "replica 'r' keys 'k0', 'k1', 'k2', 'k3', 'k4' (and 2 more)"
/// );
/// ```
pub fn batch_subject(replica: &str, keys: &[impl AsRef<str>]) -> String {
    const NAMED: usize = 5;
    if let [key] = keys {
        return format!("replica '{replica}' key '{}'", key.as_ref());
    }
    let named: Vec<String> = keys
        .iter()
        .take(NAMED)
        .map(|k| format!("'{}'", k.as_ref()))
        .collect();
    let more = keys.len().saturating_sub(NAMED);
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    format!("replica '{replica}' keys {}{tail}", named.join(", "))
}

fn single_outcome(
    backend: String,
    outcomes: Vec<WriteOutcome>,
) -> Result<WriteOutcome, StoreError> {
    let n = outcomes.len();
    outcomes
        .into_iter()
        .next()
        .filter(|_| n == 1)
        .ok_or_else(|| StoreError::Backend {
            backend,
            message: format!("a batch of one write returned {n} outcomes"),
            source: None,
        })
}
