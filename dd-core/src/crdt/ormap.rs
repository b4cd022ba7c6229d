//! Observed-remove map of CRDT values.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    CausalContext, Crdt, DeltaReplicatedData, Dot, DotKernel, Element, RemovedNodePruning,
    ReplicatedData, TypeName,
};
use crate::replica::UniqueReplicaId;

/// A map from keys to CRDT values, whose keys behave like an [`ORSet`](super::ORSet) (Akka's
/// `ORMap`): a key added or updated concurrently with its removal stays (update wins), and
/// concurrent updates of one value merge.
///
/// Each write of a key (a [`put`](Self::put) or an [`update`](Self::update)) stores the new value
/// under a new dot of the writing replica, replacing the values seen; the observed value of a key
/// is the merge of the values of its live dots (one, except after concurrent writes).
///
/// # Remove and re-add
///
/// A remove forgets exactly what the removing replica had observed of the key's value; updates
/// concurrent with the remove survive, updates after it (on any replica) are kept, and nothing
/// observed and removed comes back, whatever the order of merges and deltas. For that, the map
/// keeps a *removed state* per removed key: the join of the values its removes saw. A value of
/// the key is shown without what the removed state covers
/// ([`forget_observed`](ReplicatedData::forget_observed)), and a value written after a remove
/// continues past the removed state ([`continue_after`](ReplicatedData::continue_after)), so no dot and
/// no counter slot the remove saw is used again, on any path (update, put, delta, merge, pruning).
/// Per value type:
///
/// - counters ([`PNCounter`](super::PNCounter), [`GCounter`](super::GCounter),
///   [`PNCounterMap`](super::PNCounterMap)): reset-remove. If `k = 5` is removed on one replica
///   while another adds 1, the merge reads 1; if the remover then adds 2, it reads 3. (Akka, and
///   this crate before, kept the concurrent updater's whole counter and let the remover's new
///   counter reuse its old slot: 6 both times.)
/// - sets and multi-value registers ([`ORSet`](super::ORSet),
///   [`ORMultiMap`](super::ORMultiMap), [`MVRegister`](super::MVRegister)): the elements the
///   remove saw are gone; elements added concurrently, or after the remove, stay. (Akka documents
///   that its `ORMultiMap` can lose changes on concurrent adds and removals of one key, and offers
///   `emptyWithValueDeltas` against it; this crate before lost an element added again after a
///   remove when a concurrent updater had seen the removed one, and kept the removed elements
///   that updater had seen.)
/// - registers ([`LWWRegister`](super::LWWRegister), [`LWWMap`](super::LWWMap)),
///   [`GSet`](super::GSet), [`Flag`](super::Flag), and any type that does not implement
///   `forget_observed`: a concurrent update keeps its whole value (as in Akka; for a grow-only
///   value this includes what the remove saw), and no removed state is kept. A register removed and
///   written again shows the newest surviving write.
///
/// A [`put`](Self::put) forgets the value seen like a remove, then writes. Removed states are
/// kept for good (like the causal context): a map that removes many distinct keys grows by one
/// removed state per key.
///
/// Deltas carry the written keys with their current values (not the value's own delta), and the
/// removed states the mutations changed, so a delta is as large as the changed entries; like
/// Akka's, they are meant to be delivered in causal order. The reference model and property tests
/// of these semantics are in `dd-core/tests/crdt_map_model.rs`.
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
#[derive(Debug, Clone)]
pub struct ORMap<K: Ord, V> {
    kernel: DotKernel<K, V>,
    /// The removed state of each key ever removed: the join of the values its removes (and
    /// [`put`](Self::put)s) observed. What a removed state covers is forgotten from the key's values.
    removed: BTreeMap<K, V>,
    delta: MapDelta<K>,
}

/// What the local mutations since the last reset touched; [`ORMap::delta`] builds the delta
/// from it and the current state (so an update clones nothing for its delta).
#[derive(Debug, Clone)]
struct MapDelta<K> {
    /// The keys written or removed, each with whether its removed state changed.
    keys: BTreeMap<K, bool>,
    /// The dots the mutations created or replaced (removed), but those of `fresh`.
    dots: Vec<Dot>,
    /// The latest run of consecutive new dots of one node, `(node, first, last)` counters
    /// (usually every dot created since the reset, kept without a clone of the node per write).
    fresh: Option<(UniqueReplicaId, u64, u64)>,
    /// Replaced dots of one node, by counter (usually the writer's own earlier dots).
    own: Option<(UniqueReplicaId, Vec<u64>)>,
}

