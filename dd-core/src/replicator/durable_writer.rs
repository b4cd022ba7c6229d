//! Runs the durable store calls of one replica on their own task, one after the other, so the
//! replica task never waits for storage and writes of one key stay in order.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::data::{ErasedData, TypeRegistry};
use crate::durable::{DurableDataStore, DurableError, DurableValue};
use crate::replica::ReplicaId;

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

/// Called with the outcome of a store, on the writer task.
pub(crate) type StoreDone = Box<dyn FnOnce(Result<(), DurableError>) + Send>;

enum Job {
    Store {
        entries: Vec<(String, DurableValue)>,
        done: Option<StoreDone>,
    },
    Flush {
        done: oneshot::Sender<Result<(), DurableError>>,
    },
}

/// Conflicting values the store merged (or found deleted), to be adopted by the replica.
pub(crate) type Conflicts = Vec<(String, DurableValue)>;

/// What the replica adopts from a store's report: merged values and tombstones.
fn adopted(merged: Vec<(String, Box<dyn ErasedData>)>, deleted: Vec<String>) -> Conflicts {
    merged
        .into_iter()
        .map(|(k, v)| (k, DurableValue::Data(v)))
        .chain(deleted.into_iter().map(|k| (k, DurableValue::Deleted)))
        .collect()
}

/// The handle to the writer task.
#[derive(Clone)]
pub(crate) struct DurableWriter {
    tx: mpsc::UnboundedSender<Job>,
}

impl DurableWriter {
    /// Spawns the writer task. Merged conflicts are sent to `conflicts`.
    pub(crate) fn spawn(
        store: Arc<dyn DurableDataStore>,
        replica: ReplicaId,
        registry: TypeRegistry,
        conflicts: mpsc::UnboundedSender<Conflicts>,
    ) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            // Only the first failure of a run is logged as an error: while the store keeps
            // failing every write fails, and the store reports its health itself.
            let mut failing = false;
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Store { entries, done } => {
                        let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
                        let result = if entries.is_empty() {
                            Ok(())
                        } else {
                            match store.store(&replica, &registry, entries).await {
                                Ok(report) => {
                                    if failing {
                                        failing = false;
                                        tracing::info!(store = %store.describe(), replica = %replica,
                                            "durable store writes succeed again");
                                    }
                                    if !report.merged_conflicts.is_empty()
                                        || !report.deleted.is_empty()
                                    {
                                        let _ = conflicts
                                            .send(adopted(report.merged_conflicts, report.deleted));
                                    }
                                    Ok(())
                                }
                                Err(DurableError::Deleted {
                                    backend,
                                    replica: of,
                                    key,
                                }) => {
                                    // Not a store failure: another process deleted the key.
                                    tracing::warn!(store = %backend, replica = %of, key,
                                        "key deleted in the durable store by another process: \
                                         the write was not applied, the tombstone is adopted");
                                    let _ =
                                        conflicts.send(vec![(key.clone(), DurableValue::Deleted)]);
                                    Err(DurableError::Deleted {
                                        backend,
                                        replica: of,
                                        key,
                                    })
                                }
                                Err(e) => {
                                    if failing {
                                        tracing::debug!(
                                            store = %store.describe(), replica = %replica,
                                            keys = ?keys, error = %e, "durable store failed"
                                        );
                                    } else {
                                        failing = true;
                                        tracing::error!(
                                            store = %store.describe(), replica = %replica,
                                            keys = ?keys, error = %e,
                                            "durable store failed; values stay in memory (later \
                                             failures are logged at debug level until a write succeeds)"
                                        );
                                    }
                                    Err(e)
                                }
                            }
                        };
                        if let Some(done) = done {
                            done(result);
                        }
                    }
                    Job::Flush { done } => {
                        let _ = done.send(store.flush().await);
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queues a store of `entries`; the receiver answers once it was stored (an empty batch
    /// answers once every earlier batch was stored).
    pub(crate) fn store(
        &self,
        entries: Vec<(String, DurableValue)>,
    ) -> oneshot::Receiver<Result<(), DurableError>> {
        let (tx, rx) = oneshot::channel();
        self.store_then(
            entries,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx
    }

    /// Queues a store of `entries` and calls `done` with its outcome on the writer task, without
    /// a task or channel per store. `done` is dropped uncalled if the writer has stopped.
    pub(crate) fn store_then(&self, entries: Vec<(String, DurableValue)>, done: StoreDone) {
        let _ = self.tx.send(Job::Store {
            entries,
            done: Some(done),
        });
    }

    /// Queues a store without waiting for it (errors are logged).
    pub(crate) fn store_detached(&self, entries: Vec<(String, DurableValue)>) {
        if !entries.is_empty() {
            let _ = self.tx.send(Job::Store {
                entries,
                done: None,
            });
        }
    }

    /// Flushes after every queued store.
    pub(crate) fn flush(&self) -> oneshot::Receiver<Result<(), DurableError>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Job::Flush { done });
        rx
    }
}
