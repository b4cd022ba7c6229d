//! Pruning markers meeting the durable layer on every backend (issue 17, items 1, 3 and 4):
//!
//! - a collapsed value and its "pruning performed" markers land in one record, so a batch that
//!   breaks off (a crash, a backend that writes a batch's keys in any order or concurrently)
//!   never leaves the value without its markers;
//! - a restarted replica never collapses an incarnation again from a stale stored value (which
//!   would reuse dots its earlier incarnation had handed out, and make set elements vanish);
//! - a tombstone another process wrote under the same replica name reaches the replicator: the
//!   key is deleted there too, and a `Sync` update of it is refused instead of acknowledged and
//!   dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use dd_core::crdt::{GCounter, ORSet, RemovedNodePruning};
use dd_core::data::TypeRegistry;
use dd_core::durable::{CrdtValueStore, DurableValue, PrunedIncarnations, marked_key, markers_key};
use dd_core::replicator::{ReadConsistency, ReplicatorError, WriteConsistency};
use dd_core::store::DurableStateStore;
use dd_core::store::fault::{Fault, FaultInjectingStore};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};
use futures::TryStreamExt;
use integration_tests::{
    BackendKind, ReplicaConfig, TransportKind, backend_tests, start_alone, start_cluster, stop_all,
};

const LONG: Duration = Duration::from_secs(20);

/// The registry of a replicator: built-in types and its own record types.
fn registry() -> TypeRegistry {
    let registry = TypeRegistry::with_builtin_types();
    dd_core::replicator::register_record_types(&registry);
    registry
}

fn markers(removed: &UniqueReplicaId, into: &UniqueReplicaId) -> PrunedIncarnations {
    let mut m = PrunedIncarnations::default();
    m.performed.insert(removed.clone(), Some(into.clone()));
    m
}

fn markers_entry(key: &str, m: PrunedIncarnations) -> (String, DurableValue) {
    (markers_key(key), DurableValue::Data(Box::new(m)))
}

/// Item 1: the write-behind queue sorts keys, and `Hits` sorts before `__dd/pruning/Hits`; a
/// batch that breaks off after its first write used to leave the collapsed value stored without
/// its markers (and fs, S3 and Cassandra write a batch's keys in no fixed order anyway). Now the
/// markers are inside the value's record: either both land or neither.
async fn pruned_value_never_lands_without_its_markers(backend: BackendKind) {
    let location = backend.fresh_location("markers").await.unwrap();
    let faulty = Arc::new(FaultInjectingStore::from_arc(
        location.open().await.unwrap(),
    ));
    let switch = faulty.switch();
    let options = DurableOptions {
        write_mode: WriteMode::WriteBehind {
            interval: Duration::from_secs(3600),
        },
        ..DurableOptions::default()
    };
    let store: Arc<dyn DurableStateStore> = faulty;
    let durable = DurableDistributedDataStore::from_arc(store, options);
    let replica = ReplicaId::new("a");
    let reg = registry();
    let (a1, c1) = (UniqueReplicaId::new("a", 1), UniqueReplicaId::new("c", 1));
    // c#1's 5 collapsed into a#1 (10 + 5).
    let mut collapsed = GCounter::new();
    collapsed.increment(&a1, 15).unwrap();
    durable
        .store(
            &replica,
            vec![
                markers_entry("Hits", markers(&c1, &a1)),
                (
                    "Hits".to_owned(),
                    DurableValue::Data(Box::new(collapsed.clone())),
                ),
            ],
        )
        .await
        .unwrap();
    switch.set(Fault::PartialBatch { written: 1 });
    assert!(
        durable.flush().await.is_err(),
        "the batch broke off on {backend}"
    );
    drop(durable);

    // A restarted process loads what landed.
    let reopened = DurableDistributedDataStore::from_arc(
        location.open().await.unwrap(),
        DurableOptions::default(),
    );
    let loaded: Vec<(String, DurableValue)> =
        reopened.load(&replica, &reg).try_collect().await.unwrap();
    let value = loaded.iter().find(|(k, _)| k == "Hits");
    let loaded_markers = loaded
        .iter()
        .find(|(k, _)| marked_key(k) == Some("Hits"))
        .and_then(|(_, v)| match v {
            DurableValue::Data(d) => d.downcast_ref::<PrunedIncarnations>().cloned(),
            DurableValue::Deleted => None,
        });
    match value {
        Some((_, DurableValue::Data(d))) => {
            assert_eq!(d.downcast_ref::<GCounter>(), Some(&collapsed));
            assert_eq!(
                loaded_markers,
                Some(markers(&c1, &a1)),
                "on {backend} the collapsed value was stored without its pruning markers"
            );
        }
        other => panic!("on {backend} the value did not land: {other:?}"),
    }
}

