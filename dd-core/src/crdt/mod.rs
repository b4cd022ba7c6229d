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
//! Per-replica entries are keyed by [`UniqueReplicaId`](crate::UniqueReplicaId) (stable name +
//! incarnation).
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

#[macro_use]
mod delegate;

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
mod slot_map;
mod traits;
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
pub use traits::{Crdt, DeltaReplicatedData, RemovedNodePruning, ReplicatedData};
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
