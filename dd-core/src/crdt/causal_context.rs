//! The set of dots a dot-based CRDT has seen.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Dot, VersionVector};
use crate::replica::UniqueReplicaId;

/// The dots a replica has seen, live or removed: a version vector for the gap-free prefix of each
/// node's dots plus a "cloud" of dots seen out of order (as in Almeida et al., *Delta State
/// Replicated Data Types*).
///
/// Full states normally have an empty cloud; deltas carry exactly the dots they witness in the
/// cloud, which is what makes applying a delta equal to merging the full state it came from.
/// The representation is canonical (the cloud never holds a dot the vector covers nor the next
/// dot of a node), so equal sets of dots compare equal. Every operation keeps it canonical
/// incrementally: recording one dot costs O(log n), whatever the size of the cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CausalContext {
    vector: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// A context holding exactly `dots`.
    pub(crate) fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = Self::default();
        for dot in dots {
            ctx.insert(dot);
        }
        ctx
    }

    /// Whether `dot` has been seen.
    pub(crate) fn contains(&self, dot: &Dot) -> bool {
        self.vector.contains(dot) || self.cloud.contains(dot)
    }

    /// The cloud dots of `node`, in counter order.
    fn cloud_of<'a>(&'a self, node: &'a UniqueReplicaId) -> impl Iterator<Item = &'a Dot> + 'a {
        let first = (!self.cloud.is_empty()).then(|| Dot::new(node.clone(), 0));
        first
            .into_iter()
            .flat_map(move |first| self.cloud.range(first..))
            .take_while(move |d| d.node() == node)
    }

    /// Records a new dot of `node` (one past the highest seen) and returns it.
    pub(crate) fn next_dot(&mut self, node: &UniqueReplicaId) -> Dot {
        self.next_dot_reusing(node, None)
    }

    /// [`next_dot`](Self::next_dot), building the dot with `reuse` when it is `node` (a copy
    /// of it the caller no longer needs) instead of a new copy of `node`.
    pub(crate) fn next_dot_reusing(
        &mut self,
        node: &UniqueReplicaId,
        reuse: Option<UniqueReplicaId>,
    ) -> Dot {
        let owned = || match reuse {
            Some(r) if r == *node => r,
            _ => node.clone(),
        };
        if self.cloud.is_empty() {
            // The usual case, in two lookups: the vector alone holds every dot seen.
            let counter = self.vector.get(node).saturating_add(1);
            self.vector.observe(node, counter);
            return Dot::new(owned(), counter);
        }
        let highest_in_cloud = self.cloud_of(node).last().map_or(0, Dot::counter);
        let counter = self
            .vector
            .get(node)
            .max(highest_in_cloud)
            .saturating_add(1);
        let dot = Dot::new(owned(), counter);
        let _new = self.insert_ref(&dot);
        dot
    }

    /// Records `dot` as seen.
    pub(crate) fn insert(&mut self, dot: Dot) {
        match self.place(&dot) {
            Place::Covered => {}
            Place::Extends => self.extend_vector(dot.node(), dot.counter()),
            Place::Cloud => {
                // A dot already in the cloud is simply not inserted again.
                self.cloud.insert(dot);
            }
        }
    }

    /// Records `dot` as seen, cloning it only if it must be kept in the cloud; returns whether
    /// it was new (not seen before).
    pub(crate) fn insert_ref(&mut self, dot: &Dot) -> bool {
        match self.place(dot) {
            Place::Covered => false,
            Place::Extends => {
                self.extend_vector(dot.node(), dot.counter());
                true
            }
            Place::Cloud => {
                let new = !self.cloud.contains(dot);
                if new {
                    self.cloud.insert(dot.clone());
                }
                new
            }
        }
    }

    /// Where `dot` belongs in the canonical representation, judged by the vector alone.
    fn place(&self, dot: &Dot) -> Place {
        let seen = self.vector.get(dot.node());
        if dot.counter() <= seen {
            Place::Covered
        } else if dot.counter() == seen + 1 {
            Place::Extends
        } else {
            Place::Cloud
        }
    }

    /// Raises the vector entry of `node` to at least `counter`, then restores the canonical form
    /// for `node`: drops the cloud dots the vector now covers and moves the ones that continue it
    /// into it. Costs O(log n) per cloud dot of `node` dropped or moved.
    fn extend_vector(&mut self, node: &UniqueReplicaId, counter: u64) {
        self.vector.observe(node, counter);
        if self.cloud.is_empty() {
            return;
        }
        let mut seen = self.vector.get(node);
        let settled: Vec<Dot> = self
            .cloud_of(node)
            .take_while(|d| {
                if d.counter() <= seen {
                    true
                } else if d.counter() == seen + 1 {
                    seen += 1;
                    true
                } else {
                    false
                }
            })
            .cloned()
            .collect();
        for dot in &settled {
            self.cloud.remove(dot);
        }
        self.vector.observe(node, seen);
    }

    /// Joins `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.merge_vector(&other.vector);
        for dot in &other.cloud {
            let _new = self.insert_ref(dot);
        }
    }

    /// Joins `other` into `self`, taking its dots instead of cloning them.
    pub(crate) fn merge_owned(&mut self, other: Self) {
        self.merge_vector(&other.vector);
        for dot in other.cloud {
            self.insert(dot);
        }
    }

    fn merge_vector(&mut self, other: &VersionVector) {
        for (node, counter) in other.iter() {
            if counter > self.vector.get(node) {
                self.extend_vector(node, counter);
            }
        }
    }

    /// Every incarnation with a dot in this context.
    pub(crate) fn nodes(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes: BTreeSet<UniqueReplicaId> =
            self.vector.iter().map(|(n, _)| n.clone()).collect();
        nodes.extend(self.cloud.iter().map(|d| d.node().clone()));
        nodes
    }

    /// Whether any dot of `node` has been seen.
    pub(crate) fn mentions(&self, node: &UniqueReplicaId) -> bool {
        self.vector.get(node) > 0 || self.cloud_of(node).next().is_some()
    }

    /// Forgets every dot of `node`.
    pub(crate) fn remove_node(&mut self, node: &UniqueReplicaId) {
        self.vector.remove(node);
        self.cloud.retain(|d| d.node() != node);
    }
}

