//! A failing backend under synchronous writes: the entries of a failed write are kept and
//! retried until written, a newer state of a key replaces the kept one, writes fail fast while the
//! backend is down, a hanging backend times out, and health says all of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{as_counter, counter, entry, eventually, load_all};
use dd_core::ReplicaId;
use dd_core::durable::{CrdtValueStore, DurableError};
use dd_core::store::fault::{Fault, FaultInjectingStore};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{DurableStateStore, StoreError};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

const PATIENCE: Duration = Duration::from_secs(60);

fn quick_retries() -> DurableOptions {
    DurableOptions {
        write_mode: WriteMode::Sync,
        retry_interval: Duration::from_millis(10),
        max_retry_backoff: Duration::from_millis(50),
        operation_timeout: Some(Duration::from_millis(200)),
        ..DurableOptions::default()
    }
}

fn faulty() -> (
    MemoryStore,
    FaultInjectingStore<MemoryStore>,
    dd_core::store::fault::FaultSwitch,
) {
    let backend = MemoryStore::new();
    let store = FaultInjectingStore::new(backend.clone());
    let switch = store.switch();
    (backend, store, switch)
}

fn is_unavailable(e: &DurableError) -> bool {
    matches!(e, DurableError::Store(StoreError::Unavailable { .. }))
}

#[tokio::test]
async fn a_failed_sync_write_is_retried_and_a_newer_state_replaces_it() {
    let (backend, store, switch) = faulty();
    let durable = DurableDistributedDataStore::new(store, quick_retries());
    let replica = ReplicaId::new("r");
    assert!(durable.health().healthy);

    switch.set(Fault::Fail);
    let first = durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(is_unavailable(&first), "{first:?}");
    assert_eq!(switch.calls(), 1, "the first write reached the backend");
    // The backend is known to be down: the next write is queued without trying it.
    let second = durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 2)]))])
        .await
        .unwrap_err();
    assert!(second.to_string().contains("queued"), "{second}");
    let health = durable.health();
    assert!(!health.healthy);
    assert_eq!(health.pending, 1, "one key waits: {health:?}");
    assert!(health.consecutive_failures >= 1);
    assert!(backend.get("r", "k").await.unwrap().is_none());

    switch.clear();
    eventually(PATIENCE, || {
        let h = durable.health();
        h.healthy && h.pending == 0
    })
    .await;
    let loaded = load_all(&durable, &replica).await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        as_counter(&loaded[0].1).value(),
        2,
        "the newer state was kept"
    );
}

#[tokio::test]
async fn a_hanging_backend_times_out_and_later_writes_do_not_wait_behind_it() {
    let (backend, store, switch) = faulty();
    let durable = Arc::new(DurableDistributedDataStore::new(store, quick_retries()));
    let replica = ReplicaId::new("r");
    switch.set(Fault::Hang);
    let err = durable
        .store(&replica, vec![entry("a", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("operation timeout"), "{err}");
    for i in 0..5 {
        let err = durable
            .store(
                &replica,
                vec![entry(&format!("b{i}"), counter(&[("r", 1, 1)]))],
            )
            .await
            .unwrap_err();
        assert!(is_unavailable(&err), "{err:?}");
    }
    assert_eq!(durable.health().pending, 6);

    switch.clear();
    eventually(PATIENCE, || durable.health().healthy).await;
    assert_eq!(load_all(durable.as_ref(), &replica).await.len(), 6);
    for key in ["a", "b0", "b4"] {
        assert!(backend.get("r", key).await.unwrap().is_some(), "{key}");
    }
}

#[tokio::test]
async fn a_batch_that_half_landed_is_merged_not_overwritten() {
    let (backend, store, switch) = faulty();
    let durable = DurableDistributedDataStore::new(store, quick_retries());
    let replica = ReplicaId::new("r");
    durable
        .store(&replica, vec![entry("x", counter(&[("r", 1, 1)]))])
        .await
        .unwrap();

    switch.set(Fault::PartialBatch { written: 1 });
    let entries = vec![
        entry("x", counter(&[("r", 1, 5)])),
        entry("y", counter(&[("r", 1, 7)])),
    ];
    assert!(durable.store(&replica, entries).await.is_err());
    // "x" landed although the caller was told the write failed.
    assert_eq!(backend.get("r", "x").await.unwrap().unwrap().revision.0, 2);

    switch.clear();
    eventually(PATIENCE, || durable.health().healthy).await;
    let loaded = load_all(&durable, &replica).await;
    let values: Vec<(String, u128)> = loaded
        .iter()
        .map(|(k, v)| (k.clone(), as_counter(v).value()))
        .collect();
    assert_eq!(values, vec![("x".to_owned(), 5), ("y".to_owned(), 7)]);
    assert_eq!(
        durable.stats().conflicts_merged,
        1,
        "the landed write came back as a conflict and was merged"
    );
}

#[tokio::test]
async fn a_corrupt_record_keeps_the_store_unhealthy_but_other_keys_still_write() {
    let backend = MemoryStore::new();
    backend
        .put("r", "bad", None, bytes::Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let durable = DurableDistributedDataStore::new(backend.clone(), quick_retries());
    let replica = ReplicaId::new("r");
    let err = durable
        .store(&replica, vec![entry("bad", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(matches!(&err, DurableError::Corrupt { key, .. } if key == "bad"));
    // Not a backend outage: the next write goes to the backend and succeeds.
    durable
        .store(&replica, vec![entry("good", counter(&[("r", 1, 1)]))])
        .await
        .unwrap();
    let health = durable.health();
    assert!(!health.healthy, "the corrupt key still waits: {health:?}");
    assert_eq!(health.pending, 1);
    assert!(health.last_error.unwrap_or_default().contains("'bad'"));
    // Retried in the background, never overwritten.
    let before = durable.stats().write_errors;
    eventually(PATIENCE, || durable.stats().write_errors > before + 2).await;
    let raw = backend.get("r", "bad").await.unwrap().unwrap();
    assert_eq!(raw.value.as_ref(), b"garbage");
}
