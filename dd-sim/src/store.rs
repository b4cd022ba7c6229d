//! The store stack of one simulated replica incarnation:
//!
//! `DurableDistributedDataStore` → [`Observed`] → `FaultInjectingStore` → [`CrashGate`] →
//! `MemoryStore` (shared by every incarnation of the replica: its "disk").
//!
//! [`CrashGate`] applies a batch one operation at a time, yielding in between, and refuses
//! everything once its incarnation crashed: what the store acknowledged survives, a batch in
//! flight at the crash lands in part, nothing later lands. [`Observed`] counts the batches
//! that broke off half-way under [`Fault::PartialBatch`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use dd_core::store::fault::{Fault, FaultInjectingStore, FaultSwitch};
use dd_core::store::memory::MemoryStore;
use dd_core::store::{
    DurableStateStore, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

/// A deliberately broken behaviour of the store, to show that the oracle catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectedBug {
    /// The store behaves.
    #[default]
    None,
    /// Every write of a user key is acknowledged but not stored (the revision the store would
    /// have given is reported back), as a backend that loses acknowledged writes.
    DropAcknowledgedWrites,
}

/// Refuses every call once the incarnation it belongs to crashed; applies batches one
/// operation at a time so that a crash can cut a batch in flight.
#[derive(Debug)]
pub struct CrashGate {
    inner: MemoryStore,
    dead: Arc<AtomicBool>,
    bug: InjectedBug,
}

impl CrashGate {
    /// A gate over `inner` that is open until `dead` is set.
    pub fn new(inner: MemoryStore, dead: Arc<AtomicBool>, bug: InjectedBug) -> Self {
        Self { inner, dead, bug }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                backend: self.describe(),
                source: "the simulated process crashed".into(),
            });
        }
        Ok(())
    }
}

fn is_user_key(op: &WriteOp) -> bool {
    let key = match op {
        WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
    };
    !key.starts_with(dd_core::replicator::RESERVED_PREFIX)
}

#[async_trait]
impl DurableStateStore for CrashGate {
    fn describe(&self) -> String {
        "sim-gate(memory)".to_owned()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.check()?;
        self.inner.get(replica, key).await
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            self.check()?;
            if self.bug == InjectedBug::DropAcknowledgedWrites && is_user_key(&op) {
                let WriteOp::Put { expected, .. } = &op else {
                    outcomes.extend(self.inner.write_batch(replica, vec![op]).await?);
                    continue;
                };
                let revision = expected.map_or(dd_core::store::Revision::FIRST, |r| r.next());
                outcomes.push(WriteOutcome::Written(revision));
                continue;
            }
            outcomes.extend(self.inner.write_batch(replica, vec![op]).await?);
            // Let the scheduler run between two operations: a crash may come in between.
            tokio::task::yield_now().await;
        }
        Ok(outcomes)
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.check()?;
        self.inner.scan_page(replica, after, limit).await
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.replicas().await
    }
}

/// Counts the batches that the fault layer below broke off half-way.
pub struct Observed {
    inner: FaultInjectingStore<CrashGate>,
    switch: FaultSwitch,
    partial_batches: Arc<AtomicU64>,
}

impl Observed {
    /// The full stack below dd-durable over `disk` for one incarnation.
    pub fn new(
        disk: MemoryStore,
        dead: Arc<AtomicBool>,
        bug: InjectedBug,
        partial_batches: Arc<AtomicU64>,
    ) -> Self {
        let inner = FaultInjectingStore::new(CrashGate::new(disk, dead, bug));
        let switch = inner.switch();
        Self {
            inner,
            switch,
            partial_batches,
        }
    }

    /// The switch of the fault layer.
    pub fn switch(&self) -> FaultSwitch {
        self.switch.clone()
    }
}

#[async_trait]
impl DurableStateStore for Observed {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.inner.get(replica, key).await
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let partial = match self.switch.fault() {
            Fault::PartialBatch { written } => written > 0 && ops.len() > written,
            _ => false,
        };
        let result = self.inner.write_batch(replica, ops).await;
        if partial && result.is_err() {
            self.partial_batches.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.inner.scan_page(replica, after, limit).await
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        self.inner.replicas().await
    }
}
