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
//! Scans of 10,000 keys use page sizes 7 and 1000 over every key; page size 1 is checked over
//! the first [`PAGE_ONE_PREFIX`] keys of that replica and over every key of a small replica, so
//! that backends whose page requests are round trips (S3, Cassandra) stay within a minute.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bytes::Bytes;
use futures::TryStreamExt;

use super::{DurableStateStore, Revision, StoreError, StoredRecord, WriteOp, WriteOutcome};

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

/// A missing key (in a missing and in an existing replica) reads as `None`.
pub async fn get_missing<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "get_missing";
    let store = open_handle(open, check).await;
    let replica = unique_replica("get-missing");
    assert_eq!(get(&store, &replica, "nope", check).await, None);
    put_new(&store, &replica, "present", Bytes::from_static(b"x"), check).await;
    assert_eq!(get(&store, &replica, "nope", check).await, None);
    assert_eq!(get(&store, &replica, "presen", check).await, None);
    assert_eq!(get(&store, &replica, "present2", check).await, None);
}

/// Creating with `expected: None` gives [`Revision::FIRST`]; replacing with the current revision
/// gives the next one, and the value is replaced.
pub async fn put_create_and_replace<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "put_create_and_replace";
    let store = open_handle(open, check).await;
    let replica = unique_replica("put");
    put_new(&store, &replica, "k", Bytes::from_static(b"v1"), check).await;
    assert_record(&store, &replica, "k", Some((Revision(1), b"v1")), check).await;
    let mut revision = Revision::FIRST;
    for i in 2..=5u64 {
        let value = Bytes::from(format!("v{i}"));
        let outcome = put(&store, &replica, "k", Some(revision), value.clone(), check).await;
        assert_eq!(
            outcome,
            WriteOutcome::Written(revision.next()),
            "{check}: replacing revision {revision} must give the next revision"
        );
        revision = revision.next();
        assert_record(&store, &replica, "k", Some((Revision(i), &value)), check).await;
    }
}

/// A stale or `None` expected revision is a [`WriteOutcome::Conflict`] with the actual revision
/// and changes nothing; so is a `Some` expected revision for a missing key.
pub async fn put_conflicts<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "put_conflicts";
    let store = open_handle(open, check).await;
    let replica = unique_replica("conflicts");
    put_new(&store, &replica, "k", Bytes::from_static(b"v1"), check).await;
    let r2 = put(&store, &replica, "k", Some(Revision(1)), "v2".into(), check).await;
    assert_eq!(r2, WriteOutcome::Written(Revision(2)), "{check}: replace");
    for expected in [
        None,
        Some(Revision(1)),
        Some(Revision(3)),
        Some(Revision(99)),
    ] {
        let outcome = put(&store, &replica, "k", expected, "lost".into(), check).await;
        assert_eq!(
            outcome,
            WriteOutcome::Conflict {
                actual: Some(Revision(2))
            },
            "{check}: put with expected {expected:?} over revision 2 must conflict"
        );
        assert_record(&store, &replica, "k", Some((Revision(2), b"v2")), check).await;
    }
    let outcome = put(
        &store,
        &replica,
        "missing",
        Some(Revision(1)),
        "lost".into(),
        check,
    )
    .await;
    assert_eq!(
        outcome,
        WriteOutcome::Conflict { actual: None },
        "{check}: put with expected Some over a missing key must conflict"
    );
    assert_record(&store, &replica, "missing", None, check).await;
}

