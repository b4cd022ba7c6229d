//! The queue of entries waiting to be written (write-behind, or retried after a failed write):
//! the latest state per key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use dd_core::ReplicaId;
use dd_core::data::TypeRegistry;
use dd_core::durable::DurableValue;

use crate::lock;

/// Entries of one replica taken from the queue, with the registry to decode conflicting ones.
pub(crate) struct PendingBatch {
    pub(crate) replica: ReplicaId,
    pub(crate) registry: TypeRegistry,
    pub(crate) entries: Vec<(String, DurableValue)>,
}

#[derive(Default)]
struct ReplicaQueue {
    registry: TypeRegistry,
    entries: BTreeMap<String, DurableValue>,
}

#[derive(Default)]
pub(crate) struct PendingQueue {
    map: Mutex<HashMap<ReplicaId, ReplicaQueue>>,
}

impl PendingQueue {
    /// Queues entries; a newer state of a key replaces the queued one.
    pub(crate) fn enqueue(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        entries: Vec<(String, DurableValue)>,
    ) {
        let mut map = lock(&self.map);
        let queue = map.entry(replica.clone()).or_default();
        queue.registry = registry.clone();
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
        let queue = map.entry(batch.replica).or_insert_with(|| ReplicaQueue {
            registry: batch.registry,
            entries: BTreeMap::new(),
        });
        for (key, value) in batch.entries {
            queue.entries.entry(key).or_insert(value);
        }
    }

    /// Takes everything queued, in batches of at most `max_batch` entries of one replica.
    pub(crate) fn take_all(&self, max_batch: usize) -> Vec<PendingBatch> {
        let max_batch = max_batch.max(1);
        let taken: Vec<(ReplicaId, ReplicaQueue)> = lock(&self.map).drain().collect();
        let mut batches = Vec::new();
        for (replica, queue) in taken {
            let mut entries = queue.entries.into_iter().peekable();
            while entries.peek().is_some() {
                batches.push(PendingBatch {
                    replica: replica.clone(),
                    registry: queue.registry.clone(),
                    entries: entries.by_ref().take(max_batch).collect(),
                });
            }
        }
        batches
    }

    /// How many entries are queued.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).values().map(|q| q.entries.len()).sum()
    }
}
