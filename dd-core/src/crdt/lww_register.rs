//! Last-writer-wins register.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Clock, DeltaReplicatedData, Element, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A register holding one value; when replicas merge, the value with the greater timestamp
/// wins, and on equal timestamps the one written by the greater replica id (and then the greater
/// value), so that every replica picks the same winner (Akka's `LWWRegister`).
///
/// Timestamps come from a [`Clock`]: [`WallClock`](super::WallClock) (last writer wins),
/// [`ReverseClock`](super::ReverseClock) (first writer wins) or any `Fn(i64, &T) -> i64`.
///
/// A register has no empty value ([`zero`](DeltaReplicatedData::zero) is `None`) and no delta.
///
/// ```
/// use dd_core::crdt::{LWWRegister, WallClock};
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let clock = |current: i64, _: &String| current + 1; // a logical clock
/// let mut x = LWWRegister::new(&a, "first".to_string(), &clock);
/// let mut y = x.clone();
/// y.set(&b, "second".to_string(), &clock);
/// x.merge(&y);
/// assert_eq!(x.value(), "second");
/// x.set(&a, "third".to_string(), &WallClock);
/// assert_eq!(x.value(), "third");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LWWRegister<T> {
    value: T,
    timestamp: i64,
    updated_by: UniqueReplicaId,
}

impl<T: Element> LWWRegister<T> {
    /// A register holding `value`, written by `node` at the time `clock` gives for a current
    /// timestamp of 0.
    pub fn new(node: &UniqueReplicaId, value: T, clock: &impl Clock<T>) -> Self {
        let timestamp = clock.timestamp(0, &value);
        Self::with_timestamp(node, value, timestamp)
    }

    /// A register holding `value`, written by `node` at `timestamp`.
    pub fn with_timestamp(node: &UniqueReplicaId, value: T, timestamp: i64) -> Self {
        Self {
            value,
            timestamp,
            updated_by: node.clone(),
        }
    }

    /// Replaces the value (on this replica, whatever the timestamp) with `value`, written by
    /// `node` at the time `clock` gives.
    pub fn set(&mut self, node: &UniqueReplicaId, value: T, clock: &impl Clock<T>) {
        self.timestamp = clock.timestamp(self.timestamp, &value);
        self.value = value;
        self.updated_by = node.clone();
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The value, by value.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The timestamp of the current value.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The replica incarnation that wrote the current value.
    pub fn updated_by(&self) -> &UniqueReplicaId {
        &self.updated_by
    }

    /// The order merge uses: timestamp, then writer, then value.
    fn precedence(&self, other: &Self) -> Ordering {
        self.timestamp
            .cmp(&other.timestamp)
            .then_with(|| self.updated_by.cmp(&other.updated_by))
            .then_with(|| self.value.cmp(&other.value))
    }
}

impl<T: TypeName> TypeName for LWWRegister<T> {
    fn type_name() -> String {
        format!("LWWRegister<{}>", T::type_name())
    }
}

impl<T: Element> ReplicatedData for LWWRegister<T> {
    fn merge(&mut self, other: &Self) {
        if other.precedence(self) == Ordering::Greater {
            *self = other.clone();
        }
    }
}

/// No delta (the state is one value) and no empty value.
impl<T: Element> DeltaReplicatedData for LWWRegister<T> {
    type Delta = LWWRegister<T>;

    fn delta(&self) -> Option<LWWRegister<T>> {
        None
    }

    fn reset_delta(&mut self) {}

    fn merge_delta(&mut self, delta: &LWWRegister<T>) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        None
    }
}

/// The writer's id is only a tie-breaker, not a per-replica entry that grows with the cluster,
/// so there is nothing to prune (as in Akka, where `LWWRegister` is not `RemovedNodePruning`).
impl<T: Element> RemovedNodePruning for LWWRegister<T> {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }

    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }

    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}

    fn prune_cleanup(&mut self, _removed: &UniqueReplicaId) {}
}