/// A delete with the right revision removes the record (a later create starts again at
/// [`Revision::FIRST`]); a wrong revision or a missing key is a conflict that changes nothing.
pub async fn conditional_delete<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "conditional_delete";
    let store = open_handle(open, check).await;
    let replica = unique_replica("delete");
    put_new(&store, &replica, "k", "v1".into(), check).await;
    put(&store, &replica, "k", Some(Revision(1)), "v2".into(), check).await;
    for wrong in [Revision(1), Revision(3)] {
        let outcome = ok(
            store.delete(&replica, "k", wrong).await,
            check,
            "delete with a wrong revision",
        );
        assert_eq!(
            outcome,
            WriteOutcome::Conflict {
                actual: Some(Revision(2))
            },
            "{check}: delete expecting {wrong} of revision 2 must conflict"
        );
        assert_record(&store, &replica, "k", Some((Revision(2), b"v2")), check).await;
    }
    let outcome = ok(
        store.delete(&replica, "missing", Revision(1)).await,
        check,
        "delete of a missing key",
    );
    assert_eq!(
        outcome,
        WriteOutcome::Conflict { actual: None },
        "{check}: delete of a missing key must conflict with actual None"
    );
    let outcome = ok(
        store.delete(&replica, "k", Revision(2)).await,
        check,
        "delete with the right revision",
    );
    assert_eq!(
        outcome,
        WriteOutcome::Written(Revision(2)),
        "{check}: delete with the right revision returns the removed revision"
    );
    assert_record(&store, &replica, "k", None, check).await;
    assert!(
        scan_all(&store, &replica, 10, check).await.is_empty(),
        "{check}: a deleted record must not be scanned"
    );
    let again = ok(
        store.delete(&replica, "k", Revision(2)).await,
        check,
        "second delete",
    );
    assert_eq!(again, WriteOutcome::Conflict { actual: None }, "{check}");
    put_new(&store, &replica, "k", "v3".into(), check).await;
    assert_record(&store, &replica, "k", Some((Revision(1), b"v3")), check).await;
}

/// A batch with mixed outcomes is applied in order: a conflicting op does not stop the others.
pub async fn batch_mixed_outcomes<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "batch_mixed_outcomes";
    let store = open_handle(open, check).await;
    let replica = unique_replica("batch-mixed");
    put_new(&store, &replica, "existing", "e1".into(), check).await;
    put_new(&store, &replica, "doomed", "d1".into(), check).await;
    let outcomes = write_batch(
        &store,
        &replica,
        vec![
            put_op("a", None, "a1"),
            put_op("b", Some(Revision(5)), "b-lost"),
            put_op("existing", None, "e-lost"),
            put_op("c", None, "c1"),
            delete_op("doomed", Revision(7)),
            put_op("existing", Some(Revision(1)), "e2"),
            delete_op("doomed", Revision(1)),
            delete_op("never", Revision(1)),
        ],
        check,
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Conflict { actual: None },
            WriteOutcome::Conflict {
                actual: Some(Revision(1))
            },
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Conflict {
                actual: Some(Revision(1))
            },
            WriteOutcome::Written(Revision(2)),
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Conflict { actual: None },
        ],
        "{check}: outcomes"
    );
    assert_record(&store, &replica, "a", Some((Revision(1), b"a1")), check).await;
    assert_record(&store, &replica, "b", None, check).await;
    assert_record(&store, &replica, "c", Some((Revision(1), b"c1")), check).await;
    assert_record(
        &store,
        &replica,
        "existing",
        Some((Revision(2), b"e2")),
        check,
    )
    .await;
    assert_record(&store, &replica, "doomed", None, check).await;
    assert_record(&store, &replica, "never", None, check).await;
    let keys: Vec<String> = scan_all(&store, &replica, 2, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        keys,
        vec!["a", "c", "existing"],
        "{check}: scan after batch"
    );
}