impl<K> Default for MapDelta<K> {
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            dots: Vec::new(),
            fresh: None,
            own: None,
        }
    }
}

impl<K: Ord> MapDelta<K> {
    fn touch(&mut self, key: K, removed_changed: bool) {
        let changed = self.keys.entry(key).or_insert(false);
        *changed |= removed_changed;
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.dots.is_empty()
            && self.fresh.is_none()
            && self.own.as_ref().is_none_or(|(_, c)| c.is_empty())
    }

    fn reset(&mut self) {
        self.keys.clear();
        self.dots.clear();
        self.fresh = None;
        if let Some((_, counters)) = self.own.as_mut() {
            counters.clear();
        }
    }

    /// Records the replaced `dot`; gives its node back when only its counter is kept.
    fn replaced(&mut self, dot: Dot) -> Option<UniqueReplicaId> {
        match self.own.as_mut() {
            Some((node, counters)) if node == dot.node() => {
                counters.push(dot.counter());
                Some(dot.into_node())
            }
            Some(_) => {
                self.dots.push(dot);
                None
            }
            None => {
                let counter = dot.counter();
                self.own = Some((dot.into_node(), vec![counter]));
                None
            }
        }
    }

    /// Records the new dot `counter` of `node`.
    fn created(&mut self, node: &UniqueReplicaId, counter: u64) {
        if let Some((n, _, last)) = self.fresh.as_mut()
            && n == node
            && counter == *last + 1
        {
            *last = counter;
            return;
        }
        if let Some((n, first, last)) = self.fresh.replace((node.clone(), counter, counter)) {
            self.dots
                .extend((first..=last).map(|c| Dot::new(n.clone(), c)));
        }
    }

    /// Every dot recorded.
    fn all_dots(&self) -> impl Iterator<Item = Dot> + '_ {
        let fresh = self
            .fresh
            .iter()
            .flat_map(|(n, first, last)| (*first..=*last).map(|c| Dot::new(n.clone(), c)));
        let own = self
            .own
            .iter()
            .flat_map(|(n, counters)| counters.iter().map(|c| Dot::new(n.clone(), *c)));
        self.dots.iter().cloned().chain(fresh).chain(own)
    }

    /// Forgets every dot of `node`.
    fn forget_node(&mut self, node: &UniqueReplicaId) {
        self.dots.retain(|d| d.node() != node);
        if self.fresh.as_ref().is_some_and(|(n, _, _)| n == node) {
            self.fresh = None;
        }
        if self.own.as_ref().is_some_and(|(n, _)| n == node) {
            self.own = None;
        }
    }
}

impl<K: Ord, V> Default for ORMap<K, V> {
    fn default() -> Self {
        Self {
            kernel: DotKernel::default(),
            removed: BTreeMap::new(),
            delta: MapDelta::default(),
        }
    }
}

/// The join of the values of one key, before its removed state is applied.
fn join_values<V: Crdt>(values: &BTreeMap<Dot, V>) -> Option<V> {
    let mut iter = values.values();
    let mut joined = iter.next()?.clone();
    for v in iter {
        joined.merge(v);
    }
    joined.reset_delta();
    Some(joined)
}

/// The join of the values of one key, taking them out of `values` (no clone for the usual
/// single value), with their dots.
fn take_joined<V: Crdt>(values: &mut BTreeMap<Dot, V>) -> Option<(V, Dot, Vec<Dot>)> {
    let (dot, mut joined) = values.pop_first()?;
    let mut others = Vec::new();
    while let Some((other, v)) = values.pop_first() {
        joined.merge(&v);
        others.push(other);
    }
    Some((joined, dot, others))
}

