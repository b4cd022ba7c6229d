//! Group commit in the replicator's durable writer: Sync writes that arrive while a batch is in
//! the store join the next batch (one store call), which holds only the newest state of each
//! key; every waiter is answered when the store answered, key by key; the queue is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dd_core::crdt::GCounter;
use dd_core::data::TypeRegistry;
use dd_core::durable::{
    BatchReport, CrdtValueStore, DurableEntryStream, DurableError, DurableValue, StoreReport,
};
use dd_core::replicator::{ReadConsistency, Replicator, ReplicatorError, WriteConsistency};
use dd_core::store::StoreError;
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use replicator_support::*;
use tokio::sync::Semaphore;

/// A store whose calls each wait for a permit of `gate`, recording the keys of every call and the
/// counters it holds; keys in `failing` fail on their own.
struct GatedStore {
    gate: Semaphore,
    batches: Mutex<Vec<Vec<String>>>,
    counters: Mutex<BTreeMap<String, u128>>,
    failing: BTreeSet<String>,
}

impl GatedStore {
    fn new(failing: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
            batches: Mutex::new(Vec::new()),
            counters: Mutex::new(BTreeMap::new()),
            failing: failing.iter().map(|k| (*k).to_owned()).collect(),
        })
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }

    fn counter(&self, key: &str) -> Option<u128> {
        self.counters.lock().unwrap().get(key).copied()
    }

    /// Opens the gate for good.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl CrdtValueStore for GatedStore {
    fn describe(&self) -> String {
        "gated test store".into()
    }

    fn load<'a>(&'a self, _: &'a ReplicaId, _: &'a TypeRegistry) -> DurableEntryStream<'a> {
        Box::pin(futures::stream::empty())
    }

    async fn store(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<StoreReport, DurableError> {
        let mut batch = self.store_each(replica, entries).await?;
        match batch.failed.pop() {
            Some((_, e)) => Err(e),
            None => Ok(batch.report),
        }
    }

    async fn store_each(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<BatchReport, DurableError> {
        self.batches
            .lock()
            .unwrap()
            .push(entries.iter().map(|(k, _)| k.clone()).collect());
        self.gate.acquire().await.unwrap().forget();
        let mut report = BatchReport::default();
        for (key, value) in entries {
            if self.failing.contains(&key) {
                let e = StoreError::Corrupt {
                    backend: "gated test store".into(),
                    replica: replica.to_string(),
                    key: key.clone(),
                    reason: "bad record".into(),
                };
                report.failed.push((key, e.into()));
            } else if let DurableValue::Data(d) = value
                && let Some(c) = d.downcast_ref::<GCounter>()
            {
                self.counters.lock().unwrap().insert(key, c.value());
            }
        }
        Ok(report)
    }

    async fn flush(&self) -> Result<(), DurableError> {
        Ok(())
    }
}

async fn start(store: &Arc<GatedStore>, max_entries: usize) -> Replicator {
    let net = MemoryNetwork::new(1, Faults::default());
    let settings = dd_core::replicator::Settings {
        durable_queue_max_entries: max_entries,
        ..fast_settings().durable_store(store.clone())
    };
    start_memory(&net, &ReplicaId::new("a"), 1, &[], settings)
        .await
        .0
}

/// Increments `key` by one, locally.
fn increment(
    r: &Replicator,
    key: &str,
) -> tokio::task::JoinHandle<Result<GCounter, ReplicatorError>> {
    let r = r.clone();
    let key: Key<GCounter> = Key::new(key);
    tokio::spawn(async move {
        let me = UniqueReplicaId::new("a", 1);
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
    })
}

/// Returns once the replica task handled every command sent before (the tests run on one
/// thread: the spawned updates send their commands when this yields, before the read's).
async fn settle(r: &Replicator) {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let probe: Key<GCounter> = Key::new("probe");
    let _ = r.get(&probe, ReadConsistency::Local).await;
}

async fn wait_for_calls(store: &GatedStore, n: usize) {
    eventually("store calls", LONG, || async { store.batches().len() >= n }).await;
}

#[tokio::test]
async fn sync_writes_arriving_during_a_batch_join_the_next_one_and_coalesce_per_key() {
    let store = GatedStore::new(&[]);
    let r = start(&store, 10_000).await;
    // The first write is alone in the store...
    let first = increment(&r, "first");
    wait_for_calls(&store, 1).await;
    // ...while 20 writes of 20 keys and 10 of one hot key arrive.
    let cold: Vec<_> = (0..20)
        .map(|i| increment(&r, &format!("k{i:02}")))
        .collect();
    let hot: Vec<_> = (0..10)
        .map(|_| {
            let (store, w) = (store.clone(), increment(&r, "hot"));
            // What the store held when the update was acknowledged.
            tokio::spawn(async move { (w.await, store.counter("hot")) })
        })
        .collect();
    settle(&r).await;
    assert_eq!(
        store.batches().len(),
        1,
        "nothing else reached the store yet"
    );
    store.open();
    first.await.unwrap().unwrap();
    for w in cold {
        assert_eq!(w.await.unwrap().unwrap().value(), 1);
    }
    let mut seen = BTreeSet::new();
    for w in hot {
        let (acked, stored) = w.await.unwrap();
        let value = acked.unwrap().unwrap().value();
        // Acknowledged by a write that includes this update.
        assert!(
            stored.is_some_and(|s| s >= value),
            "acknowledged {value} before the store held it"
        );
        seen.insert(value);
    }
    assert_eq!(seen, (1..=10).collect(), "each update saw its own state");
    let batches = store.batches();
    assert_eq!(
        batches.len(),
        2,
        "one batch for everything that waited: {batches:?}"
    );
    let mut expected: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    expected.push("hot".to_owned());
    assert_eq!(batches[1], expected, "the newest state of each key, once");
    assert_eq!(store.counter("hot"), Some(10));
}

#[tokio::test]
async fn a_batch_failing_in_part_acknowledges_exactly_the_keys_that_landed() {
    let store = GatedStore::new(&["bad"]);
    let r = start(&store, 10_000).await;
    let first = increment(&r, "first");
    wait_for_calls(&store, 1).await;
    let writes: Vec<_> = ["good1", "bad", "good2"]
        .into_iter()
        .map(|k| (k, increment(&r, k)))
        .collect();
    settle(&r).await;
    store.open();
    first.await.unwrap().unwrap();
    for (key, w) in writes {
        match (key, w.await.unwrap()) {
            ("bad", Err(ReplicatorError::StoreFailure { key, source })) => {
                assert_eq!(key, "bad");
                assert!(source.to_string().contains("bad record"), "{source}");
            }
            ("bad", other) => panic!("the bad key was acknowledged: {other:?}"),
            (_, result) => assert_eq!(result.unwrap().value(), 1, "{key}"),
        }
    }
    assert_eq!(store.batches()[1], ["good1", "bad", "good2"]);
    assert_eq!(store.counter("good1"), Some(1));
    assert_eq!(store.counter("good2"), Some(1));
    assert_eq!(store.counter("bad"), None);
}

#[tokio::test]
async fn a_full_queue_makes_writers_wait_and_drops_nothing() {
    let store = GatedStore::new(&[]);
    let r = start(&store, 4).await;
    let first = increment(&r, "first");
    wait_for_calls(&store, 1).await;
    let writes: Vec<_> = (0..20)
        .map(|i| increment(&r, &format!("k{i:02}")))
        .collect();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    store.open();
    first.await.unwrap().unwrap();
    for w in writes {
        assert_eq!(w.await.unwrap().unwrap().value(), 1);
    }
    let batches = store.batches();
    assert!(
        batches.iter().all(|b| b.len() <= 4),
        "a batch above the queue limit: {batches:?}"
    );
    let written: BTreeSet<&String> = batches.iter().flatten().collect();
    assert_eq!(written.len(), 21, "every key written: {batches:?}");
    for i in 0..20 {
        assert_eq!(store.counter(&format!("k{i:02}")), Some(1));
    }
}

/// A Sync write whose batch is in the store when shutdown begins is answered with its outcome
/// (stored), not dropped: the answers of the batches before the final flush reach their writes.
#[tokio::test]
async fn a_sync_write_in_the_store_when_shutdown_begins_is_answered() {
    let store = GatedStore::new(&[]);
    let r = start(&store, 10_000).await;
    let write = increment(&r, "k");
    wait_for_calls(&store, 1).await;
    let stop = {
        let r = r.clone();
        tokio::spawn(async move { r.shutdown().await })
    };
    // The replica takes the shutdown and waits for its flush, behind the batch.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    store.open();
    let written = write.await.unwrap();
    assert_eq!(written.unwrap().value(), 1);
    stop.await.unwrap().unwrap();
    assert_eq!(store.counter("k"), Some(1));
}
