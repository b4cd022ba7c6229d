//! Runs the durable store calls of one replica on their own task, so the replica task never waits
//! for storage, with group commit: while one batch is in the store, every write handed over joins
//! the next batch, which holds only the newest state of each key. One batch is one store call;
//! when the store answers, every write waiting in the batch is answered, key by key. Nothing waits
//! for company: a batch starts as soon as the previous one is done.
//!
//! The answer of a batch goes back to the replica task as one [`Stored`] message: the values
//! the store merged with a concurrent writer's (or found deleted) come with it, so the replica
//! adopts them before it answers the writes of the batch (no second channel for conflicts).
//! Until the replica has adopted a merge, every state of its key handed over has the merge merged
//! in (states handed over before the adoption do not hold it, and must not drop the concurrent
//! writer's updates from the store); the entries of any incarnation the key's pruning markers
//! handed over since say was pruned are dropped from the merge first, so a pruned incarnation
//! never comes back (and is never counted twice).
//!
//! The queue is bounded in entries and bytes ([`QueueLimits`]); the replica task stops taking
//! commands and messages while it is full (backpressure), and nothing handed over is dropped.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::data::{DataError, ErasedData};
use crate::durable::{
    BatchReport, CrdtValueStore, DurableError, DurableValue, PrunedIncarnations, marked_key,
    markers_key,
};
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::store::{BoxError, StoreError};

use super::command::{Conflicts, Internal};
use super::error::ReplicatorError;

/// The error a write answers when its durable store failed: a key found deleted in the store
/// (by another process) is deleted, anything else a store failure.
pub(crate) fn store_error(key: String, source: DurableError) -> ReplicatorError {
    match source {
        DurableError::Deleted { .. } => ReplicatorError::Deleted { key },
        source => ReplicatorError::StoreFailure {
            key,
            source: Box::new(source),
        },
    }
}

/// The same error again, for the next of several writes that one failure answers (store errors
/// are not `Clone`: their sources become their messages).
fn copy_error(e: &DurableError) -> DurableError {
    let message_of = |s: &BoxError| -> BoxError { s.to_string().into() };
    match e {
        DurableError::Store(StoreError::Unavailable { backend, source }) => {
            DurableError::Store(StoreError::Unavailable {
                backend: backend.clone(),
                source: message_of(source),
            })
        }
        DurableError::Store(StoreError::Corrupt {
            backend,
            replica,
            key,
            reason,
        })
        | DurableError::Corrupt {
            backend,
            replica,
            key,
            reason,
        } => DurableError::Corrupt {
            backend: backend.clone(),
            replica: replica.clone(),
            key: key.clone(),
            reason: reason.clone(),
        },
        DurableError::UnsupportedFormat {
            backend,
            replica,
            key,
            version,
            supported,
        } => DurableError::UnsupportedFormat {
            backend: backend.clone(),
            replica: replica.clone(),
            key: key.clone(),
            version: *version,
            supported: *supported,
        },
        DurableError::Deleted {
            backend,
            replica,
            key,
        } => DurableError::Deleted {
            backend: backend.clone(),
            replica: replica.clone(),
            key: key.clone(),
        },
        DurableError::Store(StoreError::Config { backend, message }) => {
            DurableError::Store(StoreError::Config {
                backend: backend.clone(),
                message: message.clone(),
            })
        }
        DurableError::Store(StoreError::Backend {
            backend,
            message,
            source,
        }) => DurableError::Store(StoreError::Backend {
            backend: backend.clone(),
            message: message.clone(),
            source: source.as_ref().map(message_of),
        }),
        // `StoreError` is non-exhaustive (it lives in dd-store): any later variant.
        DurableError::Store(other) => DurableError::Store(other.duplicate()),
        DurableError::Data {
            backend,
            replica,
            key,
            source,
        } => DurableError::Store(StoreError::Backend {
            backend: backend.clone(),
            message: format!("record of replica '{replica}' key '{key}': {source}"),
            source: None,
        }),
    }
}

/// Called with the outcome of a store, on the replica task once it adopted what the store
/// merged (on the writer task if the replica task is gone).
pub(crate) type StoreDone = Box<dyn FnOnce(Result<(), DurableError>) + Send>;