impl<K: Element, V: Crdt> ORMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &K) -> Option<V> {
        self.kernel
            .get(key)
            .and_then(join_values)
            .map(|v| self.shown(key, v))
    }

    /// `value` (a join of `key`'s values) as the map shows it: without what `key`'s removal
    /// removed state covers.
    fn shown(&self, key: &K, mut value: V) -> V {
        if let Some(removed_state) = self.removed.get(key) {
            value.forget_observed(removed_state);
        }
        value
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
            .filter_map(|(k, dots)| join_values(dots).map(|v| (k, self.shown(k, v))))
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

    /// Sets `key` to `value`: the value seen here is forgotten as by [`remove`](Self::remove),
    /// then `value` is written. A concurrent update elsewhere is merged with it (what that
    /// update added and this replica had not seen stays), so prefer [`update`](Self::update) to
    /// modify a value.
    pub fn put(&mut self, node: &UniqueReplicaId, key: K, value: V) {
        self.remove(node, &key);
        self.store(node, key, None, value, None);
    }

    /// Modifies the value of `key` (starting from `initial` when absent) with `modify`, and
    /// returns what `modify` returns.
    ///
    /// `modify` changes the value in place (no copy of it is made); if it panics, `key` is
    /// left out of this replica's map until a merge brings it back.
    pub fn update<R>(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        initial: V,
        modify: impl FnOnce(&mut V) -> R,
    ) -> R {
        let (key, mut taken) = match self.kernel.take(&key) {
            Some((key, dots)) => (key, Some(dots)),
            None => (key, None),
        };
        let (mut value, replaced) = match taken.as_mut().and_then(take_joined) {
            Some((joined, dot, others)) => (self.shown(&key, joined), Some((dot, others))),
            None => (initial, None),
        };
        let result = modify(&mut value);
        let reuse = replaced.and_then(|(dot, others)| {
            self.delta.dots.extend(others);
            self.delta.replaced(dot)
        });
        self.store(node, key, taken, value, reuse);
        result
    }

    /// Like [`update`](Self::update), but the map changes only when `modify` returns `Ok`
    /// (`modify` works on a copy of the value).
    pub fn try_update<R, E>(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        initial: V,
        modify: impl FnOnce(&mut V) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut value = self.get(&key).unwrap_or(initial);
        let result = modify(&mut value)?;
        let (key, taken) = match self.kernel.take(&key) {
            Some((key, mut dots)) => {
                self.delta
                    .dots
                    .extend(std::mem::take(&mut dots).into_keys());
                (key, Some(dots))
            }
            None => (key, None),
        };
        self.store(node, key, taken, value, None);
        Ok(result)
    }

    /// Writes `value` (as shown, i.e. without `key`'s removed state) as the only value of
    /// `key`, whose previous values were taken out (`emptied` is their emptied map, to reuse).
    fn store(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        emptied: Option<BTreeMap<Dot, V>>,
        value: V,
        reuse: Option<UniqueReplicaId>,
    ) {
        let mut value = value;
        if let Some(removed_state) = self.removed.get(&key) {
            value.continue_after(node, removed_state);
        }
        // The value's own pending delta is left as it is (nothing reads it; every value that
        // leaves the map, by get, iter or delta, has it reset): resetting it here would make the
        // next update of a counter allocate it again.
        let dots = emptied.unwrap_or_default();
        let counter = if self.delta.keys.contains_key(&key) {
            self.kernel.insert_fresh(node, key, dots, value, reuse)
        } else {
            let counter = self
                .kernel
                .insert_fresh(node, key.clone(), dots, value, reuse);
            self.delta.keys.insert(key, false);
            counter
        };
        self.delta.created(node, counter);
    }

    /// Removes `key` as seen here: the value seen is forgotten, and a concurrent update
    /// elsewhere keeps what this replica had not seen (so the key stays). Removing an absent key
    /// does nothing. `node` is the removing replica (a remove creates no dot).
    pub fn remove(&mut self, node: &UniqueReplicaId, key: &K) {
        let _ = node;
        let Some((key, mut dots)) = self.kernel.take(key) else {
            return;
        };
        let observed = take_joined(&mut dots).map(|(observed, dot, others)| {
            self.delta.dots.push(dot);
            self.delta.dots.extend(others);
            observed
        });
        let removed_changed = match observed {
            Some(observed) if V::forgets_observed() => {
                self.join_removed(key.clone(), observed);
                true
            }
            _ => false,
        };
        self.delta.touch(key, removed_changed);
    }

    /// Joins `observed` into the removed state of `key`.
    fn join_removed(&mut self, key: K, mut observed: V) {
        observed.reset_delta();
        match self.removed.get_mut(&key) {
            Some(removed_state) => removed_state.merge(&observed),
            None => {
                self.removed.insert(key, observed);
            }
        }
    }

    /// Removes every key seen here (each as by [`remove`](Self::remove)).
    pub fn clear(&mut self, node: &UniqueReplicaId) {
        let keys: Vec<K> = self.kernel.entries().keys().cloned().collect();
        for key in keys {
            self.remove(node, &key);
        }
    }

    /// The removed state of `key`: the join of the values its removes observed (`None` if it
    /// was never removed, or if `V` keeps concurrent updates whole). For inspection and tests.
    pub fn removed_state(&self, key: &K) -> Option<&V> {
        self.removed.get(key)
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl<K: Ord, V: PartialEq> PartialEq for ORMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel && self.removed == other.removed
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
        for (key, removed_state) in &other.removed {
            match self.removed.get_mut(key) {
                Some(mine) => mine.merge(removed_state),
                None => {
                    self.removed.insert(key.clone(), removed_state.clone());
                }
            }
        }
    }
}

