//! `FsStore`: the `DurableStateStore` implementation over a `StoreDir` (files.rs).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use dd_store::blocking;
use dd_store::{
    DurableStateStore, RecordStream, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

use crate::error::FsError;
use crate::files::StoreDir;
use crate::options::FsOptions;
use crate::{lock, scan};

/// A file-system store. Cheap to clone; clones share the directory handle.
#[derive(Debug, Clone)]
pub struct FsStore {
    dir: Arc<StoreDir>,
}

impl FsStore {
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

/// Opens the store in [`FsOptions::dir`], creating the directory if needed. Refuses a non-empty
/// directory that is not a dd-store-fs directory and an unknown layout version
/// ([`FsError::NotAStore`], as [`StoreError::Config`]). Removes temporary files left by
/// interrupted writes.
pub async fn open(options: FsOptions) -> Result<FsStore, StoreError> {
    let path = options.dir;
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

/// Opens the store an `fs:` URL names (see [`FsOptions::from_url`] for the forms).
pub async fn open_url(url: &str) -> Result<FsStore, StoreError> {
    open(FsOptions::from_url(url)?).await
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
