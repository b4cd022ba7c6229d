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

/// The delta of one local mutation of a [`DotKernel`] ([`write`](DotKernel::write),
/// [`remove`](DotKernel::remove) or [`clear`](DotKernel::clear)): what changed and the dots the
/// mutation witnessed. [`into_kernel`](Self::into_kernel) makes it a delta kernel;
/// [`DotKernel::absorb`] joins it into the pending delta of the kernel it came from in
/// O(log n).
#[derive(Debug, Clone)]
pub(crate) struct LocalDelta<K, V> {
    change: Change<K, V>,
    /// The dots the mutation witnessed, except the new dot of a write (kept in `change` only,
    /// so that it is not cloned for a context that is merged away at once).
    witnessed: CausalContext,
}

/// What a local mutation changed.
#[derive(Debug, Clone)]
enum Change<K, V> {
    /// `key` now holds `value` under the new `dot`.
    Write { key: K, dot: Dot, value: V },
    /// `key` was removed.
    Remove { key: K },
    /// Every key was removed.
    Clear,
}

impl<K: Ord, V> LocalDelta<K, V> {
    /// The delta as a kernel: the written entry (if any) and, in its context, exactly the dots
    /// the mutation witnessed.
    pub(crate) fn into_kernel(self) -> DotKernel<K, V> {
        let mut entries = BTreeMap::new();
        let mut context = self.witnessed;
        if let Change::Write { key, dot, value } = self.change {
            context.insert(dot.clone());
            let mut dots = BTreeMap::new();
            dots.insert(dot, value);
            entries.insert(key, dots);
        }
        DotKernel { entries, context }
    }
}

impl<K: Ord, V> DotKernel<K, V> {
    /// A kernel of `entries` and `context` (for decoders and materialised deltas).
    pub(crate) fn from_parts(
        entries: BTreeMap<K, BTreeMap<Dot, V>>,
        context: CausalContext,
    ) -> Self {
        Self { entries, context }
    }
}

impl<K: Ord + Clone, V: Clone> DotKernel<K, V> {
    /// Takes `key` and its dot-tagged values out of the entries (the context keeps their
    /// dots); put a value back with [`insert_fresh`](Self::insert_fresh).
    pub(crate) fn take(&mut self, key: &K) -> Option<(K, BTreeMap<Dot, V>)> {
        self.entries.remove_entry(key)
    }

    /// Stores `value` as the only value of `key` (which [`take`](Self::take) emptied or which
    /// was absent), under a new dot of `node`; `dots` is an empty map to reuse, and so is
    /// `reuse`, a copy of `node` if any. Returns the new dot's counter.
    pub(crate) fn insert_fresh(
        &mut self,
        node: &UniqueReplicaId,
        key: K,
        mut dots: BTreeMap<Dot, V>,
        value: V,
        reuse: Option<UniqueReplicaId>,
    ) -> u64 {
        let dot = self.context.next_dot_reusing(node, reuse);
        let counter = dot.counter();
        dots.insert(dot, value);
        self.entries.insert(key, dots);
        counter
    }

    /// The live keys with their dot-tagged values.
    pub(crate) fn entries(&self) -> &BTreeMap<K, BTreeMap<Dot, V>> {
        &self.entries
    }

    /// The dot-tagged values of `key` (none when absent).
    pub(crate) fn get(&self, key: &K) -> Option<&BTreeMap<Dot, V>> {
        self.entries.get(key)
    }

    /// Replaces every value of `key` this replica has seen by `value`, under a new dot of `node`.
    pub(crate) fn write(&mut self, node: &UniqueReplicaId, key: K, value: V) -> LocalDelta<K, V> {
        let dot = self.context.next_dot(node);
        let mut fresh = BTreeMap::new();
        fresh.insert(dot.clone(), value.clone());
        let previous = self.entries.insert(key.clone(), fresh);
        let witnessed = previous.map_or_else(CausalContext::default, |dots| {
            CausalContext::from_dots(dots.into_keys())
        });
        LocalDelta {
            change: Change::Write { key, dot, value },
            witnessed,
        }
    }

    /// Removes every value of `key` this replica has seen; `None` when `key` is absent.
    pub(crate) fn remove(&mut self, key: &K) -> Option<LocalDelta<K, V>> {
        let (key, previous) = self.entries.remove_entry(key)?;
        Some(LocalDelta {
            change: Change::Remove { key },
            witnessed: CausalContext::from_dots(previous.into_keys()),
        })
    }