/// Item 3: replica b's earlier incarnation b#1 collapsed c#1 into itself (minting a new dot
/// for c#1's element), added an element, gossiped, and crashed before the collapsed value was
/// stored; b's store holds the older value and the marker (as separate records, as earlier
/// versions wrote them). Collapsing again at load minted from that older state the dot b#1 had
/// since given to another element, and that element vanished from every replica. Now b keeps
/// the stored entries and learns the collapse from a's full state.
async fn restart_never_collapses_again_from_a_stale_stored_value(backend: BackendKind) {
    let location = backend.fresh_location("recollapse").await.unwrap();
    let (b1, c1) = (UniqueReplicaId::new("b", 1), UniqueReplicaId::new("c", 1));
    let x = || "x".to_owned();
    let mut stale = ORSet::new();
    stale.add(&b1, x());
    stale.add(&c1, "z".to_owned());
    // In memory b#1 went on: added "w" (dot b#1:2), then collapsed c#1's "z" as the versions
    // before N1's fix did (today's pruning leaves dot-based values alone): re-tagged with the
    // dot b#1:3, and c#1 forgotten.
    let mut collapsed = ORSet::new();
    for e in [x(), "w".to_owned(), "z".to_owned()] {
        collapsed.add(&b1, e);
    }
    assert!(!collapsed.mentions(&c1));
    let all: std::collections::BTreeSet<String> =
        ["w", "x", "z"].into_iter().map(str::to_owned).collect();
    assert_eq!(collapsed.elements(), all);

    let writer = DurableDistributedDataStore::from_arc(
        location.open().await.unwrap(),
        DurableOptions::default(),
    );
    let value = |s: &ORSet<String>| DurableValue::Data(Box::new(s.clone()));
    // a got the collapsed value and the marker by gossip, and stored them.
    writer
        .store(
            &ReplicaId::new("a"),
            vec![
                markers_entry("s", markers(&c1, &b1)),
                ("s".to_owned(), value(&collapsed)),
            ],
        )
        .await
        .unwrap();
    // b stored the marker (a record of its own) but not the collapsed value.
    writer
        .store(
            &ReplicaId::new("b"),
            vec![markers_entry("s", markers(&c1, &b1))],
        )
        .await
        .unwrap();
    writer
        .store(&ReplicaId::new("b"), vec![("s".to_owned(), value(&stale))])
        .await
        .unwrap();
    drop(writer);

    let store = location.open().await.unwrap();
    let replicas = start_cluster(
        TransportKind::Memory,
        &[
            (ReplicaConfig::new("a"), store.clone()),
            (ReplicaConfig::new("b"), store),
        ],
    )
    .await
    .unwrap();
    let key: Key<ORSet<String>> = Key::new("s");
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let mut seen = Vec::new();
        for r in &replicas {
            seen.push(
                r.get(&key, ReadConsistency::Local)
                    .await
                    .unwrap()
                    .elements(),
            );
        }
        if seen.iter().all(|s| *s == all) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "on {backend} the replicas hold {seen:?}, not {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_all(&replicas).await.unwrap();
}

async fn increment(
    r: &dd_core::Replicator,
    key: &Key<GCounter>,
) -> Result<GCounter, ReplicatorError> {
    let me = r.self_id();
    r.update(key, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 1)
    })
    .await
}

/// Item 4: another process with the same replica name deletes a key (a tombstone that wins over
/// any value). The replica's next write of the key conflicts with it; the conflict resolving to
/// the tombstone used to stay in the store: the replicator kept the value, acknowledged every
/// `Sync` update of it and the store skipped them all. Now the update is refused and the key is
/// deleted in the replicator too, also after a restart.
async fn tombstone_conflict_reaches_the_replicator(backend: BackendKind) {
    let location = backend.fresh_location("tombstone").await.unwrap();
    let config = ReplicaConfig::new("solo");
    let key: Key<GCounter> = Key::new("k");
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    increment(&r, &key).await.unwrap();

    // The other process deletes the key.
    let other = DurableDistributedDataStore::from_arc(
        location.open().await.unwrap(),
        DurableOptions::default(),
    );
    other
        .store(
            &ReplicaId::new("solo"),
            vec![("k".to_owned(), DurableValue::Deleted)],
        )
        .await
        .unwrap();
    drop(other);

    let refused = increment(&r, &key).await;
    assert!(
        matches!(refused, Err(ReplicatorError::Deleted { .. })),
        "on {backend} an update of a key deleted in the store was answered {refused:?}"
    );
    let deadline = tokio::time::Instant::now() + LONG;
    while r.get(&key, ReadConsistency::Local).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "on {backend} the replicator never adopted the tombstone"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(
        increment(&r, &key).await,
        Err(ReplicatorError::Deleted { .. })
    ));
    r.shutdown().await.unwrap();
    drop(r);
    let r = start_alone(&config, location.open().await.unwrap())
        .await
        .unwrap();
    assert!(matches!(
        r.get(&key, ReadConsistency::Local).await,
        Err(ReplicatorError::Deleted { .. })
    ));
    r.shutdown().await.unwrap();
}

backend_tests!(
    pruned_value_never_lands_without_its_markers,
    restart_never_collapses_again_from_a_stale_stored_value,
    tombstone_conflict_reaches_the_replicator,
);
