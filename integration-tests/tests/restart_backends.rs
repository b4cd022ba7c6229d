//! Restarts of one replica over every backend: every CRDT type round-trips, the first `get` and
//! the first subscriber notification after a restart hold the last saved value (sync and
//! write-behind), `durable_keys` is honoured, and a corrupt record stops the start with an error
//! naming backend, replica and key, without being touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use dd_core::Key;
use dd_core::crdt::{GCounter, ORSet};
use dd_core::replicator::{ReadConsistency, ReplicatorError, WriteConsistency};
use dd_core::store::DurableStateStore;
use dd_durable::WriteMode;
use futures::StreamExt;
use integration_tests::{
    BackendKind, EveryTypeKeys, HarnessError, ReplicaConfig, TYPE_COUNT, backend_tests, start_alone,
};

const LONG: Duration = Duration::from_secs(60);

/// Test 1: Every CRDT type (and a deleted key) survives a restart of the replica, state for state.
async fn every_crdt_type_round_trips(backend: BackendKind) {
    let location = backend.fresh_location("roundtrip").await.unwrap();
    let config = ReplicaConfig::new("solo");
    let keys = EveryTypeKeys::new("all/");
    let deleted: Key<GCounter> = Key::new("all/deleted");

    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    keys.write_contribution(&r, "first").await.unwrap();
    keys.write_contribution(&r, "second").await.unwrap();
    let me = r.self_id();
    r.update(
        &deleted,
        GCounter::new(),
        WriteConsistency::Local,
        move |c| c.increment(&me, 1),
    )
    .await
    .unwrap();
    r.delete(&deleted, WriteConsistency::Local).await.unwrap();
    let before = keys.read(&r).await.unwrap();
    before.check_contributions(&["first", "second"]).unwrap();
    let keys_before = r.keys().await.unwrap();
    assert_eq!(keys_before.len(), TYPE_COUNT);
    r.shutdown().await.unwrap();
    drop(r);

    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    let after = keys.read(&r).await.unwrap();
    assert_eq!(after, before, "values after the restart on {backend}");
    assert_eq!(r.keys().await.unwrap(), keys_before);
    assert!(
        matches!(
            r.get(&deleted, ReadConsistency::Local).await,
            Err(ReplicatorError::Deleted { .. })
        ),
        "the deleted key stays deleted"
    );
    // The restarted replica (a new incarnation) adds to what was recovered, and that survives
    // another restart too.
    keys.write_contribution(&r, "third").await.unwrap();
    let third = keys.read(&r).await.unwrap();
    third
        .check_contributions(&["first", "second", "third"])
        .unwrap();
    r.shutdown().await.unwrap();
    drop(r);
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    assert_eq!(keys.read(&r).await.unwrap(), third);
    r.shutdown().await.unwrap();
}

/// Updates a counter `n` times and adds `n` elements, returning the last values.
async fn update_many(
    r: &dd_core::Replicator,
    counter: &Key<GCounter>,
    set: &Key<ORSet<String>>,
    n: u64,
) -> (GCounter, ORSet<String>) {
    let mut last = (GCounter::new(), ORSet::new());
    for i in 0..n {
        let me = r.self_id();
        last.0 = r
            .update(
                counter,
                GCounter::new(),
                WriteConsistency::Local,
                move |c| c.increment(&me, 1),
            )
            .await
            .unwrap();
        let me = r.self_id();
        last.1 = r
            .update(set, ORSet::new(), WriteConsistency::Local, move |s| {
                s.add(&me, format!("e{i}"));
                if i % 3 == 2 {
                    s.remove(&me, &format!("e{}", i - 1));
                }
                Ok::<(), std::convert::Infallible>(())
            })
            .await
            .unwrap();
    }
    last
}

