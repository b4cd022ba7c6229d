//! The delta a dot-based CRDT accumulates from its local mutations between two resets.

use super::{DotKernel, LocalDelta};

/// The pending delta of a [`DotKernel`]-based CRDT (`ORSet`, `MVRegister`, `ORMap`): the join of
/// the deltas of every local mutation since the last [`reset`](Self::reset), kept incrementally
/// (a write or removal of one key costs O(log n), not a rebuild of the delta).
///
/// Record only the [`LocalDelta`]s of the kernel this pending delta belongs to (see
/// [`DotKernel::absorb`] for why that makes the incremental join exact); discard or clean it up
/// whenever the kernel is pruned.
#[derive(Debug, Clone)]
pub(crate) struct PendingDelta<K: Ord, V>(Option<Box<DotKernel<K, V>>>);

impl<K: Ord, V> Default for PendingDelta<K, V> {
    fn default() -> Self {
        Self(None)
    }
}

impl<K: Ord + Clone, V: Clone> PendingDelta<K, V> {
    /// Joins the delta of a local mutation; `join_value` joins two values under one dot.
    pub(crate) fn accumulate(&mut self, local: LocalDelta<K, V>, join_value: impl Fn(&mut V, &V)) {
        match self.0.as_deref_mut() {
            Some(pending) => pending.absorb(local, join_value),
            None => self.0 = Some(Box::new(local.into_kernel())),
        }
    }

    /// The accumulated delta, if any mutation happened since the last reset.
    pub(crate) fn get(&self) -> Option<&DotKernel<K, V>> {
        self.0.as_deref()
    }

    /// Mutable access to the accumulated delta (for pruning cleanup).
    pub(crate) fn get_mut(&mut self) -> Option<&mut DotKernel<K, V>> {
        self.0.as_deref_mut()
    }

    /// Forgets the accumulated delta.
    pub(crate) fn reset(&mut self) {
        self.0 = None;
    }
}