impl<K: Element, V: Crdt> DeltaReplicatedData for ORMap<K, V> {
    type Delta = ORMap<K, V>;

    /// The touched keys with their current values (and removed states, where a mutation
    /// changed them), and in the context every dot the mutations created or removed plus the
    /// dots of the values sent: merged anywhere, it has the effect of the full state on those
    /// keys.
    fn delta(&self) -> Option<ORMap<K, V>> {
        if self.delta.is_empty() {
            return None;
        }
        let mut context = CausalContext::from_dots(self.delta.all_dots());
        let mut entries = BTreeMap::new();
        let mut removed = BTreeMap::new();
        for (key, &removed_changed) in &self.delta.keys {
            if let Some(dots) = self.kernel.get(key) {
                let mut sent = BTreeMap::new();
                for (dot, value) in dots {
                    let _new = context.insert_ref(dot);
                    let mut value = value.clone();
                    value.reset_delta();
                    sent.insert(dot.clone(), value);
                }
                entries.insert(key.clone(), sent);
            }
            if removed_changed && let Some(removed_state) = self.removed.get(key) {
                removed.insert(key.clone(), removed_state.clone());
            }
        }
        Some(ORMap {
            kernel: DotKernel::from_parts(entries, context),
            removed,
            delta: MapDelta::default(),
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

/// Nothing to collapse, neither the keys' dots nor the nested values or removed states: a
/// removed incarnation writes nothing any more, so merging states that mention it is exact.
/// Rewriting its keys under new dots (as earlier versions did, and Akka's `ORMap` does) undoes
/// a remove made concurrently by a replica that saw the old dot; collapsing a nested counter in
/// place under its dot loses the increments of a concurrent update that superseded that dot
/// (its value still carries the removed incarnation's slot, which the receivers would drop).
/// The cost: one causal context entry per incarnation that ever wrote a key, and, for counter
/// values, one slot per incarnation that updated an entry, kept for good.
///
/// [`prune_cleanup`](RemovedNodePruning::prune_cleanup) drops every trace of `removed` (dots,
/// nested entries, removed state slots): the replicator applies it only where a "pruning
/// performed" marker of an earlier version (which collapsed the incarnation) meets a stale
/// state.
impl<K: Element, V: Crdt> RemovedNodePruning for ORMap<K, V> {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }

    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes = self.kernel.nodes();
        for values in self.kernel.entries().values() {
            for v in values.values() {
                nodes.extend(v.replicas_in_state());
            }
        }
        nodes
    }

    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }

    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}

    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.kernel.prune_cleanup(removed);
        for v in self.kernel.values_mut() {
            v.prune_cleanup(removed);
        }
        for removed_state in self.removed.values_mut() {
            removed_state.prune_cleanup(removed);
        }
        self.delta.forget_node(removed);
    }

    fn mentions(&self, removed: &UniqueReplicaId) -> bool {
        self.kernel.mentions(removed)
            || self
                .kernel
                .entries()
                .values()
                .flat_map(BTreeMap::values)
                .any(|v| v.mentions(removed))
            || self.removed.values().any(|r| r.mentions(removed))
    }

    fn prunes_by_collapsing(&self) -> bool {
        false
    }
}

