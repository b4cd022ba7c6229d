//! Grow-only counter.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::slot_map::SlotMap;
use super::{CrdtError, DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A grow-only counter: one monotonic slot per replica incarnation; the value is their sum.
///
/// Each incarnation adds to its own slot, up to `u64::MAX` in total; an increment past that is
/// refused with [`CrdtError::Overflow`] and leaves the counter unchanged. Slots are stored as
/// `u128` so that pruning, which adds a removed incarnation's slot to a live one, is exact, and
/// the value is a `u128`, which sums of `u64` slots cannot overflow.
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
/// assert!(x.increment(&a, u64::MAX).is_err()); // a's slot would pass u64::MAX
/// assert_eq!(x.value(), 5);
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GCounter {
    state: SlotMap<UniqueReplicaId, u128>,
    #[serde(skip)]
    delta: Option<Box<GCounter>>,
}

/// Sets the slot of `node` to `value`, cloning the node id only for a new slot.
fn set_slot(state: &mut SlotMap<UniqueReplicaId, u128>, node: &UniqueReplicaId, value: u128) {
    *state.get_or_insert_with(node, || 0) = value;
}

impl GCounter {
    /// An empty counter (value 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter's value: the sum of all slots.
    ///
    /// Exact for every state built by increments and pruning; saturates at `u128::MAX` for a
    /// (corrupt or hostile) state whose slots sum past it. See [`checked_value`](Self::checked_value).
    pub fn value(&self) -> u128 {
        self.checked_value().unwrap_or(u128::MAX)
    }

    /// The counter's value, or [`CrdtError::Overflow`] when the slots sum past `u128::MAX`.
    pub fn checked_value(&self) -> Result<u128, CrdtError> {
        self.state
            .values()
            .try_fold(0u128, |acc, v| acc.checked_add(*v))
            .ok_or(CrdtError::Overflow("GCounter value exceeds u128::MAX"))
    }

    /// Adds `n` to the slot of `node`; refused with [`CrdtError::Overflow`] (and no change) when
    /// the slot would pass `u64::MAX`.
    pub fn increment(&mut self, node: &UniqueReplicaId, n: u64) -> Result<(), CrdtError> {
        if n == 0 {
            return Ok(());
        }
        let slot = self.state.get_mut(node);
        let next = slot
            .as_deref()
            .copied()
            .unwrap_or(0)
            .checked_add(u128::from(n))
            .filter(|v| *v <= u128::from(u64::MAX))
            .ok_or(CrdtError::Overflow("GCounter slot exceeds u64::MAX"))?;
        match slot {
            Some(slot) => *slot = next,
            None => {
                self.state.insert(node.clone(), next);
            }
        }
        let delta = self.delta.get_or_insert_with(Default::default);
        set_slot(&mut delta.state, node, next);
        Ok(())
    }

    /// The slot of one replica incarnation (0 when absent).
    pub fn slot(&self, node: &UniqueReplicaId) -> u128 {
        self.state.get(node).copied().unwrap_or(0)
    }

    /// The slots `(node, slot)`, in node order.
    pub fn slots(&self) -> impl Iterator<Item = (&UniqueReplicaId, u128)> {
        self.state.iter().map(|(n, v)| (n, *v))
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

/// Inside an [`ORMap`](super::ORMap), a removed counter is reset: each slot of a value shows
/// only what it holds beyond the slot the removes had observed, and a value written after a
/// remove continues its slots from there (so no increment is counted twice, and none is lost).
impl ReplicatedData for GCounter {
    fn merge(&mut self, other: &Self) {
        for (node, &v) in other.state.iter() {
            let slot = self.state.get_or_insert_with(node, || 0);
            if v > *slot {
                *slot = v;
            }
        }
    }

    fn forgets_observed() -> bool {
        true
    }

    fn forget_observed(&mut self, removed: &Self) {
        for (node, &seen) in removed.state.iter() {
            if let Some(slot) = self.state.get_mut(node) {
                *slot = slot.saturating_sub(seen);
                if *slot == 0 {
                    self.state.remove(node);
                }
            }
        }
        self.delta = None;
    }

    fn continue_after(&mut self, _node: &UniqueReplicaId, removed: &Self) {
        for (node, &seen) in removed.state.iter() {
            let slot = self.state.get_or_insert_with(node, || 0);
            *slot = slot.saturating_add(seen);
        }
        self.delta = None;
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

/// As Akka's `GCounter`: pruning adds the removed slot to the slot of `collapse_into`. Pruning
/// discards the pending delta (the pruned state spreads as a full state).
impl RemovedNodePruning for GCounter {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        self.state.keys().cloned().collect()
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.state.contains_key(removed)
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        if let Some(v) = self.state.remove(removed) {
            let slot = self.state.get_or_insert_with(collapse_into, || 0);
            // Exact for every state built by increments (slots of at most u64::MAX); saturates
            // only for a corrupt state, with a warning.
            *slot = slot.checked_add(v).unwrap_or_else(|| {
                tracing::warn!(%removed, %collapse_into, "GCounter pruning saturated a slot");
                u128::MAX
            });
            self.delta = None;
        }
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.state.remove(removed);
        if let Some(delta) = self.delta.as_mut() {
            delta.state.remove(removed);
        }
    }
}
