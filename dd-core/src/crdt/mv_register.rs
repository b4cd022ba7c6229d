//! Multi-value register.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    DeltaReplicatedData, DotKernel, Element, LocalDelta, PendingDelta, RemovedNodePruning,
    ReplicatedData, TypeName,
};
use crate::replica::UniqueReplicaId;

/// A register that keeps every concurrently written value (rust-crdt's `MVReg`): a write
/// replaces the values its replica has seen; writes that did not see each other all survive
/// until a later write, which has seen them, replaces them.
///
/// ```
/// use dd_core::crdt::MVRegister;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = MVRegister::new();
/// let mut y = MVRegister::new();
/// x.set(&a, "blue".to_string());
/// y.set(&b, "red".to_string());
/// x.merge(&y); // concurrent writes: both kept
/// assert_eq!(x.values().len(), 2);
/// x.set(&a, "green".to_string()); // has seen both: replaces them
/// y.merge(&x);
/// assert_eq!(y.values().into_iter().collect::<Vec<_>>(), ["green"]);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct MVRegister<T> {
    kernel: DotKernel<(), T>,
    #[serde(skip)]
    delta: PendingDelta<(), T>,
}

impl<T> Default for MVRegister<T> {
    fn default() -> Self {
        Self {
            kernel: DotKernel::default(),
            delta: PendingDelta::default(),
        }
    }
}

impl<T: Element> MVRegister<T> {
    /// An empty register (no value).
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value`, replacing every value seen here.
    pub fn set(&mut self, node: &UniqueReplicaId, value: T) {
        let delta = self.kernel.write(node, (), value);
        self.record(delta);
    }

    /// Removes every value seen here (concurrent writes elsewhere survive).
    pub fn clear(&mut self, node: &UniqueReplicaId) {
        let _ = node;
        if let Some(delta) = self.kernel.clear() {
            self.record(delta);
        }
    }

    /// The current values (several after concurrent writes), without duplicates.
    pub fn values(&self) -> BTreeSet<T> {
        self.iter().cloned().collect()
    }

    /// The current values in the order of their dots (a value written concurrently by two
    /// replicas appears twice).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.kernel
            .entries()
            .values()
            .flat_map(|dots| dots.values())
    }

    /// Whether the register holds no value.
    pub fn is_empty(&self) -> bool {
        self.kernel.entries().is_empty()
    }

    fn record(&mut self, delta: LocalDelta<(), T>) {
        self.delta.record(delta, |_, _| {});
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl<T: PartialEq> PartialEq for MVRegister<T> {
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
    }
}

impl<T: TypeName> TypeName for MVRegister<T> {
    fn type_name() -> String {
        format!("MVRegister<{}>", T::type_name())
    }
}

impl<T: Element> ReplicatedData for MVRegister<T> {
    fn merge(&mut self, other: &Self) {
        // A dot's value never changes after its write: both sides hold the same one.
        self.kernel.merge(&other.kernel, |_, _| {});
    }

    fn forgets_observed() -> bool {
        true
    }

    fn forget_observed(&mut self, removed: &Self) {
        self.kernel.forget_covered(removed.kernel.context());
        self.delta.reset();
    }

    fn continue_after(&mut self, node: &UniqueReplicaId, removed: &Self) {
        self.kernel.retag_covered(node, removed.kernel.context());
        self.delta.reset();
    }
}

impl<T: Element> DeltaReplicatedData for MVRegister<T> {
    type Delta = MVRegister<T>;

    fn delta(&self) -> Option<MVRegister<T>> {
        self.delta.get().map(|kernel| MVRegister {
            kernel: kernel.clone(),
            delta: PendingDelta::default(),
        })
    }

    fn reset_delta(&mut self) {
        self.delta.reset();
    }

    fn merge_delta(&mut self, delta: &MVRegister<T>) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }

    fn requires_causal_delivery() -> bool {
        true
    }
}

/// Nothing to collapse, as for [`ORSet`](super::ORSet): the values a removed incarnation wrote
/// keep their dots, so a write made concurrently with the pruning (which saw the old dot)
/// replaces them. [`prune_cleanup`](RemovedNodePruning::prune_cleanup) drops every dot of
/// `removed` (for "pruning performed" markers of earlier versions, which re-tagged the values).
impl<T: Element> RemovedNodePruning for MVRegister<T> {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }

    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
        self.kernel.nodes()
    }

    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }

    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.kernel.prune_cleanup(removed);
        if let Some(delta) = self.delta.get_mut() {
            delta.prune_cleanup(removed);
        }
    }

    fn mentions(&self, removed: &UniqueReplicaId) -> bool {
        self.kernel.mentions(removed)
    }

    fn prunes_by_collapsing(&self) -> bool {
        false
    }
}
