//! Property tests of every built-in CRDT: merge laws, deltas against full states, postcard and
//! registry round-trips, pruning.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod crdt_support;

use dd_core::crdt::{
    Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet, PNCounter,
    PNCounterMap, VersionVector,
};

crdt_properties!(gcounter, GCounter);
crdt_properties!(pncounter, PNCounter);
crdt_properties!(gset, GSet<u64>);
crdt_properties!(orset, ORSet<u64>);
crdt_properties!(flag, Flag);
crdt_properties!(lww_register, LWWRegister<u64>);
crdt_properties!(mv_register, MVRegister<u64>);
crdt_properties!(ormap_counters, ORMap<String, PNCounter>);
crdt_properties!(ormap_sets, ORMap<String, ORSet<u64>>);
crdt_properties!(lww_map, LWWMap<String, u64>);
crdt_properties!(pncounter_map, PNCounterMap<String>);
crdt_properties!(ormultimap, ORMultiMap<String, u64>);
crdt_properties!(version_vector, VersionVector);
