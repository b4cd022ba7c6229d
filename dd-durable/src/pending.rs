//! The queue of entries waiting to be written (write-behind, or retried after a failed write):
//! the latest state per key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use dd_core::ReplicaId;
use dd_core::durable::{DurableValue, PrunedIncarnations, marked_key, markers_key};

use crate::lock;

/// Entries of one replica taken from the queue.
pub(crate) struct PendingBatch {
    pub(crate) replica: ReplicaId,
    pub(crate) entries: Vec<(String, DurableValue)>,
}

#[derive(Default)]
struct ReplicaQueue {
    entries: BTreeMap<String, DurableValue>,
}

#[derive(Default)]
pub(crate) struct PendingQueue {
    map: Mutex<HashMap<ReplicaId, ReplicaQueue>>,
}

impl PendingQueue {
    /// Queues entries; a newer state of a key replaces the queued one.
    pub(crate) fn enqueue(&self, replica: &ReplicaId, entries: Vec<(String, DurableValue)>) {
        let mut map = lock(&self.map);
        let queue = map.entry(replica.clone()).or_default();
        queue.entries.extend(entries);
    }

    /// Drops the queued states of `keys` (a newer state of them is being written).
    pub(crate) fn remove_keys<'k>(
        &self,
        replica: &ReplicaId,
        keys: impl IntoIterator<Item = &'k str>,
    ) {
        let mut map = lock(&self.map);
        let Some(queue) = map.get_mut(replica) else {
            return;
        };
        for key in keys {
            queue.entries.remove(key);
        }
        if queue.entries.is_empty() {
            map.remove(replica);
        }
    }

    /// Puts back entries whose write failed, unless a newer state was queued meanwhile.
    pub(crate) fn requeue(&self, batch: PendingBatch) {
        let mut map = lock(&self.map);
        let queue = map.entry(batch.replica).or_default();
        for (key, value) in batch.entries {
            queue.entries.entry(key).or_insert(value);
        }
    }

    /// Takes everything queued, in batches of at most `max_batch` entries of one replica (one
    /// more where a key's pruning markers entry follows it: a key and its markers are never cut
    /// apart, they are written in one record).
    pub(crate) fn take_all(&self, max_batch: usize) -> Vec<PendingBatch> {
        let max_batch = max_batch.max(1);
        let taken: Vec<(ReplicaId, ReplicaQueue)> = lock(&self.map).drain().collect();
        let mut batches = Vec::new();
        for (replica, mut queue) in taken {
            // Each key's markers entry goes right after the key.
            let with_key: Vec<String> = queue
                .entries
                .keys()
                .filter(|k| marked_key(k).is_some_and(|of| queue.entries.contains_key(of)))
                .cloned()
                .collect();
            let mut markers: BTreeMap<String, (String, DurableValue)> = BTreeMap::new();
            for k in with_key {
                if let Some(v) = queue.entries.remove(&k)
                    && let Some(of) = marked_key(&k)
                {
                    markers.insert(of.to_owned(), (k, v));
                }
            }
            let mut current = Vec::new();
            for (key, value) in queue.entries {
                if current.len() >= max_batch {
                    batches.push(PendingBatch {
                        replica: replica.clone(),
                        entries: std::mem::take(&mut current),
                    });
                }
                let marker = markers.remove(&key);
                current.push((key, value));
                current.extend(marker);
            }
            if !current.is_empty() {
                batches.push(PendingBatch {
                    replica: replica.clone(),
                    entries: current,
                });
            }
        }
        batches
    }

    /// Merges `merged` (what the store holds for `key` after a conflict) into the queued state
    /// of `key`, if one is queued, after dropping from it the entries of the incarnations the
    /// key's queued pruning markers say were pruned.
    pub(crate) fn merge_into_queued(
        &self,
        replica: &ReplicaId,
        key: &str,
        merged: &dyn dd_core::data::ErasedData,
    ) {
        let mut map = lock(&self.map);
        let Some(queue) = map.get_mut(replica) else {
            return;
        };
        let mut merge = merged.clone_boxed();
        if let Some(DurableValue::Data(m)) = queue.entries.get(&markers_key(key))
            && let Some(pruning) = m.downcast_ref::<PrunedIncarnations>()
        {
            pruning.apply_to(merge.as_mut());
        }
        if let Some(DurableValue::Data(state)) = queue.entries.get_mut(key) {
            let mut next = state.clone_boxed();
            if next.merge_erased(merge.as_ref()).is_ok() {
                *state = next;
            }
        }
    }

    /// How many entries are queued.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).values().map(|q| q.entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_and_its_markers_are_never_cut_apart() {
        let queue = PendingQueue::default();
        let r = ReplicaId::new("r");
        let markers = || DurableValue::Data(Box::new(PrunedIncarnations::default()));
        // "-a" and "A" sort before "__dd/pruning/...", "a" after it.
        let entries = ["-a", "A", "a"]
            .into_iter()
            .flat_map(|k| {
                [
                    (markers_key(k), markers()),
                    (k.to_owned(), DurableValue::Deleted),
                ]
            })
            .collect();
        queue.enqueue(&r, entries);
        let batches = queue.take_all(1);
        let keys: Vec<Vec<String>> = batches
            .iter()
            .map(|b| b.entries.iter().map(|(k, _)| k.clone()).collect())
            .collect();
        assert_eq!(
            keys,
            ["-a", "A", "a"]
                .map(|k| vec![k.to_owned(), markers_key(k)])
                .to_vec()
        );
    }
}
