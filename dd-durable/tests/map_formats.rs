//! Records of every map type written before issue 16 (record format 1, the map state as
//! postcard wrote it then, in `fixtures/v1_*map*.hex`, produced by commit 647c616) still load,
//! keep their values, take the new remove semantics, and are written back in the new form
//! (with removed states) on the next write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{from_hex, load_all};
use dd_core::crdt::{
    LWWMap, ORMap, ORMultiMap, ORSet, PNCounter, PNCounterMap, TypeName, WallClock,
};
use dd_core::data::ErasedData;
use dd_core::durable::{CrdtValueStore, DurableValue};
use dd_core::store::DurableStateStore;
use dd_core::store::memory::MemoryStore;
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::record::{self, Record};
use dd_durable::{DurableDistributedDataStore, DurableOptions};

/// The first bytes of a map payload with removed states (today's payloads never start so).
const WITH_REMOVED: [u8; 2] = [0x80, 0x00];

fn s(x: &str) -> String {
    x.to_owned()
}

fn set(elements: &[&str]) -> BTreeSet<String> {
    elements.iter().map(|e| s(e)).collect()
}

/// Loads `fixture` as key `k` of replica `r` through the durable store, checks it against
/// `expected`, changes it with `change`, stores it and checks what is written back; `records`
/// says whether the change leaves a removed state (so the new form is written).
async fn check_fixture<T: ErasedData + TypeName + Clone + PartialEq + std::fmt::Debug>(
    fixture: &str,
    expected: impl Fn(&T),
    change: impl Fn(&mut T),
    records: bool,
) {
    let backend = MemoryStore::new();
    let bytes = from_hex(fixture);
    let Record::Data { type_name, payload } = record::decode(&bytes).unwrap() else {
        panic!("fixture is not a data record");
    };
    assert_eq!(type_name, T::type_name());
    assert!(!payload.starts_with(&WITH_REMOVED));
    backend
        .put("r", "k", None, Bytes::from(bytes.clone()))
        .await
        .unwrap();
    let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
    let replica = ReplicaId::new("r");

    let loaded = load_all(&durable, &replica).await;
    assert_eq!(loaded.len(), 1);
    let DurableValue::Data(value) = &loaded[0].1 else {
        panic!("{type_name}: loaded a tombstone");
    };
    let mut value = value.downcast_ref::<T>().unwrap().clone();
    expected(&value);
    // unchanged, it encodes exactly as before
    assert_eq!(value.encode().unwrap(), payload, "{type_name}");

    change(&mut value);
    durable
        .store(
            &replica,
            vec![(s("k"), DurableValue::Data(Box::new(value.clone())))],
        )
        .await
        .unwrap();
    let raw = backend.get("r", "k").await.unwrap().unwrap();
    let Record::Data { payload, .. } = record::decode(&raw.value).unwrap() else {
        panic!("{type_name}: stored a tombstone");
    };
    assert_eq!(payload.starts_with(&WITH_REMOVED), records, "{type_name}");
    let reloaded = load_all(&durable, &replica).await;
    let DurableValue::Data(again) = &reloaded[0].1 else {
        panic!("{type_name}: reloaded a tombstone");
    };
    assert_eq!(again.downcast_ref::<T>().unwrap(), &value, "{type_name}");
}

fn a() -> UniqueReplicaId {
    UniqueReplicaId::new("a", 1)
}

fn c() -> UniqueReplicaId {
    UniqueReplicaId::new("c", 7)
}

#[tokio::test]
async fn today_ormap_of_counters_loads_and_resets_on_remove() {
    check_fixture::<ORMap<String, PNCounter>>(
        include_str!("fixtures/v1_ormap_pncounter.hex"),
        |m| {
            let values: BTreeMap<String, i128> =
                m.iter().map(|(k, v)| (k.clone(), v.value())).collect();
            assert_eq!(values, [(s("apples"), 2), (s("plums"), 4)].into());
        },
        |m| {
            // a's slot of apples is 3 in the old record: it is not reused after the remove
            m.remove(&a(), &s("apples"));
            m.update(&a(), s("apples"), PNCounter::new(), |c| {
                c.increment(&a(), 1)
            })
            .unwrap();
            assert_eq!(m.get(&s("apples")).unwrap().value(), 1);
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn today_ormap_of_sets_loads_and_forgets_on_remove() {
    check_fixture::<ORMap<String, ORSet<String>>>(
        include_str!("fixtures/v1_ormap_orset.hex"),
        |m| {
            let values: BTreeMap<String, BTreeSet<String>> =
                m.iter().map(|(k, v)| (k.clone(), v.elements())).collect();
            assert_eq!(
                values,
                [(s("k1"), set(&["x", "z"])), (s("k2"), set(&["w"]))].into()
            );
        },
        |m| {
            m.remove(&a(), &s("k1"));
            m.update(&a(), s("k1"), ORSet::new(), |set| set.add(&a(), s("y")));
            assert_eq!(m.get(&s("k1")).unwrap().elements(), set(&["y"]));
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn today_ormultimap_loads_and_forgets_on_remove() {
    check_fixture::<ORMultiMap<String, String>>(
        include_str!("fixtures/v1_ormultimap.hex"),
        |m| {
            assert_eq!(
                m.entries(),
                [(s("k1"), set(&["y", "z"])), (s("k2"), set(&["w"]))].into()
            );
        },
        |m| {
            m.remove(&c(), &s("k2"));
            m.add_binding(&c(), s("k2"), s("v"));
            assert_eq!(m.get(&s("k2")), Some(set(&["v"])));
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn today_pncounter_map_loads_and_resets_on_remove() {
    check_fixture::<PNCounterMap<String>>(
        include_str!("fixtures/v1_pncountermap.hex"),
        |m| {
            assert_eq!(m.entries(), [(s("hits"), 3), (s("misses"), 1)].into());
        },
        |m| {
            m.remove(&a(), &s("hits"));
            m.increment(&a(), s("hits"), 2).unwrap();
            assert_eq!(m.get(&s("hits")), Some(2));
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn today_lww_map_loads_and_needs_no_removal_record() {
    check_fixture::<LWWMap<String, String>>(
        include_str!("fixtures/v1_lwwmap.hex"),
        |m| {
            assert_eq!(
                m.entries(),
                [(s("colour"), s("red")), (s("size"), s("XL"))].into()
            );
        },
        |m| {
            // a register is replaced whole: a removed register needs no record
            m.remove(&a(), &s("colour"));
            m.put(&a(), s("colour"), s("green"), &WallClock);
            assert_eq!(m.get(&s("colour")), Some(s("green")));
        },
        false,
    )
    .await;
}
