//! The set of dots a dot-based CRDT has seen.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Dot, ReplicatedData, VersionVector};
use crate::replica::UniqueReplicaId;

/// The dots a replica has seen, live or removed: a version vector for the gap-free prefix of each
/// node's dots plus a "cloud" of dots seen out of order (as in Almeida et al., *Delta State
/// Replicated Data Types*).
///
/// Full states normally have an empty cloud; deltas carry exactly the dots they witness in the
/// cloud, which is what makes applying a delta equal to merging the full state it came from.
/// The representation is canonical (the cloud never holds a dot the vector covers nor the next
/// dot of a node), so equal sets of dots compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CausalContext {
    vector: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// A context holding exactly `dots`.
    pub(crate) fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = Self {
            vector: VersionVector::new(),
            cloud: dots.into_iter().collect(),
        };
        ctx.compact();
        ctx
    }

    /// Whether `dot` has been seen.
    pub(crate) fn contains(&self, dot: &Dot) -> bool {
        self.vector.contains(dot) || self.cloud.contains(dot)
    }

    /// Records a new dot of `node` (one past the highest seen) and returns it.
    pub(crate) fn next_dot(&mut self, node: &UniqueReplicaId) -> Dot {
        let highest_in_cloud = self
            .cloud
            .iter()
            .filter(|d| d.node() == node)
            .map(Dot::counter)
            .max()
            .unwrap_or(0);
        let counter = self
            .vector
            .get(node)
            .max(highest_in_cloud)
            .saturating_add(1);
        let dot = Dot::new(node.clone(), counter);
        self.insert(dot.clone());
        dot
    }

    /// Records `dot` as seen.
    pub(crate) fn insert(&mut self, dot: Dot) {
        self.cloud.insert(dot);
        self.compact();
    }

    /// Joins `other` into `self`.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.vector.merge(&other.vector);
        self.cloud.extend(other.cloud.iter().cloned());
        self.compact();
    }

    /// Every node with a seen dot.
    pub(crate) fn nodes(&self) -> BTreeSet<UniqueReplicaId> {
        let mut nodes: BTreeSet<UniqueReplicaId> =
            self.vector.iter().map(|(n, _)| n.clone()).collect();
        nodes.extend(self.cloud.iter().map(|d| d.node().clone()));
        nodes
    }

    /// Whether any dot of `node` has been seen.
    pub(crate) fn mentions(&self, node: &UniqueReplicaId) -> bool {
        self.vector.get(node) > 0 || self.cloud.iter().any(|d| d.node() == node)
    }

    /// Forgets every dot of `node`.
    pub(crate) fn remove_node(&mut self, node: &UniqueReplicaId) {
        self.vector.remove(node);
        self.cloud.retain(|d| d.node() != node);
    }

    /// Moves cloud dots that extend the vector into it and drops the ones it covers. The cloud is
    /// ordered by node and then counter, so one pass suffices.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for dot in cloud {
            let seen = self.vector.get(dot.node());
            if dot.counter() == seen.saturating_add(1) {
                self.vector.observe(dot.node(), dot.counter());
            } else if dot.counter() > seen {
                self.cloud.insert(dot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        assert_eq!(ctx.nodes().len(), 1);
    }
}
