//! Storage backends as the tests see them: a fresh location per test, opened (and re-opened)
//! through `dd_durable::open_store`, and whether the backend is available here.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use dd_core::store::DurableStateStore;
use dd_core::store::memory::MemoryStore;

use crate::error::HarnessError;

/// The environment variable naming the S3 endpoint of the tests (see the README).
pub const S3_ENDPOINT_VAR: &str = "DD_TEST_S3_ENDPOINT";

/// A storage backend the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// `dd_core::store::memory::MemoryStore`: the reference store, shared in-process; a "reopen"
    /// is the same store. Tests the replicator and dd-durable without a real backend.
    Memory,
    /// `dd-store-fs` in a temporary directory.
    Fs,
    /// `dd-store-sqlite` in a temporary directory.
    Sqlite,
}

impl BackendKind {
    /// Every backend.
    pub const ALL: [BackendKind; 3] = [BackendKind::Memory, BackendKind::Fs, BackendKind::Sqlite];

    /// The backend's short name (the URL scheme where there is one).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Fs => "fs",
            BackendKind::Sqlite => "sqlite",
        }
    }

    /// Whether the backend can run in another process opened by URL (the crash tests need it).
    pub fn has_url(self) -> bool {
        !matches!(self, BackendKind::Memory)
    }

    /// `Ok` when the backend can be used here, else the reason it cannot (printed as the
    /// reason a test is skipped).
    pub fn availability(self) -> Result<(), String> {
        match self {
            BackendKind::Memory | BackendKind::Fs | BackendKind::Sqlite => Ok(()),
        }
    }

    /// A fresh, empty location of this backend. `label` (the test's name) makes it easy to find
    /// where a unique prefix is needed.
    pub async fn fresh_location(self, label: &str) -> Result<StoreLocation, HarnessError> {
        self.availability()
            .map_err(|reason| HarnessError::Unavailable {
                backend: self.name(),
                reason,
            })?;
        match self {
            BackendKind::Memory => Ok(StoreLocation {
                kind: self,
                target: Target::Memory(MemoryStore::new()),
                _keep: Vec::new(),
            }),
            BackendKind::Fs | BackendKind::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("dd-itest-{}-{label}-", self.name()))
                    .tempdir()
                    .map_err(|source| HarnessError::TempDir {
                        backend: self.name(),
                        source,
                    })?;
                let url = match self {
                    BackendKind::Fs => format!("fs://{}", dir.path().join("store").display()),
                    _ => format!("sqlite://{}", dir.path().join("store.db").display()),
                };
                Ok(StoreLocation {
                    kind: self,
                    target: Target::Url(url),
                    _keep: vec![Box::new(dir)],
                })
            }
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Target {
    Url(String),
    Memory(MemoryStore),
}

/// One location of a backend (a directory, a database file, a prefix, a keyspace table) that
/// lives as long as this value: temporary directories are removed and test doubles stopped when
/// it is dropped.
pub struct StoreLocation {
    kind: BackendKind,
    target: Target,
    _keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLocation")
            .field("kind", &self.kind)
            .field("location", &self.describe())
            .finish()
    }
}

impl StoreLocation {
    /// The backend.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The URL `dd_durable::open_store` opens this location with (`None` for memory).
    pub fn url(&self) -> Option<&str> {
        match &self.target {
            Target::Url(url) => Some(url),
            Target::Memory(_) => None,
        }
    }

    /// The URL, or a description for the memory store.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Url(url) => url.clone(),
            Target::Memory(_) => "memory (in-process)".to_owned(),
        }
    }

    /// Opens the store at this location. Every call opens it anew (as a restarted process would:
    /// a new connection, new handles); the data is whatever earlier handles left there.
    pub async fn open(&self) -> Result<Arc<dyn DurableStateStore>, HarnessError> {
        match &self.target {
            Target::Memory(store) => Ok(Arc::new(store.clone())),
            Target::Url(url) => {
                dd_durable::open_store(url)
                    .await
                    .map_err(|source| HarnessError::Open {
                        backend: self.kind.name(),
                        location: url.clone(),
                        source,
                    })
            }
        }
    }
}