    /// Removes every key; `None` when already empty.
    pub(crate) fn clear(&mut self) -> Option<LocalDelta<K, V>> {
        if self.entries.is_empty() {
            return None;
        }
        let previous = std::mem::take(&mut self.entries);
        Some(LocalDelta {
            change: Change::Clear,
            witnessed: CausalContext::from_dots(
                previous.into_values().flat_map(BTreeMap::into_keys),
            ),
        })
    }

    /// Joins `local`, the delta of a later mutation of the kernel whose pending delta `self` is,
    /// into `self`; the result equals [`merge`](Self::merge) with `local`'s kernel.
    ///
    /// A write or removal of one key costs O(log n + dots of that key): the dots such a mutation
    /// witnesses are the dots the kernel held under that key, and a dot of this pending delta
    /// (created by a write of the kernel, so in its context ever since) can only be under that
    /// same key in the kernel (a merge never brings in a dot the context has seen; only
    /// `prune_cleanup` forgets dots, and it cleans the pending delta too). So the join leaves every other
    /// key of `self` as it is and only has to look at that key. A clear witnesses every key and
    /// takes the general merge.
    pub(crate) fn absorb(&mut self, local: LocalDelta<K, V>, join_value: impl Fn(&mut V, &V)) {
        let LocalDelta { change, witnessed } = local;
        let (key, written) = match change {
            Change::Write { key, dot, value } => (key, Some((dot, value))),
            Change::Remove { key } => (key, None),
            Change::Clear => {
                let delta = Self {
                    entries: BTreeMap::new(),
                    context: witnessed,
                };
                self.merge(&delta, join_value);
                return;
            }
        };
        // Whether the written dot was seen before this mutation (the general merge checks the
        // context as it was); then the pending context records it.
        let written_seen = written
            .as_ref()
            .is_some_and(|(dot, _)| !self.context.insert_ref(dot));
        match self.entries.get_mut(&key) {
            Some(mine) => {
                mine.retain(|dot, value| match &written {
                    Some((written_dot, written_value)) if written_dot == dot => {
                        join_value(value, written_value);
                        true
                    }
                    _ => !witnessed.contains(dot),
                });
                if let Some((dot, value)) = written
                    && !written_seen
                    && !mine.contains_key(&dot)
                {
                    mine.insert(dot, value);
                }
                if mine.is_empty() {
                    self.entries.remove(&key);
                }
            }
            None => {
                if let Some((dot, value)) = written
                    && !written_seen
                {
                    let mut dots = BTreeMap::new();
                    dots.insert(dot, value);
                    self.entries.insert(key, dots);
                }
            }
        }
        self.context.merge_owned(witnessed);
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

    /// Every incarnation with a dot in the entries or the context.
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

    /// Drops every entry and context dot of `removed`: what a "pruning performed" marker of an
    /// earlier version, which re-tagged the entries of `removed` and forgot it, asks of a stale
    /// state (today's pruning leaves dot-based values alone).
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

    /// The dots seen.
    pub(crate) fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Drops every entry under a dot of `seen` (what a remove had observed); the context keeps
    /// them, so they never come back.
    pub(crate) fn forget_covered(&mut self, seen: &CausalContext) {
        self.entries.retain(|_, dots| {
            dots.retain(|d, _| !seen.contains(d));
            !dots.is_empty()
        });
    }

    /// Records every dot of `seen` and re-tags each entry under one of them with a new dot of
    /// `node`: afterwards no entry is under a dot of `seen` and every new dot is past it.
    pub(crate) fn retag_covered(&mut self, node: &UniqueReplicaId, seen: &CausalContext) {
        self.context.merge(seen);
        for dots in self.entries.values_mut() {
            let covered: Vec<Dot> = dots.keys().filter(|d| seen.contains(d)).cloned().collect();
            for old in covered {
                if let Some(value) = dots.remove(&old) {
                    let fresh = self.context.next_dot(node);
                    dots.insert(fresh, value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crdt::PendingDelta;

    fn node(name: &str) -> UniqueReplicaId {
        UniqueReplicaId::new(name, 1)
    }

    #[test]
    fn a_write_delta_witnesses_the_replaced_dots_only() {
        let mut k: DotKernel<&str, u8> = DotKernel::default();
        k.write(&node("a"), "x", 1);
        let delta = k.write(&node("a"), "x", 2).into_kernel();
        assert_eq!(delta, {
            let mut d = DotKernel::default();
            let mut dots = BTreeMap::new();
            dots.insert(Dot::new(node("a"), 2), 2);
            d.entries.insert("x", dots);
            d.context = CausalContext::from_dots([Dot::new(node("a"), 1), Dot::new(node("a"), 2)]);
            d
        });
        // a write of another key does not claim to have seen key "x"'s dots
        let other = k.write(&node("a"), "y", 3).into_kernel();
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

    /// One step of the pending-delta simulation.
    #[derive(Debug, Clone)]
    enum Step {
        Write {
            replica: usize,
            node: usize,
            key: u8,
            value: u8,
        },
        Remove {
            replica: usize,
            key: u8,
        },
        Clear {
            replica: usize,
        },
        Merge {
            from: usize,
            to: usize,
        },
        Reset {
            replica: usize,
        },
        PruneCleanup {
            replica: usize,
            removed: usize,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0usize..3, 0usize..3, 0u8..4, any::<u8>())
                .prop_map(|(replica, node, key, value)| Step::Write { replica, node, key, value }),
            3 => (0usize..3, 0u8..4).prop_map(|(replica, key)| Step::Remove { replica, key }),
            1 => (0usize..3).prop_map(|replica| Step::Clear { replica }),
            3 => (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Merge { from, to }),
            2 => (0usize..3).prop_map(|replica| Step::Reset { replica }),
            1 => (0usize..3, 0usize..3)
                .prop_map(|(replica, removed)| Step::PruneCleanup { replica, removed }),
        ]
    }

    /// A replica's kernel with its pending delta kept two ways: incrementally, and by the
    /// general merge of every local delta (the reference).
    #[derive(Default, Clone)]
    struct Replica {
        kernel: DotKernel<u8, u8>,
        pending: PendingDelta<u8, u8>,
        reference: Option<DotKernel<u8, u8>>,
    }

    fn join(a: &mut u8, b: &u8) {
        *a = (*a).max(*b);
    }

    impl Replica {
        fn accumulate(&mut self, local: LocalDelta<u8, u8>) {
            let delta = local.clone().into_kernel();
            match self.reference.as_mut() {
                Some(reference) => reference.merge(&delta, join),
                None => self.reference = Some(delta),
            }
            self.pending.accumulate(local, join);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Joining each local delta into the pending delta incrementally gives exactly (same
        /// entries, same canonical context) what the general merge gives, however writes by
        /// several nodes, removals, clears, merges of other replicas' states, resets and
        /// cleanups of a removed node interleave.
        #[test]
        fn incremental_pending_delta_equals_the_general_merge(
            steps in prop::collection::vec(step(), 0..60),
        ) {
            let nodes = [node("a"), node("b"), node("c")];
            let mut replicas = [Replica::default(), Replica::default(), Replica::default()];
            for step in steps {
                let touched = match step {
                    Step::Write { replica, node, key, value } => {
                        let r = &mut replicas[replica];
                        let local = r.kernel.write(&nodes[node], key, value);
                        r.accumulate(local);
                        replica
                    }
                    Step::Remove { replica, key } => {
                        let r = &mut replicas[replica];
                        if let Some(local) = r.kernel.remove(&key) {
                            r.accumulate(local);
                        }
                        replica
                    }
                    Step::Clear { replica } => {
                        let r = &mut replicas[replica];
                        if let Some(local) = r.kernel.clear() {
                            r.accumulate(local);
                        }
                        replica
                    }
                    Step::Merge { from, to } => {
                        let other = replicas[from].kernel.clone();
                        replicas[to].kernel.merge(&other, join);
                        to
                    }
                    Step::Reset { replica } => {
                        replicas[replica].pending.reset();
                        replicas[replica].reference = None;
                        replica
                    }
                    Step::PruneCleanup { replica, removed } => {
                        let r = &mut replicas[replica];
                        r.kernel.prune_cleanup(&nodes[removed]);
                        if let Some(p) = r.pending.get_mut() {
                            p.prune_cleanup(&nodes[removed]);
                        }
                        if let Some(p) = r.reference.as_mut() {
                            p.prune_cleanup(&nodes[removed]);
                        }
                        replica
                    }
                };
                let r = &replicas[touched];
                prop_assert_eq!(r.pending.get(), r.reference.as_ref());
            }
        }
    }
}
