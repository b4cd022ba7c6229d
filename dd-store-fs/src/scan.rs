//! The records of one replica as a stream: one sorted listing of the replica directory per scan,
//! then the records page by page along it, the next page read while the caller handles the
//! current one.

use std::sync::Arc;

use dd_store::{RecordStream, StoreError, StoredRecord};
use futures::TryStreamExt;
use tokio::task::JoinHandle;

use crate::error::FsError;
use crate::files::StoreDir;

/// A page being read on the blocking pool.
type PageRead = JoinHandle<Result<Vec<StoredRecord>, FsError>>;

/// Where a scan is: the keys not yet handed to a page read, and the page being read.
struct Scan {
    keys: std::vec::IntoIter<String>,
    reading: Option<PageRead>,
}

/// Starts reading the next `limit` keys of `keys` (none when every key has been read).
fn read_next_page(
    dir: &Arc<StoreDir>,
    replica: &str,
    keys: &mut std::vec::IntoIter<String>,
    limit: usize,
) -> Option<PageRead> {
    if keys.len() == 0 {
        return None;
    }
    let page: Vec<String> = keys.by_ref().take(limit).collect();
    let dir = Arc::clone(dir);
    let replica = replica.to_owned();
    Some(tokio::task::spawn_blocking(move || {
        dir.read_records(&replica, page)
    }))
}

async fn finish(dir: &StoreDir, read: PageRead) -> Result<Vec<StoredRecord>, FsError> {
    read.await.map_err(|e| FsError::Task {
        dir: dir.path().to_path_buf(),
        message: e.to_string(),
    })?
}

/// Every record of `replica`, `limit` per page, in ascending key byte order. The directory is
/// listed once, when the stream is first polled; a key created after that is not part of the
/// scan, a record deleted since is left out, and each record is read when its page is (at most
/// one page ahead of the caller).
pub fn records<'a>(dir: &'a Arc<StoreDir>, replica: &'a str, limit: usize) -> RecordStream<'a> {
    let limit = limit.max(1);
    let pages = futures::stream::try_unfold(None, move |scan: Option<Scan>| async move {
        let mut scan = match scan {
            Some(scan) => scan,
            None => {
                let listing = {
                    let dir = Arc::clone(dir);
                    let replica = replica.to_owned();
                    tokio::task::spawn_blocking(move || dir.list_keys(&replica, None))
                };
                let mut keys = listing
                    .await
                    .map_err(|e| FsError::Task {
                        dir: dir.path().to_path_buf(),
                        message: e.to_string(),
                    })??
                    .into_iter();
                let reading = read_next_page(dir, replica, &mut keys, limit);
                Scan { keys, reading }
            }
        };
        let Some(reading) = scan.reading.take() else {
            return Ok::<_, StoreError>(None);
        };
        let records = finish(dir, reading).await?;
        // Read ahead: the next page is read while the caller handles this one.
        scan.reading = read_next_page(dir, replica, &mut scan.keys, limit);
        Ok(Some((
            futures::stream::iter(records.into_iter().map(Ok)),
            Some(scan),
        )))
    });
    Box::pin(pages.try_flatten())
}