async fn restart_keeps_last_value(backend: BackendKind, mode: WriteMode) {
    let location = backend.fresh_location("persistence").await.unwrap();
    let config = ReplicaConfig::new("solo").write_mode(mode);
    let counter: Key<GCounter> = Key::new("hits");
    let set: Key<ORSet<String>> = Key::new("seen");

    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    let (c1, s1) = update_many(&r, &counter, &set, 30).await;
    assert_eq!(c1.value(), 30);
    r.shutdown().await.unwrap();
    drop(r);

    for round in 0..2 {
        let r = start_alone(&config, location.open().await.unwrap())
            .await
            .unwrap();
        // Subscribe first, then read: both see the recovered value, not an empty one.
        let mut sub = Box::pin(r.subscribe(&counter).await.unwrap());
        let mut set_sub = Box::pin(r.subscribe(&set).await.unwrap());
        assert_eq!(
            r.get(&counter, ReadConsistency::Local).await.unwrap(),
            c1,
            "round {round}"
        );
        assert_eq!(
            r.get(&set, ReadConsistency::Local).await.unwrap(),
            s1,
            "round {round}"
        );
        let first = tokio::time::timeout(LONG, sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            first, c1,
            "first notification of the counter, round {round}"
        );
        let first = tokio::time::timeout(LONG, set_sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first, s1, "first notification of the set, round {round}");
        r.shutdown().await.unwrap();
    }

    // More updates on a new incarnation, a restart again: the newest value comes back.
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    let (c2, s2) = update_many(&r, &counter, &set, 7).await;
    assert_eq!(c2.value(), 37);
    r.shutdown().await.unwrap();
    drop(r);
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    let mut sub = Box::pin(r.subscribe(&set).await.unwrap());
    assert_eq!(
        tokio::time::timeout(LONG, sub.next())
            .await
            .unwrap()
            .unwrap(),
        s2
    );
    assert_eq!(r.get(&counter, ReadConsistency::Local).await.unwrap(), c2);
    r.shutdown().await.unwrap();
}

/// Test 2a: Restart persistence with synchronous writes.
async fn restart_keeps_last_value_sync(backend: BackendKind) {
    restart_keeps_last_value(backend, WriteMode::Sync).await;
}

/// Test 2b: Restart persistence with write-behind (graceful shutdown flushes the queue).
async fn restart_keeps_last_value_write_behind(backend: BackendKind) {
    let mode = WriteMode::WriteBehind {
        interval: Duration::from_millis(200),
    };
    restart_keeps_last_value(backend, mode).await;
}

/// Test 5: Only keys matching `durable_keys` come back after a restart.
async fn only_durable_keys_survive(backend: BackendKind) {
    let location = backend.fresh_location("durable-keys").await.unwrap();
    let config = ReplicaConfig::new("solo").durable_keys(&["durable-*", "exact"]);
    let keys = [
        ("durable-1", true),
        ("durable-", true),
        ("exact", true),
        ("exactly", false),
        ("volatile", false),
        ("dur", false),
    ];
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    for (id, _) in keys {
        let me = r.self_id();
        r.update(
            &Key::<GCounter>::new(id),
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&me, 4),
        )
        .await
        .unwrap();
    }
    assert_eq!(r.keys().await.unwrap().len(), keys.len());
    r.shutdown().await.unwrap();
    drop(r);

    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    for (id, durable) in keys {
        let got = r
            .get(&Key::<GCounter>::new(id), ReadConsistency::Local)
            .await;
        if durable {
            assert_eq!(got.unwrap().value(), 4, "durable key {id} is back");
        } else {
            assert!(
                matches!(got, Err(ReplicatorError::NotFound { .. })),
                "{id}: {got:?}"
            );
        }
    }
    r.shutdown().await.unwrap();
    // Nothing but the durable keys (and the replicator's own pruning records, under the
    // reserved prefix) was ever written to the store.
    let store = location.open().await.unwrap();
    let stored: Vec<String> = store
        .scan("solo", 100)
        .map(|r| r.unwrap().key)
        .filter(|k| std::future::ready(!k.starts_with(dd_core::replicator::RESERVED_PREFIX)))
        .collect()
        .await;
    assert_eq!(stored, vec!["durable-", "durable-1", "exact"]);
}

