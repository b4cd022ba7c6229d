//! Observed-remove map of CRDT values.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{
    Crdt, DeltaReplicatedData, DotKernel, Element, LocalDelta, PendingDelta, RemovedNodePruning,
    ReplicatedData, TypeName,
};
use crate::replica::UniqueReplicaId;

/// A map from keys to CRDT values, whose keys behave like an [`ORSet`](super::ORSet) (Akka's
/// `ORMap`): a key added or updated concurrently with its removal stays (update wins), and
/// concurrent updates of one value merge.
///
/// Each write of a key (a [`put`](Self::put) or an [`update`](Self::update)) stores the new value
/// under a new dot of the writing replica, replacing the values seen; the observed value of a key
/// is the merge of the values of its live dots (one, except after concurrent writes). Tying values
/// to dots keeps the merge associative even when a removal and an update race: the removed
/// value's history is dropped with its dot, whatever the order in which replicas merge. After
/// such a race the surviving value is the updater's, which includes what it had seen before the
/// removal.
///
/// Deltas carry the written keys with their new values (not the value's own delta), so a delta is
/// as large as the changed entries; like Akka's, they are meant to be delivered in causal order.
///
/// ```
/// use dd_core::crdt::{ORMap, PNCounter};
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x: ORMap<String, PNCounter> = ORMap::new();
/// x.update(&a, "apples".into(), PNCounter::new(), |c| c.increment(&a, 3)).unwrap();
/// let mut y = x.clone();
/// y.update(&b, "apples".into(), PNCounter::new(), |c| c.decrement(&b, 1)).unwrap();
/// x.update(&a, "apples".into(), PNCounter::new(), |c| c.increment(&a, 2)).unwrap();
/// x.merge(&y);
/// assert_eq!(x.get(&"apples".to_string()).unwrap().value(), 4);
/// x.remove(&a, &"apples".to_string());
/// assert!(x.is_empty());
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"
))]
pub struct ORMap<K: Ord, V> {
    kernel: DotKernel<K, V>,
    #[serde(skip)]
    delta: PendingDelta<K, V>,
}

impl<K: Ord, V> Default for ORMap<K, V> {
    fn default() -> Self {
        Self {
            kernel: DotKernel::default(),
            delta: PendingDelta::default(),
        }
    }
}

fn join_values<V: Crdt>(values: &BTreeMap<super::Dot, V>) -> Option<V> {
    let mut iter = values.values();
    let mut joined = iter.next()?.clone();
    for v in iter {
        joined.merge(v);
    }
    joined.reset_delta();
    Some(joined)
}

impl<K: Element, V: Crdt> ORMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Option<V> {
        self.kernel.get(key).and_then(join_values)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.kernel.get(key).is_some()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.kernel.entries().keys()
    }

    /// The entries `(key, value)`, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, V)> {
        self.kernel
            .entries()
            .iter()
            .filter_map(|(k, dots)| join_values(dots).map(|v| (k, v)))
    }

    /// The entries, as a map.
    pub fn entries(&self) -> BTreeMap<K, V> {
        self.iter().map(|(k, v)| (k.clone(), v)).collect()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.kernel.entries().len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.kernel.entries().is_empty()
    }

    /// Sets `key` to `value`, replacing the value seen here. A concurrent update elsewhere is
    /// merged with it, so prefer [`update`](Self::update) to modify a value.
    pub fn put(&mut self, node: &UniqueReplicaId, key: K, value: V) {
        let mut value = value;
        value.reset_delta();
        let delta = self.kernel.write(node, key, value);
        self.record(delta);
    }

    /// Modifies the value of `key` (starting from `initial` when absent) with `modify`, and
    /// returns what `modify` returns.
    pub fn update<R>(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        initial: V,
        modify: impl FnOnce(&mut V) -> R,
    ) -> R {
        let mut value = self.get(&key).unwrap_or(initial);
        let result = modify(&mut value);
        self.put(node, key, value);
        result
    }

    /// Like [`update`](Self::update), but the map changes only when `modify` returns `Ok`.
    pub fn try_update<R, E>(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        initial: V,
        modify: impl FnOnce(&mut V) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut value = self.get(&key).unwrap_or(initial);
        let result = modify(&mut value)?;
        self.put(node, key, value);
        Ok(result)
    }

    /// Removes `key` as seen here; a concurrent update elsewhere wins. Removing an absent key
    /// does nothing. `node` is the removing replica (a remove creates no dot).
    pub fn remove(&mut self, node: &UniqueReplicaId, key: &K) {
        let _ = node;
        if let Some(delta) = self.kernel.remove(key) {
            self.record(delta);
        }
    }

    /// Removes every key seen here.
    pub fn clear(&mut self, node: &UniqueReplicaId) {
        let _ = node;
        if let Some(delta) = self.kernel.clear() {
            self.record(delta);
        }
    }

    fn record(&mut self, delta: LocalDelta<K, V>) {
        self.delta.record(delta, |a, b| a.merge(b));
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl<K: Ord, V: PartialEq> PartialEq for ORMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
    }
}

