//! The write path shared by both write modes: encoding, one conditional batch, conflict merging.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dd_core::ReplicaId;
use dd_core::data::{DataError, ErasedData, TypeRegistry};
use dd_core::durable::{DurableError, DurableValue};
use dd_core::store::{
    DurableStateStore, Revision, StoreError, StoredRecord, WriteOp, WriteOutcome,
};

use crate::alarm::ConflictAlarm;
use crate::envelope::{self, Record};
use crate::known::{Known, KnownRevisions};
use crate::merged::UnadoptedMerges;
use crate::options::DurableOptions;
use crate::pending::{PendingBatch, PendingQueue};
use crate::stats::StatsCounters;

/// What one write of entries did, key by key.
#[derive(Default)]
pub(crate) struct WriteResult {
    /// Keys whose write conflicted and whose merge was written, with the merged value.
    pub(crate) merged: Vec<(String, Box<dyn ErasedData>)>,
    /// Keys that were not written, with the reason. The stored record is unchanged.
    pub(crate) failed: Vec<(String, DurableError)>,
}

/// The state shared by a store handle and its write-behind task.
pub(crate) struct Core<S: ?Sized> {
    pub(crate) store: Arc<S>,
    pub(crate) backend: String,
    pub(crate) options: DurableOptions,
    pub(crate) known: KnownRevisions,
    pub(crate) merged: UnadoptedMerges,
    pub(crate) pending: PendingQueue,
    pub(crate) stats: StatsCounters,
    alarm: ConflictAlarm,
    /// Serialises writes, so that two writes of this process never conflict with each other.
    write_lock: tokio::sync::Mutex<()>,
    /// Serialises flushes, so that a flush returns only after any flush in progress is done.
    flush_lock: tokio::sync::Mutex<()>,
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

/// The merge of two states of a key: a tombstone wins, data is merged as its CRDT.
fn merge_values(ours: &DurableValue, theirs: &DurableValue) -> Result<DurableValue, DataError> {
    match (ours, theirs) {
        (DurableValue::Data(a), DurableValue::Data(b)) => {
            let mut merged = a.clone_boxed();
            merged.merge_erased(b.as_ref())?;
            Ok(DurableValue::Data(merged))
        }
        _ => Ok(DurableValue::Deleted),
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
            merged: UnadoptedMerges::default(),
            pending: PendingQueue::default(),
            stats: StatsCounters::default(),
            write_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn data_error(&self, replica: &ReplicaId, key: &str, source: DataError) -> DurableError {
        DurableError::Data {
            backend: self.backend.clone(),
            replica: replica.to_string(),
            key: key.to_owned(),
            source,
        }
    }

    /// A stored record as a value; any damage is an error naming backend, replica and key.
    pub(crate) fn decode_record(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        record: &StoredRecord,
    ) -> Result<DurableValue, DurableError> {
        let decoded = envelope::decode(&record.value)
            .map_err(|e| e.at(&self.backend, replica.as_str(), &record.key))?;
        match decoded {
            Record::Tombstone => Ok(DurableValue::Deleted),
            Record::Data { type_name, payload } => registry
                .decode(type_name, payload)
                .map(DurableValue::Data)
                .map_err(|e| self.data_error(replica, &record.key, e)),
        }
    }

    fn encode_value(
        &self,
        replica: &ReplicaId,
        key: &str,
        value: &DurableValue,
    ) -> Result<Bytes, DurableError> {
        let encoded = match value {
            DurableValue::Deleted => envelope::encode(&Record::Tombstone),
            DurableValue::Data(data) => {
                let payload = data
                    .encode()
                    .map_err(|e| self.data_error(replica, key, e))?;
                envelope::encode(&Record::Data {
                    type_name: &data.data_type_name(),
                    payload: &payload,
                })
            }
        };
        encoded
            .map(Bytes::from)
            .map_err(|e| e.at(&self.backend, replica.as_str(), key))
    }

    /// Writes `entries` with one conditional batch, then merges every key that conflicted.
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
        let mut planned: Vec<(&str, Cow<'_, DurableValue>)> = Vec::with_capacity(entries.len());
        // Only the last state of a key given twice is written (both would carry one revision).
        let last_of_key: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (key.as_str(), i))
            .collect();
        for (i, (key, value)) in entries.iter().enumerate() {
            if last_of_key.get(key.as_str()) != Some(&i) {
                continue;
            }
            let known = self.known.get(replica, key);
            if known.is_some_and(|k| k.tombstone) {
                tracing::debug!(backend = %self.backend, replica = %replica, key = %key,
                    "key is deleted in the store; a deleted key stays deleted, not writing");
                continue;
            }
            let outgoing = match value {
                DurableValue::Deleted => {
                    self.merged.forget(replica, key);
                    Cow::Borrowed(value)
                }
                DurableValue::Data(data) => {
                    match self.merged.merge_into(replica, key, data.as_ref()) {
                        Some(merged) => Cow::Owned(DurableValue::Data(merged)),
                        None => Cow::Borrowed(value),
                    }
                }
            };
            match self.encode_value(replica, key, &outgoing) {
                Ok(bytes) => {
                    ops.push(WriteOp::Put {
                        key: key.clone(),
                        expected: known.map(|k| k.revision),
                        value: bytes,
                    });
                    planned.push((key, outgoing));
                }
                Err(e) => {
                    self.stats.add_error();
                    result.failed.push((key.clone(), e));
                }
            }
        }
        if ops.is_empty() {
            return Ok(result);
        }
        let count = ops.len();
        let started = Instant::now();
        let outcomes = match self.store.write_batch(replica.as_str(), ops).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.stats.add_error();
                return Err(e.into());
            }
        };
        if outcomes.len() != count {
            self.stats.add_error();
            return Err(StoreError::Backend {
                backend: self.backend.clone(),
                message: format!(
                    "a batch of {count} writes for replica '{replica}' returned {} outcomes",
                    outcomes.len()
                ),
                source: None,
            }
            .into());
        }
        let written = outcomes
            .iter()
            .filter(|o| matches!(o, WriteOutcome::Written(_)))
            .count();
        self.stats.record_batch(written, started.elapsed());
        for ((key, value), outcome) in planned.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Written(revision) => {
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
                        .resolve_conflict(replica, registry, key, &value, actual)
                        .await
                    {
                        Ok(Some(merged)) => result.merged.push((key.to_owned(), merged)),
                        Ok(None) => {}
                        Err(e) => {
                            self.stats.add_error();
                            result.failed.push((key.to_owned(), e));
                        }
                    }
                }
            }
        }
        Ok(result)
    }

    /// Reads the record that someone else wrote, merges it with ours and writes the merge,
    /// conditionally again, a bounded number of times. A record that cannot be decoded or merged
    /// is left untouched and the key fails. Returns the merged value when it is data.
    async fn resolve_conflict(
        &self,
        replica: &ReplicaId,
        registry: &TypeRegistry,
        key: &str,
        ours: &DurableValue,
        actual: Option<Revision>,
    ) -> Result<Option<Box<dyn ErasedData>>, DurableError> {
        let expected = self.known.get(replica, key).map(|k| k.revision);
        tracing::warn!(
            backend = %self.backend, replica = %replica, key,
            expected = ?expected, actual = ?actual,
            "write conflict: the stored record changed since this process last saw it; \
             merging it with ours"
        );
        self.alarm.raise(&self.backend, replica, key);
        let attempts = self.options.max_conflict_retries.max(1);
        for _ in 0..attempts {
            let stored = self.store.get(replica.as_str(), key).await?;
            let (expected, merged) = match stored {
                None => (None, ours.clone()),
                Some(record) => {
                    let theirs = self.decode_record(replica, registry, &record)?;
                    let merged = merge_values(ours, &theirs)
                        .map_err(|e| self.data_error(replica, key, e))?;
                    if same_value(&merged, &theirs) {
                        // The stored record already holds everything we have.
                        return Ok(self.settle(replica, key, record.revision, merged));
                    }
                    (Some(record.revision), merged)
                }
            };
            let bytes = self.encode_value(replica, key, &merged)?;
            match self
                .store
                .put(replica.as_str(), key, expected, bytes)
                .await?
            {
                WriteOutcome::Written(revision) => {
                    self.stats.add_records(1);
                    return Ok(self.settle(replica, key, revision, merged));
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
                self.merged.forget(replica, key);
                tracing::warn!(backend = %self.backend, replica = %replica, key,
                    revision = %revision, "conflict merged: the key is deleted (a tombstone wins)");
                None
            }
        }
    }

    /// Writes everything queued for write-behind, in batches. Entries that fail are put back
    /// (unless a newer state was queued meanwhile); the first error is returned.
    pub(crate) async fn flush_pending(&self) -> Result<(), DurableError> {
        let _one_flush_at_a_time = self.flush_lock.lock().await;
        let mut batches = self
            .pending
            .take_all(self.options.max_batch_size)
            .into_iter();
        let mut first_error = None;
        while let Some(batch) = batches.next() {
            match self
                .write_entries(&batch.replica, &batch.registry, &batch.entries)
                .await
            {
                Err(e) => {
                    tracing::warn!(backend = %self.backend, replica = %batch.replica,
                        entries = batch.entries.len(), error = %e,
                        "write-behind batch failed; its entries stay queued");
                    self.pending.requeue(batch);
                    // The backend is failing: keep the rest queued too instead of trying each.
                    batches.by_ref().for_each(|b| self.pending.requeue(b));
                    first_error.get_or_insert(e);
                }
                Ok(result) => {
                    for (key, value) in result.merged {
                        self.merged.remember(&batch.replica, &key, value, false);
                    }
                    if !result.failed.is_empty() {
                        let failed: HashSet<&str> =
                            result.failed.iter().map(|(k, _)| k.as_str()).collect();
                        let retry: Vec<(String, DurableValue)> = batch
                            .entries
                            .iter()
                            .filter(|(k, _)| failed.contains(k.as_str()))
                            .cloned()
                            .collect();
                        for (key, e) in &result.failed {
                            tracing::error!(backend = %self.backend, replica = %batch.replica,
                                key, error = %e, "write-behind write of a key failed; it stays queued");
                        }
                        self.pending.requeue(PendingBatch {
                            replica: batch.replica,
                            registry: batch.registry,
                            entries: retry,
                        });
                        if let Some((_, e)) = result.failed.into_iter().next() {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The write-behind task: writes the queue every `interval`, backing off while the backend
/// fails, until `stop` fires or its sender is dropped; then writes the queue one last time.
pub(crate) async fn run_write_behind<S: ?Sized + DurableStateStore>(
    core: Arc<Core<S>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let interval = interval.max(Duration::from_millis(1));
    let max_backoff = core.options.max_retry_backoff.max(interval);
    let mut delay = interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
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
                    pending = core.pending.len(), "write-behind flush failed; retrying");
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
                tracing::warn!(backend = %core.backend, error = %e, "final write-behind flush failed");
                tokio::time::sleep(delay).await;
                delay = delay.saturating_mul(2).min(max_backoff);
            }
        }
    }
    let lost = core.pending.len();
    if lost > 0 {
        tracing::error!(backend = %core.backend, entries = lost,
            "store closed with write-behind entries that could not be written");
    }
}
