//! Multi-value register.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DotKernel, Element, LocalDelta, PendingDelta, TypeName};
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
        self.accumulate(delta);
    }

    /// Removes every value seen here (concurrent writes elsewhere survive).
    pub fn clear(&mut self, node: &UniqueReplicaId) {
        let _ = node;
        if let Some(delta) = self.kernel.clear() {
            self.accumulate(delta);
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

    fn accumulate(&mut self, delta: LocalDelta<(), T>) {
        self.delta.accumulate(delta, |_, _| {});
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

delegate_crdt_to_kernel!(
    /// Nothing to collapse, as for [`ORSet`](super::ORSet): the values a removed incarnation wrote
    /// keep their dots, so a write made concurrently with the pruning (which saw the old dot)
    /// replaces them. [`prune_cleanup`](super::RemovedNodePruning::prune_cleanup) drops every dot of
    /// `removed` (for "pruning performed" markers of earlier versions, which re-tagged the values).
    [T: Element] MVRegister<T>
);