/// A batch writing the same key several times applies the writes in order, each seeing the
/// previous one.
pub async fn batch_same_key_twice<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "batch_same_key_twice";
    let store = open_handle(open, check).await;
    let replica = unique_replica("batch-same-key");
    let outcomes = write_batch(
        &store,
        &replica,
        vec![
            put_op("k", None, "v1"),
            put_op("k", Some(Revision(1)), "v2"),
            put_op("k", Some(Revision(1)), "stale"),
            delete_op("k", Revision(2)),
            put_op("k", None, "v3"),
            put_op("k", Some(Revision(1)), "v4"),
            put_op("gone", None, "g1"),
            delete_op("gone", Revision(1)),
        ],
        check,
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Written(Revision(2)),
            WriteOutcome::Conflict {
                actual: Some(Revision(2))
            },
            WriteOutcome::Written(Revision(2)),
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Written(Revision(2)),
            WriteOutcome::Written(Revision(1)),
            WriteOutcome::Written(Revision(1)),
        ],
        "{check}: outcomes"
    );
    assert_record(&store, &replica, "k", Some((Revision(2), b"v4")), check).await;
    assert_record(&store, &replica, "gone", None, check).await;
    let outcomes = write_batch(
        &store,
        &replica,
        vec![
            put_op("k", Some(Revision(2)), "v5"),
            put_op("k", Some(Revision(3)), "v6"),
        ],
        check,
    )
    .await;
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Written(Revision(3)),
            WriteOutcome::Written(Revision(4))
        ],
        "{check}: second batch"
    );
    assert_record(&store, &replica, "k", Some((Revision(4), b"v6")), check).await;
}

/// An empty batch returns no outcomes and writes nothing.
pub async fn empty_batch<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "empty_batch";
    let store = open_handle(open, check).await;
    let replica = unique_replica("empty-batch");
    let outcomes = write_batch(&store, &replica, Vec::new(), check).await;
    assert!(outcomes.is_empty(), "{check}");
    assert!(
        scan_all(&store, &replica, 10, check).await.is_empty(),
        "{check}"
    );
    let listed = ok(store.replicas().await, check, "replicas()");
    assert!(
        !listed.contains(&replica),
        "{check}: a replica without records must not be listed"
    );
}

/// Scanning a replica without records gives one empty page with `next: None`.
pub async fn scan_empty_replica<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "scan_empty_replica";
    let store = open_handle(open, check).await;
    let replica = unique_replica("scan-empty");
    for limit in [1, 1000] {
        let page = ok(
            store.scan_page(&replica, None, limit).await,
            check,
            "scan_page",
        );
        assert!(
            page.records.is_empty(),
            "{check}: records of an empty replica"
        );
        assert_eq!(page.next, None, "{check}: next of an empty replica");
        let page = ok(
            store.scan_page(&replica, Some("m"), limit).await,
            check,
            "scan_page after a cursor",
        );
        assert!(page.records.is_empty(), "{check}: records after a cursor");
        assert_eq!(page.next, None, "{check}: next after a cursor");
    }
    assert!(
        scan_all(&store, &replica, 3, check).await.is_empty(),
        "{check}"
    );
}

fn many_key(i: usize) -> String {
    // Not zero-padded, so that byte order differs from numeric order.
    format!("key-{i}")
}

/// [`MANY_KEYS`] keys scanned with page sizes 7 and 1000 (and 1 over the first
/// [`PAGE_ONE_PREFIX`]): ascending byte order, every key exactly once, `next: None` at the end.
pub async fn scan_many_keys<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "scan_many_keys";
    let store = open_handle(open, check).await;
    let replica = unique_replica("scan-many");
    let keys: Vec<String> = (0..MANY_KEYS).map(many_key).collect();
    for chunk in keys.chunks(500) {
        let ops = chunk
            .iter()
            .map(|k| WriteOp::Put {
                key: k.clone(),
                expected: None,
                value: Bytes::from(format!("value of {k}")),
            })
            .collect();
        let outcomes = write_batch(&store, &replica, ops, check).await;
        assert!(
            outcomes
                .iter()
                .all(|o| *o == WriteOutcome::Written(Revision::FIRST)),
            "{check}: every create must be written with revision 1"
        );
    }
    let mut sorted: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    sorted.sort();
    for limit in [1000, 7] {
        let records = scan_pages(&store, &replica, limit, None, check).await;
        assert_eq!(
            records.len(),
            MANY_KEYS,
            "{check}: page size {limit} must return every key exactly once"
        );
        for (record, key) in records.iter().zip(&sorted) {
            assert_eq!(record.key.as_bytes(), *key, "{check}: page size {limit}");
            assert_eq!(record.revision, Revision::FIRST, "{check}");
            assert_eq!(
                record.value,
                Bytes::from(format!("value of {}", record.key)),
                "{check}: value of {:?}",
                record.key
            );
        }
    }
    let prefix = scan_pages(&store, &replica, 1, Some(PAGE_ONE_PREFIX), check).await;
    assert_eq!(prefix.len(), PAGE_ONE_PREFIX, "{check}: page size 1");
    for (record, key) in prefix.iter().zip(&sorted) {
        assert_eq!(record.key.as_bytes(), *key, "{check}: page size 1");
    }
    let streamed = scan_all(&store, &replica, 1000, check).await;
    assert_eq!(streamed.len(), MANY_KEYS, "{check}: scan() stream");
}

