//! Grow-only counter.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{CrdtError, DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A grow-only counter: one monotonic slot per replica incarnation; the value is their sum.
///
/// Slots are `u64`; the value is a `u128`, so the sum of any number of slots cannot overflow, and
/// an increment that would overflow one slot is refused with [`CrdtError::Overflow`].
///
/// ```
/// use dd_core::crdt::GCounter;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = GCounter::new();
/// x.increment(&a, 2).unwrap();
/// let mut y = GCounter::new();
/// y.increment(&b, 3).unwrap();
/// x.merge(&y);
/// assert_eq!(x.value(), 5);
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GCounter {
    state: BTreeMap<UniqueReplicaId, u64>,
    #[serde(skip)]
    delta: Option<Box<GCounter>>,
}

impl GCounter {
    /// An empty counter (value 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter's value: the sum of all slots.
    pub fn value(&self) -> u128 {
        self.state.values().map(|v| u128::from(*v)).sum()
    }

    /// Adds `n` to the slot of `node`.
    pub fn increment(&mut self, node: &UniqueReplicaId, n: u64) -> Result<(), CrdtError> {
        if n == 0 {
            return Ok(());
        }
        let current = self.state.get(node).copied().unwrap_or(0);
        let next = current
            .checked_add(n)
            .ok_or(CrdtError::Overflow("GCounter slot exceeds u64::MAX"))?;
        self.state.insert(node.clone(), next);
        let delta = self.delta.get_or_insert_with(Default::default);
        delta.state.insert(node.clone(), next);
        Ok(())
    }

    /// The slot of one replica incarnation (0 when absent).
    pub fn slot(&self, node: &UniqueReplicaId) -> u64 {
        self.state.get(node).copied().unwrap_or(0)
    }

    /// The number of slots (replica incarnations that incremented).
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether no replica has incremented.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl PartialEq for GCounter {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl Eq for GCounter {}

impl TypeName for GCounter {
    fn type_name() -> String {
        "GCounter".into()
    }
}

impl ReplicatedData for GCounter {
    fn merge(&mut self, other: &Self) {
        for (node, &v) in &other.state {
            let slot = self.state.entry(node.clone()).or_insert(0);
            if v > *slot {
                *slot = v;
            }
        }
    }
}

impl DeltaReplicatedData for GCounter {
    type Delta = GCounter;

    fn delta(&self) -> Option<GCounter> {
        self.delta.as_deref().cloned()
    }

    fn reset_delta(&mut self) {
        self.delta = None;
    }

    fn merge_delta(&mut self, delta: &GCounter) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }
}

impl RemovedNodePruning for GCounter {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        self.state.keys().cloned().collect()
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.state.contains_key(removed)
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        if let Some(v) = self.state.remove(removed) {
            let slot = self.state.entry(collapse_into.clone()).or_insert(0);
            // Saturating: a slot near u64::MAX cannot take more; the sum stays exact below that.
            *slot = slot.saturating_add(v);
        }
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.state.remove(removed);
    }
}
