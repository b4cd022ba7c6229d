//! Conflicts with another writer under the same replica name, and records that cannot be read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::{as_counter, counter, entry, load_all, registry};
use dd_core::ReplicaId;
use dd_core::crdt::GCounter;
use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{DurableStateStore, Revision};
use dd_durable::record::{self, Record};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use futures::StreamExt;

const GARBAGE: &[u8] = b"\x00garbage that is not a record\xff";

fn merged_counter(report: &dd_core::durable::StoreReport, key: &str) -> GCounter {
    let (_, value) = report
        .merged_conflicts
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no merged conflict for {key}"));
    value.downcast_ref::<GCounter>().unwrap().clone()
}

#[tokio::test]
async fn two_writers_of_one_replica_lose_no_increment() {
    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("node-a");

    let report = first
        .store(&replica, vec![entry("hits", counter(&[("node-a", 1, 3)]))])
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty());

    // The second process never saw the first's write: its write conflicts and is merged.
    let report = second
        .store(&replica, vec![entry("hits", counter(&[("node-a", 2, 5)]))])
        .await
        .unwrap();
    assert_eq!(
        merged_counter(&report, "hits"),
        counter(&[("node-a", 1, 3), ("node-a", 2, 5)])
    );
    assert_eq!(second.stats().conflicts_merged, 1);

    // And the first one, whose revision is now stale, merges in turn.
    let report = first
        .store(&replica, vec![entry("hits", counter(&[("node-a", 1, 4)]))])
        .await
        .unwrap();
    let expected = counter(&[("node-a", 1, 4), ("node-a", 2, 5)]);
    assert_eq!(merged_counter(&report, "hits"), expected);

    let loaded = load_all(&first, &replica).await;
    assert_eq!(as_counter(&loaded[0].1), expected);
    assert_eq!(as_counter(&loaded[0].1).value(), 9);
}

#[tokio::test]
async fn conflict_with_a_tombstone_keeps_the_tombstone() {
    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    first
        .store(&replica, vec![("k".to_owned(), DurableValue::Deleted)])
        .await
        .unwrap();
    // The write of a value is not applied, and says so instead of acknowledging it.
    let err = second
        .store(&replica, vec![entry("k", counter(&[("r", 2, 1)]))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::Deleted { key, replica, .. } if key == "k" && replica == "r"),
        "{err:?}"
    );
    let raw = backend.get("r", "k").await.unwrap().unwrap();
    assert_eq!(record::decode(&raw.value), Ok(Record::Tombstone));
    assert_eq!(raw.revision, Revision::FIRST);
    // The tombstone is handed to the replicator (to adopt) with the next report, once.
    let report = second.store(&replica, vec![]).await.unwrap();
    assert_eq!(report.deleted, vec!["k".to_owned()]);
    assert!(report.merged_conflicts.is_empty());
    // Later writes of the key are refused too (the key is known deleted now), not acknowledged.
    let err = second
        .store(&replica, vec![entry("k", counter(&[("r", 2, 2)]))])
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::Deleted { .. }), "{err:?}");
    assert!(second.health().healthy, "a deleted key is no store failure");
}

