//! `SqliteStore`: the `DurableStateStore` implementation over one `Database` connection (db.rs).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dd_store::blocking;
use dd_store::{DurableStateStore, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome};

use crate::db::Database;
use crate::error::SqliteError;
use crate::options::SqliteOptions;

/// An SQLite store. Cheap to clone; clones share one connection.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: Arc<PathBuf>,
    db: Arc<Mutex<Database>>,
}

fn lock(db: &Mutex<Database>) -> MutexGuard<'_, Database> {
    // A panic inside an operation drops its transaction (rolled back), so the connection is fine.
    db.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the size cap of the database file (see [`SqliteOptions::max_size_bytes`]; `None`
    /// removes it) on this open store, for example to let writes continue after the cap was
    /// reached. Returns the cap in effect, in bytes (whole pages; the database's current size if
    /// that is larger than the requested cap). Applies to this handle and its clones.
    pub async fn set_max_size_bytes(
        &self,
        max_size_bytes: Option<u64>,
    ) -> Result<u64, SqliteError> {
        self.blocking(move |db| db.set_max_size_bytes(max_size_bytes))
            .await
    }

    /// The connection's `PRAGMA synchronous` (2: FULL, 1: NORMAL).
    pub async fn synchronous(&self) -> Result<i64, SqliteError> {
        self.blocking(|db| db.synchronous()).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database) -> Result<T, SqliteError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        blocking::run(move || f(&mut lock(&db)))
            .await
            .map_err(|e| SqliteError::Task {
                path: self.path.to_path_buf(),
                message: e.0,
            })?
    }
}

/// Opens (creating if needed) the database file [`SqliteOptions::path`]. The parent directory
/// must exist. Refuses a file that is not an SQLite database, a database of another application
/// and a newer schema version, with an error naming the path. A database that can only be opened
/// read-only (read-only file system, file or directory not writable) is refused with
/// [`SqliteError::ReadOnly`] (as [`StoreError::Unavailable`], transient: it opens once the
/// database is writable).
pub async fn open(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
    let path = options.path.clone();
    let db = blocking::run(move || Database::open(&options.path, &options))
        .await
        .map_err(|e| SqliteError::Task {
            path: path.clone(),
            message: e.0,
        })??;
    Ok(SqliteStore {
        path: Arc::new(path),
        db: Arc::new(Mutex::new(db)),
    })
}

/// Opens the store an `sqlite:` URL names (see [`SqliteOptions::from_url`] for the forms and
/// options).
pub async fn open_url(url: &str) -> Result<SqliteStore, StoreError> {
    open(SqliteOptions::from_url(url)?).await
}

#[async_trait]
impl DurableStateStore for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let (replica, key) = (replica.to_owned(), key.to_owned());
        Ok(self.blocking(move |db| db.get(&replica, &key)).await?)
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let replica = replica.to_owned();
        Ok(self
            .blocking(move |db| db.write_batch(&replica, ops))
            .await?)
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let replica = replica.to_owned();
        let after = after.map(str::to_owned);
        Ok(self
            .blocking(move |db| db.scan_page(&replica, after.as_deref(), limit))
            .await?)
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.blocking(|db| db.replicas()).await?)
    }
}
