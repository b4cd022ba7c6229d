//! The replicator's durable wiring, against a small in-test `CrdtValueStore`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dd_core::crdt::{GCounter, ORSet};
use dd_core::data::{ErasedData, TypeRegistry};
use dd_core::durable::{
    CrdtValueStore, DurableEntryStream, DurableError, DurableValue, StoreReport,
};
use dd_core::replicator::{ReadConsistency, ReplicatorError, Settings, WriteConsistency};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use futures::StreamExt;
use replicator_support::*;

#[derive(Debug, Clone, PartialEq)]
enum Stored {
    Data { type_name: String, bytes: Vec<u8> },
    Deleted,
}

/// An in-memory map of encoded values per (replica, key), with switches to fail.
#[derive(Default)]
struct TestStore {
    map: Mutex<BTreeMap<(ReplicaId, String), Stored>>,
    fail_load: AtomicBool,
    fail_store: AtomicBool,
    stores: AtomicUsize,
    flushes: AtomicUsize,
    conflict: Mutex<Option<(String, GCounter)>>,
}

impl TestStore {
    fn get(&self, replica: &str, key: &str) -> Option<Stored> {
        self.map
            .lock()
            .unwrap()
            .get(&(ReplicaId::new(replica), key.to_owned()))
            .cloned()
    }

    fn counter(&self, replica: &str, key: &str) -> Option<u128> {
        match self.get(replica, key)? {
            Stored::Data { bytes, .. } => {
                Some(postcard::from_bytes::<GCounter>(&bytes).unwrap().value())
            }
            Stored::Deleted => None,
        }
    }

    fn put_counter(&self, replica: &str, key: &str, c: &GCounter) {
        self.map.lock().unwrap().insert(
            (ReplicaId::new(replica), key.to_owned()),
            Stored::Data {
                type_name: "GCounter".into(),
                bytes: postcard::to_stdvec(c).unwrap(),
            },
        );
    }
}

fn corrupt(key: &str) -> DurableError {
    DurableError::Corrupt {
        backend: "test".into(),
        replica: "?".into(),
        key: key.into(),
        reason: "switched to fail".into(),
    }
}

#[async_trait]
impl CrdtValueStore for TestStore {
    fn describe(&self) -> String {
        "test store".into()
    }

    fn load<'a>(
        &'a self,
        replica: &'a ReplicaId,
        registry: &'a TypeRegistry,
    ) -> DurableEntryStream<'a> {
        if self.fail_load.load(Ordering::SeqCst) {
            return Box::pin(futures::stream::iter([Err(corrupt("loaded"))]));
        }
        let entries: Vec<_> = self
            .map
            .lock()
            .unwrap()
            .iter()
            .filter(|((r, _), _)| r == replica)
            .map(|((_, k), v)| {
                let value = match v {
                    Stored::Deleted => DurableValue::Deleted,
                    Stored::Data { type_name, bytes } => {
                        DurableValue::Data(registry.decode(type_name, bytes).unwrap())
                    }
                };
                Ok((k.clone(), value))
            })
            .collect();
        Box::pin(futures::stream::iter(entries))
    }

    async fn store(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<StoreReport, DurableError> {
        if self.fail_store.load(Ordering::SeqCst) {
            return Err(corrupt(&entries[0].0));
        }
        tokio::task::yield_now().await;
        self.stores.fetch_add(1, Ordering::SeqCst);
        let mut map = self.map.lock().unwrap();
        for (k, v) in entries {
            let stored = match v {
                DurableValue::Deleted => Stored::Deleted,
                DurableValue::Data(d) => Stored::Data {
                    type_name: d.data_type_name(),
                    bytes: d.encode().unwrap(),
                },
            };
            map.insert((replica.clone(), k), stored);
        }
        let mut report = StoreReport::default();
        if let Some((key, c)) = self.conflict.lock().unwrap().take() {
            report
                .merged_conflicts
                .push((key, Box::new(c) as Box<dyn ErasedData>));
        }
        Ok(report)
    }

    async fn flush(&self) -> Result<(), DurableError> {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn durable_settings(store: &Arc<TestStore>) -> Settings {
    fast_settings().durable_store(store.clone())
}

async fn start_one(
    net: &MemoryNetwork,
    name: &str,
    incarnation: u64,
    all: &[ReplicaId],
    settings: Settings,
) -> Result<dd_core::Replicator, ReplicatorError> {
    let id = UniqueReplicaId::new(name, incarnation);
    let peers = all.iter().filter(|p| p.as_str() != name).cloned();
    let cluster = dd_core::cluster::StaticCluster::new(id.clone(), peers);
    dd_core::DistributedData::start(cluster, net.join(id), settings).await
}

#[tokio::test]
async fn recovered_values_are_served_first() {
    let store = Arc::new(TestStore::default());
    let mut old = GCounter::new();
    old.increment(&UniqueReplicaId::new("a", 1), 7).unwrap();
    store.put_counter("a", "hits", &old);
    store
        .map
        .lock()
        .unwrap()
        .insert((ReplicaId::new("a"), "gone".into()), Stored::Deleted);
    store.put_counter("b", "hits", &GCounter::new()); // another replica's data is not loaded

    let net = MemoryNetwork::new(1, Faults::default());
    let r = start_one(&net, "a", 2, &[], durable_settings(&store))
        .await
        .unwrap();
    let hits: Key<GCounter> = Key::new("hits");
    // The very first request already sees the recovered value.
    assert_eq!(
        r.get(&hits, ReadConsistency::Local).await.unwrap().value(),
        7
    );
    let gone: Key<GCounter> = Key::new("gone");
    assert!(matches!(
        r.get(&gone, ReadConsistency::Local).await,
        Err(ReplicatorError::Deleted { .. })
    ));
    let mut sub = Box::pin(r.subscribe(&hits).await.unwrap());
    assert_eq!(
        tokio::time::timeout(LONG, sub.next())
            .await
            .unwrap()
            .unwrap()
            .value(),
        7
    );
    // Updates on the new incarnation add to the recovered state.
    let me = r.self_id();
    r.update(&hits, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 1)
    })
    .await
    .unwrap();
    assert_eq!(store.counter("a", "hits"), Some(8));
    r.shutdown().await.unwrap();
    assert_eq!(store.flushes.load(Ordering::SeqCst), 1, "shutdown flushes");
}

