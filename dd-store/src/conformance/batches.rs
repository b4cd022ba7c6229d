//! Batches of conditional writes: mixed outcomes, one key twice, the empty batch.

use super::*;

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
