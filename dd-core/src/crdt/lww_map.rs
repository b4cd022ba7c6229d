//! Map of last-writer-wins registers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Clock, Element, LWWRegister, ORMap, TypeName};
use crate::replica::UniqueReplicaId;

/// A map whose values are last-writer-wins registers (Akka's `LWWMap`): an
/// [`ORMap`]`<K, `[`LWWRegister`]`<V>>` with a plain-value API. A key removed and put again
/// shows the newest put the remove had not seen (see [`ORMap`]'s remove semantics).
///
/// ```
/// use dd_core::crdt::{LWWMap, WallClock};
/// use dd_core::{ReplicatedData, UniqueReplicaId};
/// let a = UniqueReplicaId::new("a", 1);
/// let b = UniqueReplicaId::new("b", 1);
/// let mut x = LWWMap::new();
/// x.put(&a, "colour".to_string(), "blue".to_string(), &|_, _: &String| 1);
/// let mut y = x.clone();
/// y.put(&b, "colour".to_string(), "red".to_string(), &|_, _: &String| 2);
/// x.merge(&y);
/// assert_eq!(x.get(&"colour".to_string()).as_deref(), Some("red"));
/// x.put(&a, "size".to_string(), "XL".to_string(), &WallClock);
/// assert_eq!(x.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LWWMap<K: Ord, V> {
    map: ORMap<K, LWWRegister<V>>,
}

impl<K: Ord, V> Default for LWWMap<K, V> {
    fn default() -> Self {
        Self {
            map: ORMap::default(),
        }
    }
}

impl<K: Element, V: Element> LWWMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, timestamped by `clock` (against the current timestamp of `key`).
    pub fn put(&mut self, node: &UniqueReplicaId, key: K, value: V, clock: &impl Clock<V>) {
        let register = match self.map.get(&key) {
            Some(mut register) => {
                register.set(node, value, clock);
                register
            }
            None => LWWRegister::new(node, value, clock),
        };
        self.map.put(node, key, register);
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).map(LWWRegister::into_value)
    }

    /// The register of `key` (value, timestamp and writer), if present.
    pub fn get_register(&self, key: &K) -> Option<LWWRegister<V>> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Removes `key` as seen here; a concurrent put elsewhere wins.
    pub fn remove(&mut self, node: &UniqueReplicaId, key: &K) {
        self.map.remove(node, key);
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// The entries, as a map of plain values.
    pub fn entries(&self) -> BTreeMap<K, V> {
        self.map
            .iter()
            .map(|(k, r)| (k.clone(), r.into_value()))
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

    /// The underlying map of registers.
    pub fn as_ormap(&self) -> &ORMap<K, LWWRegister<V>> {
        &self.map
    }
}

impl<K: TypeName + Ord, V: TypeName> TypeName for LWWMap<K, V> {
    fn type_name() -> String {
        format!("LWWMap<{}, {}>", K::type_name(), V::type_name())
    }
}

delegate_crdt_to_ormap!([K: Element, V: Element] LWWMap<K, V>);