#[tokio::test]
async fn load_error_fails_start() {
    let store = Arc::new(TestStore::default());
    store.fail_load.store(true, Ordering::SeqCst);
    let net = MemoryNetwork::new(1, Faults::default());
    let res = start_one(&net, "a", 1, &[], durable_settings(&store)).await;
    assert!(
        matches!(res, Err(ReplicatorError::LoadFailure { .. })),
        "{res:?}"
    );
}

#[tokio::test]
async fn updates_and_deletes_are_stored_before_they_resolve() {
    let store = Arc::new(TestStore::default());
    let net = MemoryNetwork::new(1, Faults::default());
    let r = start_one(&net, "a", 1, &[], durable_settings(&store))
        .await
        .unwrap();
    let key: Key<GCounter> = Key::new("k");
    for i in 1..=5u128 {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap();
        assert_eq!(store.counter("a", "k"), Some(i));
    }
    r.delete(&key, WriteConsistency::Local).await.unwrap();
    assert_eq!(
        store.get("a", "k"),
        Some(Stored::Deleted),
        "tombstone persisted"
    );

    // A restart (new incarnation) over the same store keeps the key deleted.
    r.shutdown().await.unwrap();
    let r = start_one(&net, "a", 2, &[], durable_settings(&store))
        .await
        .unwrap();
    assert!(matches!(
        r.get(&key, ReadConsistency::Local).await,
        Err(ReplicatorError::Deleted { .. })
    ));
}

#[tokio::test]
async fn store_failure_is_surfaced_and_memory_keeps_the_update() {
    let store = Arc::new(TestStore::default());
    let net = MemoryNetwork::new(1, Faults::default());
    let r = start_one(&net, "a", 1, &[], durable_settings(&store))
        .await
        .unwrap();
    store.fail_store.store(true, Ordering::SeqCst);
    let key: Key<GCounter> = Key::new("k");
    let me = r.self_id();
    let res = r
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 4)
        })
        .await;
    assert!(
        matches!(res, Err(ReplicatorError::StoreFailure { .. })),
        "{res:?}"
    );
    assert_eq!(
        r.get(&key, ReadConsistency::Local).await.unwrap().value(),
        4
    );
    assert_eq!(store.get("a", "k"), None);
}

