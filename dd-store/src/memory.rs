//! An in-memory [`DurableStateStore`]: the reference implementation of the trait, for tests.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use dd_store::memory::MemoryStore;
//! use dd_store::{DurableStateStore, Revision, WriteOutcome};
//! let store = MemoryStore::new();
//! let first = store.put("a", "k", None, "v1".into()).await.unwrap();
//! assert_eq!(first, WriteOutcome::Written(Revision::FIRST));
//! // A writer that did not see revision 1 conflicts instead of overwriting it.
//! let stale = store.put("a", "k", None, "v2".into()).await.unwrap();
//! assert_eq!(stale, WriteOutcome::Conflict { actual: Some(Revision::FIRST) });
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::revision;
use crate::{
    DurableStateStore, Revision, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

type Records = BTreeMap<String, (Revision, Bytes)>;

/// An in-memory store. Clones share the same data, so a clone stands for "the same store opened
/// again" in restart tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    replicas: Arc<Mutex<HashMap<String, Records>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Records>> {
        // A panic while holding the lock cannot leave a half-applied batch: batches are checked
        // and applied without calling out of this module.
        self.replicas.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn apply(records: &mut Records, op: WriteOp) -> WriteOutcome {
    let actual = records.get(op.key()).map(|(r, _)| *r);
    let revision = match revision::check(&op, actual) {
        Ok(revision) => revision,
        Err(conflict) => return conflict,
    };
    match op {
        WriteOp::Put { key, value, .. } => {
            records.insert(key, (revision, value));
        }
        WriteOp::Delete { key, .. } => {
            records.remove(&key);
        }
    }
    WriteOutcome::Written(revision)
}

#[async_trait]
impl DurableStateStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let replicas = self.lock();
        Ok(replicas
            .get(replica)
            .and_then(|r| r.get(key))
            .map(|(revision, value)| StoredRecord {
                key: key.to_owned(),
                revision: *revision,
                value: value.clone(),
            }))
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut replicas = self.lock();
        let records = replicas.entry(replica.to_owned()).or_default();
        let outcomes = ops.into_iter().map(|op| apply(records, op)).collect();
        if records.is_empty() {
            replicas.remove(replica);
        }
        Ok(outcomes)
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let replicas = self.lock();
        let Some(records) = replicas.get(replica) else {
            return Ok(ScanPage::default());
        };
        let start = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let limit = limit.max(1);
        let mut iter = records.range::<str, _>((start, Bound::Unbounded));
        let page: Vec<StoredRecord> = iter
            .by_ref()
            .take(limit)
            .map(|(key, (revision, value))| StoredRecord {
                key: key.clone(),
                revision: *revision,
                value: value.clone(),
            })
            .collect();
        let next = if iter.next().is_some() {
            page.last().map(|r| r.key.clone())
        } else {
            None
        };
        Ok(ScanPage {
            records: page,
            next,
        })
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        Ok(names)
    }
}

/// Registers the `memory:` scheme: an in-process store, new at every open and lost when the
/// process ends (for trying things out).
pub fn register(registry: &mut crate::registry::Registry) {
    registry.register(crate::registry::Scheme {
        name: "memory",
        backend: "dd-store (MemoryStore)",
        open: |_url, _access| Box::pin(async { Ok(Arc::new(MemoryStore::new()) as _) }),
        local_path: None,
    });
}
