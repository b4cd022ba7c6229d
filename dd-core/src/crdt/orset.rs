//! Observed-remove set (add wins).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DotKernel, Element, LocalDelta, PendingDelta, TypeName};
use crate::replica::UniqueReplicaId;

/// An observed-remove set with add-wins semantics (Akka's `ORSet`, rust-crdt's `Orswot`).
///
/// Every add tags the element with a new dot of the adding replica; a remove removes the dots
/// the removing replica has seen. An add concurrent with a remove therefore survives it (add
/// wins), and an element removed after being seen stays removed. There are no tombstones: a
/// causal context (a version vector) records which dots were seen.
///
/// Deltas are exact (they carry the dots they witness), so applying every delta equals merging
/// full states; like Akka's, they are meant to be delivered in causal order.
///
/// ```
/// use dd_core::crdt::ORSet;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = ORSet::new();
/// x.add(&a, "milk".to_string());
/// let mut y = x.clone();
/// y.remove(&b, &"milk".to_string()); // b removes the milk it has seen ...
/// x.add(&a, "milk".to_string()); // ... while a adds it again, concurrently
/// x.merge(&y);
/// assert!(x.contains(&"milk".to_string())); // add wins
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct ORSet<T: Ord> {
    kernel: DotKernel<T, ()>,
    #[serde(skip)]
    delta: PendingDelta<T, ()>,
}

impl<T: Ord> Default for ORSet<T> {
    fn default() -> Self {
        Self {
            kernel: DotKernel::default(),
            delta: PendingDelta::default(),
        }
    }
}

impl<T: Element> ORSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element` (again, if present: the new dot supersedes the ones seen).
    pub fn add(&mut self, node: &UniqueReplicaId, element: T) {
        let delta = self.kernel.write(node, element, ());
        self.accumulate(delta);
    }

    /// Removes `element` as seen here; a concurrent add elsewhere wins. Removing an absent
    /// element does nothing.
    ///
    /// `node` is the removing replica (taken for symmetry with [`add`](Self::add); a remove
    /// creates no dot).
    pub fn remove(&mut self, node: &UniqueReplicaId, element: &T) {
        let _ = node;
        if let Some(delta) = self.kernel.remove(element) {
            self.accumulate(delta);
        }
    }

    /// Removes every element seen here.
    pub fn clear(&mut self, node: &UniqueReplicaId) {
        let _ = node;
        if let Some(delta) = self.kernel.clear() {
            self.accumulate(delta);
        }
    }

    /// Whether `element` is in the set.
    pub fn contains(&self, element: &T) -> bool {
        self.kernel.get(element).is_some()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.kernel.entries().keys()
    }

    /// The elements, as a set.
    pub fn elements(&self) -> BTreeSet<T> {
        self.iter().cloned().collect()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.kernel.entries().len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.kernel.entries().is_empty()
    }

    fn accumulate(&mut self, delta: LocalDelta<T, ()>) {
        self.delta.accumulate(delta, |_, _| {});
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl<T: Ord> PartialEq for ORSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
    }
}

impl<T: TypeName + Ord> TypeName for ORSet<T> {
    fn type_name() -> String {
        format!("ORSet<{}>", T::type_name())
    }
}

delegate_crdt_to_kernel!(
    /// Nothing to collapse (unlike Akka's `ORSet`, which re-tags a removed incarnation's elements
    /// with new dots of the collapsing replica): a removed incarnation adds no new dots, so merging
    /// states that still hold its dots is exact, and keeping them is what lets a remove made
    /// concurrently with the pruning (which saw the old dot) take effect. The cost is one causal
    /// context entry per incarnation that ever added an element, kept for good.
    ///
    /// [`prune_cleanup`](super::RemovedNodePruning::prune_cleanup) drops every dot of `removed`, entries and
    /// context: the replicator applies it only where a "pruning performed" marker of an earlier
    /// version (which re-tagged the elements and forgot the incarnation) meets a stale state.
    [T: Element] ORSet<T>
);
