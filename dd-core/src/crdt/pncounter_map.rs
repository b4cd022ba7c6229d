//! Map of counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CrdtError, Element, ORMap, PNCounter, TypeName};
use crate::replica::UniqueReplicaId;

/// A map of named counters (Akka's `PNCounterMap`): an [`ORMap`]`<K, `[`PNCounter`]`>` with a
/// plain-number API. A removed counter is reset: only changes the remove had not seen count (see
/// [`ORMap`]'s remove semantics).
///
/// ```
/// use dd_core::crdt::PNCounterMap;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = PNCounterMap::new();
/// x.increment(&a, "hits".to_string(), 5).unwrap();
/// let mut y = x.clone();
/// y.decrement(&b, "hits".to_string(), 2).unwrap();
/// x.merge(&y);
/// assert_eq!(x.get(&"hits".to_string()), Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PNCounterMap<K: Ord> {
    map: ORMap<K, PNCounter>,
}

impl<K: Ord> Default for PNCounterMap<K> {
    fn default() -> Self {
        Self {
            map: ORMap::default(),
        }
    }
}

impl<K: Element> PNCounterMap<K> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` to the counter of `key` (created at 0 when absent); on
    /// [`CrdtError::Overflow`] nothing changes.
    pub fn increment(&mut self, node: &UniqueReplicaId, key: K, n: u64) -> Result<(), CrdtError> {
        self.map
            .try_update(node, key, PNCounter::new(), |c| c.increment(node, n))
    }

    /// Subtracts `n` from the counter of `key` (created at 0 when absent); on
    /// [`CrdtError::Overflow`] nothing changes.
    pub fn decrement(&mut self, node: &UniqueReplicaId, key: K, n: u64) -> Result<(), CrdtError> {
        self.map
            .try_update(node, key, PNCounter::new(), |c| c.decrement(node, n))
    }

    /// Adds `delta`, which may be negative, to the counter of `key`.
    pub fn change(&mut self, node: &UniqueReplicaId, key: K, delta: i64) -> Result<(), CrdtError> {
        self.map
            .try_update(node, key, PNCounter::new(), |c| c.change(node, delta))
    }

    /// The value of the counter of `key`, if present.
    pub fn get(&self, key: &K) -> Option<i128> {
        self.map.get(key).map(|c| c.value())
    }

    /// The counter of `key`, if present.
    pub fn get_counter(&self, key: &K) -> Option<PNCounter> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Removes the counter of `key` as seen here (reset-remove): what this replica had counted is
    /// forgotten, changes made concurrently elsewhere stay (and keep the key), and a counter
    /// changed again after the remove starts from 0.
    pub fn remove(&mut self, node: &UniqueReplicaId, key: &K) {
        self.map.remove(node, key);
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// The entries, as a map of values.
    pub fn entries(&self) -> BTreeMap<K, i128> {
        self.map
            .iter()
            .map(|(k, c)| (k.clone(), c.value()))
            .collect()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The underlying map of counters.
    pub fn as_ormap(&self) -> &ORMap<K, PNCounter> {
        &self.map
    }
}

impl<K: TypeName + Ord> TypeName for PNCounterMap<K> {
    fn type_name() -> String {
        format!("PNCounterMap<{}>", K::type_name())
    }
}

delegate_crdt_to_ormap!([K: Element] PNCounterMap<K>);