/// Every key of a small replica scanned with page size 1, to its end.
pub async fn scan_small_replica_page_one<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "scan_small_replica_page_one";
    let store = open_handle(open, check).await;
    let replica = unique_replica("scan-page-one");
    let keys: BTreeSet<String> = (0..25).map(many_key).collect();
    let ops = keys.iter().map(|k| put_op(k, None, "v")).collect();
    write_batch(&store, &replica, ops, check).await;
    let records = scan_pages(&store, &replica, 1, None, check).await;
    let scanned: Vec<&String> = records.iter().map(|r| &r.key).collect();
    let expected: Vec<&String> = keys.iter().collect();
    assert_eq!(scanned, expected, "{check}");
    let streamed = scan_all(&store, &replica, 1, check).await;
    assert_eq!(streamed, records, "{check}: scan() with page size 1");
}

/// Replicas are isolated: the same key in two replicas holds two records; scanning and deleting
/// in one does not touch the other.
pub async fn replicas_isolated<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "replicas_isolated";
    let store = open_handle(open, check).await;
    let a = unique_replica("iso-a");
    let b = unique_replica("iso-b");
    // A replica whose name is a prefix of another's must not see the other's records either.
    let a_longer = format!("{a}x");
    put_new(&store, &a, "shared", "in a".into(), check).await;
    put_new(&store, &b, "shared", "in b".into(), check).await;
    put(
        &store,
        &b,
        "shared",
        Some(Revision(1)),
        "in b 2".into(),
        check,
    )
    .await;
    put_new(&store, &b, "only-b", "b".into(), check).await;
    put_new(&store, &a_longer, "shared", "in ax".into(), check).await;
    assert_record(&store, &a, "shared", Some((Revision(1), b"in a")), check).await;
    assert_record(&store, &b, "shared", Some((Revision(2), b"in b 2")), check).await;
    assert_record(&store, &a, "only-b", None, check).await;
    let in_a: Vec<String> = scan_all(&store, &a, 10, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(in_a, vec!["shared"], "{check}: scan of a");
    let outcome = ok(
        store.delete(&a, "shared", Revision(1)).await,
        check,
        "delete",
    );
    assert_eq!(outcome, WriteOutcome::Written(Revision(1)), "{check}");
    assert_record(&store, &a, "shared", None, check).await;
    assert_record(&store, &b, "shared", Some((Revision(2), b"in b 2")), check).await;
    assert_record(
        &store,
        &a_longer,
        "shared",
        Some((Revision(1), b"in ax")),
        check,
    )
    .await;
    let in_b: Vec<String> = scan_all(&store, &b, 10, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(in_b, vec!["only-b", "shared"], "{check}: scan of b");
}

/// `replicas()` lists every replica with records, and no longer lists one whose records were
/// all deleted.
pub async fn replicas_listed<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "replicas_listed";
    let store = open_handle(open, check).await;
    let names: Vec<String> = (0..3)
        .map(|i| unique_replica(&format!("listed-{i}")))
        .collect();
    for name in &names {
        put_new(&store, name, "k", "v".into(), check).await;
    }
    let listed = ok(store.replicas().await, check, "replicas()");
    for name in &names {
        assert!(
            listed.contains(name),
            "{check}: replicas() misses {name:?}: {listed:?}"
        );
    }
    let unique: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "{check}: replicas() has duplicates"
    );
    let outcome = ok(
        store.delete(&names[0], "k", Revision::FIRST).await,
        check,
        "delete",
    );
    assert_eq!(outcome, WriteOutcome::Written(Revision::FIRST), "{check}");
    let listed = ok(store.replicas().await, check, "replicas()");
    assert!(
        !listed.contains(&names[0]),
        "{check}: replicas() lists {:?} after its last record was deleted",
        names[0]
    );
    assert!(
        listed.contains(&names[1]) && listed.contains(&names[2]),
        "{check}"
    );
}

