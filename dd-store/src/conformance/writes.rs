//! Single-record reads and conditional writes: missing keys, create and replace, conflicts, conditional deletes.

use super::*;

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
