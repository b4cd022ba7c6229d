//! A [`DurableStateStore`] wrapper that injects faults: errors, latency, hangs and batches that
//! fail half-way. For testing how a replica behaves while its store misbehaves, in the manner of
//! `object_store`'s `ThrottledStore`.
//!
//! The faults are switched at run time through a [`FaultSwitch`], shared by clones:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bytes::Bytes;
//! use dd_store::DurableStateStore;
//! use dd_store::fault::{Fault, FaultInjectingStore};
//! use dd_store::memory::MemoryStore;
//!
//! let store = FaultInjectingStore::new(MemoryStore::new());
//! let switch = store.switch();
//! switch.set(Fault::FailWrites);
//! let refused = store.put("node-a", "hits", None, Bytes::from_static(b"1")).await;
//! assert!(refused.unwrap_err().is_transient());
//! switch.clear();
//! store.put("node-a", "hits", None, Bytes::from_static(b"1")).await.unwrap();
//! assert_eq!(switch.injected(), 1);
//! # });
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;

use futures::StreamExt;

use super::{
    DurableStateStore, RecordStream, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

/// A fault to inject, until it is changed or cleared.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// No fault: every call goes to the wrapped store.
    None,
    /// Every call fails with [`StoreError::Unavailable`] (the store is down).
    Fail,
    /// Writes fail with [`StoreError::Unavailable`]; reads work (a store that lost write access).
    FailWrites,
    /// Every call is delayed by this long, then goes to the wrapped store.
    Latency(Duration),
    /// Every call waits until the fault is changed (the store stopped answering), then goes to
    /// the wrapped store. Callers that give up earlier drop the call.
    Hang,
    /// A batch writes its first `written` operations to the wrapped store and then fails, as a
    /// backend without transactions that breaks off half-way does: the caller gets an error and
    /// cannot know which operations were applied. Other calls work.
    PartialBatch {
        /// How many operations of each batch are applied before the error.
        written: usize,
    },
    /// Each call fails with probability `error_rate` (0.0 to 1.0), drawn from a generator seeded
    /// with `seed`, so a run can be repeated.
    Flaky {
        /// The probability of a call failing.
        error_rate: f64,
        /// The seed of the generator.
        seed: u64,
    },
}

/// Which kind of call a fault is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Read,
    Write,
}

struct SwitchState {
    fault: Fault,
    rng: StdRng,
}

/// Switches the faults of a [`FaultInjectingStore`]; clones control the same store.
#[derive(Clone)]
pub struct FaultSwitch {
    state: Arc<Mutex<SwitchState>>,
    /// Bumped on every change, so hanging calls wake up.
    changed: Arc<watch::Sender<u64>>,
    injected: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
}

impl fmt::Debug for FaultSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultSwitch")
            .field("fault", &self.fault())
            .field("injected", &self.injected())
            .field("calls", &self.calls())
            .finish()
    }
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(SwitchState {
                fault: Fault::None,
                rng: StdRng::seed_from_u64(0),
            })),
            changed: Arc::new(watch::Sender::new(0)),
            injected: Arc::new(AtomicU64::new(0)),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl FaultSwitch {
    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Injects `fault` from now on (calls hanging under [`Fault::Hang`] go on).
    pub fn set(&self, fault: Fault) {
        {
            let mut state = self.lock();
            if let Fault::Flaky { seed, .. } = &fault {
                state.rng = StdRng::seed_from_u64(*seed);
            }
            state.fault = fault;
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Stops injecting faults.
    pub fn clear(&self) {
        self.set(Fault::None);
    }

    /// The fault injected now.
    pub fn fault(&self) -> Fault {
        self.lock().fault.clone()
    }

    /// How many calls failed because of an injected fault so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// How many calls reached the wrapper so far (failed or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn injected_error(&self, backend: String, what: &str) -> StoreError {
        self.injected.fetch_add(1, Ordering::Relaxed);
        StoreError::Unavailable {
            backend,
            source: format!("injected fault: {what}").into(),
        }
    }

    /// Applies the current fault to a call: waits, fails, or lets it through. Returns the number
    /// of operations a batch may apply before failing, for [`Fault::PartialBatch`].
    async fn before(&self, backend: impl Fn() -> String, call: Call) -> Result<Gate, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut changes = self.changed.subscribe();
        loop {
            let fault = {
                let mut state = self.lock();
                match &state.fault {
                    Fault::Flaky { error_rate, .. } => {
                        let rate = *error_rate;
                        let fails = state.rng.random_bool(rate.clamp(0.0, 1.0));
                        if fails {
                            drop(state);
                            return Err(self.injected_error(backend(), "flaky store"));
                        }
                        return Ok(Gate::Open);
                    }
                    other => other.clone(),
                }
            };
            match fault {
                Fault::None | Fault::Flaky { .. } => return Ok(Gate::Open),
                Fault::Fail => return Err(self.injected_error(backend(), "store is down")),
                Fault::FailWrites if call == Call::Write => {
                    return Err(self.injected_error(backend(), "store refuses writes"));
                }
                Fault::FailWrites => return Ok(Gate::Open),
                Fault::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    return Ok(Gate::Open);
                }
                Fault::PartialBatch { written } if call == Call::Write => {
                    return Ok(Gate::BreakAfter(written));
                }
                Fault::PartialBatch { .. } => return Ok(Gate::Open),
                Fault::Hang => {
                    // Wait for the next change of the fault, then look again.
                    changes.borrow_and_update();
                    if changes.changed().await.is_err() {
                        return Ok(Gate::Open);
                    }
                }
            }
        }
    }
}

