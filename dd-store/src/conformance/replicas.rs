//! Replicas: isolation of their records and the listing of their names.

use super::*;

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