#[tokio::test]
async fn corrupt_record_fails_load_naming_the_key() {
    let backend = MemoryStore::new();
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("node-a");
    durable
        .store(
            &replica,
            vec![entry("a-good", counter(&[("node-a", 1, 1)]))],
        )
        .await
        .unwrap();
    backend
        .put("node-a", "b-bad", None, GARBAGE.into())
        .await
        .unwrap();

    let reg = registry();
    let items: Vec<_> = durable.load(&replica, &reg).collect().await;
    assert!(items[0].is_ok());
    let err = items[1].as_ref().unwrap_err();
    match err {
        DurableError::Corrupt {
            backend,
            replica,
            key,
            reason,
        } => {
            assert_eq!(
                (backend.as_str(), replica.as_str(), key.as_str()),
                ("memory", "node-a", "b-bad")
            );
            assert!(reason.contains("not a durable-dd record"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().starts_with(
            "memory: record of replica 'node-a' key 'b-bad' is corrupt: not a durable-dd record"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn corrupt_record_is_never_overwritten_and_other_keys_still_write() {
    let backend = MemoryStore::new();
    backend.put("r", "bad", None, GARBAGE.into()).await.unwrap();
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    let err = durable
        .store(
            &replica,
            vec![
                entry("bad", counter(&[("r", 1, 1)])),
                entry("good", counter(&[("r", 1, 2)])),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DurableError::Corrupt { key, .. } if key == "bad"),
        "{err:?}"
    );
    let raw = backend.get("r", "bad").await.unwrap().unwrap();
    assert_eq!(raw.value.as_ref(), GARBAGE);
    assert_eq!(raw.revision, Revision::FIRST);
    let good = backend.get("r", "good").await.unwrap().unwrap();
    assert!(record::decode(&good.value).is_ok());

    // A tombstone does not overwrite it either, nor does a second attempt.
    let err = durable
        .store(&replica, vec![("bad".to_owned(), DurableValue::Deleted)])
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::Corrupt { .. }), "{err:?}");
    assert_eq!(
        backend
            .get("r", "bad")
            .await
            .unwrap()
            .unwrap()
            .value
            .as_ref(),
        GARBAGE
    );
    assert_eq!(durable.stats().write_errors, 2);
}

#[tokio::test]
async fn record_of_a_newer_format_is_not_overwritten() {
    let backend = MemoryStore::new();
    let mut newer = record::encode(&Record::Tombstone).unwrap();
    let newer_version = record::CURRENT_VERSION + 1;
    newer[4..6].copy_from_slice(&newer_version.to_be_bytes());
    let at = newer.len() - 4;
    let crc = crc32fast::hash(&newer[..at]);
    newer[at..].copy_from_slice(&crc.to_be_bytes());
    backend
        .put("r", "k", None, newer.clone().into())
        .await
        .unwrap();

    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    let reg = registry();
    let items: Vec<_> = durable.load(&replica, &reg).collect().await;
    assert!(matches!(
        items[0],
        Err(DurableError::UnsupportedFormat {
            version,
            supported: record::CURRENT_VERSION,
            ..
        }) if version == newer_version
    ));
    let err = durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(
        matches!(err, DurableError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert_eq!(backend.get("r", "k").await.unwrap().unwrap().value, newer);
}

#[tokio::test]
async fn record_of_an_unknown_type_is_not_overwritten() {
    let backend = MemoryStore::new();
    let record = record::encode(&Record::Data {
        type_name: "NoSuchType",
        payload: &[1, 2, 3],
    })
    .unwrap();
    backend
        .put("r", "k", None, record.clone().into())
        .await
        .unwrap();
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    let reg = registry();
    let items: Vec<_> = durable.load(&replica, &reg).collect().await;
    let err = items[0].as_ref().unwrap_err();
    assert!(
        err.to_string().contains("unknown CRDT type 'NoSuchType'"),
        "{err}"
    );
    assert!(err.to_string().contains("key 'k'"), "{err}");
    let err = durable
        .store(&replica, vec![entry("k", counter(&[("r", 1, 1)]))])
        .await
        .unwrap_err();
    assert!(matches!(err, DurableError::Data { .. }), "{err:?}");
    assert_eq!(backend.get("r", "k").await.unwrap().unwrap().value, record);
}

#[tokio::test]
async fn conflict_already_contained_in_the_store_writes_nothing() {
    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    first
        .store(&replica, vec![entry("k", counter(&[("r", 1, 5)]))])
        .await
        .unwrap();
    // The second writer's value is older than what is stored: nothing new to write.
    let report = second
        .store(&replica, vec![entry("k", counter(&[("r", 1, 2)]))])
        .await
        .unwrap();
    assert_eq!(merged_counter(&report, "k"), counter(&[("r", 1, 5)]));
    let raw = backend.get("r", "k").await.unwrap().unwrap();
    assert_eq!(raw.revision, Revision::FIRST);
    // It now knows the revision: its next write is a plain update.
    second
        .store(&replica, vec![entry("k", counter(&[("r", 1, 6)]))])
        .await
        .unwrap();
    assert_eq!(
        backend.get("r", "k").await.unwrap().unwrap().revision,
        Revision(2)
    );
}

#[tokio::test]
async fn merges_of_a_failed_call_are_handed_out_by_the_next_call() {
    let backend = MemoryStore::new();
    backend.put("r", "bad", None, GARBAGE.into()).await.unwrap();
    let other = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    let reg = registry();
    other
        .store(&replica, vec![entry("shared", counter(&[("r", 1, 2)]))])
        .await
        .unwrap();
    let err = durable
        .store(
            &replica,
            vec![
                entry("bad", counter(&[("r", 2, 1)])),
                entry("shared", counter(&[("r", 2, 1)])),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, DurableError::Corrupt { key, .. } if key == "bad"));
    let merged = counter(&[("r", 1, 2), ("r", 2, 1)]);
    let raw = backend.get("r", "shared").await.unwrap().unwrap();
    let Record::Data { type_name, payload } = record::decode(&raw.value).unwrap() else {
        panic!("not data");
    };
    let stored = reg.decode(type_name, payload).unwrap();
    assert!(stored.eq_erased(&merged));

    let report = durable
        .store(&replica, vec![entry("unrelated", counter(&[("r", 2, 1)]))])
        .await
        .unwrap();
    assert_eq!(merged_counter(&report, "shared"), merged);
}

/// A merge is reported with the answer of the call that met it and not kept here: until the
/// replica adopted it, the replicator's durable writer merges it into the states it hands over
/// (dd-core `durable_writer` test
/// `a_state_handed_over_before_the_merge_was_adopted_is_written_with_it`). A later call's value
/// is written as given.
#[tokio::test]
async fn a_merge_is_reported_with_the_answer_and_not_kept() {
    let backend = MemoryStore::new();
    let other = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");
    other
        .store(&replica, vec![entry("k", counter(&[("r", 1, 3)]))])
        .await
        .unwrap();
    let report = durable
        .store(&replica, vec![entry("k", counter(&[("r", 2, 1)]))])
        .await
        .unwrap();
    assert_eq!(
        merged_counter(&report, "k"),
        counter(&[("r", 1, 3), ("r", 2, 1)])
    );
    let stored = as_counter(&load_all(&other, &replica).await[0].1);
    assert_eq!(stored, counter(&[("r", 1, 3), ("r", 2, 1)]));

    // Deliberately smaller than the merge, to show nothing is merged in any more.
    let report = durable
        .store(&replica, vec![entry("k", counter(&[("r", 2, 2)]))])
        .await
        .unwrap();
    assert!(report.merged_conflicts.is_empty(), "reported once");
    let stored = as_counter(&load_all(&other, &replica).await[0].1);
    assert_eq!(stored, counter(&[("r", 2, 2)]));
}

/// The type registry is given once (`attach`), not with every write: a conflicting record of a
/// type only the attached registry knows (`GSet<u32>` is not built in) is decoded and merged.
#[tokio::test]
async fn a_conflict_of_a_type_only_the_attached_registry_knows_is_merged() {
    use dd_core::crdt::GSet;
    use dd_core::data::TypeRegistry;

    let backend = MemoryStore::new();
    let first = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let second = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("node-a");
    let registry = TypeRegistry::with_builtin_types();
    registry.register::<GSet<u32>>();
    second.attach(&replica, &registry);
    let set = |elements: &[u32]| {
        let mut s = GSet::new();
        elements.iter().for_each(|e| s.add(*e));
        DurableValue::Data(Box::new(s))
    };

    first
        .store(&replica, vec![("s".to_owned(), set(&[1]))])
        .await
        .unwrap();
    // The second process never saw the first's write: its write conflicts, and the stored record
    // is decoded with the attached registry.
    let report = second
        .store(&replica, vec![("s".to_owned(), set(&[2]))])
        .await
        .unwrap();
    let (_, merged) = report
        .merged_conflicts
        .iter()
        .find(|(k, _)| k == "s")
        .expect("the conflict is merged");
    let merged = merged.downcast_ref::<GSet<u32>>().unwrap();
    assert_eq!(
        merged.elements().iter().copied().collect::<Vec<_>>(),
        [1, 2]
    );
}