impl<K: TypeName + Ord, V: TypeName> TypeName for ORMap<K, V> {
    fn type_name() -> String {
        format!("ORMap<{}, {}>", K::type_name(), V::type_name())
    }
}

impl<K: Element, V: Crdt> ReplicatedData for ORMap<K, V> {
    fn merge(&mut self, other: &Self) {
        self.kernel.merge(&other.kernel, |a, b| a.merge(b));
    }
}

impl<K: Element, V: Crdt> DeltaReplicatedData for ORMap<K, V> {
    type Delta = ORMap<K, V>;

    fn delta(&self) -> Option<ORMap<K, V>> {
        self.delta.get().map(|kernel| ORMap {
            kernel: kernel.clone(),
            delta: PendingDelta::default(),
        })
    }

    fn reset_delta(&mut self) {
        self.delta.reset();
    }

    fn merge_delta(&mut self, delta: &ORMap<K, V>) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }

    fn requires_causal_delivery() -> bool {
        true
    }
}

/// Every key with a dot of the removed incarnation, or whose value has entries of it, is
/// rewritten by `collapse_into` with its observed value, itself pruned; the removed incarnation
/// then leaves the causal context. Pruning discards the pending delta.
impl<K: Element, V: Crdt> RemovedNodePruning for ORMap<K, V> {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes = self.kernel.nodes();
        for dots in self.kernel.entries().values() {
            for v in dots.values() {
                nodes.extend(v.modified_by_nodes());
            }
        }
        nodes
    }

    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.kernel.mentions(removed)
            || self
                .kernel
                .entries()
                .values()
                .flat_map(BTreeMap::values)
                .any(|v| v.needs_pruning_from(removed))
    }

    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        if !self.needs_pruning_from(removed) {
            return;
        }
        let to_rewrite: Vec<(K, V)> = self
            .kernel
            .entries()
            .iter()
            .filter(|(_, dots)| {
                dots.iter()
                    .any(|(d, v)| d.node() == removed || v.needs_pruning_from(removed))
            })
            .filter_map(|(k, dots)| join_values(dots).map(|v| (k.clone(), v)))
            .collect();
        for (key, mut value) in to_rewrite {
            value.prune(removed, collapse_into);
            value.reset_delta();
            let _rewrite_delta = self.kernel.write(collapse_into, key, value);
        }
        // No live dot of `removed` is left; this drops it from the causal context.
        self.kernel.prune(removed, collapse_into);
        self.delta.reset();
    }

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.kernel.prune_cleanup(removed);
        for v in self.kernel.values_mut() {
            v.prune_cleanup(removed);
        }
        if let Some(delta) = self.delta.get_mut() {
            delta.prune_cleanup(removed);
            for v in delta.values_mut() {
                v.prune_cleanup(removed);
            }
        }
    }
}