/// Keys that are hard for file systems, URLs and object stores.
pub fn odd_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a/b",
        "/leading-slash",
        "trailing-slash/",
        "a//b",
        "..",
        ".",
        "../escape",
        "./here",
        ".hidden",
        "...",
        "%",
        "%41",
        "%2F",
        "100%",
        "back\\slash",
        "\\",
        "with space",
        " ",
        " leading and trailing ",
        "new\nline",
        "tab\tand\rcarriage",
        "nul\u{0}byte",
        "ünïcödé",
        "日本語のキー",
        "emoji 🎉🦀",
        "\u{FFFD}",
        "\u{10FFFF}",
        "Case",
        "case",
        "CASE",
        "cAsE",
        "~tilde",
        "#hash?query&x=y",
        "*?<>|:\"'",
        "CON",
        "nul",
        "-",
        "_",
        "+plus",
        "key.with.dots",
        "key.",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    keys.push("k".repeat(1000));
    keys.push(format!("{}🦀", "x".repeat(996)));
    keys.push("é".repeat(500));
    keys.push("K".repeat(1000));
    keys
}

async fn round_trip_keys<S: DurableStateStore>(
    store: &S,
    replica: &str,
    keys: &[String],
    check: &str,
) {
    for (i, key) in keys.iter().enumerate() {
        let value = Bytes::from(format!("value {i} of {key}"));
        put_new(store, replica, key, value, check).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let value = format!("value {i} of {key}");
        assert_record(
            store,
            replica,
            key,
            Some((Revision::FIRST, value.as_bytes())),
            check,
        )
        .await;
    }
    let mut expected: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    expected.sort();
    for page_size in [1000, 3] {
        let scanned = scan_pages(store, replica, page_size, None, check).await;
        let scanned_keys: Vec<&[u8]> = scanned.iter().map(|r| r.key.as_bytes()).collect();
        assert_eq!(
            scanned_keys, expected,
            "{check}: scan of {replica:?} (page size {page_size}) must return the keys exactly"
        );
    }
    // Replace and delete through the escaped names too.
    for key in keys {
        let outcome = put(
            store,
            replica,
            key,
            Some(Revision::FIRST),
            "2".into(),
            check,
        )
        .await;
        assert_eq!(
            outcome,
            WriteOutcome::Written(Revision(2)),
            "{check}: {key:?}"
        );
    }
    for key in keys.iter().step_by(2) {
        let outcome = ok(
            store.delete(replica, key, Revision(2)).await,
            check,
            "delete",
        );
        assert_eq!(
            outcome,
            WriteOutcome::Written(Revision(2)),
            "{check}: {key:?}"
        );
    }
    let remaining: Vec<String> = scan_all(store, replica, 1000, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    let mut expected: Vec<&String> = keys.iter().skip(1).step_by(2).collect();
    expected.sort();
    let remaining: Vec<&String> = remaining.iter().collect();
    assert_eq!(
        remaining, expected,
        "{check}: keys left after deleting every other"
    );
}

/// The keys of [`odd_keys`] round-trip exactly through put, get, scan, replace and delete, and
/// scan in ascending byte order.
pub async fn odd_keys_round_trip<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "odd_keys_round_trip";
    let store = open_handle(open, check).await;
    let replica = unique_replica("odd-keys");
    round_trip_keys(&store, &replica, &odd_keys(), check).await;
}

