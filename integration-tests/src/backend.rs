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

/// What a test needs of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A store to open (and re-open) in this process.
    Store,
    /// A store another process opens by URL and that stays consistent when that process is
    /// killed with SIGKILL in the middle of a write (the crash tests).
    SurvivesWriterKill,
}

/// The environment variable naming the contact points (`host:port,host:port`) of a real
/// Cassandra cluster for the tests (`scripts/services/cassandra.sh` starts one and sets it);
/// without it, an in-process CQL test double is used.
pub const CASSANDRA_CONTACT_POINTS_VAR: &str = "DD_TEST_CASSANDRA_CONTACT_POINTS";

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
    /// `dd-store-s3` under a unique prefix of the bucket named by the `DD_TEST_S3_*` variables
    /// (see [`S3_ENDPOINT_VAR`]); unavailable without them.
    S3,
    /// `dd-store-cassandra` in a fresh table: on the cluster named by
    /// [`CASSANDRA_CONTACT_POINTS_VAR`] when set, else on an in-process `cql-test-double`
    /// started on 127.0.0.1 for the location.
    Cassandra,
}

impl BackendKind {
    /// Every backend.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Memory,
        BackendKind::Fs,
        BackendKind::Sqlite,
        BackendKind::S3,
        BackendKind::Cassandra,
    ];

    /// The backend's short name (the URL scheme where there is one).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Fs => "fs",
            BackendKind::Sqlite => "sqlite",
            BackendKind::S3 => "s3",
            BackendKind::Cassandra => "cassandra",
        }
    }

    /// `Ok` when the backend can serve a test that `needs` this, else the reason it cannot
    /// (printed as the reason the test is skipped).
    pub fn availability_for(self, needs: Needs) -> Result<(), String> {
        self.availability()?;
        if needs == Needs::Store {
            return Ok(());
        }
        match self {
            BackendKind::Memory => {
                Err("an in-process store cannot be opened by another process".to_owned())
            }
            _ => Ok(()),
        }
    }

    /// `Ok` when the backend can be used here, else the reason it cannot (printed as the
    /// reason a test is skipped).
    pub fn availability(self) -> Result<(), String> {
        if self != BackendKind::Memory {
            // Whether this build compiled the backend in: the registry of store schemes.
            let registry = dd_durable::open::registry();
            if !registry.is_enabled(self.name()) {
                let feature = registry.feature_for(self.name()).unwrap_or(self.name());
                return Err(format!(
                    "the {}: backend is not compiled in (enabled: {:?}; add it with: {})",
                    self.name(),
                    registry.enabled(),
                    registry.flag_for(feature)
                ));
            }
        }
        match self {
            BackendKind::Memory
            | BackendKind::Fs
            | BackendKind::Sqlite
            | BackendKind::Cassandra => Ok(()),
            BackendKind::S3 => S3Endpoint::from_env().map(|_| ()),
        }
    }

    /// A fresh, empty location of this backend: a new temporary directory (fs, sqlite; `label`
    /// is part of its name), a new random prefix (S3), a new table (Cassandra, on a new test
    /// double unless a cluster is configured) or a new in-memory store.
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
            BackendKind::S3 => {
                let endpoint =
                    S3Endpoint::from_env().map_err(|reason| HarnessError::Unavailable {
                        backend: self.name(),
                        reason,
                    })?;
                Ok(StoreLocation {
                    kind: self,
                    target: Target::Url(endpoint.url(&unique_prefix())),
                    _keep: Vec::new(),
                })
            }
            BackendKind::Cassandra => {
                let table = format!("dd_{}", unique_prefix());
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                if let Some(points) = var(CASSANDRA_CONTACT_POINTS_VAR) {
                    let keyspace =
                        var("DD_TEST_CASSANDRA_KEYSPACE").unwrap_or_else(|| "dd_test".to_owned());
                    return Ok(StoreLocation {
                        kind: self,
                        target: Target::Url(format!(
                            "cassandra://{points}/{keyspace}?table={table}"
                        )),
                        _keep: Vec::new(),
                    });
                }
                let double = cql_test_double::CqlTestDouble::start().await.map_err(|e| {
                    HarnessError::TestDouble {
                        backend: self.name(),
                        message: e.to_string(),
                    }
                })?;
                let url = format!("cassandra://{}/dd_test?table={table}", double.addr());
                Ok(StoreLocation {
                    kind: self,
                    target: Target::Url(url),
                    _keep: vec![Box::new(double)],
                })
            }
        }
    }
}

/// `it{random hex}`: a prefix no other test (or earlier run) uses, short because some servers
/// (s3s-fs) allow object names of only about 150 bytes.
fn unique_prefix() -> String {
    format!("it{:08x}", rand::random::<u32>())
}

/// `url` with the value of a `secret_key` parameter replaced, for messages.
fn redact(url: &str) -> String {
    match url.find("secret_key=") {
        None => url.to_owned(),
        Some(start) => {
            let value = start + "secret_key=".len();
            let end = url[value..].find('&').map_or(url.len(), |i| value + i);
            format!("{}<redacted>{}", &url[..value], &url[end..])
        }
    }
}

/// The S3 endpoint of the tests, from the environment (as `scripts/services/s3.sh` exports it).
#[derive(Debug, Clone)]
struct S3Endpoint {
    endpoint: String,
    bucket: String,
    region: String,
    access_key: Option<String>,
    secret_key: Option<String>,
    max_object_name_len: Option<String>,
}

impl S3Endpoint {
    fn from_env() -> Result<S3Endpoint, String> {
        let endpoint = std::env::var(S3_ENDPOINT_VAR).map_err(|_| {
            format!(
                "no S3 endpoint: set {S3_ENDPOINT_VAR} (and DD_TEST_S3_BUCKET, DD_TEST_S3_REGION, \
                 DD_TEST_S3_ACCESS_KEY, DD_TEST_S3_SECRET_KEY), or run scripts/test.sh, which \
                 starts s3s-fs"
            )
        })?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(S3Endpoint {
            endpoint,
            bucket: var("DD_TEST_S3_BUCKET").unwrap_or_else(|| "dd-test".to_owned()),
            region: var("DD_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".to_owned()),
            access_key: var("DD_TEST_S3_ACCESS_KEY"),
            secret_key: var("DD_TEST_S3_SECRET_KEY"),
            max_object_name_len: var("DD_TEST_S3_MAX_OBJECT_NAME_LEN"),
        })
    }

    /// The `s3://` URL of `prefix` in the test bucket.
    fn url(&self, prefix: &str) -> String {
        let mut url = format!(
            "s3://{}/{prefix}?endpoint={}&region={}&path_style=true&create_bucket=true",
            self.bucket, self.endpoint, self.region
        );
        if let (Some(access), Some(secret)) = (&self.access_key, &self.secret_key) {
            url.push_str(&format!("&access_key={access}&secret_key={secret}"));
        }
        if let Some(len) = &self.max_object_name_len {
            url.push_str(&format!("&max_object_name_len={len}"));
        }
        url
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

    /// The URL (secrets redacted), or a description for the memory store.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Url(url) => redact(url),
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
                        location: redact(url),
                        source,
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("s3://b/p?access_key=a&secret_key=s3cr3t&region=x"),
            "s3://b/p?access_key=a&secret_key=<redacted>&region=x"
        );
        assert_eq!(
            redact("s3://b/p?secret_key=s3cr3t"),
            "s3://b/p?secret_key=<redacted>"
        );
        assert_eq!(redact("fs:///tmp/x"), "fs:///tmp/x");
    }
}