/// What a call may do after the fault check.
enum Gate {
    Open,
    BreakAfter(usize),
}

/// A store that forwards to `S` and injects the faults set on its [`FaultSwitch`].
pub struct FaultInjectingStore<S: ?Sized = dyn DurableStateStore> {
    inner: Arc<S>,
    switch: FaultSwitch,
}

impl<S: DurableStateStore> FaultInjectingStore<S> {
    /// Wraps `inner`, with no fault injected yet.
    pub fn new(inner: S) -> Self {
        Self::from_arc(Arc::new(inner))
    }
}

impl<S: ?Sized + DurableStateStore> FaultInjectingStore<S> {
    /// Wraps a shared store, for example an `Arc<dyn DurableStateStore>`.
    pub fn from_arc(inner: Arc<S>) -> Self {
        Self {
            inner,
            switch: FaultSwitch::default(),
        }
    }

    /// The switch that sets this store's faults.
    pub fn switch(&self) -> FaultSwitch {
        self.switch.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

impl<S: ?Sized + DurableStateStore> fmt::Debug for FaultInjectingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjectingStore")
            .field("inner", &self.inner.describe())
            .field("switch", &self.switch)
            .finish()
    }
}

#[async_trait]
impl<S: ?Sized + DurableStateStore> DurableStateStore for FaultInjectingStore<S> {
    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.switch.before(|| self.describe(), Call::Read).await?;
        self.inner.get(replica, key).await
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        match self.switch.before(|| self.describe(), Call::Write).await? {
            Gate::Open => self.inner.write_batch(replica, ops).await,
            Gate::BreakAfter(written) => {
                let applied: Vec<WriteOp> = ops.into_iter().take(written).collect();
                if !applied.is_empty() {
                    self.inner.write_batch(replica, applied).await?;
                }
                Err(self
                    .switch
                    .injected_error(self.describe(), "batch broke off half-way"))
            }
        }
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.switch.before(|| self.describe(), Call::Read).await?;
        self.inner.scan_page(replica, after, limit).await
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        self.switch.before(|| self.describe(), Call::Read).await?;
        self.inner.replicas().await
    }

    /// The wrapped store's own scan (which may be cheaper than paging), after the fault check.
    fn scan<'a>(&'a self, replica: &'a str, page_size: usize) -> RecordStream<'a> {
        let gate = async move { self.switch.before(|| self.describe(), Call::Read).await };
        Box::pin(
            futures::stream::once(gate).flat_map(move |gate| -> RecordStream<'a> {
                match gate {
                    Ok(_) => self.inner.scan(replica, page_size),
                    Err(e) => Box::pin(futures::stream::iter([Err(e)])),
                }
            }),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::Revision;
    use crate::memory::MemoryStore;

    fn put(key: &str, value: &'static [u8]) -> WriteOp {
        WriteOp::Put {
            key: key.to_owned(),
            expected: None,
            value: Bytes::from_static(value),
        }
    }

    #[tokio::test]
    async fn fail_refuses_reads_and_writes_until_cleared() {
        let store = FaultInjectingStore::new(MemoryStore::new());
        let switch = store.switch();
        switch.set(Fault::Fail);
        assert!(store.get("r", "k").await.unwrap_err().is_transient());
        assert!(store.write_batch("r", vec![put("k", b"v")]).await.is_err());
        assert!(store.replicas().await.is_err());
        switch.clear();
        store.write_batch("r", vec![put("k", b"v")]).await.unwrap();
        assert_eq!(switch.injected(), 3);
        assert_eq!(switch.calls(), 4);
    }

    #[tokio::test]
    async fn fail_writes_lets_reads_through() {
        let store = FaultInjectingStore::new(MemoryStore::new());
        store.write_batch("r", vec![put("k", b"v")]).await.unwrap();
        store.switch().set(Fault::FailWrites);
        assert!(store.get("r", "k").await.unwrap().is_some());
        let err = store
            .write_batch("r", vec![put("x", b"v")])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("faulty(memory"), "{err}");
        assert!(store.get("r", "x").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn partial_batch_applies_a_prefix_then_fails() {
        let store = FaultInjectingStore::new(MemoryStore::new());
        store.switch().set(Fault::PartialBatch { written: 2 });
        let ops = vec![put("a", b"1"), put("b", b"2"), put("c", b"3")];
        assert!(store.write_batch("r", ops).await.is_err());
        let a = store.get("r", "a").await.unwrap().unwrap();
        assert_eq!(a.revision, Revision::FIRST);
        assert!(store.get("r", "b").await.unwrap().is_some());
        assert!(store.get("r", "c").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn hang_waits_until_the_fault_changes() {
        let store = Arc::new(FaultInjectingStore::new(MemoryStore::new()));
        let switch = store.switch();
        switch.set(Fault::Hang);
        let pending = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.write_batch("r", vec![put("k", b"v")]).await }
        });
        let timed_out = tokio::time::timeout(Duration::from_millis(50), store.get("r", "k")).await;
        assert!(timed_out.is_err(), "a hanging store must not answer");
        assert!(!pending.is_finished());
        switch.clear();
        pending.await.unwrap().unwrap();
        assert!(store.get("r", "k").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn flaky_is_repeatable_for_a_seed() {
        async fn outcomes(seed: u64) -> Vec<bool> {
            let store = FaultInjectingStore::new(MemoryStore::new());
            store.switch().set(Fault::Flaky {
                error_rate: 0.5,
                seed,
            });
            let mut out = Vec::new();
            for _ in 0..64 {
                out.push(store.get("r", "k").await.is_ok());
            }
            out
        }
        let first = outcomes(7).await;
        assert_eq!(first, outcomes(7).await);
        assert!(first.contains(&true) && first.contains(&false));
    }

    #[tokio::test]
    async fn scan_forwards_to_the_inner_scan_after_the_fault_check() {
        use futures::TryStreamExt;
        let store = FaultInjectingStore::new(MemoryStore::new());
        let ops = (0..5).map(|i| put(&format!("k{i}"), b"v")).collect();
        store.write_batch("r", ops).await.unwrap();
        let all: Vec<StoredRecord> = store.scan("r", 2).try_collect().await.unwrap();
        assert_eq!(all.len(), 5);
        store.switch().set(Fault::Fail);
        let refused: Result<Vec<StoredRecord>, _> = store.scan("r", 2).try_collect().await;
        assert!(refused.unwrap_err().is_transient());
    }

    #[tokio::test]
    async fn latency_delays_but_answers() {
        let store = FaultInjectingStore::new(MemoryStore::new());
        store.switch().set(Fault::Latency(Duration::from_millis(5)));
        store.write_batch("r", vec![put("k", b"v")]).await.unwrap();
        assert!(store.get("r", "k").await.unwrap().is_some());
        assert_eq!(store.switch().injected(), 0);
    }
}
