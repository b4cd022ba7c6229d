//! The CRDT traits: [`ReplicatedData`], [`DeltaReplicatedData`], [`RemovedNodePruning`] and
//! [`Crdt`], which bundles them (see the [module docs](super)).

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypeName;
use crate::replica::UniqueReplicaId;

/// A state-based CRDT: a join-semilattice whose `merge` is commutative, associative and
/// idempotent.
pub trait ReplicatedData:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + TypeName + Send + Sync + 'static
{
    /// Joins `other` into `self`.
    fn merge(&mut self, other: &Self);

    /// `self` joined with `other`, by value.
    fn merged(mut self, other: &Self) -> Self {
        self.merge(other);
        self
    }

    /// Drops from `self` everything `removed` had observed: the part of a value an
    /// [`ORMap`](super::ORMap) remove has taken away. `removed` is the join of the values the map's removes
    /// of one key observed (the key's *removed state*); `self` is a value of that key, which may
    /// include state older than the removes (a concurrent update carries what its writer had
    /// seen). The map shows `self` after this call.
    ///
    /// Implemented by the types that can forget part of their state: counters (reset-remove:
    /// each slot drops the amount `removed` had seen), `ORSet` and `MVRegister` (the dots
    /// `removed` had seen). The default keeps `self` unchanged: for grow-only values (`GSet`,
    /// `Flag`) and last-writer-wins registers, an update concurrent with a remove keeps its whole
    /// value, as in Akka.
    fn forget_observed(&mut self, removed: &Self) {
        let _ = removed;
    }

    /// Prepares a value that [`forget_observed`](Self::forget_observed) showed (and a local
    /// update then changed) to be stored again under the same removed state `removed`: the
    /// inverse of `forget_observed`, so that forgetting `removed` again gives `self` back, and no
    /// counter slot or dot that `removed` covers is used again. `node` is the writing replica,
    /// for the dots a re-tag needs. The default does nothing (see `forget_observed`).
    fn continue_after(&mut self, node: &UniqueReplicaId, removed: &Self) {
        let _ = (node, removed);
    }

    /// Whether [`forget_observed`](Self::forget_observed) can forget anything: an [`ORMap`](super::ORMap)
    /// keeps removed states only for such values. `false` by default.
    fn forgets_observed() -> bool {
        false
    }
}

/// Delta-state support: local updates also accumulate a small delta that, merged into another
/// replica's state, has the same effect as merging the full state.
pub trait DeltaReplicatedData: ReplicatedData {
    /// The delta type (often `Self`).
    type Delta: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The delta accumulated since the last [`reset_delta`](Self::reset_delta), or `None` when
    /// there is none or the type does not support deltas.
    fn delta(&self) -> Option<Self::Delta>;

    /// Forgets the accumulated delta (called by the replicator once it has been propagated).
    fn reset_delta(&mut self);

    /// Merges a delta produced by another replica.
    fn merge_delta(&mut self, delta: &Self::Delta);

    /// The empty value a delta is applied to when the receiving replica does not have the key
    /// yet, or `None` when the type has no such value (the replicator then waits for the full
    /// state).
    fn zero() -> Option<Self>;

    /// Whether deltas must be applied in the order they were produced by one replica (true for
    /// the dot-based types, as in Akka's `RequiresCausalDeliveryOfDeltas`).
    fn requires_causal_delivery() -> bool {
        false
    }
}

/// Removed-replica pruning, as Akka's `RemovedNodePruning`.
///
/// Pruning exists for the types whose state holds a slot per incarnation that must be
/// collapsed so that it does not grow, and whose stale copy would count twice after the
/// collapse (counters, version vectors). The dot-based types ([`ORSet`](super::ORSet), [`MVRegister`](super::MVRegister) and the
/// maps) collapse nothing: a removed incarnation makes no new dots, and a plain merge of states
/// that mention it is exact, whereas re-tagging its entries with new dots (as Akka's `ORSet`
/// does) undoes a remove or overwrite made concurrently by a replica that saw the old dot. They
/// report no need for pruning ([`needs_pruning_from`](Self::needs_pruning_from) is false,
/// [`modified_by_nodes`](Self::modified_by_nodes) empty), and their
/// [`prunes_by_collapsing`](Self::prunes_by_collapsing) is false.
pub trait RemovedNodePruning {
    /// Every replica incarnation that has an entry a [`prune`](Self::prune) would collapse.
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId>;

    /// Every replica incarnation whose updates the state holds, whether pruning would collapse
    /// them or not: dot-based values, which never need pruning (their
    /// [`modified_by_nodes`](Self::modified_by_nodes) is empty), report the incarnations of
    /// their dots here. The replicator uses it to tell whether replicas outside its member list
    /// took part in the data before it performs a pruning.
    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
        self.modified_by_nodes()
    }

    /// Whether `removed` still has entries that a [`prune`](Self::prune) would collapse.
    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool;

    /// Moves the entries of `removed` into `collapse_into` so that the observed value is
    /// unchanged and `removed` no longer appears. Pruning a replica into itself changes nothing.
    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId);

    /// Drops any entries of `removed` that arrived after pruning (from replicas that had not yet
    /// seen the pruning), without changing the observed value that pruning established.
    fn prune_cleanup(&mut self, removed: &UniqueReplicaId);

    /// Whether `removed` appears anywhere in this value (what
    /// [`prune_cleanup`](Self::prune_cleanup) would drop). The same as
    /// [`needs_pruning_from`](Self::needs_pruning_from) by default; the dot-based types also
    /// count the dots of `removed` in their entries and causal context, which earlier versions
    /// re-tagged or forgot when they pruned `removed` (so a "pruning performed" marker such a
    /// version left still drops them from a stale state, as it did then).
    fn mentions(&self, removed: &UniqueReplicaId) -> bool {
        self.needs_pruning_from(removed)
    }

    /// Whether pruning collapses anything in values of this type (true by default). The
    /// replicator runs the pruning protocol only for such values.
    fn prunes_by_collapsing(&self) -> bool {
        true
    }
}

/// Everything the replicator needs of a value: a CRDT with delta and pruning support.
pub trait Crdt: DeltaReplicatedData + RemovedNodePruning {}

impl<T: DeltaReplicatedData + RemovedNodePruning> Crdt for T {}
