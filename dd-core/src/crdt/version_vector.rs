//! Version vector.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DeltaReplicatedData, Dot, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A version vector: the highest event counter seen of each replica incarnation.
///
/// It is a CRDT itself (merge takes the entry-wise maximum) and is partially ordered: `a < b`
/// when `b` has seen everything `a` has and more; `partial_cmp` is `None` for concurrent vectors.
///
/// ```
/// use dd_core::crdt::VersionVector;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = VersionVector::new();
/// x.increment(&a);
/// let mut y = x.clone();
/// y.increment(&b);
/// assert!(x < y);
/// x.increment(&a);
/// assert_eq!(x.partial_cmp(&y), None); // concurrent
/// x.merge(&y);
/// assert_eq!((x.get(&a), x.get(&b)), (2, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VersionVector {
    versions: BTreeMap<UniqueReplicaId, u64>,
}

impl VersionVector {
    /// An empty vector (every version 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The version of `node` (0 when absent).
    pub fn get(&self, node: &UniqueReplicaId) -> u64 {
        self.versions.get(node).copied().unwrap_or(0)
    }

    /// Increments the version of `node` and returns the new version.
    ///
    /// Saturates at `u64::MAX`, which one incarnation cannot reach by counting events.
    pub fn increment(&mut self, node: &UniqueReplicaId) -> u64 {
        let next = self.get(node).saturating_add(1);
        self.versions.insert(node.clone(), next);
        next
    }

    /// Raises the version of `node` to at least `version`.
    pub fn observe(&mut self, node: &UniqueReplicaId, version: u64) {
        match self.versions.get_mut(node) {
            Some(seen) => *seen = (*seen).max(version),
            None if version > 0 => {
                self.versions.insert(node.clone(), version);
            }
            None => {}
        }
    }

    /// Whether the vector has seen `dot` (its version of the dot's node is at least the dot's
    /// counter).
    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter() <= self.get(dot.node())
    }

    /// The entries `(node, version)`, in node order; versions are never 0.
    pub fn iter(&self) -> impl Iterator<Item = (&UniqueReplicaId, u64)> {
        self.versions.iter().map(|(n, v)| (n, *v))
    }

    /// The number of nodes with a version.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Whether no node has a version.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Removes the entry of `node`, returning its version (0 when absent). Not a lattice
    /// operation: only pruning uses it.
    pub(crate) fn remove(&mut self, node: &UniqueReplicaId) -> u64 {
        self.versions.remove(node).unwrap_or(0)
    }
}

impl PartialOrd for VersionVector {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let self_ahead = self.versions.iter().any(|(n, v)| *v > other.get(n));
        let other_ahead = other.versions.iter().any(|(n, v)| *v > self.get(n));
        match (self_ahead, other_ahead) {
            (false, false) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (true, true) => None,
        }
    }
}

impl TypeName for VersionVector {
    fn type_name() -> String {
        "VersionVector".into()
    }
}

impl ReplicatedData for VersionVector {
    fn merge(&mut self, other: &Self) {
        for (node, v) in other.iter() {
            self.observe(node, v);
        }
    }
}

/// A version vector has no delta: [`delta`](DeltaReplicatedData::delta) is always `None`.
impl DeltaReplicatedData for VersionVector {
    type Delta = VersionVector;

    fn delta(&self) -> Option<VersionVector> {
        None
    }

    fn reset_delta(&mut self) {}

    fn merge_delta(&mut self, delta: &VersionVector) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }
}

/// As Akka's `VersionVector`: pruning drops the removed node's entry and increments the entry of
/// `collapse_into`, so that the pruned vector is newer than any vector that still names the
/// removed node.
impl RemovedNodePruning for VersionVector {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        self.versions.keys().cloned().collect()
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.versions.contains_key(removed)
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        if self.remove(removed) > 0 {
            self.increment(collapse_into);
        }
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.remove(removed);
    }
}
