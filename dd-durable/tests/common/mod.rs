//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dd_core::crdt::GCounter;
use dd_core::data::TypeRegistry;
use dd_core::durable::{CrdtValueStore, DurableValue};
use dd_core::store::fault::{Fault, FaultInjectingStore};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{
    DurableStateStore, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};
use dd_core::{ReplicaId, UniqueReplicaId};
use futures::TryStreamExt;

pub fn registry() -> TypeRegistry {
    TypeRegistry::with_builtin_types()
}

/// A counter with the given slots.
pub fn counter(slots: &[(&str, u64, u64)]) -> GCounter {
    let mut c = GCounter::new();
    for (name, incarnation, n) in slots {
        c.increment(&UniqueReplicaId::new(*name, *incarnation), *n)
            .unwrap();
    }
    c
}

pub fn data(c: GCounter) -> DurableValue {
    DurableValue::Data(Box::new(c))
}

pub fn entry(key: &str, c: GCounter) -> (String, DurableValue) {
    (key.to_owned(), data(c))
}

/// The GCounter inside a value (panics on anything else).
pub fn as_counter(value: &DurableValue) -> GCounter {
    match value {
        DurableValue::Data(v) => v.downcast_ref::<GCounter>().unwrap().clone(),
        DurableValue::Deleted => panic!("expected a GCounter, found a tombstone"),
    }
}

/// Everything `durable` loads for `replica`, failing on the first error.
pub async fn load_all(
    durable: &dyn CrdtValueStore,
    replica: &ReplicaId,
) -> Vec<(String, DurableValue)> {
    let registry = registry();
    durable
        .load(replica, &registry)
        .try_collect()
        .await
        .unwrap()
}

/// Polls `condition` every 10 ms, at most `limit` long; panics if it never holds.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A MemoryStore that records every batch written and can be made to fail (as if it were down,
/// through a `FaultInjectingStore`).
#[derive(Clone)]
pub struct TestStore {
    pub inner: MemoryStore,
    faulty: Arc<FaultInjectingStore<MemoryStore>>,
    pub batches: Arc<Mutex<Vec<Vec<WriteOp>>>>,
    pub scan_pages: Arc<AtomicUsize>,
}

impl TestStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self {
            faulty: Arc::new(FaultInjectingStore::new(inner.clone())),
            inner,
            batches: Arc::default(),
            scan_pages: Arc::default(),
        }
    }

    pub fn set_failing(&self, failing: bool) {
        let fault = if failing { Fault::Fail } else { Fault::None };
        self.faulty.switch().set(fault);
    }

    /// The calls refused because the store was failing.
    pub fn failed_calls(&self) -> u64 {
        self.faulty.switch().injected()
    }

    /// The batches written so far (successfully).
    pub fn batches(&self) -> Vec<Vec<WriteOp>> {
        self.batches.lock().unwrap().clone()
    }

    /// The puts written so far for `key`.
    pub fn writes_of(&self, key: &str) -> usize {
        self.batches()
            .iter()
            .flatten()
            .filter(|op| op.key() == key)
            .count()
    }
}

#[async_trait]
impl DurableStateStore for TestStore {
    fn describe(&self) -> String {
        "test-store".to_owned()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.faulty.get(replica, key).await
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let outcomes = self.faulty.write_batch(replica, ops.clone()).await?;
        self.batches.lock().unwrap().push(ops);
        Ok(outcomes)
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let page = self.faulty.scan_page(replica, after, limit).await?;
        self.scan_pages.fetch_add(1, Ordering::SeqCst);
        Ok(page)
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        self.faulty.replicas().await
    }
}

/// Decodes a hex fixture (whitespace ignored).
pub fn from_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