/// The answer of one batch, for the replica task: what the store merged or found deleted (to
/// adopt first), then the outcome of every write that waited for the batch.
pub(crate) struct Stored {
    /// What the store merged with a concurrent writer's, or found deleted.
    pub(crate) conflicts: Conflicts,
    answers: Vec<(StoreDone, Result<(), DurableError>)>,
    /// The batch's number, see [`DurableWriter::adopted`].
    batch: u64,
}

impl Stored {
    /// Answers every write of the batch.
    pub(crate) fn answer(self) {
        for (done, outcome) in self.answers {
            done(outcome);
        }
    }
}

/// What the replica adopts from a store's report: merged values and tombstones.
fn adopted(merged: Vec<(String, Box<dyn ErasedData>)>, deleted: Vec<String>) -> Conflicts {
    merged
        .into_iter()
        .map(|(k, v)| (k, DurableValue::Data(v)))
        .chain(deleted.into_iter().map(|k| (k, DurableValue::Deleted)))
        .collect()
}

/// How much the writer's queue holds at most before the replica waits (see
/// [`Settings::durable_queue_max_entries`](super::Settings::durable_queue_max_entries) and
/// [`Settings::durable_queue_max_bytes`](super::Settings::durable_queue_max_bytes)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Most distinct keys queued, and most writes waiting for their answer.
    pub(crate) max_entries: usize,
    /// Most encoded bytes of the queued states.
    pub(crate) max_bytes: usize,
}

/// A write waiting for the batch holding its keys.
struct Waiter {
    keys: Vec<String>,
    done: StoreDone,
}

/// What is waiting for the next batch.
#[derive(Default)]
struct Queue {
    /// The newest state of each key, in the order keys were first handed over (a key's later
    /// state takes the place of its earlier one), with its size estimate.
    entries: Vec<(String, DurableValue, usize)>,
    /// Where each key is in `entries`.
    index: HashMap<String, usize>,
    /// The sum of the size estimates.
    bytes: usize,
    waiters: Vec<Waiter>,
    flushes: Vec<oneshot::Sender<Result<(), DurableError>>>,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.waiters.is_empty() && self.flushes.is_empty()
    }
}

/// A state with its encoding, made once when it is queued (its size counts against
/// [`QueueLimits::max_bytes`]) and handed out by [`encode`](ErasedData::encode) when the store
/// writes it, so a queued state is serialised once. Everything else is the state's own; any
/// change of the state through `&mut` drops the encoding.
#[derive(Debug)]
struct PreEncoded {
    state: Box<dyn ErasedData>,
    encoded: Option<Vec<u8>>,
}

impl ErasedData for PreEncoded {
    fn data_type_name(&self) -> String {
        self.state.data_type_name()
    }
    fn as_any(&self) -> &dyn Any {
        self.state.as_any()
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.encoded = None;
        self.state.as_any_mut()
    }
    /// The state alone: a clone (a store merging it, a retry) never carries the wrapper back
    /// to the replica.
    fn clone_boxed(&self) -> Box<dyn ErasedData> {
        self.state.clone_boxed()
    }
    fn eq_erased(&self, other: &dyn ErasedData) -> bool {
        self.state.eq_erased(other)
    }
    fn merge_erased(&mut self, other: &dyn ErasedData) -> Result<(), DataError> {
        self.encoded = None;
        self.state.merge_erased(other)
    }
    fn encode(&self) -> Result<Vec<u8>, DataError> {
        match &self.encoded {
            Some(bytes) => Ok(bytes.clone()),
            None => self.state.encode(),
        }
    }
    fn encode_delta(&self) -> Result<Option<Vec<u8>>, DataError> {
        self.state.encode_delta()
    }
    fn reset_delta(&mut self) {
        self.state.reset_delta();
    }
    fn merge_delta_bytes(&mut self, delta: &[u8]) -> Result<(), DataError> {
        self.encoded = None;
        self.state.merge_delta_bytes(delta)
    }
    fn requires_causal_delivery(&self) -> bool {
        self.state.requires_causal_delivery()
    }
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        self.state.modified_by_nodes()
    }
    fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
        self.state.replicas_in_state()
    }
    fn needs_pruning_from(&self, removed: &UniqueReplicaId) -> bool {
        self.state.needs_pruning_from(removed)
    }
    fn prune(&mut self, removed: &UniqueReplicaId, collapse_into: &UniqueReplicaId) {
        self.encoded = None;
        self.state.prune(removed, collapse_into);
    }
    fn prune_cleanup(&mut self, removed: &UniqueReplicaId) {
        self.encoded = None;
        self.state.prune_cleanup(removed);
    }
    fn mentions(&self, removed: &UniqueReplicaId) -> bool {
        self.state.mentions(removed)
    }
    fn prunes_by_collapsing(&self) -> bool {
        self.state.prunes_by_collapsing()
    }
}

