//! Other CRDT types than GCounter through the durable store: round-trip and conflict merging.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::load_all;
use dd_core::crdt::{ORSet, PNCounter};
use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
use dd_core::store::memory::MemoryStore;
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions};

fn node(incarnation: u64) -> UniqueReplicaId {
    UniqueReplicaId::new("r", incarnation)
}

fn set_of(node_id: u64, elements: &[&str]) -> ORSet<String> {
    let mut s = ORSet::new();
    for e in elements {
        s.add(&node(node_id), (*e).to_owned());
    }
    s
}

fn value(v: impl dd_core::data::ErasedData) -> DurableValue {
    DurableValue::Data(Box::new(v))
}

#[tokio::test]
async fn orset_and_pncounter_round_trip() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend, DurableOptions::default());
    let replica = ReplicaId::new("r");
    let mut counter = PNCounter::new();
    counter.increment(&node(1), 10).unwrap();
    counter.decrement(&node(1), 3).unwrap();
    let set = set_of(1, &["x", "y"]);
    durable
        .store(
            &replica,
            vec![
                ("counter".to_owned(), value(counter.clone())),
                ("set".to_owned(), value(set.clone())),
            ],
        )
        .await
        .unwrap();
    let loaded = load_all(&durable, &replica).await;
    let DurableValue::Data(c) = &loaded[0].1 else {
        panic!("not data")
    };
    assert_eq!(c.downcast_ref::<PNCounter>().unwrap(), &counter);
    assert_eq!(c.downcast_ref::<PNCounter>().unwrap().value(), 7);
    let DurableValue::Data(s) = &loaded[1].1 else {
        panic!("not data")
    };
    assert_eq!(s.downcast_ref::<ORSet<String>>().unwrap(), &set);
}

#[tokio::test]
async fn concurrent_orset_additions_are_merged() {
    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    first
        .store(&replica, vec![("s".to_owned(), value(set_of(1, &["a"])))])
        .await
        .unwrap();
    let report = second
        .store(&replica, vec![("s".to_owned(), value(set_of(2, &["b"])))])
        .await
        .unwrap();
    let merged = report.merged_conflicts[0]
        .1
        .downcast_ref::<ORSet<String>>()
        .unwrap();
    assert_eq!(
        merged.elements(),
        ["a".to_owned(), "b".to_owned()].into_iter().collect()
    );
    let loaded = load_all(&first, &replica).await;
    let DurableValue::Data(stored) = &loaded[0].1 else {
        panic!("not data")
    };
    assert!(stored.eq_erased(merged));
}

#[tokio::test]
async fn a_conflict_between_two_types_fails_and_keeps_the_stored_record() {
    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    first
        .store(&replica, vec![("k".to_owned(), value(set_of(1, &["a"])))])
        .await
        .unwrap();
    let mut counter = PNCounter::new();
    counter.increment(&node(2), 1).unwrap();
    let err = second
        .store(&replica, vec![("k".to_owned(), value(counter))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::Data { key, .. } if key == "k"),
        "{err:?}"
    );
    assert!(err.to_string().contains("type mismatch"), "{err}");
    let loaded = load_all(&first, &replica).await;
    let DurableValue::Data(stored) = &loaded[0].1 else {
        panic!("not data")
    };
    assert!(stored.eq_erased(&set_of(1, &["a"])));
}
