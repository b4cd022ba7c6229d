//! Scans in key order: the empty replica, 10,000 keys at several page sizes, page size 1.

use super::*;

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
