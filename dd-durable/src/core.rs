//! The write path shared by both write modes: encoding, one conditional batch, conflict merging.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dd_core::ReplicaId;
use dd_core::data::{DataError, ErasedData, TypeRegistry};
use dd_core::durable::{DurableError, DurableValue, PrunedIncarnations, marked_key};
use dd_core::store::{
    DurableStateStore, Revision, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

use crate::alarm::ConflictAlarm;
use crate::health::HealthTracker;
use crate::known::{Known, KnownRevisions};
use crate::lock;
use crate::merged::UnreportedMerges;
use crate::options::DurableOptions;
use crate::pending::{PendingBatch, PendingQueue};
use crate::record::{self, Record};
use crate::stats::StatsCounters;

/// What one write of entries did, key by key.
#[derive(Default)]
pub(crate) struct WriteResult {
    /// Keys whose write conflicted and whose merge was written, with the merged value.
    pub(crate) merged: Vec<(String, Box<dyn ErasedData>)>,
    /// Keys that were not written, with the reason. The stored record is unchanged.
    pub(crate) failed: Vec<(String, DurableError)>,
    /// Keys whose value was not written because the key is deleted in the store (another
    /// writer's tombstone, known or found by a conflict), for the replicator to adopt.
    pub(crate) deleted: Vec<String>,
}

/// A stored record, decoded: the value and the pruning markers kept with it (format version 2).
pub(crate) struct Decoded {
    pub(crate) value: DurableValue,
    pub(crate) pruning: Option<PrunedIncarnations>,
}

/// One record of a batch, as planned: the value written and the markers written inside it.
struct Planned<'a> {
    key: &'a str,
    value: Cow<'a, DurableValue>,
    pruning: Option<&'a PrunedIncarnations>,
}

/// The state shared by a store handle and its background writer.
pub(crate) struct Core<S: ?Sized> {
    pub(crate) store: Arc<S>,
    pub(crate) backend: String,
    pub(crate) options: DurableOptions,
    pub(crate) known: KnownRevisions,
    /// Merges and deletions met by writes with no caller to answer, for the next call.
    pub(crate) unreported: UnreportedMerges,
    pub(crate) pending: PendingQueue,
    /// The type registry of each replica's replicator, given once when it attaches
    /// ([`CrdtValueStore::attach`](dd_core::durable::CrdtValueStore::attach)): what a record met
    /// in a conflict is decoded with. Writes do not carry it.
    registries: Mutex<HashMap<ReplicaId, TypeRegistry>>,
    /// The registry of a replica no replicator attached: the built-in types and the
    /// replicator's record types.
    default_registry: TypeRegistry,
    pub(crate) stats: StatsCounters,
    pub(crate) health: HealthTracker,
    /// Keys of batches that failed or timed out: they may have landed anyway, so a conflict on
    /// their next write is expected (our own write), not another writer.
    uncertain: Mutex<HashSet<(ReplicaId, String)>>,
    alarm: ConflictAlarm,
    /// Serialises writes, so that two writes of this process never conflict with each other.
    write_lock: tokio::sync::Mutex<()>,
    /// Serialises flushes, so that a flush returns only after any flush in progress is done.
    flush_lock: tokio::sync::Mutex<()>,
}

/// The entries whose keys are among the `failed` ones, to be retried, with the pruning markers
/// entries of those keys (they are written inside the key's record).
fn failed_entries(
    failed: &[(String, DurableError)],
    entries: &[(String, DurableValue)],
) -> Vec<(String, DurableValue)> {
    let failed: HashSet<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
    entries
        .iter()
        .filter(|(k, _)| {
            failed.contains(k.as_str()) || marked_key(k).is_some_and(|m| failed.contains(m))
        })
        .cloned()
        .collect()
}