#[tokio::test]
async fn gossip_merges_that_change_a_value_are_stored() {
    let all = names(2);
    let net = MemoryNetwork::new(3, Faults::default());
    let store0 = Arc::new(TestStore::default());
    let store1 = Arc::new(TestStore::default());
    let r0 = start_one(&net, "r0", 1, &all, durable_settings(&store0))
        .await
        .unwrap();
    let r1 = start_one(&net, "r1", 1, &all, durable_settings(&store1))
        .await
        .unwrap();
    let key: Key<GCounter> = Key::new("g");
    let me = r0.self_id();
    r0.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 9)
    })
    .await
    .unwrap();
    eventually("r1 stored the gossiped value", LONG, || async {
        store1.counter("r1", "g") == Some(9)
    })
    .await;
    r0.delete(&key, WriteConsistency::Local).await.unwrap();
    eventually("r1 stored the gossiped tombstone", LONG, || async {
        store1.get("r1", "g") == Some(Stored::Deleted)
    })
    .await;
    drop(r1);
}

#[tokio::test]
async fn only_durable_keys_are_stored_and_conflicts_are_adopted() {
    let store = Arc::new(TestStore::default());
    let net = MemoryNetwork::new(1, Faults::default());
    let settings = Settings {
        durable_keys: vec!["d-*".into()],
        ..durable_settings(&store)
    };
    let r = start_one(&net, "a", 1, &[], settings).await.unwrap();
    let me = r.self_id();
    let volatile: Key<GCounter> = Key::new("v-1");
    let me2 = me.clone();
    r.update(
        &volatile,
        GCounter::new(),
        WriteConsistency::Local,
        move |c| c.increment(&me2, 1),
    )
    .await
    .unwrap();
    assert_eq!(store.get("a", "v-1"), None);

    // The store reports that another process with our name wrote d-1 concurrently.
    let mut theirs = GCounter::new();
    theirs
        .increment(&UniqueReplicaId::new("a", 99), 40)
        .unwrap();
    *store.conflict.lock().unwrap() = Some(("d-1".into(), theirs));
    let durable: Key<GCounter> = Key::new("d-1");
    r.update(
        &durable,
        GCounter::new(),
        WriteConsistency::Local,
        move |c| c.increment(&me, 2),
    )
    .await
    .unwrap();
    assert_eq!(store.counter("a", "d-1"), Some(2));
    eventually("conflicting value merged into memory", LONG, || async {
        counter(&r, &durable).await == 42
    })
    .await;
}

/// Elements of the large set: the state (~1 MB) spans about 16 messages of 64 KiB.
const LARGE_SET: usize = 60_000;

async fn set_len(r: &dd_core::Replicator, key: &Key<ORSet<String>>) -> usize {
    match r.get(key, ReadConsistency::Local).await {
        Ok(s) => s.elements().len(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_orset_replicates_to_a_new_replica_and_survives_its_restart() {
    // The path of dd-bench area 8's 1M-element set, at a CI size: the set is written on a, then
    // b starts empty, receives it in pieces, stores it, stops with a, and comes back alone.
    let mut settings = fast_settings();
    settings.max_gossip_bytes = 64 * 1024;
    let store = Arc::new(TestStore::default());
    let net = MemoryNetwork::new(41, Faults::default());
    let all = names(2);
    let a = start_one(&net, "r0", 1, &all, settings.clone())
        .await
        .unwrap();
    let key: Key<ORSet<String>> = Key::new("large");
    let me = a.self_id();
    a.update(&key, ORSet::new(), WriteConsistency::Local, move |s| {
        for i in 0..LARGE_SET {
            s.add(&me, format!("element-{i:07}"));
        }
        Ok::<_, ReplicatorError>(())
    })
    .await
    .unwrap();
    let b_settings = settings.clone().durable_store(store.clone());
    let b = start_one(&net, "r1", 1, &all, b_settings.clone())
        .await
        .unwrap();
    eventually("b has the whole set", LONG, || async {
        set_len(&b, &key).await == LARGE_SET
    })
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
    let stored = match store.get("r1", "large") {
        Some(Stored::Data { bytes, .. }) => postcard::from_bytes::<ORSet<String>>(&bytes).unwrap(),
        other => panic!("b stored {other:?}"),
    };
    assert_eq!(stored.elements().len(), LARGE_SET);
    // Alone: the set can only come from b's store.
    let b = start_one(&net, "r1", 2, &all, b_settings).await.unwrap();
    assert_eq!(set_len(&b, &key).await, LARGE_SET);
    let me = b.self_id();
    b.update(&key, ORSet::new(), WriteConsistency::Local, move |s| {
        s.add(&me, "after the restart".to_owned());
        Ok::<_, ReplicatorError>(())
    })
    .await
    .unwrap();
    assert_eq!(set_len(&b, &key).await, LARGE_SET + 1);
    b.shutdown().await.unwrap();
}