/// An entry as queued, encoded once, with its size as counted against
/// [`QueueLimits::max_bytes`]: its key and its encoded state. A state that cannot be encoded is
/// queued as it is (counting its key only): the store reports the error for its key.
fn queued_entry(key: &str, value: DurableValue) -> (DurableValue, usize) {
    match value {
        DurableValue::Data(state) => match state.encode() {
            Ok(encoded) => {
                let size = key.len() + encoded.len();
                let state = PreEncoded {
                    state,
                    encoded: Some(encoded),
                };
                (DurableValue::Data(Box::new(state)), size)
            }
            Err(_) => (DurableValue::Data(state), key.len()),
        },
        DurableValue::Deleted => (DurableValue::Deleted, key.len()),
    }
}

/// A merge the store reported that the replica has not adopted yet.
struct Unadopted {
    state: Box<dyn ErasedData>,
    /// The number of the last batch that reported (part of) it.
    batch: u64,
}

/// The pruning markers handed over in a markers entry, when it holds them.
fn markers_of(value: &DurableValue) -> Option<&PrunedIncarnations> {
    match value {
        DurableValue::Data(d) => d.downcast_ref::<PrunedIncarnations>(),
        DurableValue::Deleted => None,
    }
}

/// Merges an unadopted merge into a state of its key, after dropping from the merge the entries
/// of every incarnation `markers` (the key's markers handed over with or before the state) says
/// was pruned. A merge of another type (the key now holds another type) is left out.
fn merge_unadopted(
    state: &mut DurableValue,
    unadopted: &mut Unadopted,
    markers: Option<&PrunedIncarnations>,
) {
    if let Some(markers) = markers {
        markers.apply_to(unadopted.state.as_mut());
    }
    if let DurableValue::Data(d) = state
        && !d.eq_erased(unadopted.state.as_ref())
    {
        let mut merged = d.clone_boxed();
        if merged.merge_erased(unadopted.state.as_ref()).is_ok() {
            *d = merged;
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Merges reported by the store and not adopted by the replica yet, by key. Locked after
    /// `queue` when both are.
    unadopted: Mutex<HashMap<String, Unadopted>>,
    /// Signalled after every batch: the queue has room again.
    room: Arc<Notify>,
    limits: QueueLimits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_unadopted(&self) -> MutexGuard<'_, HashMap<String, Unadopted>> {
        self.unadopted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle to the writer task. The task writes what is queued and stops once every handle
/// is dropped.
#[derive(Clone)]
pub(crate) struct DurableWriter {
    shared: Arc<Shared>,
    /// Wakes the writer task; a full buffer means it is woken already.
    doorbell: mpsc::Sender<()>,
}

impl DurableWriter {
    /// Spawns the writer task. The answer of every batch goes back to the replica task on
    /// `replica_tx` ([`Internal::Stored`]).
    pub(crate) fn spawn(
        store: Arc<dyn CrdtValueStore>,
        replica: ReplicaId,
        limits: QueueLimits,
        replica_tx: mpsc::UnboundedSender<Internal>,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            unadopted: Mutex::new(HashMap::new()),
            room: Arc::new(Notify::new()),
            limits,
        });
        let (doorbell, mut rung) = mpsc::channel::<()>(1);
        let task = Writer {
            shared: Arc::clone(&shared),
            store,
            replica,
            replica_tx,
            failing: false,
            batches: 0,
        };
        tokio::spawn(async move {
            let mut task = task;
            while rung.recv().await.is_some() {
                task.write_queued().await;
            }
            // Every handle is gone: write what is left.
            task.write_queued().await;
        });
        Self { shared, doorbell }
    }

    fn ring(&self) {
        // Full: the writer is woken already; closed: the writer task is gone (shutdown).
        let _ = self.doorbell.try_send(());
    }

    /// Queues `entries` (a newer state of a queued key takes its place) for the next batch and,
    /// with `done`, a write answered on the writer task once that batch was stored (errors of a
    /// write without `done` are logged). `done` is dropped uncalled if the writer has stopped.
    ///
    /// A merge the store reported that the replica has not adopted yet (see
    /// [`adopted`](Self::adopted)) is merged into the state of its key.
    pub(crate) fn submit(&self, mut entries: Vec<(String, DurableValue)>, done: Option<StoreDone>) {
        {
            let mut queue = self.shared.lock();
            let keys: Vec<String> = match done {
                Some(_) => entries.iter().map(|(k, _)| k.clone()).collect(),
                None => Vec::new(),
            };
            {
                let mut unadopted = self.shared.lock_unadopted();
                if !unadopted.is_empty() {
                    // The key's markers: handed over with it, or queued before.
                    let given: HashMap<String, PrunedIncarnations> = entries
                        .iter()
                        .filter_map(|(k, v)| Some((marked_key(k)?.to_owned(), markers_of(v)?)))
                        .map(|(of, m)| (of, m.clone()))
                        .collect();
                    for (key, value) in &mut entries {
                        let Some(u) = unadopted.get_mut(key.as_str()) else {
                            continue;
                        };
                        let queued = queue
                            .index
                            .get(&markers_key(key))
                            .and_then(|&i| markers_of(&queue.entries[i].1));
                        merge_unadopted(value, u, given.get(key.as_str()).or(queued));
                    }
                }
            }
            for (key, value) in entries {
                let (value, size) = queued_entry(&key, value);
                queue.bytes += size;
                match queue.index.get(&key).copied() {
                    Some(i) => {
                        let old = std::mem::replace(&mut queue.entries[i], (key, value, size));
                        queue.bytes -= old.2;
                    }
                    None => {
                        let i = queue.entries.len();
                        queue.index.insert(key.clone(), i);
                        queue.entries.push((key, value, size));
                    }
                }
            }
            if let Some(done) = done {
                queue.waiters.push(Waiter { keys, done });
            }
        }
        self.ring();
    }

    /// Flushes after every queued store.
    pub(crate) fn flush(&self) -> oneshot::Receiver<Result<(), DurableError>> {
        let (done, rx) = oneshot::channel();
        self.shared.lock().flushes.push(done);
        self.ring();
        rx
    }

    /// Whether the queue is at one of its limits: the replica then takes no new work until
    /// [`room`](Self::room) is signalled.
    pub(crate) fn is_full(&self) -> bool {
        let queue = self.shared.lock();
        let limits = self.shared.limits;
        queue.entries.len().max(queue.waiters.len()) >= limits.max_entries
            || queue.bytes >= limits.max_bytes
    }

    /// Signalled after every batch the writer finished.
    pub(crate) fn room(&self) -> Arc<Notify> {
        Arc::clone(&self.shared.room)
    }

    /// The replica adopted the merges of `stored`: states handed over from now on hold them,
    /// so they are no longer merged in (unless a later batch reported more of them).
    pub(crate) fn adopted(&self, stored: &Stored) {
        let mut unadopted = self.shared.lock_unadopted();
        for (key, _) in &stored.conflicts {
            if unadopted.get(key).is_some_and(|u| u.batch <= stored.batch) {
                unadopted.remove(key);
            }
        }
    }
}

/// The writer task's state.
struct Writer {
    shared: Arc<Shared>,
    store: Arc<dyn CrdtValueStore>,
    replica: ReplicaId,
    /// The replica task, which adopts what the store merged or found deleted, then answers the
    /// writes of the batch.
    replica_tx: mpsc::UnboundedSender<Internal>,
    /// Only the first failure of a run is logged as an error: while the store keeps failing
    /// every write fails, and the store reports its health itself.
    failing: bool,
    /// How many batches were written.
    batches: u64,
}

impl Writer {
    /// Writes batches until the queue is empty: each batch is everything queued while the
    /// previous one was in the store.
    async fn write_queued(&mut self) {
        loop {
            let batch = std::mem::take(&mut *self.shared.lock());
            if batch.is_empty() {
                return;
            }
            self.write_batch(batch).await;
            self.shared.room.notify_one();
        }
    }

    async fn write_batch(&mut self, batch: Queue) {
        let Queue {
            entries,
            waiters,
            flushes,
            ..
        } = batch;
        let entries: Vec<(String, DurableValue)> =
            entries.into_iter().map(|(k, v, _)| (k, v)).collect();
        let outcome = if entries.is_empty() {
            Ok(BatchReport::default())
        } else {
            let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            let outcome = self.store.store_each(&self.replica, entries).await;
            self.log(&keys, &outcome);
            outcome
        };
        let mut answers = Vec::with_capacity(waiters.len());
        let conflicts = match outcome {
            Ok(BatchReport { report, failed }) => {
                let failed: HashMap<&str, &DurableError> =
                    failed.iter().map(|(k, e)| (k.as_str(), e)).collect();
                for Waiter { keys, done } in waiters {
                    let outcome = match keys.iter().find_map(|k| failed.get(k.as_str())) {
                        Some(e) => Err(copy_error(e)),
                        None => Ok(()),
                    };
                    answers.push((done, outcome));
                }
                adopted(report.merged_conflicts, report.deleted)
            }
            Err(e) => {
                for Waiter { done, .. } in waiters {
                    answers.push((done, Err(copy_error(&e))));
                }
                match &e {
                    // Not a store failure: another process deleted the key.
                    DurableError::Deleted { key, .. } => vec![(key.clone(), DurableValue::Deleted)],
                    _ => Vec::new(),
                }
            }
        };
        self.batches += 1;
        let batch = self.batches;
        self.hold_until_adopted(&conflicts, batch);
        if !conflicts.is_empty() || !answers.is_empty() {
            let stored = Stored {
                conflicts,
                answers,
                batch,
            };
            if let Err(mpsc::error::SendError(Internal::Stored(stored))) =
                self.replica_tx.send(Internal::Stored(stored))
            {
                // The replica task is gone (shutdown): nothing to adopt into, answer here.
                stored.answer();
            }
        }
        if !flushes.is_empty() {
            let flushed = self.store.flush().await;
            for done in flushes {
                let _ = done.send(flushed.as_ref().map(|_| ()).map_err(copy_error));
            }
        }
    }

    /// Keeps the merged values of `conflicts` until the replica adopted them, and merges them
    /// into the states of their keys queued meanwhile (handed over before the replica sees them).
    fn hold_until_adopted(&self, conflicts: &Conflicts, batch: u64) {
        if conflicts.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        let mut unadopted = self.shared.lock_unadopted();
        for (key, value) in conflicts {
            let DurableValue::Data(merged) = value else {
                // A key found deleted: the store keeps it deleted, whatever state comes.
                unadopted.remove(key);
                continue;
            };
            let held = match unadopted.remove(key) {
                Some(mut held) => {
                    if held.state.merge_erased(merged.as_ref()).is_err() {
                        held.state = merged.clone_boxed();
                    }
                    held.state
                }
                None => merged.clone_boxed(),
            };
            let mut held = Unadopted { state: held, batch };
            if let Some(&i) = queue.index.get(key) {
                let markers = queue
                    .index
                    .get(&markers_key(key))
                    .and_then(|&m| markers_of(&queue.entries[m].1))
                    .cloned();
                merge_unadopted(&mut queue.entries[i].1, &mut held, markers.as_ref());
            }
            unadopted.insert(key.clone(), held);
        }
    }

    fn log(&mut self, keys: &[String], outcome: &Result<BatchReport, DurableError>) {
        let store = self.store.describe();
        let replica = &self.replica;
        let error = match outcome {
            Ok(report) => {
                for (key, e) in &report.failed {
                    if let DurableError::Deleted { .. } = e {
                        tracing::warn!(store = %store, replica = %replica, key,
                            "key deleted in the durable store by another process: the write was \
                             not applied, the tombstone is adopted");
                    } else {
                        tracing::error!(store = %store, replica = %replica, key, error = %e,
                            "durable write of a key failed; its value stays in memory and the \
                             write is retried");
                    }
                }
                if self.failing {
                    self.failing = false;
                    tracing::info!(store = %store, replica = %replica,
                        "durable store writes succeed again");
                }
                return;
            }
            Err(e) => e,
        };
        if let DurableError::Deleted {
            backend,
            replica: of,
            key,
        } = error
        {
            tracing::warn!(store = %backend, replica = %of, key,
                "key deleted in the durable store by another process: the write was not \
                 applied, the tombstone is adopted");
        } else if self.failing {
            tracing::debug!(store = %store, replica = %replica, keys = ?keys, error = %error,
                "durable store failed");
        } else {
            self.failing = true;
            tracing::error!(store = %store, replica = %replica, keys = ?keys, error = %error,
                "durable store failed; values stay in memory (later failures are logged at \
                 debug level until a write succeeds)");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::crdt::GCounter;
    use crate::data::TypeRegistry;
    use crate::durable::{DurableEntryStream, StoreReport};

    /// Records every batch (each state encoded once, as a store does) and answers each with
    /// the next of `reports`.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<Vec<(String, DurableValue)>>>,
        reports: Mutex<VecDeque<StoreReport>>,
    }

    #[async_trait]
    impl CrdtValueStore for Recording {
        fn describe(&self) -> String {
            "recording".into()
        }
        fn load<'a>(&'a self, _: &'a ReplicaId, _: &'a TypeRegistry) -> DurableEntryStream<'a> {
            Box::pin(futures::stream::empty())
        }
        async fn store(
            &self,
            _: &ReplicaId,
            entries: Vec<(String, DurableValue)>,
        ) -> Result<StoreReport, DurableError> {
            for (_, v) in &entries {
                if let DurableValue::Data(d) = v {
                    d.encode().unwrap();
                }
            }
            self.batches.lock().unwrap().push(entries);
            Ok(self.reports.lock().unwrap().pop_front().unwrap_or_default())
        }
        async fn flush(&self) -> Result<(), DurableError> {
            Ok(())
        }
    }

    fn counter(slots: &[(&str, u64, u64)]) -> GCounter {
        let mut c = GCounter::new();
        for (name, incarnation, n) in slots {
            c.increment(&UniqueReplicaId::new(*name, *incarnation), *n)
                .unwrap();
        }
        c
    }

    fn data(c: GCounter) -> DurableValue {
        DurableValue::Data(Box::new(c))
    }

    struct Harness {
        store: Arc<Recording>,
        writer: DurableWriter,
        replica_rx: mpsc::UnboundedReceiver<Internal>,
    }

    impl Harness {
        fn new() -> Self {
            let store = Arc::new(Recording::default());
            let (tx, replica_rx) = mpsc::unbounded_channel();
            let writer = DurableWriter::spawn(
                store.clone(),
                ReplicaId::new("a"),
                QueueLimits {
                    max_entries: 1000,
                    max_bytes: 1 << 20,
                },
                tx,
            );
            Self {
                store,
                writer,
                replica_rx,
            }
        }

        /// Hands `entries` over and waits for the answer of their batch (not adopted).
        async fn write(&mut self, entries: Vec<(String, DurableValue)>) -> Stored {
            self.writer.submit(entries, Some(Box::new(|_| {})));
            match self.replica_rx.recv().await {
                Some(Internal::Stored(stored)) => stored,
                _ => panic!("no answer"),
            }
        }

        /// The counter written for `key` by the last batch.
        fn last_written(&self, key: &str) -> GCounter {
            let batches = self.store.batches.lock().unwrap();
            let batch = batches.last().expect("a batch");
            let (_, value) = batch.iter().find(|(k, _)| k == key).expect("the key");
            match value {
                DurableValue::Data(d) => d.downcast_ref::<GCounter>().unwrap().clone(),
                DurableValue::Deleted => panic!("deleted"),
            }
        }

        fn report_merge_next(&self, key: &str, merged: GCounter) {
            self.store.reports.lock().unwrap().push_back(StoreReport {
                merged_conflicts: vec![(key.to_owned(), Box::new(merged))],
                deleted: Vec::new(),
            });
        }
    }

    /// The store merged another writer's `b#1:3` into `k`; the replica has not adopted it when
    /// it hands over a newer state of `k` without it: that state is written with the merge
    /// (else the other writer's increments would be overwritten). Once adopted, states are
    /// written as given.
    #[tokio::test]
    async fn a_state_handed_over_before_the_merge_was_adopted_is_written_with_it() {
        let mut h = Harness::new();
        h.report_merge_next("k", counter(&[("a", 1, 1), ("b", 1, 3)]));
        let stored = h
            .write(vec![("k".into(), data(counter(&[("a", 1, 1)])))])
            .await;
        assert_eq!(stored.conflicts.len(), 1, "the merge comes with the answer");

        h.write(vec![("k".into(), data(counter(&[("a", 1, 2)])))])
            .await;
        assert_eq!(h.last_written("k"), counter(&[("a", 1, 2), ("b", 1, 3)]));

        h.writer.adopted(&stored);
        // Deliberately without the merge, to show it is no longer merged in.
        h.write(vec![("k".into(), data(counter(&[("a", 1, 3)])))])
            .await;
        assert_eq!(h.last_written("k"), counter(&[("a", 1, 3)]));
    }

    /// Issue 17 item 2 on the writer: the merge `{a#1:10, c#1:5}` was met before c#1 was pruned
    /// (collapsed into a#1: 15); the collapsed state comes with its markers before the replica
    /// adopted the merge. The merge's c#1 entry is counted in a#1 already: 15 is written, not 20.
    #[tokio::test]
    async fn an_unadopted_merge_is_pruned_by_the_markers_handed_over_since() {
        let mut h = Harness::new();
        h.report_merge_next("k", counter(&[("a", 1, 10), ("c", 1, 5)]));
        h.write(vec![("k".into(), data(counter(&[("a", 1, 10)])))])
            .await;
        let mut pruning = PrunedIncarnations::default();
        pruning.performed.insert(
            UniqueReplicaId::new("c", 1),
            Some(UniqueReplicaId::new("a", 1)),
        );
        h.write(vec![
            (
                markers_key("k"),
                DurableValue::Data(Box::new(pruning.clone())),
            ),
            ("k".into(), data(counter(&[("a", 1, 15)]))),
        ])
        .await;
        assert_eq!(h.last_written("k"), counter(&[("a", 1, 15)]));
        // The markers written before (not handed over again) still hold for the merge.
        h.write(vec![("k".into(), data(counter(&[("a", 1, 16)])))])
            .await;
        assert_eq!(h.last_written("k"), counter(&[("a", 1, 16)]));
    }

    /// A GCounter counting how often it is encoded.
    #[derive(Debug, Clone)]
    struct Counting {
        inner: GCounter,
        encodes: Arc<AtomicUsize>,
    }

    impl ErasedData for Counting {
        fn data_type_name(&self) -> String {
            "test.Counting".into()
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
        fn clone_boxed(&self) -> Box<dyn ErasedData> {
            Box::new(self.clone())
        }
        fn eq_erased(&self, other: &dyn ErasedData) -> bool {
            other
                .as_any()
                .downcast_ref::<Self>()
                .is_some_and(|o| o.inner == self.inner)
        }
        fn merge_erased(&mut self, other: &dyn ErasedData) -> Result<(), DataError> {
            self.inner.merge_erased(other)
        }
        fn encode(&self) -> Result<Vec<u8>, DataError> {
            self.encodes.fetch_add(1, Ordering::SeqCst);
            self.inner.encode()
        }
        fn encode_delta(&self) -> Result<Option<Vec<u8>>, DataError> {
            Ok(None)
        }
        fn reset_delta(&mut self) {}
        fn merge_delta_bytes(&mut self, _: &[u8]) -> Result<(), DataError> {
            Ok(())
        }
        fn requires_causal_delivery(&self) -> bool {
            false
        }
        fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
            BTreeSet::new()
        }
        fn replicas_in_state(&self) -> BTreeSet<UniqueReplicaId> {
            BTreeSet::new()
        }
        fn needs_pruning_from(&self, _: &UniqueReplicaId) -> bool {
            false
        }
        fn prune(&mut self, _: &UniqueReplicaId, _: &UniqueReplicaId) {}
        fn prune_cleanup(&mut self, _: &UniqueReplicaId) {}
        fn mentions(&self, _: &UniqueReplicaId) -> bool {
            false
        }
        fn prunes_by_collapsing(&self) -> bool {
            false
        }
    }

    /// The group-commit byte bound counts the encoded state; the store writes the same
    /// encoding: a queued state is serialised once, not twice.
    #[tokio::test]
    async fn a_queued_state_is_encoded_once() {
        let mut h = Harness::new();
        let encodes = Arc::new(AtomicUsize::new(0));
        let state = Counting {
            inner: counter(&[("a", 1, 7)]),
            encodes: Arc::clone(&encodes),
        };
        h.write(vec![("k".into(), DurableValue::Data(Box::new(state)))])
            .await;
        assert_eq!(encodes.load(Ordering::SeqCst), 1);
    }
}
