//! Grow-only set.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DeltaReplicatedData, Element, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A grow-only set: elements can be added, never removed; merge is the union.
///
/// It records no replica identity, so pruning has nothing to do.
///
/// ```
/// use dd_core::crdt::GSet;
/// use dd_core::ReplicatedData;
/// let mut x = GSet::new();
/// x.add("apple".to_string());
/// let mut y = GSet::new();
/// y.add("pear".to_string());
/// x.merge(&y);
/// assert!(x.contains(&"pear".to_string()));
/// assert_eq!(x.len(), 2);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct GSet<T: Ord> {
    elements: BTreeSet<T>,
    #[serde(skip)]
    delta: Option<BTreeSet<T>>,
}

impl<T: Ord> Default for GSet<T> {
    fn default() -> Self {
        Self {
            elements: BTreeSet::new(),
            delta: None,
        }
    }
}

impl<T: Element> GSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `element`.
    pub fn add(&mut self, element: T) {
        if self.elements.insert(element.clone()) {
            self.delta.get_or_insert_with(BTreeSet::new).insert(element);
        }
    }

    /// Whether `element` was added.
    pub fn contains(&self, element: &T) -> bool {
        self.elements.contains(element)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.elements.iter()
    }

    /// The elements, as a set.
    pub fn elements(&self) -> &BTreeSet<T> {
        &self.elements
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

impl<T: Element> FromIterator<T> for GSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = Self::new();
        for e in iter {
            set.add(e);
        }
        set
    }
}

/// Equality of the replicated state; the pending delta is not part of it.
impl<T: Ord> PartialEq for GSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.elements == other.elements
    }
}

impl<T: Ord> Eq for GSet<T> {}

impl<T: TypeName + Ord> TypeName for GSet<T> {
    fn type_name() -> String {
        format!("GSet<{}>", T::type_name())
    }
}

impl<T: Element> ReplicatedData for GSet<T> {
    fn merge(&mut self, other: &Self) {
        self.elements.extend(other.elements.iter().cloned());
    }
}

impl<T: Element> DeltaReplicatedData for GSet<T> {
    type Delta = GSet<T>;

    fn delta(&self) -> Option<GSet<T>> {
        self.delta.as_ref().map(|elements| GSet {
            elements: elements.clone(),
            delta: None,
        })
    }

    fn reset_delta(&mut self) {
        self.delta = None;
    }

    fn merge_delta(&mut self, delta: &GSet<T>) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }
}

/// A grow-only set records no replica identity: nothing to prune.
impl<T: Element> RemovedNodePruning for GSet<T> {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }

    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }

    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}

    fn prune_cleanup(&mut self, _removed: &UniqueReplicaId) {}
}
