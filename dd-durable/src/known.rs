//! The revision of every `(replica, key)` this process loaded or wrote.

use std::collections::HashMap;
use std::sync::Mutex;

use dd_core::ReplicaId;
use dd_core::store::Revision;

use crate::lock;

/// What this process last saw of one stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// The record's revision.
    pub(crate) revision: Revision,
    /// Whether the record is a tombstone.
    pub(crate) tombstone: bool,
}

/// Known revisions; a key that is absent is expected not to exist in the store.
#[derive(Debug, Default)]
pub(crate) struct KnownRevisions {
    map: Mutex<HashMap<ReplicaId, HashMap<String, Known>>>,
}

impl KnownRevisions {
    pub(crate) fn get(&self, replica: &ReplicaId, key: &str) -> Option<Known> {
        lock(&self.map)
            .get(replica)
            .and_then(|m| m.get(key))
            .copied()
    }

    pub(crate) fn set(&self, replica: &ReplicaId, key: &str, known: Known) {
        lock(&self.map)
            .entry(replica.clone())
            .or_default()
            .insert(key.to_owned(), known);
    }
}
