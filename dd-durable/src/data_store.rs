//! [`DurableDistributedDataStore`]: the replicator's [`CrdtValueStore`] over any
//! [`DurableStateStore`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dd_core::ReplicaId;
use dd_core::data::TypeRegistry;
use dd_core::durable::{
    BatchReport, CrdtValueStore, DurableEntryStream, DurableError, DurableHealth, DurableValue,
    StoreReport, markers_key,
};
use dd_core::store::{DurableStateStore, StoreError};
use futures::StreamExt;

use crate::core::{Core, run_background_writes};
use crate::known::Known;
use crate::lock;
use crate::open::{OpenError, open_store};
use crate::options::{DurableOptions, WriteMode};
use crate::stats::DurableStats;

/// Durable Distributed Data over a [`DurableStateStore`] `S` (by default any store, as
/// `dyn DurableStateStore`).
///
/// It wraps every value in the versioned, checksummed [record format](crate::record), remembers the
/// revision of every key it loaded or wrote and writes conditionally on it, merges a conflicting
/// record (another process writing under the same replica name) instead of overwriting it, never
/// overwrites a record it cannot decode, and writes synchronously or write-behind
/// ([`WriteMode`]).
///
/// When the backend fails, nothing handed to it is dropped: a synchronous write returns the error
/// and its entries are kept and retried in the background with backoff (a newer state of a key
/// replaces the kept one), the write-behind queue is kept likewise, and
/// [`health`](CrdtValueStore::health) reports the store unhealthy until everything is written.
/// Every backend call is bounded by [`DurableOptions::operation_timeout`], so a hanging backend
/// counts as failing instead of stalling the replica's writes forever.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use dd_core::crdt::GCounter;
/// use dd_core::data::TypeRegistry;
/// use dd_core::durable::{CrdtValueStore, DurableValue};
/// use dd_core::store::memory::MemoryStore;
/// use dd_core::{ReplicaId, UniqueReplicaId};
/// use dd_durable::{DurableDistributedDataStore, DurableOptions};
/// use futures::TryStreamExt;
///
/// let registry = TypeRegistry::with_builtin_types();
/// let replica = ReplicaId::new("node-a");
/// let backend = MemoryStore::new();
/// let durable = DurableDistributedDataStore::new(backend.clone(), DurableOptions::default());
/// let mut hits = GCounter::new();
/// hits.increment(&UniqueReplicaId::new("node-a", 1), 3).unwrap();
/// let entries = vec![("hits".to_owned(), DurableValue::Data(Box::new(hits)))];
/// durable.attach(&replica, &registry);
/// durable.store(&replica, entries).await.unwrap();
///
/// // After a restart: a new instance over the same backend loads what was stored.
/// let reopened = DurableDistributedDataStore::new(backend, DurableOptions::default());
/// let loaded: Vec<_> = reopened.load(&replica, &registry).try_collect().await.unwrap();
/// let DurableValue::Data(value) = &loaded[0].1 else { panic!("not data") };
/// assert_eq!(value.downcast_ref::<GCounter>().unwrap().value(), 3);
/// # });
/// ```
pub struct DurableDistributedDataStore<S: ?Sized + DurableStateStore = dyn DurableStateStore> {
    core: Arc<Core<S>>,
    /// Stops the background writer when dropped (it then writes the queue one last time).
    background: Mutex<Option<tokio::sync::watch::Sender<()>>>,
}

impl<S: DurableStateStore> DurableDistributedDataStore<S> {
    /// Durable data over `store`.
    pub fn new(store: S, options: DurableOptions) -> Self {
        Self::from_arc(Arc::new(store), options)
    }
}

impl DurableDistributedDataStore<dyn DurableStateStore> {
    /// Opens the store at `url` (see [`open_store`]) and puts durable data over it.
    pub async fn open_url(url: &str, options: DurableOptions) -> Result<Self, OpenError> {
        Ok(Self::from_arc(open_store(url).await?, options))
    }
}

