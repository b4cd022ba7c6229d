//! Map of sets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Element, ORMap, ORSet, TypeName};
use crate::replica::UniqueReplicaId;

/// A map from keys to sets of values (Akka's `ORMultiMap`): an
/// [`ORMap`]`<K, `[`ORSet`]`<V>>` with a binding API. A key whose set becomes empty through
/// [`remove_binding`](Self::remove_binding) is removed. A key removed and added again holds the
/// bindings added after the remove or concurrently with it, never the ones the remove saw (see
/// [`ORMap`]'s remove semantics).
///
/// ```
/// use dd_core::crdt::ORMultiMap;
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = ORMultiMap::new();
/// x.add_binding(&a, "fruit".to_string(), "apple".to_string());
/// let mut y = x.clone();
/// y.add_binding(&b, "fruit".to_string(), "pear".to_string());
/// x.merge(&y);
/// assert_eq!(x.get(&"fruit".to_string()).unwrap().len(), 2);
/// x.remove_binding(&a, &"fruit".to_string(), &"apple".to_string());
/// assert!(!x.contains_binding(&"fruit".to_string(), &"apple".to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ORMultiMap<K: Ord, V: Ord> {
    map: ORMap<K, ORSet<V>>,
}

impl<K: Ord, V: Ord> Default for ORMultiMap<K, V> {
    fn default() -> Self {
        Self {
            map: ORMap::default(),
        }
    }
}

impl<K: Element, V: Element> ORMultiMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` to the set of `key` (created when absent).
    pub fn add_binding(&mut self, node: &UniqueReplicaId, key: K, value: V) {
        self.map
            .update(node, key, ORSet::new(), |set| set.add(node, value));
    }

    /// Removes `value` from the set of `key` as seen here, and the key if its set becomes empty.
    pub fn remove_binding(&mut self, node: &UniqueReplicaId, key: &K, value: &V) {
        let Some(set) = self.map.get(key) else {
            return;
        };
        if !set.contains(value) {
            return;
        }
        if set.len() == 1 {
            self.map.remove(node, key);
        } else {
            self.map.update(node, key.clone(), ORSet::new(), |set| {
                set.remove(node, value)
            });
        }
    }

    /// Replaces the set of `key` by `values` (the values seen here are removed).
    pub fn put(&mut self, node: &UniqueReplicaId, key: K, values: impl IntoIterator<Item = V>) {
        self.map.update(node, key, ORSet::new(), |set| {
            set.clear(node);
            for v in values {
                set.add(node, v);
            }
        });
    }

    /// The set of `key`, if present.
    pub fn get(&self, key: &K) -> Option<BTreeSet<V>> {
        self.map.get(key).map(|set| set.elements())
    }

    /// Whether `value` is in the set of `key`.
    pub fn contains_binding(&self, key: &K, value: &V) -> bool {
        self.map.get(key).is_some_and(|set| set.contains(value))
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Removes `key` and its set as seen here: the bindings seen are forgotten, bindings added
    /// concurrently elsewhere stay (and keep the key).
    pub fn remove(&mut self, node: &UniqueReplicaId, key: &K) {
        self.map.remove(node, key);
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// The entries, as a map of sets.
    pub fn entries(&self) -> BTreeMap<K, BTreeSet<V>> {
        self.map
            .iter()
            .map(|(k, set)| (k.clone(), set.elements()))
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

    /// The underlying map of sets.
    pub fn as_ormap(&self) -> &ORMap<K, ORSet<V>> {
        &self.map
    }
}

impl<K: TypeName + Ord, V: TypeName + Ord> TypeName for ORMultiMap<K, V> {
    fn type_name() -> String {
        format!("ORMultiMap<{}, {}>", K::type_name(), V::type_name())
    }
}

delegate_crdt_to_ormap!([K: Element, V: Element] ORMultiMap<K, V>);
