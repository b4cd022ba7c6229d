//! Values of every size and records surviving a reopen.

use super::*;

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