/// Starting must fail naming backend, replica and key, and leave the record as it was.
async fn start_fails_on(
    location: &integration_tests::StoreLocation,
    store: &dyn DurableStateStore,
    config: &ReplicaConfig,
    key: &str,
) -> String {
    let before = store.get(&config.name, key).await.unwrap().unwrap();
    let err = start_alone(config, location.open().await.unwrap())
        .await
        .unwrap_err();
    let HarnessError::Replicator { source, .. } = &err else {
        panic!("not a replicator error: {err}");
    };
    assert!(
        matches!(source, ReplicatorError::LoadFailure { .. }),
        "{source:?}"
    );
    let message = error_chain(source);
    let backend = store.describe();
    for part in [backend.as_str(), config.name.as_str(), key] {
        assert!(message.contains(part), "'{message}' does not name '{part}'");
    }
    let after = store.get(&config.name, key).await.unwrap().unwrap();
    assert_eq!(after, before, "the corrupt record is untouched");
    message
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// Test 6: A corrupt, truncated, foreign or newer-format record (written raw through the
/// DurableStateStore) makes start fail with an
/// error naming backend, replica and key; the record is still there byte for byte.
async fn corrupt_record_fails_start_and_is_kept(backend: BackendKind) {
    let location = backend.fresh_location("corrupt").await.unwrap();
    let config = ReplicaConfig::new("solo");
    let good: Key<GCounter> = Key::new("good");
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    let me = r.self_id();
    r.update(&good, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 9)
    })
    .await
    .unwrap();
    r.shutdown().await.unwrap();
    drop(r);
    let store = location.open().await.unwrap();
    let intact = store.get("solo", "good").await.unwrap().unwrap();

    // Bytes that are no record at all.
    let garbage = Bytes::from_static(b"not a durable-dd record \x00\xff");
    store
        .put("solo", "bad/garbage", None, garbage)
        .await
        .unwrap();
    start_fails_on(&location, store.as_ref(), &config, "bad/garbage").await;
    let rec = store.get("solo", "bad/garbage").await.unwrap().unwrap();
    store
        .delete("solo", "bad/garbage", rec.revision)
        .await
        .unwrap();

    // A real record with one flipped bit (checksum mismatch).
    let mut flipped = intact.value.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    store
        .put("solo", "good", Some(intact.revision), Bytes::from(flipped))
        .await
        .unwrap();
    start_fails_on(&location, store.as_ref(), &config, "good").await;

    // A truncated record.
    let current = store.get("solo", "good").await.unwrap().unwrap();
    let truncated = intact.value.slice(..intact.value.len() / 2);
    store
        .put("solo", "good", Some(current.revision), truncated)
        .await
        .unwrap();
    start_fails_on(&location, store.as_ref(), &config, "good").await;

    // A foreign record: a well-formed record of a CRDT type this build does not know.
    let foreign = dd_durable::record::encode(&dd_durable::record::Record::Data {
        type_name: "SomeOtherProgramsType",
        payload: b"\x01\x02",
    })
    .unwrap();
    store
        .put("solo", "bad/foreign", None, Bytes::from(foreign))
        .await
        .unwrap();
    start_fails_on(&location, store.as_ref(), &config, "bad/foreign").await;
    let rec = store.get("solo", "bad/foreign").await.unwrap().unwrap();
    store
        .delete("solo", "bad/foreign", rec.revision)
        .await
        .unwrap();

    // A record written by a newer build (format version 3, valid checksum).
    let mut newer = intact.value.to_vec();
    newer[4..6].copy_from_slice(&3u16.to_be_bytes());
    let body = newer.len() - 4;
    let crc = crc32fast::hash(&newer[..body]);
    newer[body..].copy_from_slice(&crc.to_be_bytes());
    let current = store.get("solo", "good").await.unwrap().unwrap();
    store
        .put("solo", "good", Some(current.revision), Bytes::from(newer))
        .await
        .unwrap();
    let message = start_fails_on(&location, store.as_ref(), &config, "good").await;
    assert!(message.contains("format version 3"), "{message}");

    // Repaired (the original bytes written back), the replica starts with the value.
    let current = store.get("solo", "good").await.unwrap().unwrap();
    store
        .put("solo", "good", Some(current.revision), intact.value.clone())
        .await
        .unwrap();
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        r.get(&good, ReadConsistency::Local).await.unwrap().value(),
        9
    );
    r.shutdown().await.unwrap();
}

backend_tests!(
    every_crdt_type_round_trips,
    restart_keeps_last_value_sync,
    restart_keeps_last_value_write_behind,
    only_durable_keys_survive,
    corrupt_record_fails_start_and_is_kept,
);
