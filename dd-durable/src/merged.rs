//! Values merged from a conflicting writer that the replicator has not adopted yet.
//!
//! When a write conflicts, the stored value and ours are merged and the merge written; the merge
//! reaches the replicator in a [`StoreReport`](dd_core::durable::StoreReport) (of the same call in
//! sync mode, of the next call otherwise), and the replicator adopts it asynchronously. Until a
//! value the replicator stores includes the merge, every write of that key merges it in again, so
//! that a value queued before the adoption cannot drop the other writer's updates.
//!
//! A remembered merge predates any pruning performed after it: every later write brings its
//! key's "pruning performed" markers, and the entries of a pruned incarnation are dropped from
//! the remembered merge before it is merged in, so a pruned incarnation never comes back (and is
//! never collapsed, and so counted, twice).
//!
//! Keys the store found deleted by another writer are remembered likewise until they are handed
//! out to the replicator, which adopts the tombstone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use dd_core::ReplicaId;
use dd_core::data::ErasedData;
use dd_core::durable::PrunedIncarnations;

use crate::lock;

#[derive(Debug)]
struct Unadopted {
    value: Box<dyn ErasedData>,
    handed_out: bool,
}

#[derive(Debug, Default)]
pub(crate) struct UnadoptedMerges {
    map: Mutex<HashMap<ReplicaId, BTreeMap<String, Unadopted>>>,
    deleted: Mutex<HashMap<ReplicaId, BTreeSet<String>>>,
}

impl UnadoptedMerges {
    /// Remembers a merged value to merge into later writes of `key` until the replicator's value
    /// includes it, and to hand out unless `handed_out` (it was returned to the replicator
    /// already).
    pub(crate) fn remember(
        &self,
        replica: &ReplicaId,
        key: &str,
        value: Box<dyn ErasedData>,
        handed_out: bool,
    ) {
        let mut map = lock(&self.map);
        let entries = map.entry(replica.clone()).or_default();
        let value = match entries.remove(key) {
            Some(mut old) => match old.value.merge_erased(value.as_ref()) {
                Ok(()) => old.value,
                Err(_) => value,
            },
            None => value,
        };
        entries.insert(key.to_owned(), Unadopted { value, handed_out });
    }

    /// Drops what is remembered for `key` (it was deleted).
    pub(crate) fn forget(&self, replica: &ReplicaId, key: &str) {
        if let Some(entries) = lock(&self.map).get_mut(replica) {
            entries.remove(key);
        }
    }

    /// Remembers that `key` was found deleted in the store, to hand out to the replicator.
    pub(crate) fn remember_deleted(&self, replica: &ReplicaId, key: &str) {
        self.forget(replica, key);
        lock(&self.deleted)
            .entry(replica.clone())
            .or_default()
            .insert(key.to_owned());
    }

    /// The keys of `replica` found deleted and not handed out before; forgotten now.
    pub(crate) fn hand_out_deleted(&self, replica: &ReplicaId) -> Vec<String> {
        lock(&self.deleted)
            .remove(replica)
            .map(|keys| keys.into_iter().collect())
            .unwrap_or_default()
    }

    /// The merged values of `replica` not handed out before, now marked as handed out.
    pub(crate) fn hand_out(&self, replica: &ReplicaId) -> Vec<(String, Box<dyn ErasedData>)> {
        let mut map = lock(&self.map);
        let Some(entries) = map.get_mut(replica) else {
            return Vec::new();
        };
        entries
            .iter_mut()
            .filter(|(_, u)| !u.handed_out)
            .map(|(k, u)| {
                u.handed_out = true;
                (k.clone(), u.value.clone_boxed())
            })
            .collect()
    }

    /// `value` with the remembered merge of `key` merged in, without the entries of any
    /// incarnation `pruning` (the markers `value` is written with) says was pruned. Once `value`
    /// already includes it, the replicator has adopted it and it is forgotten.
    pub(crate) fn merge_into(
        &self,
        replica: &ReplicaId,
        key: &str,
        value: &dyn ErasedData,
        pruning: Option<&PrunedIncarnations>,
    ) -> Option<Box<dyn ErasedData>> {
        let mut map = lock(&self.map);
        let entries = map.get_mut(replica)?;
        let unadopted = entries.get_mut(key)?;
        if let Some(pruning) = pruning {
            // Pruned after the merge: its entries of the pruned incarnations are counted in the
            // collapsed value already.
            pruning.apply_to(unadopted.value.as_mut());
        }
        let mut merged = value.clone_boxed();
        if merged.merge_erased(unadopted.value.as_ref()).is_err() {
            // Another type now lives under this key: the old merge no longer applies.
            entries.remove(key);
            return None;
        }
        if merged.eq_erased(value) {
            entries.remove(key);
            return None;
        }
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use dd_core::UniqueReplicaId;
    use dd_core::crdt::GCounter;

    fn counter(slots: &[(u64, u64)]) -> GCounter {
        let mut c = GCounter::new();
        for (incarnation, n) in slots {
            c.increment(&UniqueReplicaId::new("r", *incarnation), *n)
                .unwrap();
        }
        c
    }

    #[test]
    fn merge_is_applied_until_adopted_and_handed_out_once() {
        let merges = UnadoptedMerges::default();
        let r = ReplicaId::new("r");
        merges.remember(&r, "k", Box::new(counter(&[(1, 3), (2, 5)])), false);
        let out = merges.hand_out(&r);
        assert_eq!(out.len(), 1);
        assert!(merges.hand_out(&r).is_empty());
        // A value without the merge gets it merged in.
        let stale = counter(&[(2, 6)]);
        let merged = merges.merge_into(&r, "k", &stale, None).unwrap();
        assert!(merged.eq_erased(&counter(&[(1, 3), (2, 6)])));
        // A value that includes it means it was adopted: forgotten.
        assert!(merges.merge_into(&r, "k", merged.as_ref(), None).is_none());
        assert!(merges.merge_into(&r, "k", &stale, None).is_none());
    }

    #[test]
    fn pruning_after_the_merge_drops_the_pruned_entries_from_it() {
        let merges = UnadoptedMerges::default();
        let r = ReplicaId::new("r");
        // Merged before incarnation 2 was pruned (collapsed into incarnation 1: 15 = 10 + 5).
        merges.remember(&r, "k", Box::new(counter(&[(1, 10), (2, 5)])), true);
        let mut pruning = PrunedIncarnations::default();
        pruning.performed.insert(
            UniqueReplicaId::new("r", 2),
            Some(UniqueReplicaId::new("r", 1)),
        );
        let collapsed = counter(&[(1, 15)]);
        assert!(
            merges
                .merge_into(&r, "k", &collapsed, Some(&pruning))
                .is_none(),
            "the collapsed value includes the merge once the pruned slot is dropped"
        );
    }

    #[test]
    fn deleted_keys_are_handed_out_once() {
        let merges = UnadoptedMerges::default();
        let r = ReplicaId::new("r");
        merges.remember(&r, "k", Box::new(counter(&[(1, 3)])), false);
        merges.remember_deleted(&r, "k");
        assert!(merges.hand_out(&r).is_empty());
        assert_eq!(merges.hand_out_deleted(&r), vec!["k".to_owned()]);
        assert!(merges.hand_out_deleted(&r).is_empty());
    }
}