/// Odd replica names (the same forms as [`odd_keys`], made unique with a suffix) round-trip
/// exactly through put, get, scan and `replicas()`, and do not see each other's records.
pub async fn odd_replica_names_round_trip<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "odd_replica_names_round_trip";
    let store = open_handle(open, check).await;
    let suffix = format!("{:016x}", rand::random::<u64>());
    // The suffix goes first so that names like "..", "." and "/x" keep their odd start.
    let names: Vec<String> = odd_keys()
        .into_iter()
        .filter(|k| k.len() < 600)
        .map(|k| format!("{k}{suffix}"))
        .chain([
            format!("/{suffix}"),
            format!("{suffix}/."),
            format!("{suffix}/.."),
            format!("{}{suffix}", "r".repeat(300)),
        ])
        .collect();
    for (i, name) in names.iter().enumerate() {
        put_new(&store, name, "k", Bytes::from(format!("in {i}")), check).await;
        put_new(&store, name, &format!("own-{i}"), "own".into(), check).await;
    }
    let listed = ok(store.replicas().await, check, "replicas()");
    for (i, name) in names.iter().enumerate() {
        let value = format!("in {i}");
        assert_record(
            &store,
            name,
            "k",
            Some((Revision(1), value.as_bytes())),
            check,
        )
        .await;
        assert!(listed.contains(name), "{check}: replicas() misses {name:?}");
        let keys: Vec<String> = scan_all(&store, name, 10, check)
            .await
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(
            keys,
            vec![format!("k"), format!("own-{i}")],
            "{check}: scan of replica {name:?}"
        );
    }
}

/// A 3 MiB value and an empty value round-trip through put, get and scan.
pub async fn large_and_empty_values<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "large_and_empty_values";
    let store = open_handle(open, check).await;
    let replica = unique_replica("values");
    let large: Bytes = (0..LARGE_VALUE_LEN)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    put_new(&store, &replica, "large", large.clone(), check).await;
    put_new(&store, &replica, "empty", Bytes::new(), check).await;
    let got = get(&store, &replica, "large", check).await;
    assert!(
        got.as_ref().is_some_and(|r| r.value == large),
        "{check}: the 3 MiB value did not round-trip (got {:?} bytes)",
        got.map(|r| r.value.len())
    );
    assert_record(&store, &replica, "empty", Some((Revision(1), b"")), check).await;
    let scanned = scan_all(&store, &replica, 1, check).await;
    assert_eq!(scanned.len(), 2, "{check}: scan");
    assert_eq!(scanned[0].key, "empty", "{check}");
    assert!(scanned[0].value.is_empty(), "{check}: empty value via scan");
    assert!(scanned[1].value == large, "{check}: large value via scan");
    // Replacing a large value with an empty one and back.
    let outcome = put(
        &store,
        &replica,
        "large",
        Some(Revision(1)),
        Bytes::new(),
        check,
    )
    .await;
    assert_eq!(outcome, WriteOutcome::Written(Revision(2)), "{check}");
    assert_record(&store, &replica, "large", Some((Revision(2), b"")), check).await;
    let outcome = put(
        &store,
        &replica,
        "empty",
        Some(Revision(1)),
        large.clone(),
        check,
    )
    .await;
    assert_eq!(outcome, WriteOutcome::Written(Revision(2)), "{check}");
    let got = get(&store, &replica, "empty", check).await;
    assert!(
        got.is_some_and(|r| r.value == large && r.revision == Revision(2)),
        "{check}: replacing an empty value with 3 MiB"
    );
}

