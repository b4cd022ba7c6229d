//! The delta sequence numbers of one key, compact.
//!
//! A key holds one `(incarnation, seq)` pair per incarnation that sent it a delta: usually one
//! to a handful. A `BTreeMap` of them costs a whole B-tree node (about 450 bytes) for the first
//! pair; this sorted vector, grown one slot at a time, costs the pairs alone. The order (by
//! incarnation) is the one a `BTreeMap` iterates in, so digests and the wire form are unchanged.

use crate::replica::UniqueReplicaId;

/// The highest delta sequence number received (or sent) per incarnation, sorted by incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DeltaVersions(Vec<(UniqueReplicaId, u64)>);

impl DeltaVersions {
    fn position(&self, origin: &UniqueReplicaId) -> Result<usize, usize> {
        self.0.binary_search_by(|(o, _)| o.cmp(origin))
    }

    /// The sequence number of `origin`, if it has one.
    pub(crate) fn get(&self, origin: &UniqueReplicaId) -> Option<&u64> {
        self.position(origin).ok().map(|i| &self.0[i].1)
    }

    /// Sets the sequence number of `origin` to `seq`.
    pub(crate) fn insert(&mut self, origin: UniqueReplicaId, seq: u64) {
        match self.position(&origin) {
            Ok(i) => self.0[i].1 = seq,
            Err(i) => {
                // One slot at a time: a key rarely hears from more than a few incarnations.
                self.0.reserve_exact(1);
                self.0.insert(i, (origin, seq));
            }
        }
    }

    /// Raises the sequence number of `origin` to at least `seq`.
    pub(crate) fn raise(&mut self, origin: UniqueReplicaId, seq: u64) {
        match self.position(&origin) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(seq),
            Err(_) => self.insert(origin, seq),
        }
    }

    /// Drops the sequence number of `origin`.
    pub(crate) fn remove(&mut self, origin: &UniqueReplicaId) {
        if let Ok(i) = self.position(origin) {
            self.0.remove(i);
            if self.0.is_empty() {
                self.0 = Vec::new();
            }
        }
    }

    /// Every `(incarnation, seq)` pair, by incarnation.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&UniqueReplicaId, &u64)> {
        self.0.iter().map(|(o, s)| (o, s))
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
        self.0.into_iter()
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
}
