//! Runs the durable store calls of one replica on their own task, so the replica task never waits
//! for storage, with group commit: while one batch is in the store, every write handed over joins
//! the next batch, which holds only the newest state of each key. One batch is one store call;
//! when the store answers, every write waiting in the batch is answered, key by key. Nothing waits
//! for company: a batch starts as soon as the previous one is done.
//!
//! The queue is bounded in entries and bytes ([`QueueLimits`]); the replica task stops taking
//! commands and messages while it is full (backpressure), and nothing handed over is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::data::{ErasedData, TypeRegistry};
use crate::durable::{BatchReport, DurableDataStore, DurableError, DurableValue};
use crate::replica::ReplicaId;
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

/// Called with the outcome of a store, on the writer task.
pub(crate) type StoreDone = Box<dyn FnOnce(Result<(), DurableError>) + Send>;

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

/// The size of an entry as counted against [`QueueLimits::max_bytes`]: its key and its encoded
/// state.
fn entry_bytes(key: &str, value: &DurableValue) -> usize {
    let state = match value {
        DurableValue::Data(d) => d.encode().map(|b| b.len()).unwrap_or(0),
        DurableValue::Deleted => 0,
    };
    key.len() + state
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled after every batch: the queue has room again.
    room: Arc<Notify>,
    limits: QueueLimits,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
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
    /// Spawns the writer task. What the store merged or found deleted goes back to the replica
    /// task on `replica_tx`.
    pub(crate) fn spawn(
        store: Arc<dyn DurableDataStore>,
        replica: ReplicaId,
        registry: TypeRegistry,
        limits: QueueLimits,
        replica_tx: mpsc::UnboundedSender<Internal>,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            room: Arc::new(Notify::new()),
            limits,
        });
        let (doorbell, mut rung) = mpsc::channel::<()>(1);
        let task = Writer {
            shared: Arc::clone(&shared),
            store,
            replica,
            registry,
            replica_tx,
            failing: false,
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
    pub(crate) fn submit(&self, entries: Vec<(String, DurableValue)>, done: Option<StoreDone>) {
        {
            let mut queue = self.shared.lock();
            let keys: Vec<String> = match done {
                Some(_) => entries.iter().map(|(k, _)| k.clone()).collect(),
                None => Vec::new(),
            };
            for (key, value) in entries {
                let size = entry_bytes(&key, &value);
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
}

/// The writer task's state.
struct Writer {
    shared: Arc<Shared>,
    store: Arc<dyn DurableDataStore>,
    replica: ReplicaId,
    registry: TypeRegistry,
    /// The replica task, which adopts what the store merged or found deleted.
    replica_tx: mpsc::UnboundedSender<Internal>,
    /// Only the first failure of a run is logged as an error: while the store keeps failing
    /// every write fails, and the store reports its health itself.
    failing: bool,
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
            let outcome = self
                .store
                .store_each(&self.replica, &self.registry, entries)
                .await;
            self.log(&keys, &outcome);
            outcome
        };
        match outcome {
            Ok(BatchReport { report, failed }) => {
                if !report.merged_conflicts.is_empty() || !report.deleted.is_empty() {
                    let adopt = adopted(report.merged_conflicts, report.deleted);
                    let _ = self.replica_tx.send(Internal::Stored(adopt));
                }
                let failed: HashMap<&str, &DurableError> =
                    failed.iter().map(|(k, e)| (k.as_str(), e)).collect();
                for Waiter { keys, done } in waiters {
                    match keys.iter().find_map(|k| failed.get(k.as_str())) {
                        Some(e) => done(Err(copy_error(e))),
                        None => done(Ok(())),
                    }
                }
            }
            Err(e) => {
                if let DurableError::Deleted { key, .. } = &e {
                    // Not a store failure: another process deleted the key.
                    let adopt = vec![(key.clone(), DurableValue::Deleted)];
                    let _ = self.replica_tx.send(Internal::Stored(adopt));
                }
                for Waiter { done, .. } in waiters {
                    done(Err(copy_error(&e)));
                }
            }
        }
        if !flushes.is_empty() {
            let flushed = self.store.flush().await;
            for done in flushes {
                let _ = done.send(flushed.as_ref().map(|_| ()).map_err(copy_error));
            }
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
