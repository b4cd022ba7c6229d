//! The trait implementations that several CRDT types share, written once as macros: a map
//! that wraps an [`ORMap`](super::ORMap) delegates to it, and a dot-based type delegates to its
//! [`DotKernel`](super::DotKernel).

/// Implements [`ReplicatedData`](super::ReplicatedData),
/// [`DeltaReplicatedData`](super::DeltaReplicatedData) and
/// [`RemovedNodePruning`](super::RemovedNodePruning) for a map type whose only field `map` is an
/// [`ORMap`](super::ORMap) (`LWWMap`, `PNCounterMap`, `ORMultiMap`), by
/// delegating to it: the wrapper is its own delta, and pruning is `ORMap`'s.
macro_rules! delegate_crdt_to_ormap {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> $crate::crdt::ReplicatedData for $ty {
            fn merge(&mut self, other: &Self) {
                $crate::crdt::ReplicatedData::merge(&mut self.map, &other.map);
            }
        }

        impl<$($generics)*> $crate::crdt::DeltaReplicatedData for $ty {
            type Delta = Self;

            fn delta(&self) -> Option<Self> {
                $crate::crdt::DeltaReplicatedData::delta(&self.map).map(|map| Self { map })
            }

            fn reset_delta(&mut self) {
                $crate::crdt::DeltaReplicatedData::reset_delta(&mut self.map);
            }

            fn merge_delta(&mut self, delta: &Self) {
                $crate::crdt::DeltaReplicatedData::merge_delta(&mut self.map, &delta.map);
            }

            fn zero() -> Option<Self> {
                Some(Self::new())
            }

            fn requires_causal_delivery() -> bool {
                true
            }
        }

        impl<$($generics)*> $crate::crdt::RemovedNodePruning for $ty {
            fn modified_by_nodes(
                &self,
            ) -> ::std::collections::BTreeSet<$crate::replica::UniqueReplicaId> {
                $crate::crdt::RemovedNodePruning::modified_by_nodes(&self.map)
            }

            fn replicas_in_state(
                &self,
            ) -> ::std::collections::BTreeSet<$crate::replica::UniqueReplicaId> {
                $crate::crdt::RemovedNodePruning::replicas_in_state(&self.map)
            }

            fn needs_pruning_from(&self, removed: &$crate::replica::UniqueReplicaId) -> bool {
                $crate::crdt::RemovedNodePruning::needs_pruning_from(&self.map, removed)
            }

            fn prune(
                &mut self,
                removed: &$crate::replica::UniqueReplicaId,
                collapse_into: &$crate::replica::UniqueReplicaId,
            ) {
                $crate::crdt::RemovedNodePruning::prune(&mut self.map, removed, collapse_into);
            }

            fn prune_cleanup(&mut self, removed: &$crate::replica::UniqueReplicaId) {
                $crate::crdt::RemovedNodePruning::prune_cleanup(&mut self.map, removed);
            }

            fn mentions(&self, removed: &$crate::replica::UniqueReplicaId) -> bool {
                $crate::crdt::RemovedNodePruning::mentions(&self.map, removed)
            }

            fn prunes_by_collapsing(&self) -> bool {
                $crate::crdt::RemovedNodePruning::prunes_by_collapsing(&self.map)
            }
        }
    };
}

/// Implements [`ReplicatedData`](super::ReplicatedData),
/// [`DeltaReplicatedData`](super::DeltaReplicatedData) and
/// [`RemovedNodePruning`](super::RemovedNodePruning) for a dot-based type whose state is a
/// [`DotKernel`](super::DotKernel) in the field `kernel` and whose pending delta is a
/// [`PendingDelta`](super::PendingDelta) in the field `delta` (`ORSet`, `MVRegister`): merges are
/// the kernel's, a delta is the type itself (exact, causally delivered), removes forget the dots
/// they observed, and pruning collapses nothing (a removed incarnation makes no new dots; its
/// dots stay until a "pruning performed" marker of an earlier version drops them). Attributes
/// before the type (the docs of the pruning behaviour) go onto the `RemovedNodePruning` impl.
macro_rules! delegate_crdt_to_kernel {
    ($(#[$pruning_attr:meta])* [$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> $crate::crdt::ReplicatedData for $ty {
            fn merge(&mut self, other: &Self) {
                // A dot's entry never changes after its write: both sides hold the same one.
                self.kernel.merge(&other.kernel, |_, _| {});
            }

            fn forgets_observed() -> bool {
                true
            }

            fn forget_observed(&mut self, removed: &Self) {
                self.kernel.forget_covered(removed.kernel.context());
                self.delta.reset();
            }

            fn continue_after(
                &mut self,
                node: &$crate::replica::UniqueReplicaId,
                removed: &Self,
            ) {
                self.kernel.retag_covered(node, removed.kernel.context());
                self.delta.reset();
            }
        }

        impl<$($generics)*> $crate::crdt::DeltaReplicatedData for $ty {
            type Delta = Self;

            fn delta(&self) -> Option<Self> {
                self.delta.get().map(|kernel| Self {
                    kernel: kernel.clone(),
                    delta: $crate::crdt::PendingDelta::default(),
                })
            }

            fn reset_delta(&mut self) {
                self.delta.reset();
            }

            fn merge_delta(&mut self, delta: &Self) {
                $crate::crdt::ReplicatedData::merge(self, delta);
            }

            fn zero() -> Option<Self> {
                Some(Self::new())
            }

            fn requires_causal_delivery() -> bool {
                true
            }
        }

        $(#[$pruning_attr])*
        impl<$($generics)*> $crate::crdt::RemovedNodePruning for $ty {
            fn modified_by_nodes(
                &self,
            ) -> ::std::collections::BTreeSet<$crate::replica::UniqueReplicaId> {
                ::std::collections::BTreeSet::new()
            }

            fn replicas_in_state(
                &self,
            ) -> ::std::collections::BTreeSet<$crate::replica::UniqueReplicaId> {
                self.kernel.nodes()
            }

            fn needs_pruning_from(&self, _removed: &$crate::replica::UniqueReplicaId) -> bool {
                false
            }

            fn prune(
                &mut self,
                _removed: &$crate::replica::UniqueReplicaId,
                _collapse_into: &$crate::replica::UniqueReplicaId,
            ) {
            }

            fn prune_cleanup(&mut self, removed: &$crate::replica::UniqueReplicaId) {
                self.kernel.prune_cleanup(removed);
                if let Some(delta) = self.delta.get_mut() {
                    delta.prune_cleanup(removed);
                }
            }

            fn mentions(&self, removed: &$crate::replica::UniqueReplicaId) -> bool {
                self.kernel.mentions(removed)
            }

            fn prunes_by_collapsing(&self) -> bool {
                false
            }
        }
    };
}
