//! A small sorted map for per-incarnation slots.
//!
//! Counters hold one slot per incarnation that incremented them: usually one to a handful. A
//! `BTreeMap` costs a whole B-tree node (about 290 bytes for `u128` slots) for the first slot;
//! this sorted vector, grown one slot at a time, costs the slots alone. It iterates in key order
//! and serializes exactly as a `BTreeMap` does (a serde map in key order), so encodings are
//! unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map kept as a vector sorted by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SlotMap<K, V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<K: Ord, V> SlotMap<K, V> {
    fn position(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    /// The value of `key`, mutable.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.position(key) {
            Ok(i) => Some(&mut self.0[i].1),
            Err(_) => None,
        }
    }

    /// Whether `key` has a value.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    /// Sets the value of `key`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        match self.position(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => {
                // One slot at a time: a counter rarely has more than a few incarnations.
                self.0.reserve_exact(1);
                self.0.insert(i, (key, value));
            }
        }
    }

    /// The value of `key`, inserted as `make()` (with a clone of `key`) when absent.
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V
    where
        K: Clone,
    {
        let i = match self.position(key) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (key.clone(), make()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.position(key).ok()?;
        let (_, v) = self.0.remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(v)
    }

    /// Every `(key, value)`, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Every key, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Every value, in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SlotMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for SlotMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = SlotMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // The size hint comes from the input: trust it only up to a small bound.
                let mut map = SlotMap(Vec::with_capacity(access.size_hint().unwrap_or(0).min(64)));
                while let Some((k, v)) = access.next_entry()? {
                    // A repeated key keeps its last value, as a `BTreeMap` would.
                    map.insert(k, v);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn encodes_and_iterates_as_a_btree_map() {
        let mut s = SlotMap::default();
        let mut m = BTreeMap::new();
        for (k, v) in [(5u32, 1u128), (1, 2), (9, 3), (5, 4), (3, 5)] {
            s.insert(k, v);
            m.insert(k, v);
        }
        *s.get_or_insert_with(&7, || 0) += 6;
        *m.entry(7).or_insert(0) += 6;
        assert_eq!(s.remove(&1), m.remove(&1));
        assert_eq!(s.remove(&100), None);
        assert_eq!(s.iter().collect::<Vec<_>>(), m.iter().collect::<Vec<_>>());
        assert_eq!(s.len(), m.len());
        assert!(s.contains_key(&9) && !s.contains_key(&1));
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&m).unwrap());
        let back: SlotMap<u32, u128> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, s);
        // Keys out of order and repeated, as a hostile or older encoder may write them.
        let mut unordered = Vec::new();
        unordered.extend(postcard::to_allocvec(&3u8).unwrap());
        for (k, v) in [(9u32, 1u128), (2, 2), (9, 3)] {
            unordered.extend(postcard::to_allocvec(&(k, v)).unwrap());
        }
        let back: SlotMap<u32, u128> = postcard::from_bytes(&unordered).unwrap();
        let as_map: BTreeMap<u32, u128> = postcard::from_bytes(&unordered).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            as_map.iter().collect::<Vec<_>>()
        );
    }
}
