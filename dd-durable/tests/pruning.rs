//! "Pruning performed" markers in the durable layer (issue 17, items 1 and 2): a value and its
//! markers land in one record, conflict merges and merges not yet adopted by the replicator drop
//! the entries of pruned incarnations, and markers stored as records of their own (by earlier
//! versions) still load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use common::{as_counter, counter, entry};
use dd_core::data::TypeRegistry;
use dd_core::durable::{CrdtValueStore, DurableValue, PrunedIncarnations, marked_key, markers_key};
use dd_core::store::DurableStateStore;
use dd_core::store::fault::{Fault, FaultInjectingStore};
use dd_core::store::memory::MemoryStore;
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::record;
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};
use futures::TryStreamExt;

/// The registry of a replicator: built-in types and its own record types.
fn registry() -> TypeRegistry {
    let registry = TypeRegistry::with_builtin_types();
    dd_core::replicator::register_record_types(&registry);
    registry
}

/// Markers saying `removed` (an incarnation of `name`) was collapsed into `into`.
fn pruned(removed: (&str, u64), into: (&str, u64)) -> PrunedIncarnations {
    let mut markers = PrunedIncarnations::default();
    markers.performed.insert(
        UniqueReplicaId::new(removed.0, removed.1),
        Some(UniqueReplicaId::new(into.0, into.1)),
    );
    markers
}

/// A value with its markers entry, as the replicator hands them over (markers first).
fn with_markers(
    key: &str,
    value: dd_core::crdt::GCounter,
    markers: PrunedIncarnations,
) -> Vec<(String, DurableValue)> {
    vec![
        (markers_key(key), DurableValue::Data(Box::new(markers))),
        entry(key, value),
    ]
}

/// What a fresh process loads for `replica`: values and markers by key.
async fn reload(
    backend: &MemoryStore,
    replica: &ReplicaId,
) -> (
    Vec<(String, DurableValue)>,
    Vec<(String, PrunedIncarnations)>,
) {
    let reopened = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let reg = registry();
    let loaded: Vec<(String, DurableValue)> =
        reopened.load(replica, &reg).try_collect().await.unwrap();
    let mut values = Vec::new();
    let mut markers = Vec::new();
    for (key, value) in loaded {
        match marked_key(&key) {
            Some(of) => {
                let DurableValue::Data(d) = value else {
                    continue;
                };
                let m = d.downcast_ref::<PrunedIncarnations>().unwrap().clone();
                markers.push((of.to_owned(), m));
            }
            None => values.push((key, value)),
        }
    }
    (values, markers)
}

