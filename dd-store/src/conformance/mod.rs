//! The conformance suite every [`DurableStateStore`] backend runs (feature `conformance`).
//!
//! Modelled on the shared integration functions of Arrow's `object_store`: each check is a public
//! async function taking a store *opener*, and [`run_all`] runs them all. Every call of the opener
//! must open a **new handle on the same underlying location** (same directory, database file,
//! bucket or keyspace), so that "reopen" and "two handles racing" can be tested. Every check uses
//! its own replica names with a random suffix, so checks never interfere with each other or with
//! other data in the location, and the suite can run against a shared real server.
//!
//! The checks panic with a message naming the check and the operation on failure; they are test
//! code. Run them from a multi-threaded runtime so that the concurrency check really races:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(async {
//! use dd_store::conformance;
//! use dd_store::memory::MemoryStore;
//! use dd_store::StoreError;
//! let store = MemoryStore::new();
//! // Clones of one MemoryStore share their data: "the same store opened again".
//! conformance::run_all(|| {
//!     let store = store.clone();
//!     async move { Ok::<_, StoreError>(store) }
//! })
//! .await;
//! # });
//! ```
//!
//! Backends run the suite as named checks: [`conformance_tests!`](crate::conformance_tests)
//! expands one `#[tokio::test]` per check (so `cargo test -p dd-store-sqlite` lists and reports
//! each), and skips, with a printed reason, a check needing a [`Capability`] the backend's
//! [`Capabilities`] lack ([`CHECKS`] lists what each check needs). The checks live in files by
//! concern: `writes.rs`, `batches.rs`, `scans.rs`, `replicas.rs`, `names.rs`, `durability.rs`,
//! `concurrency.rs`.
//!
//! Scans of 10,000 keys use page sizes 7 and 1000 over every key; page size 1 is checked over
//! the first [`PAGE_ONE_PREFIX`] keys of that replica and over every key of a small replica, so
//! that backends whose page requests are round trips (S3, Cassandra) stay within a minute.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bytes::Bytes;
use futures::TryStreamExt;

use crate::{DurableStateStore, Revision, StoreError, StoredRecord, WriteOp, WriteOutcome};

mod batches;
mod capabilities;
mod concurrency;
mod durability;
mod names;
mod replicas;
mod scans;
mod writes;

pub use batches::*;
pub use capabilities::*;
pub use concurrency::*;
pub use durability::*;
pub use names::*;
pub use replicas::*;
pub use scans::*;
pub use writes::*;

/// How many keys [`scan_many_keys`] writes.
pub const MANY_KEYS: usize = 10_000;

/// How many keys of the [`MANY_KEYS`] replica are scanned with page size 1.
pub const PAGE_ONE_PREFIX: usize = 300;

/// How many tasks race in [`concurrent_conditional_writers`].
pub const RACING_WRITERS: usize = 8;

/// How many successful increments each racing writer aims for.
const INCREMENTS_PER_WRITER: u64 = 10;

/// The bound on the attempts (successful or conflicting) of each racing writer.
const ATTEMPTS_PER_WRITER: usize = 2_000;

/// The size of the large value of [`large_and_empty_values`] (3 MiB).
pub const LARGE_VALUE_LEN: usize = 3 * 1024 * 1024;

/// A replica name that no other check or run uses: `prefix` plus a random suffix.
pub fn unique_replica(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Opens a store handle, panicking with a clear message if that fails.
async fn open_handle<F, Fut, S>(open: &F, check: &str) -> S
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    match open().await {
        Ok(store) => store,
        Err(e) => panic!("{check}: opening the store failed: {e}"),
    }
}

fn ok<T>(result: Result<T, StoreError>, check: &str, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{check}: {what} failed: {e} ({e:?})"),
    }
}

async fn get<S: DurableStateStore>(
    store: &S,
    replica: &str,
    key: &str,
    check: &str,
) -> Option<StoredRecord> {
    let record = ok(
        store.get(replica, key).await,
        check,
        &format!("get({replica:?}, {key:?})"),
    );
    if let Some(r) = &record {
        assert_eq!(
            r.key, key,
            "{check}: get({replica:?}, {key:?}) returned a record with another key"
        );
    }
    record
}

async fn put<S: DurableStateStore>(
    store: &S,
    replica: &str,
    key: &str,
    expected: Option<Revision>,
    value: Bytes,
    check: &str,
) -> WriteOutcome {
    ok(
        store.put(replica, key, expected, value).await,
        check,
        &format!("put({replica:?}, {key:?}, expected {expected:?})"),
    )
}

