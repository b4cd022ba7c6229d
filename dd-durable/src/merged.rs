//! What writes with no caller to answer met: values merged with a conflicting writer's and keys
//! found deleted by a background write (write-behind, or the retry of a failed write), or by a
//! synchronous call that failed. They are reported with the next call of the replica.
//!
//! The states that call hands over were made before the replicator saw these merges, so each
//! merge is merged into the state of its key in that call before it is written (after the
//! entries of every incarnation the call's pruning markers say was pruned are dropped from the
//! merge: a pruned incarnation never comes back, and is never counted twice). From the report on,
//! the replicator's durable writer keeps the merge until the replica adopted it. Nothing is kept
//! here once it was reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use dd_core::ReplicaId;
use dd_core::data::ErasedData;
use dd_core::durable::{DurableValue, PrunedIncarnations, marked_key};

use crate::lock;

/// What is waiting to be reported for one replica.
#[derive(Debug, Default)]
pub(crate) struct Unreported {
    pub(crate) merged: BTreeMap<String, Box<dyn ErasedData>>,
    pub(crate) deleted: BTreeSet<String>,
}

impl Unreported {
    fn is_empty(&self) -> bool {
        self.merged.is_empty() && self.deleted.is_empty()
    }

    fn add_merged(&mut self, key: &str, value: Box<dyn ErasedData>) {
        self.deleted.remove(key);
        let value = match self.merged.remove(key) {
            Some(mut old) => match old.merge_erased(value.as_ref()) {
                Ok(()) => old,
                Err(_) => value,
            },
            None => value,
        };
        self.merged.insert(key.to_owned(), value);
    }

    fn add_deleted(&mut self, key: &str) {
        self.merged.remove(key);
        self.deleted.insert(key.to_owned());
    }

    /// Merges every merge into the state of its key among `entries`, after dropping from it the
    /// entries of the incarnations the key's markers among `entries` say were pruned.
    pub(crate) fn merge_into(&mut self, entries: &mut [(String, DurableValue)]) {
        if self.merged.is_empty() {
            return;
        }
        let markers: HashMap<String, PrunedIncarnations> = entries
            .iter()
            .filter_map(|(k, v)| match v {
                DurableValue::Data(d) => Some((
                    marked_key(k)?.to_owned(),
                    d.downcast_ref::<PrunedIncarnations>()?.clone(),
                )),
                DurableValue::Deleted => None,
            })
            .collect();
        for (key, value) in entries.iter_mut() {
            let (Some(merge), DurableValue::Data(state)) = (self.merged.get_mut(key), value) else {
                continue;
            };
            if let Some(pruning) = markers.get(key.as_str()) {
                pruning.apply_to(merge.as_mut());
            }
            let mut merged = state.clone_boxed();
            if merged.merge_erased(merge.as_ref()).is_ok() {
                *state = merged;
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct UnreportedMerges {
    map: Mutex<HashMap<ReplicaId, Unreported>>,
}

impl UnreportedMerges {
    /// Remembers a merged value of `key` to report.
    pub(crate) fn merged(&self, replica: &ReplicaId, key: &str, value: Box<dyn ErasedData>) {
        lock(&self.map)
            .entry(replica.clone())
            .or_default()
            .add_merged(key, value);
    }

    /// Remembers that `key` was found deleted in the store, to report.
    pub(crate) fn deleted(&self, replica: &ReplicaId, key: &str) {
        lock(&self.map)
            .entry(replica.clone())
            .or_default()
            .add_deleted(key);
    }

    /// Takes what is waiting to be reported for `replica`.
    pub(crate) fn take(&self, replica: &ReplicaId) -> Unreported {
        lock(&self.map).remove(replica).unwrap_or_default()
    }

    /// Puts back what was taken and could not be reported (the call failed); what was
    /// remembered meanwhile is newer and kept.
    pub(crate) fn put_back(&self, replica: &ReplicaId, taken: Unreported) {
        if taken.is_empty() {
            return;
        }
        let mut map = lock(&self.map);
        let now = map.entry(replica.clone()).or_default();
        for key in taken.deleted {
            if !now.merged.contains_key(&key) {
                now.deleted.insert(key);
            }
        }
        for (key, value) in taken.merged {
            if now.deleted.contains(&key) {
                continue;
            }
            let value = match now.merged.remove(&key) {
                Some(newer) => {
                    let mut merged = value;
                    match merged.merge_erased(newer.as_ref()) {
                        Ok(()) => merged,
                        Err(_) => newer,
                    }
                }
                None => value,
            };
            now.merged.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dd_core::UniqueReplicaId;
    use dd_core::crdt::GCounter;
    use dd_core::durable::markers_key;

    fn counter(slots: &[(u64, u64)]) -> GCounter {
        let mut c = GCounter::new();
        for (incarnation, n) in slots {
            c.increment(&UniqueReplicaId::new("r", *incarnation), *n)
                .unwrap();
        }
        c
    }

    fn data(c: GCounter) -> DurableValue {
        DurableValue::Data(Box::new(c))
    }

    fn as_counter(v: &DurableValue) -> &GCounter {
        match v {
            DurableValue::Data(d) => d.downcast_ref::<GCounter>().unwrap(),
            DurableValue::Deleted => panic!("deleted"),
        }
    }

    #[test]
    fn a_merge_is_reported_once_and_merged_into_the_next_call() {
        let merges = UnreportedMerges::default();
        let r = ReplicaId::new("r");
        merges.merged(&r, "k", Box::new(counter(&[(1, 3), (2, 5)])));
        let mut taken = merges.take(&r);
        let mut entries = vec![("k".to_owned(), data(counter(&[(2, 6)])))];
        taken.merge_into(&mut entries);
        assert_eq!(as_counter(&entries[0].1), &counter(&[(1, 3), (2, 6)]));
        assert_eq!(taken.merged.len(), 1);
        assert!(merges.take(&r).is_empty(), "reported once");
    }

    #[test]
    fn pruning_markers_of_the_call_drop_the_pruned_entries_from_the_merge() {
        let merges = UnreportedMerges::default();
        let r = ReplicaId::new("r");
        // Merged before incarnation 2 was pruned (collapsed into incarnation 1: 15 = 10 + 5).
        merges.merged(&r, "k", Box::new(counter(&[(1, 10), (2, 5)])));
        let mut pruning = PrunedIncarnations::default();
        pruning.performed.insert(
            UniqueReplicaId::new("r", 2),
            Some(UniqueReplicaId::new("r", 1)),
        );
        let mut entries = vec![
            (markers_key("k"), DurableValue::Data(Box::new(pruning))),
            ("k".to_owned(), data(counter(&[(1, 15)]))),
        ];
        merges.take(&r).merge_into(&mut entries);
        assert_eq!(as_counter(&entries[1].1), &counter(&[(1, 15)]));
    }

    #[test]
    fn what_a_failed_call_took_is_put_back_and_a_deletion_wins() {
        let merges = UnreportedMerges::default();
        let r = ReplicaId::new("r");
        merges.merged(&r, "k", Box::new(counter(&[(1, 3)])));
        merges.merged(&r, "gone", Box::new(counter(&[(1, 3)])));
        let taken = merges.take(&r);
        merges.deleted(&r, "gone");
        merges.merged(&r, "k", Box::new(counter(&[(2, 1)])));
        merges.put_back(&r, taken);
        let now = merges.take(&r);
        assert!(now.merged["k"].eq_erased(&counter(&[(1, 3), (2, 1)])));
        assert!(!now.merged.contains_key("gone"));
        assert_eq!(now.deleted, BTreeSet::from(["gone".to_owned()]));
    }
}
