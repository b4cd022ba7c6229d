//! Write modes: one batch per synchronous store; write-behind coalescing, flushing, retrying.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use common::{TestStore, as_counter, counter, entry, eventually, load_all};
use dd_core::ReplicaId;
use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{DurableStateStore, WriteOp};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

const PATIENCE: Duration = Duration::from_secs(60);

fn write_behind(interval: Duration) -> DurableOptions {
    DurableOptions {
        write_mode: WriteMode::WriteBehind { interval },
        ..DurableOptions::default()
    }
}

/// Long enough that the background task never writes during a test.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn sync_store_writes_one_batch_before_returning() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let entries = (0..10).map(|i| entry(&format!("k{i}"), counter(&[("r", 1, 1)])));
    durable
        .store(&ReplicaId::new("r"), entries.collect())
        .await
        .unwrap();
    let batches = backend.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 10);
    assert!(
        batches[0]
            .iter()
            .all(|op| matches!(op, WriteOp::Put { expected: None, .. }))
    );
}

#[tokio::test]
async fn write_behind_coalesces_updates_of_a_key_into_one_write() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), write_behind(NEVER));
    let replica = ReplicaId::new("r");
    for n in 1..=100u64 {
        let report = durable
            .store(&replica, vec![entry("hot", counter(&[("r", 1, n)]))])
            .await
            .unwrap();
        assert!(report.merged_conflicts.is_empty());
    }
    durable
        .store(&replica, vec![entry("cold", counter(&[("r", 1, 1)]))])
        .await
        .unwrap();
    assert!(
        backend.batches().is_empty(),
        "store() must not write in write-behind mode"
    );
    assert_eq!(durable.stats().pending, 2);

    durable.flush().await.unwrap();
    assert_eq!(backend.writes_of("hot"), 1);
    assert_eq!(backend.writes_of("cold"), 1);
    assert_eq!(backend.batches().len(), 1);
    let stats = durable.stats();
    assert_eq!(
        (stats.pending, stats.records_written, stats.batches_written),
        (0, 2, 1)
    );

    let loaded = load_all(&durable, &replica).await;
    assert_eq!(as_counter(&loaded[1].1), counter(&[("r", 1, 100)]));
    // Nothing left: a second flush writes nothing.
    durable.flush().await.unwrap();
    assert_eq!(backend.batches().len(), 1);
}

#[tokio::test]
async fn write_behind_respects_the_batch_size() {
    let backend = TestStore::new(MemoryStore::new());
    let options = DurableOptions {
        max_batch_size: 3,
        ..write_behind(NEVER)
    };
    let durable = DurableDistributedDataStore::new(backend.clone(), options);
    let replica = ReplicaId::new("r");
    let entries = (0..10).map(|i| entry(&format!("k{i}"), counter(&[("r", 1, i + 1)])));
    durable.store(&replica, entries.collect()).await.unwrap();
    durable.flush().await.unwrap();
    let batches = backend.batches();
    assert_eq!(batches.len(), 4);
    assert!(batches.iter().all(|b| b.len() <= 3));
    assert_eq!(load_all(&durable, &replica).await.len(), 10);
}

#[tokio::test]
async fn write_behind_task_writes_on_its_own() {
    let backend = TestStore::new(MemoryStore::new());
    let durable =
        DurableDistributedDataStore::new(backend.clone(), write_behind(Duration::from_millis(20)));
    let replica = ReplicaId::new("r");
    durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 7)]))])
        .await
        .unwrap();
    eventually(PATIENCE, || backend.writes_of("k") == 1).await;
    let loaded = load_all(&durable, &replica).await;
    assert_eq!(as_counter(&loaded[0].1).value(), 7);
}

#[tokio::test]
async fn write_behind_keeps_everything_while_the_backend_fails() {
    let backend = TestStore::new(MemoryStore::new());
    let options = DurableOptions {
        max_batch_size: 3,
        max_retry_backoff: Duration::from_millis(40),
        ..write_behind(Duration::from_millis(10))
    };
    let durable = DurableDistributedDataStore::new(backend.clone(), options);
    let replica = ReplicaId::new("r");
    backend.set_failing(true);
    for round in 1..=5u64 {
        let entries =
            (0..10).map(|i| entry(&format!("k{i}"), counter(&[("r", 1, round * 10 + i)])));
        durable.store(&replica, entries.collect()).await.unwrap();
    }
    // The task keeps retrying (and failing) in the background.
    eventually(PATIENCE, || backend.failed_calls() >= 3).await;
    let err = durable.flush().await.unwrap_err();
    assert!(
        matches!(err, DurableError::Store(ref e) if e.is_transient()),
        "{err:?}"
    );
    let stats = durable.stats();
    assert_eq!(stats.pending, 10);
    assert!(stats.write_errors >= 3);

    backend.set_failing(false);
    durable.flush().await.unwrap();
    assert_eq!(durable.stats().pending, 0);
    let reopened =
        DurableDistributedDataStore::new(backend.inner.clone(), DurableOptions::default());
    let loaded = load_all(&reopened, &replica).await;
    assert_eq!(loaded.len(), 10);
    for (i, (key, value)) in loaded.iter().enumerate() {
        assert_eq!(key, &format!("k{i}"));
        assert_eq!(as_counter(value), counter(&[("r", 1, 50 + i as u64)]));
    }
}