async fn put_new<S: DurableStateStore>(
    store: &S,
    replica: &str,
    key: &str,
    value: Bytes,
    check: &str,
) -> Revision {
    let outcome = put(store, replica, key, None, value, check).await;
    assert_eq!(
        outcome,
        WriteOutcome::Written(Revision::FIRST),
        "{check}: creating {replica:?}/{key:?} must give revision 1"
    );
    Revision::FIRST
}

async fn scan_all<S: DurableStateStore>(
    store: &S,
    replica: &str,
    page_size: usize,
    check: &str,
) -> Vec<StoredRecord> {
    ok(
        store.scan(replica, page_size).try_collect().await,
        check,
        &format!("scan({replica:?}, page size {page_size})"),
    )
}

/// Scans `replica` with `scan_page` directly, checking the paging contract on every page, until
/// the end or until `stop_after` records; returns the records in order.
async fn scan_pages<S: DurableStateStore>(
    store: &S,
    replica: &str,
    limit: usize,
    stop_after: Option<usize>,
    check: &str,
) -> Vec<StoredRecord> {
    let mut records: Vec<StoredRecord> = Vec::new();
    let mut after: Option<String> = None;
    // Every page but the last must make progress, so this bounds the loop.
    let max_pages = stop_after.unwrap_or(MANY_KEYS * 2) + 2;
    for page_no in 0..max_pages {
        let page = ok(
            store.scan_page(replica, after.as_deref(), limit).await,
            check,
            &format!("scan_page({replica:?}, after {after:?}, limit {limit})"),
        );
        assert!(
            page.records.len() <= limit,
            "{check}: page {page_no} of {replica:?} has {} records, more than the limit {limit}",
            page.records.len()
        );
        for r in &page.records {
            if let Some(a) = &after {
                assert!(
                    r.key.as_bytes() > a.as_bytes(),
                    "{check}: page {page_no} of {replica:?} returned {:?}, not after the cursor {a:?}",
                    r.key
                );
            }
            if let Some(prev) = records.last() {
                assert!(
                    prev.key.as_bytes() < r.key.as_bytes(),
                    "{check}: scan of {replica:?} is not in ascending byte order: {:?} then {:?}",
                    prev.key,
                    r.key
                );
            }
        }
        records.extend(page.records);
        if stop_after.is_some_and(|n| records.len() >= n) {
            return records;
        }
        match page.next {
            None => return records,
            Some(next) => {
                assert!(
                    after.as_ref() != Some(&next),
                    "{check}: scan of {replica:?} returned the same cursor {next:?} twice"
                );
                after = Some(next);
            }
        }
    }
    panic!("{check}: scan of {replica:?} with limit {limit} did not end after {max_pages} pages");
}

async fn write_batch<S: DurableStateStore>(
    store: &S,
    replica: &str,
    ops: Vec<WriteOp>,
    check: &str,
) -> Vec<WriteOutcome> {
    let n = ops.len();
    let outcomes = ok(
        store.write_batch(replica, ops).await,
        check,
        &format!("write_batch({replica:?}, {n} ops)"),
    );
    assert_eq!(
        outcomes.len(),
        n,
        "{check}: write_batch of {n} ops returned {} outcomes",
        outcomes.len()
    );
    outcomes
}

fn put_op(key: &str, expected: Option<Revision>, value: &'static str) -> WriteOp {
    WriteOp::Put {
        key: key.to_owned(),
        expected,
        value: Bytes::from_static(value.as_bytes()),
    }
}

fn delete_op(key: &str, expected: Revision) -> WriteOp {
    WriteOp::Delete {
        key: key.to_owned(),
        expected,
    }
}

async fn assert_record<S: DurableStateStore>(
    store: &S,
    replica: &str,
    key: &str,
    expected: Option<(Revision, &[u8])>,
    check: &str,
) {
    let record = get(store, replica, key, check).await;
    let actual = record.as_ref().map(|r| (r.revision, r.value.as_ref()));
    assert_eq!(
        actual, expected,
        "{check}: {replica:?}/{key:?} has the wrong revision or value"
    );
}

/// Runs every check of the suite, one after the other.
pub async fn run_all<F, Fut, S>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    get_missing(&open).await;
    put_create_and_replace(&open).await;
    put_conflicts(&open).await;
    conditional_delete(&open).await;
    batch_mixed_outcomes(&open).await;
    batch_same_key_twice(&open).await;
    empty_batch(&open).await;
    scan_empty_replica(&open).await;
    scan_many_keys(&open).await;
    scan_small_replica_page_one(&open).await;
    replicas_isolated(&open).await;
    replicas_listed(&open).await;
    odd_keys_round_trip(&open).await;
    odd_replica_names_round_trip(&open).await;
    large_and_empty_values(&open).await;
    survives_reopen(&open).await;
    concurrent_conditional_writers(&open).await;
}
