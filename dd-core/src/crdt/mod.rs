//! State-based CRDTs.
//!
//! Every type implements the three traits of this module, in the spirit of Akka Distributed Data:
//!
//! - [`ReplicatedData`]: the join (`merge`) of two states; commutative, associative, idempotent;
//! - [`DeltaReplicatedData`]: the delta accumulated by local updates since the last
//!   [`reset_delta`](DeltaReplicatedData::reset_delta), so that gossip can send small deltas
//!   instead of full states (types without delta support return `None` from
//!   [`delta`](DeltaReplicatedData::delta));
//! - [`RemovedNodePruning`]: collapsing the entries of a replica incarnation that left the
//!   cluster into a live one, so that state does not grow forever.
//!
//! [`Crdt`] bundles the three; the replicator stores any `Crdt`.
//!
//! Per-replica entries are keyed by [`UniqueReplicaId`] (stable name + incarnation).

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::replica::UniqueReplicaId;

mod gcounter;
mod type_name;

pub use gcounter::GCounter;
pub use type_name::TypeName;

/// Errors of CRDT operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrdtError {
    /// An arithmetic operation would leave the type's range; the value is left unchanged.
    #[error("counter overflow: {0}")]
    Overflow(&'static str),
}

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
pub trait RemovedNodePruning {
    /// Every replica incarnation that has an entry in this value.
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId>;

    /// Whether `removed` still has entries in this value.
    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool;

    /// Moves the entries of `removed` into `collapse_into` so that the observed value is
    /// unchanged and `removed` no longer appears.
    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId);

    /// Drops any entries of `removed` that arrived after pruning (from replicas that had not yet
    /// seen the pruning), without changing the observed value that pruning established.
    fn prune_cleanup(&mut self, removed: &UniqueReplicaId);
}

/// Everything the replicator needs of a value: a CRDT with delta and pruning support.
pub trait Crdt: DeltaReplicatedData + RemovedNodePruning {}

impl<T: DeltaReplicatedData + RemovedNodePruning> Crdt for T {}

/// Registers every built-in CRDT type, over the common element types (`String`, `u64`, `i64`,
/// `Vec<u8>`, ...), in `registry`. Called by
/// [`TypeRegistry::with_builtin_types`](crate::data::TypeRegistry::with_builtin_types).
pub fn register_builtin_types(registry: &crate::data::TypeRegistry) {
    registry.register::<GCounter>();
}
