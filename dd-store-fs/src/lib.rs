//! `dd-store-fs`: a [`DurableStateStore`] keeping one crash-safe file per `(replica, key)`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use dd_store::{DurableStateStore, Revision, WriteOutcome};
//! use dd_store_fs::FsStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = FsStore::open(dir.path()).await.unwrap();
//! let written = store.put("replica-a", "counter/1", None, "v1".into()).await.unwrap();
//! assert_eq!(written, WriteOutcome::Written(Revision::FIRST));
//! // Another handle on the same directory (or another process) sees the record.
//! let again = dd_store_fs::open_url(&format!("fs://{}", dir.path().display())).await.unwrap();
//! let record = again.get("replica-a", "counter/1").await.unwrap().unwrap();
//! assert_eq!(record.value, "v1");
//! # });
//! ```
//!
//! Layout: `<dir>/.dd-store-fs` (marker with the layout version), `<dir>/<replica>/<key>`, names
//! escaped by [`name`]; record files as described in [`record`]. Writes go to a temporary file
//! that is synced and renamed over the record, then the directory is synced: a record is always
//! either its old or its new version, and an acknowledged write survives a crash or power loss.
//! Writers of one replica exclude each other with an advisory `flock` on `<replica>/.lock` (held
//! for one batch; it works across handles and processes on a local file system) and, within one
//! process, a striped async mutex. Readers take no lock: they see whole records thanks to
//! the atomic rename. See the crate README.

mod error;
mod files;
mod lock;
pub mod name;
pub mod record;
mod scan;
mod url;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use dd_store::blocking;
use dd_store::{
    DurableStateStore, RecordStream, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

pub use error::FsError;
pub use url::parse_url;

use files::StoreDir;

/// A file-system store. Cheap to clone; clones share the directory handle.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: Arc<StoreDir>,
}

impl FsStore {
    /// Opens the store in `dir`, creating the directory if needed. Refuses a non-empty directory
    /// that is not a dd-store-fs directory and an unknown layout version ([`FsError::NotAStore`]).
    /// Removes temporary files left by interrupted writes.
    pub async fn open(dir: impl AsRef<Path>) -> Result<FsStore, FsError> {
        let path = dir.as_ref().to_path_buf();
        let opened = blocking::run({
            let path = path.clone();
            move || StoreDir::open(&path)
        })
        .await
        .map_err(|e| FsError::Task {
            dir: path,
            message: e.0,
        })??;
        Ok(FsStore {
            dir: Arc::new(opened),
        })
    }

    /// The store's (canonical) directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, FsError>
    where
        T: Send + 'static,
        F: FnOnce(&StoreDir) -> Result<T, FsError> + Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        blocking::run(move || f(&dir))
            .await
            .map_err(|e| FsError::Task {
                dir: self.dir.path().to_path_buf(),
                message: e.0,
            })?
    }
}

/// Opens the store an `fs:` URL names (see [`parse_url`] for the forms).
pub async fn open_url(url: &str) -> Result<FsStore, StoreError> {
    let dir: PathBuf = parse_url(url)?;
    Ok(FsStore::open(dir).await?)
}

#[async_trait]
impl DurableStateStore for FsStore {
    fn describe(&self) -> String {
        format!("fs:{}", self.dir.path().display())
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let (replica, key) = (replica.to_owned(), key.to_owned());
        Ok(self.blocking(move |dir| dir.get(&replica, &key)).await?)
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let (replica_dir, _) = self.dir.replica_dir(replica);
        let _stripe = lock::stripe(&replica_dir).await;
        let replica = replica.to_owned();
        Ok(self
            .blocking(move |dir| dir.write_batch(&replica, ops))
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
            .blocking(move |dir| dir.scan_page(&replica, after.as_deref(), limit))
            .await?)
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.blocking(|dir| dir.replicas()).await?)
    }

    /// Lists the replica directory once, when the stream is first polled, then reads the records
    /// page by page along that sorted listing, one page ahead of the caller: a scan costs one
    /// listing plus the records, where paging with
    /// [`scan_page`](DurableStateStore::scan_page) lists the directory for every page. A key
    /// created after the listing is not part of the scan (as with `readdir`); a record deleted
    /// since is left out, and every record is read as it is when its page is read.
    fn scan<'a>(&'a self, replica: &'a str, page_size: usize) -> RecordStream<'a> {
        scan::records(&self.dir, replica, page_size)
    }
}

/// Registers the `fs:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "fs",
        backend: "dd-store-fs",
        open: |url, _access| Box::pin(async move { Ok(Arc::new(open_url(&url).await?) as _) }),
        local_path: Some(|url| parse_url(url).ok()),
    });
}
