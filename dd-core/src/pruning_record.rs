//! The durable part of pruning: which removed incarnations were pruned out of which key, and
//! which incarnations this replica knows to be removed.
//!
//! Both travel to the durable store through the ordinary [`DurableValue`] path, under keys with
//! the reserved prefix [`RESERVED_PREFIX`] (so the `CrdtValueStore` trait needs nothing new):
//!
//! - `__dd/pruning/<key>` holds a [`PrunedIncarnations`]: the incarnations whose entries were
//!   pruned from `<key>` ("pruning performed" markers), each with the incarnation they were
//!   collapsed into when this replica did the collapsing. The replicator hands it to the store
//!   in the same batch as `<key>` whenever `<key>` is written and has markers; a store that can
//!   (dd-durable) keeps it inside `<key>`'s own record, so value and markers land in one atomic
//!   write on every backend. Stores that keep it as a record of its own, and records written
//!   that way by earlier versions, are still read: at load the markers of both are merged.
//! - `__dd/removed` holds a [`RemovedIncarnations`]: incarnations that left the cluster or
//!   restarted and still have to be pruned, so that a restarted pruning leader carries on.
//! - `__dd/peers` holds the peers of the last member list, in the same record type.
//!
//! Markers never expire: a replica may come back from its durable data after any downtime,
//! and only the marker tells it that its stale entries of a pruned incarnation were already
//! counted elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crdt::{DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName};
use crate::data::ErasedData;
use crate::replica::UniqueReplicaId;

/// Keys starting with this prefix belong to the replicator; user keys may not use it.
pub const RESERVED_PREFIX: &str = "__dd/";

/// The prefix of the durable keys holding a key's pruning markers ([`markers_key`]).
pub const MARKERS_PREFIX: &str = "__dd/pruning/";

/// The durable key of the removed-incarnations record.
pub(crate) const REMOVED_KEY: &str = "__dd/removed";

/// The durable key of the removed incarnations whose replica restarted (a newer incarnation of
/// it lives on, and may prune them itself), as opposed to ones whose replica left. Same record
/// type as [`REMOVED_KEY`]; stores written before it was added have none.
pub(crate) const RESTARTED_KEY: &str = "__dd/restarted";

/// The durable key of the peers this replica last had in its member list (names only: the
/// record holds each as incarnation 0). Same record type as [`REMOVED_KEY`]; stores written
/// before it was added have none. A replica that starts from a store naming peers performs no
/// pruning before its member list holds a peer again: one of them may have performed a pruning
/// that this replica's earlier incarnation acknowledged (only "performed" markers are stored).
pub(crate) const PEERS_KEY: &str = "__dd/peers";

/// The durable key holding the pruning markers of `key`.
pub fn markers_key(key: &str) -> String {
    format!("{MARKERS_PREFIX}{key}")
}

/// The user key whose markers a durable key holds, if it is a markers key.
pub fn marked_key(durable_key: &str) -> Option<&str> {
    durable_key.strip_prefix(MARKERS_PREFIX)
}

/// Whether `key` is reserved for the replicator.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The "pruning performed" markers of one key: pruned incarnation -> the incarnation its
/// entries were collapsed into, when this replica collapsed them (else `None`).
///
/// A value whose key has these markers must never hold entries of a pruned incarnation: they
/// were counted elsewhere already. [`apply_to`](Self::apply_to) drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedIncarnations {
    /// Pruned incarnation -> the incarnation its entries were collapsed into, if known.
    pub performed: BTreeMap<UniqueReplicaId, Option<UniqueReplicaId>>,
}

impl PrunedIncarnations {
    /// Whether there is no marker.
    pub fn is_empty(&self) -> bool {
        self.performed.is_empty()
    }

    /// Drops from `value` every entry of an incarnation these markers say was pruned; returns
    /// whether anything was dropped.
    pub fn apply_to(&self, value: &mut dyn ErasedData) -> bool {
        let mut dropped = false;
        for removed in self.performed.keys() {
            if value.mentions(removed) {
                value.prune_cleanup(removed);
                dropped = true;
            }
        }
        dropped
    }
}

impl TypeName for PrunedIncarnations {
    fn type_name() -> String {
        "dd.PrunedIncarnations".into()
    }
}

impl ReplicatedData for PrunedIncarnations {
    fn merge(&mut self, other: &Self) {
        for (removed, owner) in &other.performed {
            let slot = self.performed.entry(removed.clone()).or_insert(None);
            if slot.is_none() {
                *slot = owner.clone();
            }
        }
    }
}

impl DeltaReplicatedData for PrunedIncarnations {
    type Delta = ();
    fn delta(&self) -> Option<()> {
        None
    }
    fn reset_delta(&mut self) {}
    fn merge_delta(&mut self, _delta: &()) {}
    fn zero() -> Option<Self> {
        None
    }
}

impl RemovedNodePruning for PrunedIncarnations {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }
    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }
    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}
    fn prune_cleanup(&mut self, _removed: &UniqueReplicaId) {}
}

/// Incarnations known to be removed (left the cluster or restarted) that may still need pruning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemovedIncarnations {
    pub(crate) removed: BTreeSet<UniqueReplicaId>,
}

impl TypeName for RemovedIncarnations {
    fn type_name() -> String {
        "dd.RemovedIncarnations".into()
    }
}

impl ReplicatedData for RemovedIncarnations {
    fn merge(&mut self, other: &Self) {
        self.removed.extend(other.removed.iter().cloned());
    }
}

impl DeltaReplicatedData for RemovedIncarnations {
    type Delta = ();
    fn delta(&self) -> Option<()> {
        None
    }
    fn reset_delta(&mut self) {}
    fn merge_delta(&mut self, _delta: &()) {}
    fn zero() -> Option<Self> {
        None
    }
}

impl RemovedNodePruning for RemovedIncarnations {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }
    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }
    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}
    fn prune_cleanup(&mut self, _removed: &UniqueReplicaId) {}
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn markers_keys_round_trip() {
        let k = markers_key("users/1");
        assert!(is_reserved(&k));
        assert_eq!(marked_key(&k), Some("users/1"));
        assert_eq!(marked_key("users/1"), None);
        assert!(!is_reserved("users/1"));
    }

    #[test]
    fn merge_keeps_known_owner() {
        let x = UniqueReplicaId::new("x", 1);
        let o = UniqueReplicaId::new("o", 1);
        let mut a = PrunedIncarnations::default();
        a.performed.insert(x.clone(), None);
        let mut b = PrunedIncarnations::default();
        b.performed.insert(x.clone(), Some(o.clone()));
        a.merge(&b);
        assert_eq!(a.performed.get(&x), Some(&Some(o)));
    }
}
