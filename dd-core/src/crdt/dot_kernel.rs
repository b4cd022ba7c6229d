//! The shared machinery of the dot-based CRDTs: keyed, dot-tagged entries plus the causal context.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{CausalContext, Dot};
use crate::replica::UniqueReplicaId;

/// Entries `key -> (dot -> value)` and the dots seen, with the join of the optimised add-wins
/// observed-remove CRDTs: an entry's dot survives a merge when both sides have it, or when one
/// side has it and the other has not seen it yet (a side that has seen a dot and lacks it has
/// removed it).
///
/// A value under a dot never changes after the write that created the dot (a new write makes a
/// new dot), so both sides of a merge hold the same value under a shared dot.
///
/// `ORSet<T>` is `DotKernel<T, ()>`, `MVRegister<T>` is `DotKernel<(), T>`, `ORMap<K, V>` is
/// `DotKernel<K, V>`. Every mutation returns the delta: a kernel holding the new entry and,
/// in its context, exactly the dots the mutation witnessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DotKernel<K: Ord, V> {
    entries: BTreeMap<K, BTreeMap<Dot, V>>,
    context: CausalContext,
}

impl<K: Ord, V> Default for DotKernel<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::default(),
        }
    }
}

impl<K: Ord + Clone, V: Clone> DotKernel<K, V> {
    /// The live keys with their dot-tagged values.
    pub(crate) fn entries(&self) -> &BTreeMap<K, BTreeMap<Dot, V>> {
        &self.entries
    }

    /// The dot-tagged values of `key` (none when absent).
    pub(crate) fn get(&self, key: &K) -> Option<&BTreeMap<Dot, V>> {
        self.entries.get(key)
    }

    /// Replaces every value of `key` this replica has seen by `value`, under a new dot of `node`.
    pub(crate) fn write(&mut self, node: &UniqueReplicaId, key: K, value: V) -> Self {
        let dot = self.context.next_dot(node);
        let mut fresh = BTreeMap::new();
        fresh.insert(dot.clone(), value.clone());
        let previous = self.entries.insert(key.clone(), fresh);
        let witnessed = previous
            .into_iter()
            .flat_map(BTreeMap::into_keys)
            .chain(std::iter::once(dot.clone()));
        let mut delta_entry = BTreeMap::new();
        delta_entry.insert(dot, value);
        let mut entries = BTreeMap::new();
        entries.insert(key, delta_entry);
        Self {
            entries,
            context: CausalContext::from_dots(witnessed),
        }
    }

    /// Removes every value of `key` this replica has seen; `None` when `key` is absent.
    pub(crate) fn remove(&mut self, key: &K) -> Option<Self> {
        let previous = self.entries.remove(key)?;
        Some(Self {
            entries: BTreeMap::new(),
            context: CausalContext::from_dots(previous.into_keys()),
        })
    }

    /// Removes every key; `None` when already empty.
    pub(crate) fn clear(&mut self) -> Option<Self> {
        if self.entries.is_empty() {
            return None;
        }
        let previous = std::mem::take(&mut self.entries);
        Some(Self {
            entries: BTreeMap::new(),
            context: CausalContext::from_dots(previous.into_values().flat_map(BTreeMap::into_keys)),
        })
    }

    /// Joins `other` into `self`; `join_value` joins the two values of a dot both sides hold.
    pub(crate) fn merge(&mut self, other: &Self, join_value: impl Fn(&mut V, &V)) {
        let mine = std::mem::take(&mut self.entries);
        for (key, mut dots) in mine {
            let theirs = other.entries.get(&key);
            dots.retain(|dot, value| match theirs.and_then(|t| t.get(dot)) {
                Some(their_value) => {
                    join_value(value, their_value);
                    true
                }
                None => !other.context.contains(dot),
            });
            if let Some(theirs) = theirs {
                for (dot, value) in theirs {
                    if !dots.contains_key(dot) && !self.context.contains(dot) {
                        dots.insert(dot.clone(), value.clone());
                    }
                }
            }
            if !dots.is_empty() {
                self.entries.insert(key, dots);
            }
        }
        for (key, theirs) in &other.entries {
            if self.entries.contains_key(key) {
                continue;
            }
            let dots: BTreeMap<Dot, V> = theirs
                .iter()
                .filter(|(dot, _)| !self.context.contains(dot))
                .map(|(d, v)| (d.clone(), v.clone()))
                .collect();
            if !dots.is_empty() {
                self.entries.insert(key.clone(), dots);
            }
        }
        self.context.merge(&other.context);
    }

    /// Every node with a dot in the entries or the context.
    pub(crate) fn nodes(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes = self.context.nodes();
        for dots in self.entries.values() {
            nodes.extend(dots.keys().map(|d| d.node().clone()));
        }
        nodes
    }

    /// Whether `node` has a dot in the entries or the context.
    pub(crate) fn mentions(&self, node: &UniqueReplicaId) -> bool {
        self.context.mentions(node) || self.key_has_dot_of(node).is_some()
    }

    fn key_has_dot_of(&self, node: &UniqueReplicaId) -> Option<&K> {
        self.entries
            .iter()
            .find(|(_, dots)| dots.keys().any(|d| d.node() == node))
            .map(|(k, _)| k)
    }

    /// Re-tags every live value under a dot of `removed` with a new dot of `collapse_into` and
    /// forgets `removed` in the context: the observed entries are unchanged.
    pub(crate) fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        for dots in self.entries.values_mut() {
            let of_removed: Vec<Dot> = dots
                .keys()
                .filter(|d| d.node() == removed)
                .cloned()
                .collect();
            for old in of_removed {
                if let Some(value) = dots.remove(&old) {
                    let fresh = self.context.next_dot(collapse_into);
                    dots.insert(fresh, value);
                }
            }
        }
        self.context.remove_node(removed);
    }

    /// Drops every entry and context dot of `removed` (entries that arrived after pruning).
    pub(crate) fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.entries.retain(|_, dots| {
            dots.retain(|d, _| d.node() != removed);
            !dots.is_empty()
        });
        self.context.remove_node(removed);
    }

    /// Mutable access to every stored value (for pruning nested CRDT values).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.values_mut().flat_map(BTreeMap::values_mut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> UniqueReplicaId {
        UniqueReplicaId::new(name, 1)
    }

    #[test]
    fn a_write_delta_witnesses_the_replaced_dots_only() {
        let mut k: DotKernel<&str, u8> = DotKernel::default();
        k.write(&node("a"), "x", 1);
        let delta = k.write(&node("a"), "x", 2);
        assert_eq!(delta, {
            let mut d = DotKernel::default();
            let mut dots = BTreeMap::new();
            dots.insert(Dot::new(node("a"), 2), 2);
            d.entries.insert("x", dots);
            d.context = CausalContext::from_dots([Dot::new(node("a"), 1), Dot::new(node("a"), 2)]);
            d
        });
        // a write of another key does not claim to have seen key "x"'s dots
        let other = k.write(&node("a"), "y", 3);
        let mut stale = DotKernel::default();
        stale.write(&node("a"), "x", 1);
        stale.merge(&other, |_, _| {});
        assert!(stale.get(&"x").is_some());
    }

    #[test]
    fn removing_an_absent_key_makes_no_delta() {
        let mut k: DotKernel<&str, ()> = DotKernel::default();
        assert!(k.remove(&"x").is_none());
        assert!(k.clear().is_none());
    }
}
