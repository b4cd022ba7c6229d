//! [`S3Store`]: the [`DurableStateStore`] on S3.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use dd_core::store::{
    DurableStateStore, Revision, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};
use futures::{StreamExt, TryStreamExt};

use crate::client::build_client;
use crate::error::{S3Error, S3ErrorKind};
use crate::layout::{MAX_OBJECT_NAME_LEN, ObjectLayout};
use crate::objects::{Applied, ObjectClient, Precondition, RecordRef};
use crate::options::S3Options;
use crate::probe::{ServerFeatures, probe};

/// How often a conditional write is retried after losing a race whose winner left the record at
/// the revision this writer expected (so that it is not a conflict yet).
const MAX_CAS_ATTEMPTS: u32 = 8;

/// A [`DurableStateStore`] keeping one object per `(replica, key)` in an S3 bucket. See the crate
/// README for the object layout and how conditional writes are used.
#[derive(Debug, Clone)]
pub struct S3Store {
    objects: ObjectClient,
    layout: ObjectLayout,
    features: ServerFeatures,
    concurrency: usize,
}

impl S3Store {
    /// Connects, checks the bucket (creating it if `create_bucket` is set) and probes whether the
    /// server honours conditional writes. Fails with [`StoreError::Config`] for a missing bucket,
    /// bad options, refused credentials, or a server that ignores conditional writes (unless
    /// `single_writer` is set), and with [`StoreError::Unavailable`] naming the endpoint when it
    /// cannot be reached within the configured timeouts and retries.
    pub async fn open(options: S3Options) -> Result<S3Store, StoreError> {
        Ok(Self::open_typed(options).await?)
    }

    /// [`S3Store::open`] with the typed error.
    pub async fn open_typed(options: S3Options) -> Result<S3Store, S3Error> {
        options.validate()?;
        let location = options.location();
        let client = build_client(&options).await;
        let objects = ObjectClient {
            client,
            bucket: options.bucket.clone(),
            endpoint: options
                .endpoint
                .clone()
                .unwrap_or_else(|| "AWS S3".to_owned()),
            location: location.clone(),
        };
        objects
            .ensure_bucket(options.create_bucket, options.region.as_deref())
            .await?;
        let layout = ObjectLayout::new(&options.prefix);
        let features = probe(&objects, &layout).await?;
        if !features.conditional_put {
            if !options.single_writer {
                return Err(S3Error::new(
                    location,
                    S3ErrorKind::ConditionalWritesIgnored,
                ));
            }
            tracing::warn!(
                %location,
                "the S3 server ignores conditional writes; single_writer mode: only this process \
                 may write its replica, revisions are checked by read-before-write only"
            );
        } else if !features.conditional_delete {
            tracing::info!(
                %location,
                "the S3 server ignores If-Match on DeleteObject; deletes check the revision first \
                 (a write racing a delete of the same key can be lost)"
            );
        }
        Ok(S3Store {
            objects,
            layout,
            features,
            concurrency: options.concurrency,
        })
    }

    /// What the open-time probe found out about the server.
    pub fn server_features(&self) -> ServerFeatures {
        self.features
    }

    fn error(&self, kind: S3ErrorKind) -> S3Error {
        S3Error::new(self.objects.location.clone(), kind)
    }

    /// The object name of `(replica, key)`, or why it cannot have one.
    fn object_name(&self, replica: &str, key: &str) -> Result<String, S3Error> {
        let unstorable = |reason: String| {
            self.error(S3ErrorKind::UnstorableKey {
                replica: replica.to_owned(),
                key: key.to_owned(),
                reason,
            })
        };
        if replica.is_empty() || key.is_empty() {
            return Err(unstorable(
                "replica names and keys must not be empty".to_owned(),
            ));
        }
        let name = self.layout.object_name(replica, key);
        if name.len() > MAX_OBJECT_NAME_LEN {
            return Err(unstorable(format!(
                "the escaped object name has {} bytes, more than the {MAX_OBJECT_NAME_LEN} S3 allows",
                name.len()
            )));
        }
        Ok(name)
    }