/// Where a dot goes in a canonical [`CausalContext`].
enum Place {
    /// Covered by the vector.
    Covered,
    /// The next dot of its node: extends the vector.
    Extends,
    /// Beyond the next dot of its node: belongs in the cloud (it may be there already).
    Cloud,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn dot(name: &str, counter: u64) -> Dot {
        Dot::new(UniqueReplicaId::new(name, 1), counter)
    }

    #[test]
    fn dots_in_order_compact_into_the_vector() {
        let ctx = CausalContext::from_dots([dot("a", 2), dot("a", 1), dot("a", 3), dot("b", 2)]);
        assert_eq!(ctx.vector.get(&UniqueReplicaId::new("a", 1)), 3);
        // b:1 is missing, so b:2 stays in the cloud
        assert_eq!(ctx.cloud.iter().cloned().collect::<Vec<_>>(), [dot("b", 2)]);
        assert!(ctx.contains(&dot("a", 1)) && ctx.contains(&dot("b", 2)));
        assert!(!ctx.contains(&dot("b", 1)));
    }

    #[test]
    fn filling_a_gap_compacts_and_next_dot_skips_cloud_dots() {
        let b = UniqueReplicaId::new("b", 1);
        let mut ctx = CausalContext::from_dots([dot("b", 3)]);
        assert_eq!(ctx.next_dot(&b), dot("b", 4));
        ctx.merge(&CausalContext::from_dots([dot("b", 1), dot("b", 2)]));
        assert_eq!(ctx.vector.get(&b), 4);
        assert!(ctx.cloud.is_empty());
        // equal sets of dots have equal representations
        assert_eq!(ctx, CausalContext::from_dots((1..=4).map(|i| dot("b", i))));
    }

    #[test]
    fn removing_a_node_forgets_all_its_dots() {
        let a = UniqueReplicaId::new("a", 1);
        let mut ctx = CausalContext::from_dots([dot("a", 1), dot("a", 5), dot("b", 1)]);
        assert!(ctx.mentions(&a));
        ctx.remove_node(&a);
        assert!(!ctx.mentions(&a));
        assert!(ctx.mentions(&UniqueReplicaId::new("b", 1)));
    }

    /// The canonical context of a set of dots, computed from scratch.
    fn canonical(dots: &BTreeSet<Dot>) -> CausalContext {
        let mut vector = VersionVector::new();
        for dot in dots {
            if dot.counter() == vector.get(dot.node()) + 1 {
                vector.observe(dot.node(), dot.counter());
            }
        }
        let cloud = dots
            .iter()
            .filter(|d| !vector.contains(d))
            .cloned()
            .collect();
        CausalContext { vector, cloud }
    }

    fn arb_dots() -> impl Strategy<Value = Vec<Dot>> {
        prop::collection::vec(
            (prop::sample::select(vec!["a", "b", "c"]), 1u64..12).prop_map(|(n, c)| dot(n, c)),
            0..24,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Inserting dots one by one, merging contexts (borrowed or owned) and drawing new dots
        /// keep the canonical form of the set of dots seen, in any order.
        #[test]
        fn incremental_operations_stay_canonical(
            first in arb_dots(),
            second in arb_dots(),
            fresh in prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..4),
        ) {
            let mut all = BTreeSet::new();
            let mut ctx = CausalContext::default();
            for d in &first {
                ctx.insert(d.clone());
                all.insert(d.clone());
                prop_assert_eq!(&ctx, &canonical(&all));
            }
            let other = CausalContext::from_dots(second.iter().cloned());
            all.extend(second.iter().cloned());
            let mut borrowed = ctx.clone();
            borrowed.merge(&other);
            prop_assert_eq!(&borrowed, &canonical(&all));
            let mut owned = other.clone();
            owned.merge_owned(ctx.clone());
            prop_assert_eq!(&owned, &canonical(&all));
            for name in fresh {
                let node = UniqueReplicaId::new(name, 1);
                let highest = all.iter().filter(|d| d.node() == &node).map(Dot::counter).max();
                let next = owned.next_dot(&node);
                prop_assert_eq!(next.counter(), highest.unwrap_or(0) + 1);
                all.insert(next);
                prop_assert_eq!(&owned, &canonical(&all));
            }
            for d in &all {
                prop_assert!(owned.contains(d));
            }
        }
    }
}