#[tokio::test]
async fn dropping_a_write_behind_store_writes_its_queue() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), write_behind(NEVER));
    durable
        .store(
            &ReplicaId::new("r"),
            vec![entry("k", counter(&[("r", 1, 1)]))],
        )
        .await
        .unwrap();
    drop(durable);
    eventually(PATIENCE, || backend.writes_of("k") == 1).await;
}

#[tokio::test]
async fn closing_a_write_behind_store_writes_its_queue() {
    let backend = TestStore::new(MemoryStore::new());
    let durable = DurableDistributedDataStore::new(backend.clone(), write_behind(NEVER));
    durable
        .store(
            &ReplicaId::new("r"),
            vec![entry("k", counter(&[("r", 1, 1)]))],
        )
        .await
        .unwrap();
    durable.close().await.unwrap();
    assert_eq!(backend.writes_of("k"), 1);
}

#[tokio::test]
async fn write_behind_conflicts_are_reported_and_not_overwritten_later() {
    let backend = MemoryStore::new();
    let other = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let durable = DurableDistributedDataStore::new(backend.clone(), write_behind(NEVER));
    let replica = ReplicaId::new("r");
    other
        .store(&replica, vec![entry("k", counter(&[("r", 1, 3)]))])
        .await
        .unwrap();

    durable
        .store(&replica, vec![entry("k", counter(&[("r", 2, 5)]))])
        .await
        .unwrap();
    durable.flush().await.unwrap();
    let merged = counter(&[("r", 1, 3), ("r", 2, 5)]);
    assert_eq!(as_counter(&load_all(&other, &replica).await[0].1), merged);

    // The replicator queues a newer value before it has seen the merge: the merge is handed
    // out with this call, and the queued value cannot drop the other writer's increments.
    let report = durable
        .store(&replica, vec![entry("k", counter(&[("r", 2, 6)]))])
        .await
        .unwrap();
    assert_eq!(report.merged_conflicts.len(), 1);
    assert!(report.merged_conflicts[0].1.eq_erased(&merged));
    durable.flush().await.unwrap();
    let stored = as_counter(&load_all(&other, &replica).await[0].1);
    assert_eq!(stored, counter(&[("r", 1, 3), ("r", 2, 6)]));

    // Handed out once only.
    let report = durable
        .store(&replica, vec![entry("k", stored.clone())])
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty());
}

#[tokio::test]
async fn write_behind_keeps_a_key_whose_record_is_corrupt() {
    let backend = MemoryStore::new();
    backend
        .put("r", "bad", None, "garbage".into())
        .await
        .unwrap();
    let durable = DurableDistributedDataStore::new(backend.clone(), write_behind(NEVER));
    let replica = ReplicaId::new("r");
    durable
        .store(
            &replica,
            vec![
                entry("bad", counter(&[("r", 1, 1)])),
                ("good".to_owned(), DurableValue::Deleted),
            ],
        )
        .await
        .unwrap();
    let err = durable.flush().await.unwrap_err();
    assert!(
        matches!(&err, DurableError::Corrupt { key, .. } if key == "bad"),
        "{err:?}"
    );
    assert_eq!(durable.stats().pending, 1);
    assert_eq!(
        backend
            .get("r", "bad")
            .await
            .unwrap()
            .unwrap()
            .value
            .as_ref(),
        b"garbage"
    );
    assert!(backend.get("r", "good").await.unwrap().is_some());
}

/// The same on a multi-threaded runtime, with writers racing the background task and `flush()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_loses_nothing_with_concurrent_writers_and_a_flaky_backend() {
    let backend = TestStore::new(MemoryStore::new());
    let options = DurableOptions {
        max_batch_size: 4,
        max_retry_backoff: Duration::from_millis(20),
        ..write_behind(Duration::from_millis(5))
    };
    let durable = std::sync::Arc::new(DurableDistributedDataStore::new(backend.clone(), options));
    let replica = ReplicaId::new("r");
    backend.set_failing(true);
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let durable = std::sync::Arc::clone(&durable);
            let replica = replica.clone();
            tokio::spawn(async move {
                for n in 1..=50u64 {
                    let key = format!("w{w}-k{}", n % 5);
                    let entries = vec![entry(&key, counter(&[("r", w, n)]))];
                    durable.store(&replica, entries).await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    eventually(PATIENCE, || backend.failed_calls() >= 2).await;
    backend.set_failing(false);
    for writer in writers {
        writer.await.unwrap();
    }
    durable.flush().await.unwrap();
    let loaded = load_all(durable.as_ref(), &replica).await;
    assert_eq!(loaded.len(), 20);
    for (key, value) in &loaded {
        // Key w{w}-k{m} was last written with the largest n <= 50 with n % 5 == m.
        let (w, m): (u64, u64) = {
            let (w, m) = key[1..].split_once("-k").unwrap();
            (w.parse().unwrap(), m.parse().unwrap())
        };
        let last = (1..=50u64).filter(|n| n % 5 == m).max().unwrap();
        assert_eq!(as_counter(value), counter(&[("r", w, last)]), "{key}");
    }
}
