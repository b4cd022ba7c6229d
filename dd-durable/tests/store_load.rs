//! Storing and loading: round-trips, tombstones, reopening, paging, stats.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{TestStore, as_counter, counter, entry, load_all, registry};
use dd_core::ReplicaId;
use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{DurableStateStore, Revision};
use dd_durable::record::{self, Record};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use std::sync::Arc;

fn options() -> DurableOptions {
    DurableOptions::default()
}

#[tokio::test]
async fn store_then_load_round_trips() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("node-a");
    let report = durable
        .store(
            &replica,
            vec![
                entry("hits", counter(&[("node-a", 1, 3)])),
                entry(
                    "users/ünï cödé",
                    counter(&[("node-a", 1, 5), ("node-b", 2, 1)]),
                ),
            ],
        )
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty());

    let loaded = load_all(&durable, &replica).await;
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].0, "hits");
    assert_eq!(as_counter(&loaded[0].1), counter(&[("node-a", 1, 3)]));
    assert_eq!(loaded[1].0, "users/ünï cödé");
    assert_eq!(as_counter(&loaded[1].1).value(), 6);

    // The stored bytes are a record of the CRDT's type.
    let raw = backend.get("node-a", "hits").await.unwrap().unwrap();
    assert!(matches!(
        record::decode(&raw.value).unwrap(),
        Record::Data {
            type_name: "GCounter",
            ..
        }
    ));
    // Another replica's data is separate.
    assert!(
        load_all(&durable, &ReplicaId::new("node-b"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn updates_overwrite_without_conflict() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("r");
    for n in 1..=5u64 {
        let report = durable
            .store(&replica, vec![entry("k", counter(&[("r", 1, n)]))])
            .await
            .unwrap();
        assert!(report.merged_conflicts.is_empty());
    }
    let raw = backend.get("r", "k").await.unwrap().unwrap();
    assert_eq!(raw.revision, Revision(5));
    let stats = durable.stats();
    assert_eq!(stats.records_written, 5);
    assert_eq!(stats.batches_written, 5);
    assert_eq!(stats.conflicts_merged, 0);
    assert_eq!(stats.write_errors, 0);
    assert!(stats.last_batch_latency.is_some());
}

#[tokio::test]
async fn tombstones_are_stored_loaded_and_win() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("r");
    durable
        .store(&replica, vec![entry("gone", counter(&[("r", 1, 1)]))])
        .await
        .unwrap();
    durable
        .store(&replica, vec![("gone".to_owned(), DurableValue::Deleted)])
        .await
        .unwrap();
    // A deleted key stays deleted: a later data write does not resurrect it (and is refused,
    // not acknowledged).
    let err = durable
        .store(&replica, vec![entry("gone", counter(&[("r", 1, 9)]))])
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::Deleted { .. }), "{err:?}");
    let loaded = load_all(&durable, &replica).await;
    assert_eq!(loaded.len(), 1);
    assert!(matches!(loaded[0].1, DurableValue::Deleted));
    let raw = backend.get("r", "gone").await.unwrap().unwrap();
    assert_eq!(record::decode(&raw.value), Ok(Record::Tombstone));

    // Also after a restart.
    let reopened = DurableDistributedDataStore::new(backend.clone(), options());
    let loaded = load_all(&reopened, &replica).await;
    assert!(matches!(loaded[0].1, DurableValue::Deleted));
    let err = reopened
        .store(&replica, vec![entry("gone", counter(&[("r", 2, 1)]))])
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::Deleted { .. }), "{err:?}");
    let raw = backend.get("r", "gone").await.unwrap().unwrap();
    assert_eq!(record::decode(&raw.value), Ok(Record::Tombstone));
}

#[tokio::test]
async fn reopened_store_loads_and_continues_without_conflict() {
    let backend = MemoryStore::new();
    let replica = ReplicaId::new("r");
    {
        let first = DurableDistributedDataStore::new(backend.clone(), options());
        first
            .store(&replica, vec![entry("k", counter(&[("r", 1, 4)]))])
            .await
            .unwrap();
    }
    let second = DurableDistributedDataStore::new(backend.clone(), options());
    let loaded = load_all(&second, &replica).await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(as_counter(&loaded[0].1), counter(&[("r", 1, 4)]));
    // The revision seen at load makes the next write a plain update, not a conflict.
    let report = second
        .store(
            &replica,
            vec![entry("k", counter(&[("r", 1, 4), ("r", 2, 1)]))],
        )
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty());
    assert_eq!(second.stats().conflicts_merged, 0);
    assert_eq!(
        backend.get("r", "k").await.unwrap().unwrap().revision,
        Revision(2)
    );
}

#[tokio::test]
async fn load_streams_page_by_page() {
    let backend = TestStore::new(MemoryStore::new());
    let writer = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("r");
    let entries: Vec<_> = (0..25u64)
        .map(|i| entry(&format!("key-{i:03}"), counter(&[("r", 1, i + 1)])))
        .collect();
    writer.store(&replica, entries).await.unwrap();

    let reader = DurableDistributedDataStore::new(
        backend.clone(),
        DurableOptions {
            scan_page_size: 4,
            ..options()
        },
    );
    let loaded = load_all(&reader, &replica).await;
    assert_eq!(loaded.len(), 25);
    for (i, (key, value)) in loaded.iter().enumerate() {
        assert_eq!(key, &format!("key-{i:03}"));
        assert_eq!(as_counter(value).value(), i as u128 + 1);
    }
    // 25 records, 4 per page: 7 pages.
    assert_eq!(
        backend.scan_pages.load(std::sync::atomic::Ordering::SeqCst),
        7
    );
}

#[tokio::test]
async fn works_over_a_shared_dyn_store() {
    let backend = MemoryStore::new();
    let shared: Arc<dyn DurableStateStore> = Arc::new(backend.clone());
    let durable: DurableDistributedDataStore =
        DurableDistributedDataStore::from_arc(shared, options());
    assert_eq!(durable.describe(), "memory");
    let replica = ReplicaId::new("r");
    durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 2)]))])
        .await
        .unwrap();
    let boxed: Box<dyn CrdtValueStore> = Box::new(durable);
    assert_eq!(load_all(boxed.as_ref(), &replica).await.len(), 1);
}

#[tokio::test]
async fn backend_failure_is_an_error_and_writes_nothing() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("r");
    backend.set_failing(true);
    let err = durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("faulty(memory) is unavailable"),
        "{err}"
    );
    assert_eq!(durable.stats().write_errors, 1);
    let reg = registry();
    let mut stream = durable.load(&replica, &reg);
    let first = futures::StreamExt::next(&mut stream).await.unwrap();
    assert!(first.is_err());
    drop(stream);
    backend.set_failing(false);
    assert!(load_all(&durable, &replica).await.is_empty());
}

#[tokio::test]
async fn a_key_given_twice_in_one_call_is_written_once_with_its_last_state() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), options());
    let replica = ReplicaId::new("r");
    let report = durable
        .store(
            &replica,
            vec![
                entry("k", counter(&[("r", 1, 1)])),
                entry("k", counter(&[("r", 1, 2)])),
            ],
        )
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty());
    assert_eq!(backend.writes_of("k"), 1);
    assert_eq!(durable.stats().conflicts_merged, 0);
    let loaded = load_all(&durable, &replica).await;
    assert_eq!(as_counter(&loaded[0].1), counter(&[("r", 1, 2)]));
}
