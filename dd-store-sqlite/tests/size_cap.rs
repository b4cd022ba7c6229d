//! The size cap (`SqliteOptions::max_size_bytes`, URL `max_size_bytes=N`): a write beyond it fails
//! like a full disk (a real `SQLITE_FULL`), transient, naming the database, the replica and the
//! key; the failed batch writes nothing, earlier records stay byte for byte; raising the cap on
//! the same open store lets writes continue. (A full file system is tested in
//! integration-tests/tests/disk_faults.rs.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use dd_store::{DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome};
use dd_store_sqlite::{SqliteOptions, open_url};
use futures::TryStreamExt;

const CAP: u64 = 96 * 1024;

fn value(i: usize) -> Bytes {
    // Random-looking bytes, so that the page usage does not depend on compression or reuse.
    (0..6000)
        .map(|j| ((i * 7919 + j * 31) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn everything(store: &dyn DurableStateStore) -> BTreeMap<String, (Revision, Bytes)> {
    store
        .scan("r", 3)
        .map_ok(|rec| (rec.key, (rec.revision, rec.value)))
        .try_collect()
        .await
        .expect("scan")
}

#[tokio::test]
async fn a_write_beyond_the_size_cap_fails_like_a_full_disk_and_recovers_when_raised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("capped.db");
    let options = SqliteOptions {
        max_size_bytes: Some(CAP),
        ..SqliteOptions::new(&path)
    };
    let store = dd_store_sqlite::open(options).await.expect("open");

    // Fill up to the cap (bounded: 96 KiB hold about 15 values of 6000 bytes).
    let mut written = BTreeMap::new();
    let mut failure = None;
    for i in 0..100 {
        let key = format!("k{i:03}");
        match store.put("r", &key, None, value(i)).await {
            Ok(WriteOutcome::Written(rev)) => {
                written.insert(key, (rev, value(i)));
            }
            Ok(other) => panic!("unexpected outcome {other:?}"),
            Err(e) => {
                failure = Some((key, e));
                break;
            }
        }
    }
    let (failed_key, err) = failure.expect("the cap is reached within 100 writes");
    assert!(written.len() >= 3, "only {} writes fit", written.len());
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let text = err.to_string();
    for part in [
        path.display().to_string(),
        format!("replica 'r' key '{failed_key}'"),
        "database or disk is full".to_owned(),
        "SQLITE_FULL".to_owned(),
        "max_size_bytes".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} missing in: {text}");
    }

    // A failed batch writes nothing, not even its small first record.
    let batch = vec![
        WriteOp::Put {
            key: "tiny".into(),
            expected: None,
            value: Bytes::from_static(b"t"),
        },
        WriteOp::Put {
            key: failed_key.clone(),
            expected: None,
            value: value(1000),
        },
    ];
    let err = store.write_batch("r", batch).await.expect_err("still full");
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains("keys 'tiny', "),
        "the batch's keys are named: {err}"
    );
    assert_eq!(store.get("r", "tiny").await.expect("get"), None);
    assert_eq!(everything(&store).await, written);

    // Raising the cap on the same open store lets the write through.
    let effective = store
        .set_max_size_bytes(Some(CAP * 4))
        .await
        .expect("raise the cap");
    assert_eq!(effective, CAP * 4);
    let rev = store
        .put("r", &failed_key, None, value(1000))
        .await
        .expect("written once the cap is raised");
    written.insert(failed_key.clone(), (Revision::FIRST, value(1000)));
    assert_eq!(rev, WriteOutcome::Written(Revision::FIRST));
    assert!(store.set_max_size_bytes(None).await.expect("uncap") > CAP * 4);
    drop(store);

    // A fresh open (the cap by URL) sees every record byte for byte.
    let reopened = open_url(&format!(
        "sqlite://{}?max_size_bytes={}",
        path.display(),
        CAP * 4
    ))
    .await
    .expect("reopen");
    assert_eq!(everything(&reopened).await, written);
}

#[tokio::test]
async fn a_cap_below_the_current_size_holds_the_database_at_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.db");
    let store = dd_store_sqlite::open(SqliteOptions::new(&path))
        .await
        .expect("open");
    for i in 0..20 {
        store
            .put("r", &format!("k{i}"), None, value(i))
            .await
            .expect("put");
    }
    let effective = store
        .set_max_size_bytes(Some(4096))
        .await
        .expect("cap below the size");
    assert!(effective > 4096, "held at the current size: {effective}");
    let err = store
        .put("r", "more", None, value(99))
        .await
        .expect_err("no room to grow");
    assert!(err.is_transient(), "{err}");
    // Deleting a record frees room inside the cap.
    store
        .delete("r", "k0", Revision::FIRST)
        .await
        .expect("delete");
    store
        .delete("r", "k1", Revision::FIRST)
        .await
        .expect("delete");
    store
        .put("r", "more", None, value(99))
        .await
        .expect("room after deletes");
}
