//! The delta sequence numbers of one key, compact.
//!
//! A key holds one `(incarnation, seq)` pair per incarnation that sent it a delta: usually one
//! to a handful. A `BTreeMap` of them costs a whole B-tree node (about 450 bytes) for the first
//! pair; this sorted list costs the pairs alone, and the usual single pair (the incarnation that
//! writes the key) is held inline, without an allocation. The order (by incarnation) is the one
//! a `BTreeMap` iterates in, so digests and the wire form are unchanged.

use std::fmt;

use crate::replica::UniqueReplicaId;

/// One incarnation's sequence number.
type Pair = (UniqueReplicaId, u64);

/// The highest delta sequence number received (or sent) per incarnation, sorted by incarnation.
#[derive(Clone, Default)]
pub(crate) struct DeltaVersions(Repr);

/// Zero or one pair inline, two or more in a vector (never fewer: the representation of a set
/// of pairs is unique).
#[derive(Clone)]
enum Repr {
    Inline(Option<Pair>),
    Heap(Vec<Pair>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Inline(None)
    }
}

impl DeltaVersions {
    fn as_slice(&self) -> &[Pair] {
        match &self.0 {
            Repr::Inline(None) => &[],
            Repr::Inline(Some(p)) => std::slice::from_ref(p),
            Repr::Heap(v) => v,
        }
    }

    fn position(&self, origin: &UniqueReplicaId) -> Result<usize, usize> {
        self.as_slice().binary_search_by(|(o, _)| o.cmp(origin))
    }

    fn seq_mut(&mut self, i: usize) -> Option<&mut u64> {
        match &mut self.0 {
            Repr::Inline(p) => p.as_mut().filter(|_| i == 0).map(|(_, s)| s),
            Repr::Heap(v) => v.get_mut(i).map(|(_, s)| s),
        }
    }

    /// The sequence number of `origin`, if it has one.
    pub(crate) fn get(&self, origin: &UniqueReplicaId) -> Option<&u64> {
        let i = self.position(origin).ok()?;
        self.as_slice().get(i).map(|(_, s)| s)
    }

    /// Sets the sequence number of `origin` to `seq`.
    pub(crate) fn insert(&mut self, origin: UniqueReplicaId, seq: u64) {
        match self.position(&origin) {
            Ok(i) => {
                if let Some(s) = self.seq_mut(i) {
                    *s = seq;
                }
            }
            Err(i) => {
                self.0 = match std::mem::take(&mut self.0) {
                    Repr::Inline(None) => Repr::Inline(Some((origin, seq))),
                    Repr::Inline(Some(first)) => {
                        let mut v = Vec::with_capacity(2);
                        v.push(first);
                        v.insert(i, (origin, seq));
                        Repr::Heap(v)
                    }
                    Repr::Heap(mut v) => {
                        // One slot at a time: a key rarely hears from more than a few
                        // incarnations.
                        v.reserve_exact(1);
                        v.insert(i, (origin, seq));
                        Repr::Heap(v)
                    }
                };
            }
        }
    }

    /// Raises the sequence number of `origin` to at least `seq`.
    pub(crate) fn raise(&mut self, origin: UniqueReplicaId, seq: u64) {
        match self.position(&origin) {
            Ok(i) => {
                if let Some(s) = self.seq_mut(i) {
                    *s = (*s).max(seq);
                }
            }
            Err(_) => self.insert(origin, seq),
        }
    }

    /// Drops the sequence number of `origin`.
    pub(crate) fn remove(&mut self, origin: &UniqueReplicaId) {
        let Ok(i) = self.position(origin) else {
            return;
        };
        self.0 = match std::mem::take(&mut self.0) {
            Repr::Inline(_) => Repr::Inline(None),
            Repr::Heap(mut v) => {
                v.remove(i);
                if v.len() == 1 {
                    Repr::Inline(v.pop())
                } else {
                    Repr::Heap(v)
                }
            }
        };
    }