/// Where in `planned` the key is that a backend's "record is corrupt" error names, when it is one
/// of this batch's keys of `replica` (once).
fn corrupt_key_of(
    replica: &ReplicaId,
    error: &StoreError,
    planned: &[Planned<'_>],
) -> Option<usize> {
    let StoreError::Corrupt {
        replica: of, key, ..
    } = error
    else {
        return None;
    };
    if of != replica.as_str() {
        return None;
    }
    let mut at = planned.iter().enumerate().filter(|(_, p)| p.key == key);
    match (at.next(), at.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// The pruning markers handed over in a markers entry, when it holds them.
fn markers_of(value: &DurableValue) -> Option<&PrunedIncarnations> {
    match value {
        DurableValue::Data(d) => d.downcast_ref::<PrunedIncarnations>(),
        DurableValue::Deleted => None,
    }
}

fn is_deleted(value: &DurableValue) -> bool {
    matches!(value, DurableValue::Deleted)
}

fn same_value(a: &DurableValue, b: &DurableValue) -> bool {
    match (a, b) {
        (DurableValue::Deleted, DurableValue::Deleted) => true,
        (DurableValue::Data(a), DurableValue::Data(b)) => a.eq_erased(b.as_ref()),
        _ => false,
    }
}

/// The merge of two states of a key with their pruning markers: a tombstone wins, data is
/// merged as its CRDT after the entries of every incarnation either side's markers say was
/// pruned are dropped from both (they were counted in a live incarnation already), and the
/// markers are the union of both.
fn merge_values(
    ours: &DurableValue,
    our_pruning: Option<&PrunedIncarnations>,
    theirs: &Decoded,
) -> Result<Decoded, DataError> {
    match (ours, &theirs.value) {
        (DurableValue::Data(a), DurableValue::Data(b)) => {
            let mut pruning = our_pruning.cloned().unwrap_or_default();
            if let Some(p) = &theirs.pruning {
                dd_core::ReplicatedData::merge(&mut pruning, p);
            }
            let mut merged = a.clone_boxed();
            let mut other = b.clone_boxed();
            pruning.apply_to(merged.as_mut());
            pruning.apply_to(other.as_mut());
            merged.merge_erased(other.as_ref())?;
            Ok(Decoded {
                value: DurableValue::Data(merged),
                pruning: (!pruning.is_empty()).then_some(pruning),
            })
        }
        _ => Ok(Decoded {
            value: DurableValue::Deleted,
            pruning: None,
        }),
    }
}

impl<S: ?Sized + DurableStateStore> Core<S> {
    pub(crate) fn new(store: Arc<S>, options: DurableOptions) -> Self {
        let backend = store.describe();
        Self {
            store,
            backend,
            alarm: ConflictAlarm::new(options.conflict_alarm_interval),
            options,
            known: KnownRevisions::default(),
            unreported: UnreportedMerges::default(),
            pending: PendingQueue::default(),
            registries: Mutex::new(HashMap::new()),
            default_registry: {
                let registry = TypeRegistry::with_builtin_types();
                dd_core::replicator::register_record_types(&registry);
                registry
            },
            stats: StatsCounters::default(),
            health: HealthTracker::default(),
            uncertain: Mutex::new(HashSet::new()),
            write_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Keeps `registry` as the one `replica`'s records are decoded with from now on.
    pub(crate) fn attach(&self, replica: &ReplicaId, registry: &TypeRegistry) {
        lock(&self.registries).insert(replica.clone(), registry.clone());
    }

    /// The registry `replica`'s records are decoded with: the attached one, else the default.
    pub(crate) fn registry(&self, replica: &ReplicaId) -> TypeRegistry {
        lock(&self.registries)
            .get(replica)
            .cloned()
            .unwrap_or_else(|| self.default_registry.clone())
    }

    /// Runs one backend call within the operation timeout; a call that takes longer fails as
    /// unavailable (it is dropped, and may or may not have been applied).
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(limit) = self.options.operation_timeout else {
            return call.await;
        };
        match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable {
                backend: self.backend.clone(),
                source: format!("{what} did not finish within the operation timeout of {limit:?}")
                    .into(),
            }),
        }
    }

    /// Records a failed write attempt for health and logs the change to unhealthy.
    fn note_failure(&self, replica: &ReplicaId, error: &DurableError, whole_batch: bool) {
        self.stats.add_error();
        if self.health.failed(error, whole_batch) {
            tracing::error!(backend = %self.backend, replica = %replica, error = %error,
                "durable store unhealthy: writes fail; values are served from memory and the \
                 failed writes are retried with backoff until they succeed");
        }
    }

    /// Records that every write that had failed is written now.
    pub(crate) fn note_caught_up(&self) {
        if self.health.caught_up() {
            tracing::info!(backend = %self.backend,
                "durable store healthy again: every write that had failed is written");
        }
    }

    fn mark_uncertain<'k>(&self, replica: &ReplicaId, keys: impl IntoIterator<Item = &'k str>) {
        let mut uncertain = lock(&self.uncertain);
        for key in keys {
            uncertain.insert((replica.clone(), key.to_owned()));
        }
    }

    /// Whether `key`'s last write failed or timed out (and so may have landed); forgets it.
    fn take_uncertain(&self, replica: &ReplicaId, key: &str) -> bool {
        lock(&self.uncertain).remove(&(replica.clone(), key.to_owned()))
    }

    fn data_error(&self, replica: &ReplicaId, key: &str, source: DataError) -> DurableError {
        DurableError::Data {
            backend: self.backend.clone(),
            replica: replica.to_string(),
            key: key.to_owned(),
            source,
        }
    }

    /// A stored record as a value with the pruning markers kept in it; any damage is an error
    /// naming backend, replica and key.
    pub(crate) fn decode_record(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        record: &StoredRecord,
    ) -> Result<Decoded, DurableError> {
        let (decoded, pruning) = record::decode_with_pruning(&record.value)
            .map_err(|e| e.at(&self.backend, replica.as_str(), &record.key))?;
        let pruning = pruning
            .map(|bytes| {
                postcard::from_bytes::<PrunedIncarnations>(bytes).map_err(|e| {
                    DurableError::Corrupt {
                        backend: self.backend.clone(),
                        replica: replica.to_string(),
                        key: record.key.clone(),
                        reason: format!("pruning markers of the record cannot be decoded: {e}"),
                    }
                })
            })
            .transpose()?;
        let value = match decoded {
            Record::Tombstone => DurableValue::Deleted,
            Record::Data { type_name, payload } => registry
                .decode(type_name, payload)
                .map(DurableValue::Data)
                .map_err(|e| self.data_error(replica, &record.key, e))?,
        };
        Ok(Decoded { value, pruning })
    }

    fn encode_value(
        &self,
        replica: &ReplicaId,
        key: &str,
        value: &DurableValue,
        pruning: Option<&PrunedIncarnations>,
    ) -> Result<Bytes, DurableError> {
        let encoded = match value {
            DurableValue::Deleted => record::encode(&Record::Tombstone),
            DurableValue::Data(data) => {
                let payload = data
                    .encode()
                    .map_err(|e| self.data_error(replica, key, e))?;
                let pruning = pruning
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        postcard::to_stdvec(p).map_err(|source| {
                            self.data_error(
                                replica,
                                key,
                                DataError::Encode {
                                    type_name: "pruning markers".to_owned(),
                                    source,
                                },
                            )
                        })
                    })
                    .transpose()?;
                record::encode_with_pruning(
                    &Record::Data {
                        type_name: &data.data_type_name(),
                        payload: &payload,
                    },
                    pruning.as_deref(),
                )
            }
        };
        encoded
            .map(Bytes::from)
            .map_err(|e| e.at(&self.backend, replica.as_str(), key))
    }

    /// Writes `entries` with one conditional batch, then merges every key that conflicted.
    /// A key's pruning markers entry ([`markers_key`](dd_core::durable::markers_key)) given with the key's value is written
    /// inside the value's record (one atomic write of both), not as a record of its own.
    /// `Err` means the batch as a whole failed and nothing was written.
    pub(crate) async fn write_entries(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        entries: &[(String, DurableValue)],
    ) -> Result<WriteResult, DurableError> {
        let _serialised = self.write_lock.lock().await;
        let mut result = WriteResult::default();
        let mut ops = Vec::with_capacity(entries.len());
        let mut planned: Vec<Planned<'_>> = Vec::with_capacity(entries.len());
        // Only the last state of a key given twice is written (both would carry one revision).
        let last_of_key: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (key.as_str(), i))
            .collect();
        let is_last = |i: usize, key: &str| last_of_key.get(key) == Some(&i);
        // The markers that go inside the record of their key: given with a value of that key.
        let mut folded: HashMap<&str, &PrunedIncarnations> = HashMap::new();
        for (i, (key, value)) in entries.iter().enumerate() {
            if let (Some(of), Some(markers)) = (marked_key(key), markers_of(value))
                && is_last(i, key)
                && last_of_key
                    .get(of)
                    .is_some_and(|&j| matches!(entries[j].1, DurableValue::Data(_)))
            {
                folded.insert(of, markers);
            }
        }
        for (i, (key, value)) in entries.iter().enumerate() {
            if !is_last(i, key) {
                continue;
            }
            if marked_key(key).is_some_and(|of| folded.contains_key(of)) {
                continue;
            }
            let known = self.known.get(replica, key);
            if marked_key(key).is_some() && known.is_none() && is_deleted(value) {
                // Markers of a deleted key that were never stored as a record of their own.
                continue;
            }
            if known.is_some_and(|k| k.tombstone) {
                tracing::debug!(backend = %self.backend, replica = %replica, key = %key,
                    "key is deleted in the store; a deleted key stays deleted, not writing");
                if !is_deleted(value) && marked_key(key).is_none() {
                    result.deleted.push(key.clone());
                }
                continue;
            }
            let pruning = folded.get(key.as_str()).copied();
            let mut outgoing = Cow::Borrowed(value);
            // A value stored with markers never holds entries they say were pruned.
            if let (Some(p), DurableValue::Data(d)) = (pruning, value)
                && p.performed.keys().any(|r| d.mentions(r))
                && let DurableValue::Data(d) = outgoing.to_mut()
            {
                p.apply_to(d.as_mut());
            }
            match self.encode_value(replica, key, &outgoing, pruning) {
                Ok(bytes) => {
                    ops.push(WriteOp::Put {
                        key: key.clone(),
                        expected: known.map(|k| k.revision),
                        value: bytes,
                    });
                    planned.push(Planned {
                        key,
                        value: outgoing,
                        pruning,
                    });
                }
                Err(e) => {
                    self.note_failure(replica, &e, false);
                    result.failed.push((key.clone(), e));
                }
            }
        }
        let started = Instant::now();
        let outcomes = loop {
            if ops.is_empty() {
                return Ok(result);
            }
            let count = ops.len();
            let batch = self.store.write_batch(replica.as_str(), ops.clone());
            let checked = self.bounded("a batch write", batch).await.and_then(|outcomes| {
                if outcomes.len() == count {
                    Ok(outcomes)
                } else {
                    Err(StoreError::Backend {
                        backend: self.backend.clone(),
                        message: format!(
                            "a batch of {count} writes for replica '{replica}' returned {} outcomes",
                            outcomes.len()
                        ),
                        source: None,
                    })
                }
            });
            match checked {
                Ok(outcomes) => break outcomes,
                Err(e) => {
                    // The other keys may have landed (S3 writes them concurrently).
                    self.mark_uncertain(replica, planned.iter().map(|p| p.key));
                    match corrupt_key_of(replica, &e, &planned) {
                        Some(i) => {
                            // A record of this batch the backend cannot read: that key fails
                            // (its record is left as it is), the others are written without it.
                            let e = DurableError::from(e);
                            self.note_failure(replica, &e, false);
                            tracing::error!(backend = %self.backend, replica = %replica,
                                key = planned[i].key, error = %e,
                                "stored record is unreadable: not overwriting it; the key's \
                                 write fails, the rest of the batch is written");
                            ops.remove(i);
                            result.failed.push((planned.remove(i).key.to_owned(), e));
                        }
                        None => {
                            let e = DurableError::from(e);
                            self.note_failure(replica, &e, true);
                            return Err(e);
                        }
                    }
                }
            }
        };
        self.health.batch_succeeded();
        let written = outcomes
            .iter()
            .filter(|o| matches!(o, WriteOutcome::Written(_)))
            .count();
        self.stats.record_batch(written, started.elapsed());
        for (planned, outcome) in planned.into_iter().zip(outcomes) {
            let Planned {
                key,
                value,
                pruning,
            } = planned;
            match outcome {
                WriteOutcome::Written(revision) => {
                    self.take_uncertain(replica, key);
                    let tombstone = is_deleted(&value);
                    self.known.set(
                        replica,
                        key,
                        Known {
                            revision,
                            tombstone,
                        },
                    );
                }
                WriteOutcome::Conflict { actual } => {
                    match self
                        .resolve_conflict(replica, registry, key, &value, pruning, actual)
                        .await
                    {
                        Ok(Some(merged)) => result.merged.push((key.to_owned(), merged)),
                        Ok(None) => {
                            if !is_deleted(&value) && marked_key(key).is_none() {
                                // Another writer deleted the key: ours was not applied.
                                result.deleted.push(key.to_owned());
                            }
                        }
                        Err(e) => {
                            self.note_failure(replica, &e, false);
                            result.failed.push((key.to_owned(), e));
                        }
                    }
                }
            }
        }
        Ok(result)
    }

    /// Reads the record that someone else wrote, merges it with ours (pruning markers applied
    /// to both, see [`merge_values`]) and writes the merge, conditionally again, a bounded number
    /// of times. A record that cannot be decoded or merged is left untouched and the key fails.
    /// Returns the merged value when it is data, `None` when the key is deleted.
    async fn resolve_conflict(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        key: &str,
        ours: &DurableValue,
        our_pruning: Option<&PrunedIncarnations>,
        actual: Option<Revision>,
    ) -> Result<Option<Box<dyn ErasedData>>, DurableError> {
        let expected = self.known.get(replica, key).map(|k| k.revision);
        if self.take_uncertain(replica, key) {
            tracing::info!(
                backend = %self.backend, replica = %replica, key,
                expected = ?expected, actual = ?actual,
                "an earlier write of this key whose outcome was unknown (failed or timed out) \
                 may have landed; merging the stored record with ours"
            );
        } else {
            tracing::warn!(
                backend = %self.backend, replica = %replica, key,
                expected = ?expected, actual = ?actual,
                "write conflict: the stored record changed since this process last saw it; \
                 merging it with ours"
            );
            self.alarm.raise(&self.backend, replica, key);
        }
        let attempts = self.options.max_conflict_retries.max(1);
        for _ in 0..attempts {
            let read = self.store.get(replica.as_str(), key);
            let stored = self.bounded("a read of a conflicting record", read).await?;
            let (expected, merged) = match stored {
                None => (
                    None,
                    Decoded {
                        value: ours.clone(),
                        pruning: our_pruning.cloned(),
                    },
                ),
                Some(record) => {
                    let theirs = self.decode_record(replica, registry, &record)?;
                    let merged = merge_values(ours, our_pruning, &theirs)
                        .map_err(|e| self.data_error(replica, key, e))?;
                    if same_value(&merged.value, &theirs.value)
                        && (is_deleted(&merged.value) || merged.pruning == theirs.pruning)
                    {
                        // The stored record already holds everything we have.
                        return Ok(self.settle(replica, key, record.revision, merged.value));
                    }
                    (Some(record.revision), merged)
                }
            };
            let bytes = self.encode_value(replica, key, &merged.value, merged.pruning.as_ref())?;
            let put = self.store.put(replica.as_str(), key, expected, bytes);
            let written = self
                .bounded("a write of a merged record", put)
                .await
                .inspect_err(|_| self.mark_uncertain(replica, [key]))?;
            match written {
                WriteOutcome::Written(revision) => {
                    self.stats.add_records(1);
                    return Ok(self.settle(replica, key, revision, merged.value));
                }
                WriteOutcome::Conflict { .. } => continue,
            }
        }
        Err(StoreError::Backend {
            backend: self.backend.clone(),
            message: format!(
                "record of replica '{replica}' key '{key}' kept changing: still conflicting \
                 after {attempts} merge attempts; this write was not applied"
            ),
            source: None,
        }
        .into())
    }

    /// Records the outcome of a resolved conflict.
    fn settle(
        &self,
        replica: &ReplicaId,
        key: &str,
        revision: Revision,
        merged: DurableValue,
    ) -> Option<Box<dyn ErasedData>> {
        self.stats.add_conflict();
        let tombstone = is_deleted(&merged);
        self.known.set(
            replica,
            key,
            Known {
                revision,
                tombstone,
            },
        );
        match merged {
            DurableValue::Data(value) => {
                tracing::warn!(backend = %self.backend, replica = %replica, key,
                    revision = %revision, "conflict merged: stored the merge of both writers");
                Some(value)
            }
            DurableValue::Deleted => {
                tracing::warn!(backend = %self.backend, replica = %replica, key,
                    revision = %revision, "conflict merged: the key is deleted (a tombstone wins)");
                None
            }
        }
    }

    /// Writes `entries` now ([`WriteMode::Sync`](crate::WriteMode::Sync)). Queued older states
    /// of the same keys are dropped first (these supersede them), and the write holds the flush
    /// lock, so a retry of an older state can never land after this one. Entries whose write
    /// fails are queued for the background writer, which retries them until they are written.
    pub(crate) async fn write_now(
        &self,
        replica: &ReplicaId,
        entries: Vec<(String, DurableValue)>,
    ) -> Result<WriteResult, DurableError> {
        if let Some(e) = self.queue_while_down(replica, &entries) {
            return Err(e);
        }
        let _no_flush_meanwhile = self.flush_lock.lock().await;
        // A retry that held the lock may just have found the backend down.
        if let Some(e) = self.queue_while_down(replica, &entries) {
            return Err(e);
        }
        self.pending
            .remove_keys(replica, entries.iter().map(|(k, _)| k.as_str()));
        let registry = self.registry(replica);
        match self.write_entries(replica, &registry, &entries).await {
            Err(e) => {
                self.pending.enqueue(replica, entries);
                Err(e)
            }
            Ok(result) => {
                if !result.failed.is_empty() {
                    let retry = failed_entries(&result.failed, &entries);
                    self.pending.enqueue(replica, retry);
                } else if self.pending.len() == 0 {
                    self.note_caught_up();
                }
                Ok(result)
            }
        }
    }

    /// While the backend is down (its last batch failed as a whole), queues `entries` for the
    /// background writer, which probes the backend with backoff, and returns the error for the
    /// caller; this keeps writes from piling up behind a dead or hanging backend. Queuing without
    /// the flush lock is safe: a newer state replaces a queued one, and a retry that fails puts
    /// an older state back only where no newer one is queued.
    fn queue_while_down(
        &self,
        replica: &ReplicaId,
        entries: &[(String, DurableValue)],
    ) -> Option<DurableError> {
        let (down_for, last_error) = self.health.backend_down()?;
        self.pending.enqueue(replica, entries.to_vec());
        self.stats.add_error();
        Some(
            StoreError::Unavailable {
                backend: self.backend.clone(),
                source: format!(
                    "not written yet: the store has been failing for {:.1}s (last error: \
                     {last_error}); the entries are queued and written once it answers again",
                    down_for.as_secs_f64()
                )
                .into(),
            }
            .into(),
        )
    }

    /// Writes everything queued (write-behind entries and entries of failed writes), in
    /// batches. Entries that fail are put back (unless a newer state was queued meanwhile); the
    /// first error is returned.
    pub(crate) async fn flush_pending(&self) -> Result<(), DurableError> {
        let _one_flush_at_a_time = self.flush_lock.lock().await;
        let mut batches = self
            .pending
            .take_all(self.options.max_batch_size)
            .into_iter();
        let mut first_error = None;
        while let Some(batch) = batches.next() {
            let registry = self.registry(&batch.replica);
            match self
                .write_entries(&batch.replica, &registry, &batch.entries)
                .await
            {
                Err(e) => {
                    tracing::warn!(backend = %self.backend, replica = %batch.replica,
                        entries = batch.entries.len(), error = %e,
                        "writing a queued batch failed; its entries stay queued");
                    self.pending.requeue(batch);
                    // The backend is failing: keep the rest queued too instead of trying each.
                    batches.by_ref().for_each(|b| self.pending.requeue(b));
                    first_error.get_or_insert(e);
                }
                Ok(result) => {
                    // No caller to answer: reported with the next call; a state of the key
                    // queued meanwhile was made without the merge.
                    for (key, value) in result.merged {
                        self.pending
                            .merge_into_queued(&batch.replica, &key, value.as_ref());
                        self.unreported.merged(&batch.replica, &key, value);
                    }
                    for key in &result.deleted {
                        self.unreported.deleted(&batch.replica, key);
                    }
                    if !result.failed.is_empty() {
                        let retry = failed_entries(&result.failed, &batch.entries);
                        for (key, e) in &result.failed {
                            tracing::error!(backend = %self.backend, replica = %batch.replica,
                                key, error = %e, "writing a queued key failed; it stays queued");
                        }
                        self.pending.requeue(PendingBatch {
                            replica: batch.replica,
                            entries: retry,
                        });
                        if let Some((_, e)) = result.failed.into_iter().next() {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        match first_error {
            None => {
                // In write-behind a non-empty queue is normal; otherwise what was queued during
                // this flush (the backend still counted as down) goes with the next one.
                let write_behind = matches!(
                    self.options.write_mode,
                    crate::WriteMode::WriteBehind { .. }
                );
                if write_behind || self.pending.len() == 0 {
                    self.note_caught_up();
                }
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}

/// The background writer: writes the queue (write-behind entries, or the entries of failed
/// synchronous writes) every `interval`, backing off while the backend fails, until `stop` fires
/// or its sender is dropped; then writes the queue one last time.
pub(crate) async fn run_background_writes<S: ?Sized + DurableStateStore>(
    core: Arc<Core<S>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let interval = interval.max(Duration::from_millis(1));
    let max_backoff = core.options.max_retry_backoff.max(interval);
    let mut delay = interval;
    loop {
        // `biased` (stop first): deterministic under a paused clock (dd-sim's seeds replay).
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = tokio::time::sleep(delay) => {}
        }
        if core.pending.len() == 0 {
            delay = interval;
            continue;
        }
        match core.flush_pending().await {
            Ok(()) => delay = interval,
            Err(e) => {
                delay = delay.saturating_mul(2).min(max_backoff);
                tracing::warn!(backend = %core.backend, error = %e, retry_in = ?delay,
                    pending = core.pending.len(), "writing the queued entries failed; retrying");
            }
        }
    }
    // Best effort on shutdown: a few attempts, then say what is lost.
    let mut delay = interval;
    for _ in 0..3 {
        if core.pending.len() == 0 {
            return;
        }
        match core.flush_pending().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(backend = %core.backend, error = %e, "final flush of the queued entries failed");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2).min(max_backoff);
            }
        }
    }
    let lost = core.pending.len();
    if lost > 0 {
        tracing::error!(backend = %core.backend, entries = lost,
            "store closed with queued entries that could not be written");
    }
}