impl<S: ?Sized + DurableStateStore> DurableDistributedDataStore<S> {
    /// Durable data over a shared store, for example an `Arc<dyn DurableStateStore>`.
    pub fn from_arc(store: Arc<S>, options: DurableOptions) -> Self {
        Self {
            core: Arc::new(Core::new(store, options)),
            background: Mutex::new(None),
        }
    }

    /// The underlying store.
    pub fn state_store(&self) -> &Arc<S> {
        &self.core.store
    }

    /// The options this store was created with.
    pub fn options(&self) -> &DurableOptions {
        &self.core.options
    }

    /// A snapshot of the write counters, for metrics.
    pub fn stats(&self) -> DurableStats {
        self.core.stats.snapshot(self.core.pending.len())
    }

    /// Whether the backend keeps up with the writes; see [`DurableHealth`].
    pub fn health(&self) -> DurableHealth {
        self.core.health.snapshot(self.core.pending.len())
    }

    /// Writes everything queued and stops the background writer. Dropping the store without
    /// closing it also stops the writer, which then writes the queue best-effort.
    pub async fn close(self) -> Result<(), DurableError> {
        self.core.flush_pending().await
    }

    /// Starts the background writer unless it runs already: it writes the write-behind queue
    /// every `interval`, or retries the entries of failed synchronous writes.
    fn ensure_background_writer(&self, interval: Duration) -> Result<(), DurableError> {
        let mut running = lock(&self.background);
        if running.is_some() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| StoreError::Config {
            backend: self.core.backend.clone(),
            message: format!("writing in the background needs a tokio runtime: {e}"),
        })?;
        let (stop, stopped) = tokio::sync::watch::channel(());
        runtime.spawn(run_background_writes(
            Arc::clone(&self.core),
            interval,
            stopped,
        ));
        *running = Some(stop);
        Ok(())
    }

    /// A synchronous write answered key by key: the keys that failed (or that another writer
    /// deleted) are named with their error, every other key was written. What background writes
    /// merged or found deleted since the last call is merged into these entries and reported.
    async fn store_sync_each(
        &self,
        replica: &ReplicaId,
        mut entries: Vec<(String, DurableValue)>,
    ) -> Result<BatchReport, DurableError> {
        let mut unreported = self.core.unreported.take(replica);
        unreported.merge_into(&mut entries);
        let written = self.core.write_now(replica, entries).await;
        if self.core.pending.len() > 0 {
            // Retry what failed in the background; the errors still go to the caller.
            self.ensure_background_writer(self.core.options.retry_interval)?;
        }
        let result = match written {
            Ok(result) => result,
            Err(e) => {
                self.core.unreported.put_back(replica, unreported);
                return Err(e);
            }
        };
        let mut failed = result.failed;
        failed.extend(result.deleted.iter().map(|key| {
            (
                key.clone(),
                DurableError::Deleted {
                    backend: self.core.backend.clone(),
                    replica: replica.to_string(),
                    key: key.clone(),
                },
            )
        }));
        let mut merged_conflicts: Vec<_> = unreported
            .merged
            .into_iter()
            .filter(|(k, _)| !result.merged.iter().any(|(m, _)| m == k))
            .collect();
        merged_conflicts.extend(result.merged);
        let mut deleted: Vec<String> = unreported.deleted.into_iter().collect();
        deleted.extend(result.deleted);
        Ok(BatchReport {
            report: StoreReport {
                merged_conflicts,
                deleted,
            },
            failed,
        })
    }

    async fn store_sync(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<StoreReport, DurableError> {
        let batch = self.store_sync_each(replica, entries).await?;
        let BatchReport { report, failed } = batch;
        // A key failed: the call fails with its error, and what it merged or found deleted is
        // reported by the next call.
        let mut failed = failed.into_iter();
        let Some((first_key, first_error)) = failed.next() else {
            return Ok(report);
        };
        let deleted_only = matches!(first_error, DurableError::Deleted { .. });
        for (key, value) in report.merged_conflicts {
            self.core.unreported.merged(replica, &key, value);
        }
        for key in &report.deleted {
            self.core.unreported.deleted(replica, key);
        }
        for (key, e) in failed {
            tracing::error!(backend = %self.core.backend, replica = %replica, key, error = %e,
                "durable write of a key failed");
        }
        if deleted_only {
            tracing::warn!(backend = %self.core.backend, replica = %replica, key = first_key,
                "key deleted in the store by another writer: this write was not applied");
        } else {
            tracing::error!(backend = %self.core.backend, replica = %replica, key = first_key,
                error = %first_error, "durable write of a key failed");
        }
        Err(first_error)
    }
}