    /// Every `(incarnation, seq)` pair, by incarnation.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&UniqueReplicaId, &u64)> {
        self.as_slice().iter().map(|(o, s)| (o, s))
    }
}

impl PartialEq for DeltaVersions {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for DeltaVersions {}

impl fmt::Debug for DeltaVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeltaVersions")
            .field(&self.as_slice())
            .finish()
    }
}

impl FromIterator<(UniqueReplicaId, u64)> for DeltaVersions {
    /// Collects pairs; a repeated incarnation keeps its last sequence number (as a map would).
    fn from_iter<I: IntoIterator<Item = (UniqueReplicaId, u64)>>(iter: I) -> Self {
        let mut v = Self::default();
        for (origin, seq) in iter {
            v.insert(origin, seq);
        }
        v
    }
}

impl IntoIterator for DeltaVersions {
    type Item = (UniqueReplicaId, u64);
    type IntoIter = std::vec::IntoIter<(UniqueReplicaId, u64)>;

    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::Inline(p) => p.into_iter().collect::<Vec<_>>().into_iter(),
            Repr::Heap(v) => v.into_iter(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_as_a_sorted_map() {
        let ids: Vec<UniqueReplicaId> = [("b", 2), ("a", 9), ("c", 1), ("a", 1)]
            .into_iter()
            .map(|(n, i)| UniqueReplicaId::new(n, i))
            .collect();
        let mut v = DeltaVersions::default();
        let mut m = BTreeMap::new();
        for (seq, id) in ids.iter().enumerate() {
            v.insert(id.clone(), seq as u64 + 10);
            m.insert(id.clone(), seq as u64 + 10);
        }
        v.raise(ids[0].clone(), 5);
        v.raise(ids[1].clone(), 50);
        *m.get_mut(&ids[1]).unwrap() = 50;
        let pairs: Vec<_> = v.iter().map(|(o, s)| (o.clone(), *s)).collect();
        let expected: Vec<_> = m.iter().map(|(o, s)| (o.clone(), *s)).collect();
        assert_eq!(pairs, expected);
        assert_eq!(v.get(&ids[2]), Some(&12));
        v.remove(&ids[2]);
        m.remove(&ids[2]);
        assert_eq!(v.get(&ids[2]), None);
        assert_eq!(
            v.clone().into_iter().collect::<Vec<_>>(),
            m.into_iter().collect::<Vec<_>>()
        );
        let collected: DeltaVersions = [(ids[0].clone(), 1), (ids[0].clone(), 3)]
            .into_iter()
            .collect();
        assert_eq!(collected.iter().count(), 1);
        assert_eq!(collected.get(&ids[0]), Some(&3));
    }

    #[test]
    fn one_pair_is_inline_and_equal_sets_compare_equal() {
        let (a, b) = (UniqueReplicaId::new("a", 1), UniqueReplicaId::new("b", 1));
        let mut one = DeltaVersions::default();
        one.insert(a.clone(), 3);
        assert!(matches!(one.0, Repr::Inline(Some(_))));
        one.raise(a.clone(), 2);
        assert_eq!(one.get(&a), Some(&3));
        // Two pairs and back to one: the same set, the same (inline) representation.
        let mut two = one.clone();
        two.insert(b.clone(), 7);
        assert!(matches!(two.0, Repr::Heap(_)));
        assert_eq!(
            two.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>(),
            [a.clone(), b.clone()]
        );
        assert_ne!(one, two);
        two.remove(&b);
        assert!(matches!(two.0, Repr::Inline(Some(_))));
        assert_eq!(one, two);
        assert_eq!(
            format!("{one:?}"),
            format!("DeltaVersions({:?})", [(a.clone(), 3u64)])
        );
        two.remove(&a);
        assert_eq!(two, DeltaVersions::default());
        assert_eq!(two.into_iter().count(), 0);
        // No bigger than the vector it replaces.
        assert!(std::mem::size_of::<DeltaVersions>() <= std::mem::size_of::<Vec<Pair>>());
    }
}