    async fn get_record(
        &self,
        replica: &str,
        key: &str,
        object: &str,
    ) -> Result<Option<StoredRecord>, S3Error> {
        let record = RecordRef {
            replica,
            key,
            object,
        };
        Ok(self
            .objects
            .get(record)
            .await?
            .map(|(revision, value)| StoredRecord {
                key: key.to_owned(),
                revision,
                value,
            }))
    }

    async fn write_one(&self, replica: &str, op: &WriteOp) -> Result<WriteOutcome, S3Error> {
        let object = self.object_name(replica, op.key())?;
        let record = RecordRef {
            replica,
            key: op.key(),
            object: &object,
        };
        match op {
            WriteOp::Put {
                expected, value, ..
            } => self.put_one(record, *expected, value).await,
            WriteOp::Delete { expected, .. } => self.delete_one(record, *expected).await,
        }
    }

    async fn put_one(
        &self,
        record: RecordRef<'_>,
        expected: Option<Revision>,
        value: &Bytes,
    ) -> Result<WriteOutcome, S3Error> {
        let cas = self.features.conditional_put;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = if expected.is_none() && cas {
                // If-None-Match: * checks absence on the server; no read needed.
                None
            } else {
                self.objects.head(record).await?
            };
            let actual = current.as_ref().map(|h| h.revision);
            if actual != expected {
                return Ok(WriteOutcome::Conflict { actual });
            }
            let precondition = match (&current, cas) {
                (_, false) => Precondition::Unconditional,
                (None, true) => Precondition::Absent,
                (Some(head), true) => Precondition::Matches(&head.etag),
            };
            let revision = expected.map_or(Revision::FIRST, Revision::next);
            match self
                .objects
                .put(record.object, revision, value, precondition)
                .await?
            {
                Applied::Yes => return Ok(WriteOutcome::Written(revision)),
                Applied::PreconditionFailed => {
                    // Someone else wrote in between: report their revision, unless the record is
                    // (again) at the expected one, then try again.
                    let actual = self.objects.head(record).await?.map(|h| h.revision);
                    if actual != expected {
                        return Ok(WriteOutcome::Conflict { actual });
                    }
                }
            }
        }
        Err(self.error(S3ErrorKind::Contended {
            object: record.object.to_owned(),
            attempts: MAX_CAS_ATTEMPTS,
        }))
    }

    async fn delete_one(
        &self,
        record: RecordRef<'_>,
        expected: Revision,
    ) -> Result<WriteOutcome, S3Error> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(head) = self.objects.head(record).await? else {
                return Ok(WriteOutcome::Conflict { actual: None });
            };
            if head.revision != expected {
                return Ok(WriteOutcome::Conflict {
                    actual: Some(head.revision),
                });
            }
            let etag = self
                .features
                .conditional_delete
                .then_some(head.etag.as_str());
            match self.objects.delete(record.object, etag).await? {
                Applied::Yes => return Ok(WriteOutcome::Written(expected)),
                Applied::PreconditionFailed => continue,
            }
        }
        Err(self.error(S3ErrorKind::Contended {
            object: record.object.to_owned(),
            attempts: MAX_CAS_ATTEMPTS,
        }))
    }

    async fn write_batch_typed(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, S3Error> {
        // Ops on one key run in order; different keys run concurrently.
        let mut by_key: HashMap<&str, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let group = *by_key.entry(op.key()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[group].push(i);
        }
        let ops = &ops;
        let done: Vec<Vec<(usize, WriteOutcome)>> = futures::stream::iter(groups)
            .map(|indices| async move {
                let mut outcomes = Vec::with_capacity(indices.len());
                for i in indices {
                    outcomes.push((i, self.write_one(replica, &ops[i]).await?));
                }
                Ok::<_, S3Error>(outcomes)
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; ops.len()];
        for (i, outcome) in done.into_iter().flatten() {
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    async fn scan_page_typed(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, S3Error> {
        let limit = limit.max(1);
        let replica_prefix = self.layout.replica_prefix(replica);
        let start_after = after.map(|a| self.layout.object_name(replica, a));
        let mut names: Vec<String> = Vec::new();
        let mut continuation: Option<String> = None;
        let more = loop {
            let listing = self
                .objects
                .list(
                    &replica_prefix,
                    start_after.as_deref(),
                    continuation.as_deref(),
                    None,
                    limit - names.len(),
                )
                .await?;
            let got = listing.objects.len();
            names.extend(listing.objects);
            match listing.next {
                None => break false,
                Some(_) if names.len() >= limit => break true,
                Some(_) if got == 0 => {
                    return Err(self.error(S3ErrorKind::Request {
                        operation: "ListObjectsV2",
                        status: 200,
                        code: String::new(),
                        message: "an empty listing page claims more results".to_owned(),
                    }));
                }
                Some(token) => continuation = Some(token),
            }
        };
        names.truncate(limit);
        let keys: Vec<(String, String)> = names
            .into_iter()
            .map(|name| {
                let key = self
                    .layout
                    .key_of(&replica_prefix, &name)
                    .map_err(|reason| {
                        self.error(S3ErrorKind::Corrupt {
                            replica: replica.to_owned(),
                            key: name.clone(),
                            object: name.clone(),
                            reason,
                        })
                    })?;
                Ok((key, name))
            })
            .collect::<Result<_, S3Error>>()?;
        let next = if more {
            keys.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        // Fetch the values with bounded concurrency, keeping key order; an object deleted since the
        // listing is skipped.
        let records: Vec<StoredRecord> = futures::stream::iter(keys)
            .map(|(key, name)| async move { self.get_record(replica, &key, &name).await })
            .buffered(self.concurrency)
            .try_filter_map(|record| async move { Ok(record) })
            .try_collect()
            .await?;
        Ok(ScanPage { records, next })
    }

    async fn replicas_typed(&self) -> Result<Vec<String>, S3Error> {
        let mut replicas = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let listing = self
                .objects
                .list(
                    self.layout.prefix(),
                    None,
                    continuation.as_deref(),
                    Some("/"),
                    1000,
                )
                .await?;
            for prefix in &listing.prefixes {
                let replica = self.layout.replica_of(prefix).map_err(|reason| {
                    self.error(S3ErrorKind::Corrupt {
                        replica: prefix.clone(),
                        key: String::new(),
                        object: prefix.clone(),
                        reason: format!("not a replica directory of dd-store-s3: {reason}"),
                    })
                })?;
                replicas.extend(replica);
            }
            match listing.next {
                Some(token) if listing.objects.len() + listing.prefixes.len() > 0 => {
                    continuation = Some(token);
                }
                Some(_) => {
                    return Err(self.error(S3ErrorKind::Request {
                        operation: "ListObjectsV2",
                        status: 200,
                        code: String::new(),
                        message: "an empty listing page claims more results".to_owned(),
                    }));
                }
                None => break,
            }
        }
        replicas.sort();
        replicas.dedup();
        Ok(replicas)
    }
}

#[async_trait]
impl DurableStateStore for S3Store {
    fn describe(&self) -> String {
        self.objects.location.clone()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let object = self.object_name(replica, key)?;
        Ok(self.get_record(replica, key, &object).await?)
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        Ok(self.write_batch_typed(replica, ops).await?)
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        Ok(self.scan_page_typed(replica, after, limit).await?)
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.replicas_typed().await?)
    }
}

/// Opens the store described by an `s3://` URL; see [`S3Options::from_url`] for the parameters.
///
/// ```no_run
/// # async fn example() -> Result<(), dd_core::store::StoreError> {
/// let store = dd_store_s3::open_url(
///     "s3://my-bucket/dd/prod?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn open_url(url: &str) -> Result<S3Store, StoreError> {
    S3Store::open(S3Options::from_url(url)?).await
}
