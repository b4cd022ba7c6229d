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
//!
//! | type | what it is | delta | `zero()` |
//! | --- | --- | --- | --- |
//! | [`GCounter`] | grow-only counter, value `u128` | yes | empty |
//! | [`PNCounter`] | up/down counter, value `i128`, overflow refused | yes | empty |
//! | [`GSet<T>`](GSet) | grow-only set | yes | empty |
//! | [`ORSet<T>`](ORSet) | add-wins observed-remove set | yes (causal) | empty |
//! | [`Flag`] | boolean that can only be switched on | no | off |
//! | [`LWWRegister<T>`](LWWRegister) | last-writer-wins register with a pluggable [`Clock`] | no | none |
//! | [`MVRegister<T>`](MVRegister) | multi-value register (keeps concurrent writes) | yes (causal) | empty |
//! | [`ORMap<K, V>`](ORMap) | observed-remove map of any CRDT `V` (update wins; a remove forgets what it saw) | yes (causal) | empty |
//! | [`LWWMap<K, V>`](LWWMap) | `ORMap<K, LWWRegister<V>>` with a plain-value API | yes (causal) | empty |
//! | [`PNCounterMap<K>`](PNCounterMap) | `ORMap<K, PNCounter>` with a number API | yes (causal) | empty |
//! | [`ORMultiMap<K, V>`](ORMultiMap) | `ORMap<K, ORSet<V>>` with a binding API | yes (causal) | empty |
//! | [`VersionVector`] | version vector (partial order) | no | empty |
//!
//! Elements, keys and register values are any [`Element`] (ordered, serde, [`TypeName`]).
//! Equality (`PartialEq`) compares the replicated state only, never the pending delta.
//!
//! The dot-based types (`ORSet`, `MVRegister` and the maps) keep a causal context that records
//! exactly the dots seen, so a delta merged into any replica has the same effect as the full
//! state it came from; causal delivery (which they request, as in Akka) keeps those contexts
//! compact, but out-of-order deltas still converge.
//!
//! The maps forget, on a remove, exactly what the remover had seen of the key's value, and
//! never reuse a dot or counter slot after it (reset-remove for counters; see [`ORMap`]). A
//! reference model in `dd-core/tests/crdt_map_model.rs` specifies this for every map type, and
//! its property tests compare each replica with it over random interleavings of updates, puts,
//! removes, re-adds and merges (full states and deltas) on 3 replicas: `cargo test -p dd-core
//! --test crdt_map_model` runs 64 cases per map type, `DD_MODEL_CASES=100000` as many as asked.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::replica::UniqueReplicaId;

/// Implements [`ReplicatedData`], [`DeltaReplicatedData`] and [`RemovedNodePruning`] for a map
/// type whose only field `map` is an [`ORMap`] (`LWWMap`, `PNCounterMap`, `ORMultiMap`), by
/// delegating to it: the wrapper is its own delta, and pruning is [`ORMap`]'s.
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

mod causal_context;
mod clock;
mod dot;
mod dot_kernel;
mod element;
mod flag;
mod gcounter;
mod gset;
mod lww_map;
mod lww_register;
mod mv_register;
mod ormap;
mod ormultimap;
mod orset;
mod pending_delta;
mod pncounter;
mod pncounter_map;
mod type_name;
mod version_vector;

pub(crate) use causal_context::CausalContext;
pub(crate) use dot_kernel::{DotKernel, LocalDelta};
pub(crate) use pending_delta::PendingDelta;

pub use clock::{Clock, ReverseClock, WallClock};
pub use dot::Dot;
pub use element::Element;
pub use flag::Flag;
pub use gcounter::GCounter;
pub use gset::GSet;
pub use lww_map::LWWMap;
pub use lww_register::LWWRegister;
pub use mv_register::MVRegister;
pub use ormap::ORMap;
pub use ormultimap::ORMultiMap;
pub use orset::ORSet;
pub use pncounter::PNCounter;
pub use pncounter_map::PNCounterMap;
pub use type_name::TypeName;
pub use version_vector::VersionVector;

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

    /// Drops from `self` everything `removed` had observed: the part of a value an
    /// [`ORMap`] remove has taken away. `removed` is the join of the values the map's removes
    /// of one key observed (the key's *removal record*); `self` is a value of that key, which may
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
    /// update then changed) to be stored again under the same removal record `removed`: the
    /// inverse of `forget_observed`, so that forgetting `removed` again gives `self` back, and no
    /// counter slot or dot that `removed` covers is used again. `node` is the writing replica,
    /// for the dots a re-tag needs. The default does nothing (see `forget_observed`).
    fn continue_after(&mut self, node: &UniqueReplicaId, removed: &Self) {
        let _ = (node, removed);
    }

    /// Whether [`forget_observed`](Self::forget_observed) can forget anything: an [`ORMap`]
    /// keeps removal records only for such values. `false` by default.
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
/// collapse (counters, version vectors). The dot-based types ([`ORSet`], [`MVRegister`] and the
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