/// The first two bytes of the compact encoding of a map with removed states. Today's
/// encoding (the kernel alone, still written for maps without removed states) starts with the
/// varint number of keys, and a varint is never written as `80 00`, so the two never mix up.
const WITH_REMOVED: [u8; 2] = [0x80, 0x00];

/// Encoded as before removed states existed when there are none (so those bytes are today's,
/// and every removed state written before still decodes); with removed states, the compact encoding is
/// [`WITH_REMOVED`], the kernel, then the removed states. Human-readable formats write a struct with
/// `kernel` and `removed` (`removed` may be missing).
impl<K: Serialize + Ord, V: Serialize> Serialize for ORMap<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let mut s = serializer.serialize_struct("ORMap", 2)?;
            s.serialize_field("kernel", &self.kernel)?;
            s.serialize_field("removed", &self.removed)?;
            s.end()
        } else if self.removed.is_empty() {
            let mut s = serializer.serialize_struct("ORMap", 1)?;
            s.serialize_field("kernel", &self.kernel)?;
            s.end()
        } else {
            let mut t = serializer.serialize_tuple(4)?;
            t.serialize_element(&WITH_REMOVED[0])?;
            t.serialize_element(&WITH_REMOVED[1])?;
            t.serialize_element(&self.kernel)?;
            t.serialize_element(&self.removed)?;
            t.end()
        }
    }
}

/// The human-readable form.
#[derive(Deserialize)]
#[serde(bound(deserialize = "K: Deserialize<'de> + Ord, V: Deserialize<'de>"))]
struct Readable<K: Ord, V> {
    kernel: DotKernel<K, V>,
    #[serde(default = "BTreeMap::new")]
    removed: BTreeMap<K, V>,
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for ORMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (kernel, removed) = if deserializer.is_human_readable() {
            let r = Readable::deserialize(deserializer)?;
            (r.kernel, r.removed)
        } else {
            deserializer.deserialize_tuple(usize::MAX, Compact(std::marker::PhantomData))?
        };
        Ok(Self {
            kernel,
            removed,
            delta: MapDelta::default(),
        })
    }
}

/// Reads the compact encoding, either form, element by element: a byte at a time for the
/// leading varint (or marker), then the parts.
struct Compact<K, V>(std::marker::PhantomData<(K, V)>);

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Visitor<'de> for Compact<K, V> {
    type Value = (DotKernel<K, V>, BTreeMap<K, V>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an ORMap: its keys, their dot-tagged values, the causal context and the removed states")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let first: u8 = next(&mut seq, "first byte")?;
        let mut len = u64::from(first & 0x7f);
        if first & 0x80 != 0 {
            let second: u8 = next(&mut seq, "second byte")?;
            if [first, second] == WITH_REMOVED {
                let kernel = next(&mut seq, "kernel")?;
                let removed = next(&mut seq, "removed states")?;
                return Ok((kernel, removed));
            }
            // Today's encoding with 128 keys or more: the rest of the varint number of keys.
            let mut shift = 7;
            let mut current = second;
            loop {
                if shift > 63 {
                    return Err(de::Error::custom(
                        "ORMap: number of keys is not a valid varint",
                    ));
                }
                len |= u64::from(current & 0x7f) << shift;
                if current & 0x80 == 0 {
                    break;
                }
                shift += 7;
                current = next(&mut seq, "number of keys")?;
            }
        }
        let mut entries = BTreeMap::new();
        for _ in 0..len {
            let key: K = next(&mut seq, "key")?;
            let dots: BTreeMap<Dot, V> = next(&mut seq, "values of a key")?;
            entries.insert(key, dots);
        }
        let context: CausalContext = next(&mut seq, "causal context")?;
        Ok((DotKernel::from_parts(entries, context), BTreeMap::new()))
    }
}

fn next<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    seq: &mut A,
    what: &str,
) -> Result<T, A::Error> {
    seq.next_element::<T>()?
        .ok_or_else(|| de::Error::custom(format!("ORMap: {what} missing")))
}
