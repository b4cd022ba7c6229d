//! Increment/decrement counter.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    CrdtError, DeltaReplicatedData, GCounter, RemovedNodePruning, ReplicatedData, TypeName,
};
use crate::replica::UniqueReplicaId;

/// A counter that can go up and down: two [`GCounter`]s, one of increments and one of
/// decrements; the value is their difference, an `i128`.
///
/// Each replica incarnation can add up to `u64::MAX` in total to each side; an operation past that
/// is refused with [`CrdtError::Overflow`] and leaves the counter unchanged. Nothing overflows
/// silently.
///
/// ```
/// use dd_core::crdt::PNCounter;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = PNCounter::new();
/// x.increment(&a, 10).unwrap();
/// let mut y = PNCounter::new();
/// y.decrement(&b, 15).unwrap();
/// x.merge(&y);
/// assert_eq!(x.value(), -5);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PNCounter {
    /// An empty counter (value 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` (the increments of `node` total at most `u64::MAX`).
    pub fn increment(&mut self, node: &UniqueReplicaId, n: u64) -> Result<(), CrdtError> {
        self.increments.increment(node, n)
    }

    /// Subtracts `n` (the decrements of `node` total at most `u64::MAX`).
    pub fn decrement(&mut self, node: &UniqueReplicaId, n: u64) -> Result<(), CrdtError> {
        self.decrements.increment(node, n)
    }

    /// Adds `delta`, which may be negative.
    pub fn change(&mut self, node: &UniqueReplicaId, delta: i64) -> Result<(), CrdtError> {
        if delta >= 0 {
            self.increment(node, delta.unsigned_abs())
        } else {
            self.decrement(node, delta.unsigned_abs())
        }
    }

    /// The value: increments minus decrements.
    ///
    /// Exact for every state built by operations and pruning; saturates at the `i128` bounds
    /// for a corrupt state. See [`checked_value`](Self::checked_value).
    pub fn value(&self) -> i128 {
        match self.checked_value() {
            Ok(v) => v,
            Err(_) if self.increments.value() >= self.decrements.value() => i128::MAX,
            Err(_) => i128::MIN,
        }
    }

    /// The value, or [`CrdtError::Overflow`] when it does not fit an `i128`.
    pub fn checked_value(&self) -> Result<i128, CrdtError> {
        let overflow = || CrdtError::Overflow("PNCounter value outside the i128 range");
        let p = self.increments.checked_value()?;
        let n = self.decrements.checked_value()?;
        if p >= n {
            i128::try_from(p - n).map_err(|_| overflow())
        } else {
            i128::try_from(n - p).map(|v| -v).or_else(|_| {
                if n - p == i128::MIN.unsigned_abs() {
                    Ok(i128::MIN)
                } else {
                    Err(overflow())
                }
            })
        }
    }

    /// The increments, as a grow-only counter.
    pub fn increments(&self) -> &GCounter {
        &self.increments
    }

    /// The decrements, as a grow-only counter.
    pub fn decrements(&self) -> &GCounter {
        &self.decrements
    }
}

impl TypeName for PNCounter {
    fn type_name() -> String {
        "PNCounter".into()
    }
}

/// Inside an [`ORMap`](super::ORMap), a removed counter is reset (see [`GCounter`]'s
/// `forget_observed`): increments and decrements the removes had observed are forgotten, the
/// others count.
impl ReplicatedData for PNCounter {
    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    fn forgets_observed() -> bool {
        true
    }

    fn forget_observed(&mut self, removed: &Self) {
        self.increments.forget_observed(&removed.increments);
        self.decrements.forget_observed(&removed.decrements);
    }

    fn continue_after(&mut self, node: &UniqueReplicaId, removed: &Self) {
        self.increments.continue_after(node, &removed.increments);
        self.decrements.continue_after(node, &removed.decrements);
    }
}

impl DeltaReplicatedData for PNCounter {
    type Delta = PNCounter;

    fn delta(&self) -> Option<PNCounter> {
        let increments = self.increments.delta();
        let decrements = self.decrements.delta();
        if increments.is_none() && decrements.is_none() {
            return None;
        }
        Some(PNCounter {
            increments: increments.unwrap_or_default(),
            decrements: decrements.unwrap_or_default(),
        })
    }

    fn reset_delta(&mut self) {
        self.increments.reset_delta();
        self.decrements.reset_delta();
    }

    fn merge_delta(&mut self, delta: &PNCounter) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }
}

/// Pruning collapses the removed slots of both sides into `collapse_into`, as Akka does.
impl RemovedNodePruning for PNCounter {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes = self.increments.modified_by_nodes();
        nodes.extend(self.decrements.modified_by_nodes());
        nodes
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.increments.needs_pruning_from(removed) || self.decrements.needs_pruning_from(removed)
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        self.increments.prune(removed, collapse_into);
        self.decrements.prune(removed, collapse_into);
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.increments.prune_cleanup(removed);
        self.decrements.prune_cleanup(removed);
    }
}