/// Item 1: a collapsed value must never be stored without its markers. The write-behind queue
/// sorts keys, and a key starting with an upper-case letter (or `-`, `.`, a digit) sorts before
/// `__dd/pruning/<key>`; a batch that breaks off after its first write (a crash, a backend
/// without transactions) used to leave the collapsed value without its markers.
#[tokio::test]
async fn value_and_its_pruning_markers_land_in_one_record() {
    let backend = MemoryStore::new();
    let faulty = FaultInjectingStore::new(backend.clone());
    let switch = faulty.switch();
    let options = DurableOptions {
        write_mode: WriteMode::WriteBehind {
            interval: Duration::from_secs(3600),
        },
        ..DurableOptions::default()
    };
    let durable = DurableDistributedDataStore::new(faulty, options);
    let replica = ReplicaId::new("a");
    // c#1's 5 collapsed into a#1 (10 + 5).
    let collapsed = counter(&[("a", 1, 15)]);
    durable
        .store(
            &replica,
            with_markers("Hits", collapsed.clone(), pruned(("c", 1), ("a", 1))),
        )
        .await
        .unwrap();
    switch.set(Fault::PartialBatch { written: 1 });
    assert!(durable.flush().await.is_err(), "the batch broke off");
    drop(durable);

    let (values, markers) = reload(&backend, &replica).await;
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(as_counter(&values[0].1), collapsed);
    assert_eq!(
        markers,
        vec![("Hits".to_owned(), pruned(("c", 1), ("a", 1)))],
        "the collapsed value was stored without its pruning markers"
    );
    // One record: the markers are inside the value's record (format version 2).
    let stored = backend.get("a", "Hits").await.unwrap().unwrap();
    let (_, inside) = record::decode_with_pruning(&stored.value).unwrap();
    assert!(inside.is_some());
    assert!(
        backend
            .get("a", &markers_key("Hits"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Item 2, the cache of merges not yet adopted: a write that half landed (and is retried in
/// the background, which finds it landed and remembers the merge until the replicator adopts
/// it), then a pruning of c#1. The remembered pre-pruning merge `{a#1:10, c#1:5}` used to be
/// merged into the collapsed value `{a#1:15}`, storing 20 where 15 is right.
#[tokio::test]
async fn unadopted_merge_is_pruned_by_later_markers() {
    let backend = MemoryStore::new();
    let faulty = FaultInjectingStore::new(backend.clone());
    let switch = faulty.switch();
    let options = DurableOptions {
        retry_interval: Duration::from_millis(10),
        ..DurableOptions::default()
    };
    let durable = DurableDistributedDataStore::new(faulty, options);
    let replica = ReplicaId::new("a");

    switch.set(Fault::PartialBatch { written: 1 });
    let half = durable
        .store(
            &replica,
            vec![entry("k", counter(&[("a", 1, 10), ("c", 1, 5)]))],
        )
        .await;
    assert!(half.is_err(), "the write landed but failed");
    switch.set(Fault::None);
    common::eventually(Duration::from_secs(10), || durable.health().healthy).await;
    // c#1 is pruned: collapsed into a#1 (10 + 5).
    let collapsed = counter(&[("a", 1, 15)]);
    durable
        .store(
            &replica,
            with_markers("k", collapsed.clone(), pruned(("c", 1), ("a", 1))),
        )
        .await
        .unwrap();
    let (values, markers) = reload(&backend, &replica).await;
    assert_eq!(
        as_counter(&values[0].1),
        collapsed,
        "pruned entries came back"
    );
    assert_eq!(as_counter(&values[0].1).value(), 15);
    assert_eq!(markers, vec![("k".to_owned(), pruned(("c", 1), ("a", 1)))]);
}

/// Item 2, the conflict merge: another process (same replica name) stored `{a#1:10, c#1:5}`
/// without markers; ours is the collapsed `{a#1:15}`. Their c#1 entry is counted in ours
/// already: the merge is 15, with the markers, not 20.
#[tokio::test]
async fn conflict_merge_applies_pruning_markers() {
    let backend = MemoryStore::new();
    let ours = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let theirs = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("a");
    theirs
        .store(
            &replica,
            vec![entry("k", counter(&[("a", 1, 10), ("c", 1, 5)]))],
        )
        .await
        .unwrap();
    let report = ours
        .store(
            &replica,
            with_markers("k", counter(&[("a", 1, 15)]), pruned(("c", 1), ("a", 1))),
        )
        .await
        .unwrap();
    let (_, merged) = &report.merged_conflicts[0];
    assert_eq!(
        merged.downcast_ref::<dd_core::crdt::GCounter>().unwrap(),
        &counter(&[("a", 1, 15)])
    );
    // And the other way round: their stale write merges into the record with markers.
    let report = theirs
        .store(
            &replica,
            vec![entry("k", counter(&[("a", 1, 10), ("c", 1, 6)]))],
        )
        .await
        .unwrap();
    let (_, merged) = &report.merged_conflicts[0];
    assert_eq!(
        merged
            .downcast_ref::<dd_core::crdt::GCounter>()
            .unwrap()
            .value(),
        15
    );
    let (values, markers) = reload(&backend, &replica).await;
    assert_eq!(as_counter(&values[0].1), counter(&[("a", 1, 15)]));
    assert_eq!(markers, vec![("k".to_owned(), pruned(("c", 1), ("a", 1)))]);
}

/// The format migration: markers stored as a record of their own (`__dd/pruning/<key>`, as
/// every version before format version 2 wrote them) still load, next to the value; the next
/// write of the key keeps them inside the value's record.
#[tokio::test]
async fn markers_stored_as_their_own_record_still_load() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("a");
    let reg = registry();
    // As written before: the markers record alone, then the value alone (format version 1).
    durable
        .store(
            &replica,
            vec![(
                markers_key("k"),
                DurableValue::Data(Box::new(pruned(("c", 1), ("a", 1)))),
            )],
        )
        .await
        .unwrap();
    durable
        .store(&replica, vec![entry("k", counter(&[("a", 1, 15)]))])
        .await
        .unwrap();
    for key in ["k".to_owned(), markers_key("k")] {
        let raw = backend.get("a", &key).await.unwrap().unwrap();
        assert_eq!(raw.value[4..6], [0, 1], "{key} is a version-1 record");
    }
    let (values, markers) = reload(&backend, &replica).await;
    assert_eq!(as_counter(&values[0].1), counter(&[("a", 1, 15)]));
    assert_eq!(markers, vec![("k".to_owned(), pruned(("c", 1), ("a", 1)))]);

    // A reopened store writes value and markers in one record from now on.
    let reopened = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let _: Vec<_> = reopened.load(&replica, &reg).try_collect().await.unwrap();
    reopened
        .store(
            &replica,
            with_markers("k", counter(&[("a", 1, 16)]), pruned(("c", 1), ("a", 1))),
        )
        .await
        .unwrap();
    let raw = backend.get("a", "k").await.unwrap().unwrap();
    assert_eq!(raw.value[4..6], [0, 2]);
    let (values, markers) = reload(&backend, &replica).await;
    assert_eq!(as_counter(&values[0].1).value(), 16);
    // Both the old record and the one inside the value: the same markers.
    assert!(
        markers
            .iter()
            .all(|(k, m)| k == "k" && *m == pruned(("c", 1), ("a", 1)))
    );
}