/// Records, revisions and deletions survive dropping the handle and opening a new one.
pub async fn survives_reopen<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "survives_reopen";
    let replica = unique_replica("reopen");
    let odd = format!("odd/../é {}", "z".repeat(400));
    {
        let store = open_handle(open, check).await;
        put_new(&store, &replica, "a", "a1".into(), check).await;
        put(&store, &replica, "a", Some(Revision(1)), "a2".into(), check).await;
        put(&store, &replica, "a", Some(Revision(2)), "a3".into(), check).await;
        put_new(&store, &replica, "b", "b1".into(), check).await;
        put_new(&store, &replica, "gone", "g".into(), check).await;
        put_new(&store, &replica, &odd, "odd".into(), check).await;
        ok(
            store.delete(&replica, "gone", Revision(1)).await,
            check,
            "delete",
        );
    }
    let store = open_handle(open, check).await;
    assert_record(&store, &replica, "a", Some((Revision(3), b"a3")), check).await;
    assert_record(&store, &replica, "b", Some((Revision(1), b"b1")), check).await;
    assert_record(&store, &replica, &odd, Some((Revision(1), b"odd")), check).await;
    assert_record(&store, &replica, "gone", None, check).await;
    let stale = put(
        &store,
        &replica,
        "a",
        Some(Revision(2)),
        "lost".into(),
        check,
    )
    .await;
    assert_eq!(
        stale,
        WriteOutcome::Conflict {
            actual: Some(Revision(3))
        },
        "{check}: revisions must survive reopen"
    );
    let next = put(&store, &replica, "a", Some(Revision(3)), "a4".into(), check).await;
    assert_eq!(next, WriteOutcome::Written(Revision(4)), "{check}");
    let keys: Vec<String> = scan_all(&store, &replica, 2, check)
        .await
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(
        keys,
        vec!["a".to_owned(), "b".to_owned(), odd],
        "{check}: scan"
    );
    let listed = ok(store.replicas().await, check, "replicas()");
    assert!(
        listed.contains(&replica),
        "{check}: replicas() after reopen"
    );
}

fn parse_count(record: &Option<StoredRecord>, check: &str) -> u64 {
    match record {
        None => 0,
        Some(r) => std::str::from_utf8(&r.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{check}: counter value {:?} is not a number", r.value)),
    }
}

/// [`RACING_WRITERS`] tasks, each on its own handle, increment one counter record with
/// read-then-conditional-put loops (bounded). No update is lost: the final count and revision
/// equal the number of successful puts.
pub async fn concurrent_conditional_writers<F, Fut, S>(open: &F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<S, StoreError>>,
    S: DurableStateStore,
{
    let check = "concurrent_conditional_writers";
    let replica = unique_replica("race");
    let mut tasks = Vec::new();
    for writer in 0..RACING_WRITERS {
        let store = open_handle(open, check).await;
        let replica = replica.clone();
        tasks.push(tokio::spawn(async move {
            let mut successes = 0u64;
            let mut conflicts = 0u64;
            for _ in 0..ATTEMPTS_PER_WRITER {
                if successes == INCREMENTS_PER_WRITER {
                    break;
                }
                let current = get(&store, &replica, "counter", check).await;
                let count = parse_count(&current, check);
                let expected = current.map(|r| r.revision);
                let value = Bytes::from((count + 1).to_string());
                match put(&store, &replica, "counter", expected, value, check).await {
                    WriteOutcome::Written(revision) => {
                        assert_eq!(
                            Some(revision),
                            Some(expected.map_or(Revision::FIRST, Revision::next)),
                            "{check}: writer {writer} got an unexpected revision"
                        );
                        successes += 1;
                    }
                    WriteOutcome::Conflict { .. } => conflicts += 1,
                }
                tokio::task::yield_now().await;
            }
            (successes, conflicts)
        }));
    }
    let mut total = 0u64;
    let mut results = BTreeMap::new();
    for (writer, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok((successes, conflicts)) => {
                results.insert(writer, (successes, conflicts));
                total += successes;
            }
            Err(e) => panic!("{check}: writer {writer} failed: {e}"),
        }
    }
    assert!(total > 0, "{check}: no writer succeeded: {results:?}");
    let store = open_handle(open, check).await;
    let record = get(&store, &replica, "counter", check).await;
    let count = parse_count(&record, check);
    assert_eq!(
        count, total,
        "{check}: lost updates: the counter is {count} after {total} successful increments \
         (successes, conflicts per writer: {results:?})"
    );
    assert_eq!(
        record.map(|r| r.revision),
        Some(Revision(total)),
        "{check}: the revision must equal the number of successful puts"
    );
}