impl<S: ?Sized + DurableStateStore> fmt::Debug for DurableDistributedDataStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableDistributedDataStore")
            .field("backend", &self.core.backend)
            .field("options", &self.core.options)
            .field("stats", &self.stats())
            .finish()
    }
}

#[async_trait]
impl<S: ?Sized + DurableStateStore> CrdtValueStore for DurableDistributedDataStore<S> {
    fn describe(&self) -> String {
        self.core.backend.clone()
    }

    fn attach(&self, replica: &ReplicaId, registry: &TypeRegistry) {
        self.core.attach(replica, registry);
    }

    fn load<'a>(
        &'a self,
        replica: &'a ReplicaId,
        registry: &'a TypeRegistry,
    ) -> DurableEntryStream<'a> {
        let core = &*self.core;
        let records = core
            .store
            .scan(replica.as_str(), core.options.scan_page_size);
        // A record with pruning markers inside (format version 2) is handed back as the key's
        // markers entry, then the key's value, as the replicator handed them over.
        Box::pin(records.flat_map(move |item| {
            let decoded = item.map_err(DurableError::from).and_then(|record| {
                let decoded = core.decode_record(replica, registry, &record)?;
                let known = Known {
                    revision: record.revision,
                    tombstone: matches!(decoded.value, DurableValue::Deleted),
                };
                core.known.set(replica, &record.key, known);
                Ok((record.key, decoded))
            });
            let entries = match decoded {
                Err(e) => vec![Err(e)],
                Ok((key, decoded)) => {
                    let markers = decoded.pruning.map(|p| {
                        Ok((markers_key(&key), DurableValue::Data(Box::new(p) as Box<_>)))
                    });
                    markers
                        .into_iter()
                        .chain([Ok((key, decoded.value))])
                        .collect()
                }
            };
            futures::stream::iter(entries)
        }))
    }

    async fn store(
        &self,
        replica: &ReplicaId,
        mut entries: Vec<(String, DurableValue)>,
    ) -> Result<StoreReport, DurableError> {
        match self.core.options.write_mode {
            WriteMode::Sync => self.store_sync(replica, entries).await,
            WriteMode::WriteBehind { interval } => {
                self.ensure_background_writer(interval)?;
                let mut unreported = self.core.unreported.take(replica);
                unreported.merge_into(&mut entries);
                self.core.pending.enqueue(replica, entries);
                Ok(StoreReport {
                    merged_conflicts: unreported.merged.into_iter().collect(),
                    deleted: unreported.deleted.into_iter().collect(),
                })
            }
        }
    }

    async fn store_each(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<BatchReport, DurableError> {
        match self.core.options.write_mode {
            WriteMode::Sync => self.store_sync_each(replica, entries).await,
            WriteMode::WriteBehind { .. } => {
                self.store(replica, entries)
                    .await
                    .map(|report| BatchReport {
                        report,
                        failed: Vec::new(),
                    })
            }
        }
    }

    async fn flush(&self) -> Result<(), DurableError> {
        self.core.flush_pending().await
    }

    fn health(&self) -> DurableHealth {
        DurableDistributedDataStore::health(self)
    }
}
