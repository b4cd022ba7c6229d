//! A conditional write that times out (a CAS write timeout: the Paxos round may or may not
//! finish) is read back at serial consistency and counted as written exactly when it landed.
//! Always on the CQL test double: only it can time out a chosen LWT, applied or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cql_test_double::{CqlTestDouble, WriteTimeout};
use dd_store::{DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_cassandra::CassandraOptions;
use dd_store_cassandra::schema::Cql;

#[tokio::test]
async fn timed_out_lwts_are_read_back_and_count_as_written_only_when_they_landed() {
    println!(
        "timed_out_lwts_are_read_back_and_count_as_written_only_when_they_landed: uses the CQL \
         test double (it injects the write timeouts)"
    );
    let double = CqlTestDouble::start().await.unwrap();
    let mut options = CassandraOptions::new([double.addr().to_string()], "dd_test");
    options.table = common::unique_table("lwt");
    let store = dd_store_cassandra::open(options.clone()).await.unwrap();
    let cql = Cql::new(&options);
    let db = double.database();

    // A create that landed before the timeout is written.
    db.time_out_next(&cql.insert_if_not_exists, WriteTimeout::Applied);
    assert_eq!(
        store.put("r", "k", None, "v1".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
    // It was read back at the serial consistency.
    let observed = db.observed_consistency(&cql.get).unwrap();
    assert_eq!(observed.consistency, "LocalSerial");
    // An update that did not land is sent again.
    db.time_out_next(&cql.update_if_revision, WriteTimeout::NotApplied);
    assert_eq!(
        store
            .put("r", "k", Some(Revision(1)), "v2".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(2))
    );
    // An update that landed is written once (not applied a second time).
    db.time_out_next(&cql.update_if_revision, WriteTimeout::Applied);
    assert_eq!(
        store
            .put("r", "k", Some(Revision(2)), "v3".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(3))
    );
    let record = store.get("r", "k").await.unwrap().unwrap();
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(3), &b"v3"[..])
    );
    // A stale update that timed out is a conflict with the current revision.
    db.time_out_next(&cql.update_if_revision, WriteTimeout::NotApplied);
    assert_eq!(
        store
            .put("r", "k", Some(Revision(1)), "stale".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(3))
        }
    );
    // A delete that landed is written.
    db.time_out_next(&cql.delete_if_revision, WriteTimeout::Applied);
    assert_eq!(
        store.delete("r", "k", Revision(3)).await.unwrap(),
        WriteOutcome::Written(Revision(3))
    );
    assert_eq!(store.get("r", "k").await.unwrap(), None);

    // Timing out on every attempt: a transient error, and nothing written.
    for _ in 0..3 {
        db.time_out_next(&cql.insert_if_not_exists, WriteTimeout::NotApplied);
    }
    let err = store.put("r", "k2", None, "v".into()).await.unwrap_err();
    println!("error: {err}");
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "not Unavailable: {err:?}"
    );
    assert!(err.to_string().contains("not applied"), "{err}");
    assert_eq!(store.get("r", "k2").await.unwrap(), None);

    // The read-back fails too: a transient error that says the write may have been applied.
    db.time_out_next(&cql.insert_if_not_exists, WriteTimeout::Applied);
    db.time_out_next(&cql.get, WriteTimeout::NotApplied);
    let err = store.put("r", "k3", None, "v".into()).await.unwrap_err();
    println!("error: {err}");
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "not Unavailable: {err:?}"
    );
    assert!(err.to_string().contains("may have been applied"), "{err}");
    let record = store.get("r", "k3").await.unwrap().unwrap();
    assert_eq!(record.revision, Revision(1), "it had landed");
}
