//! [`S3Store`]: the [`DurableStateStore`] on S3.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use dd_store::revision;
use dd_store::{
    DurableStateStore, Revision, ScanPage, StoreError, StoredRecord, WriteOp, WriteOutcome,
};
use futures::{StreamExt, TryStreamExt};

use crate::body::Body;
use crate::client::build_client;
use crate::error::{S3Error, S3ErrorKind};
use crate::layout::{ObjectLayout, Segment};
use crate::listing::{Lister, ListingCache};
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
    read_only: bool,
    concurrency: usize,
    listings: ListingCache,
}

impl S3Store {
    /// [`open`] with the typed error.
    async fn open_typed(options: S3Options) -> Result<S3Store, S3Error> {
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
        // A read-only open creates nothing, not even a missing bucket.
        objects
            .ensure_bucket(
                options.create_bucket && !options.read_only,
                options.region.as_deref(),
            )
            .await?;
        let layout = ObjectLayout::new(&options.prefix, options.max_object_name_len)
            .map_err(|m| S3Error::new(location.clone(), S3ErrorKind::InvalidOption(m)))?;
        let features = if options.read_only {
            tracing::info!(
                %location,
                "S3 store opened read-only: no conditional-write probe, every write is refused"
            );
            ServerFeatures::NOT_PROBED
        } else {
            let features = probe(&objects, &layout).await?;
            check_features(&objects, &options, features)?;
            features
        };
        Ok(S3Store {
            objects,
            layout,
            features,
            read_only: options.read_only,
            concurrency: options.concurrency,
            listings: ListingCache::default(),
        })
    }

    /// Whether the store was opened read-only ([`S3Options::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// What the open-time probe found out about the server (all `false` on a store opened
    /// read-only, which does not probe).
    pub fn server_features(&self) -> ServerFeatures {
        self.features
    }

    fn error(&self, kind: S3ErrorKind) -> S3Error {
        S3Error::new(self.objects.location.clone(), kind)
    }

    /// The object name of `(replica, key)`, or why it cannot have one.
    fn object_name(&self, replica: &str, key: &str) -> Result<String, S3Error> {
        if replica.is_empty() || key.is_empty() {
            return Err(self.error(S3ErrorKind::UnstorableKey {
                replica: replica.to_owned(),
                key: key.to_owned(),
                reason: "replica names and keys must not be empty".to_owned(),
            }));
        }
        Ok(self.layout.object_name(replica, key))
    }

    /// Reads the object `object` of `replica`; `key` is the key it must hold, or `None` when
    /// the name is hashed and the key is learnt from the body. The body must name this replica
    /// and a key whose object name is `object`.
    async fn read_object(
        &self,
        replica: &str,
        key: Option<&str>,
        object: &str,
    ) -> Result<Option<StoredRecord>, S3Error> {
        let record = RecordRef {
            replica,
            key: key.unwrap_or(object),
            object,
        };
        let Some(Body {
            revision,
            replica: stored_replica,
            key: stored_key,
            value,
        }) = self.objects.get(record).await?
        else {
            return Ok(None);
        };
        let belongs = stored_replica == replica
            && key.is_none_or(|k| k == stored_key)
            && self.layout.object_name(&stored_replica, &stored_key) == object;
        if !belongs {
            return Err(self.error(record.corrupt(format!(
                "the body holds replica '{stored_replica}' key '{stored_key}', which does not \
                 belong under this object name"
            ))));
        }
        Ok(Some(StoredRecord {
            key: stored_key,
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
                self.objects.current(record).await?
            };
            let actual = current.as_ref().map(|h| h.revision);
            let revision = match revision::check_put(actual, expected) {
                Ok(revision) => revision,
                Err(conflict) => return Ok(conflict),
            };
            if current.as_ref().is_some_and(|h| h.torn) {
                tracing::info!(
                    object = record.object,
                    revision = ?expected,
                    "replacing a torn object at its body revision"
                );
            }
            let precondition = match (&current, cas) {
                (_, false) => Precondition::Unconditional,
                (None, true) => Precondition::Absent,
                (Some(head), true) => Precondition::Matches(&head.etag),
            };
            match self
                .objects
                .put(record, revision, value, precondition)
                .await?
            {
                Applied::Yes => return Ok(WriteOutcome::Written(revision)),
                Applied::PreconditionFailed => {
                    // Someone else wrote in between: report their revision, unless the record is
                    // (again) at the expected one, then try again.
                    let actual = self.objects.current(record).await?.map(|h| h.revision);
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
            let head = self.objects.current(record).await?;
            if let Err(conflict) =
                revision::check_delete(head.as_ref().map(|h| h.revision), expected)
            {
                return Ok(conflict);
            }
            let Some(head) = head else {
                return Ok(WriteOutcome::Conflict { actual: None });
            };
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
        if self.read_only
            && let Some(op) = ops.first()
        {
            return Err(self.error(S3ErrorKind::ReadOnly {
                operation: match op {
                    WriteOp::Put { .. } => "PutObject",
                    WriteOp::Delete { .. } => "DeleteObject",
                },
                replica: replica.to_owned(),
            }));
        }
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

    /// Reads the records of `names` (objects of `replica`) with bounded concurrency, in name
    /// order, skipping objects deleted since they were listed.
    async fn read_objects(
        &self,
        replica: &str,
        replica_prefix: &str,
        names: Vec<String>,
    ) -> Result<Vec<StoredRecord>, S3Error> {
        futures::stream::iter(names)
            .map(|name| async move {
                let segment = self
                    .layout
                    .key_segment(replica_prefix, &name)
                    .map_err(|reason| {
                        self.error(S3ErrorKind::Corrupt {
                            replica: replica.to_owned(),
                            key: name.clone(),
                            object: name.clone(),
                            reason,
                        })
                    })?;
                let key = match &segment {
                    Segment::Exact(key) => Some(key.as_str()),
                    Segment::Hashed { .. } => None,
                };
                self.read_object(replica, key, &name).await
            })
            .buffered(self.concurrency)
            .try_filter_map(|record| async move { Ok(record) })
            .try_collect()
            .await
    }

    async fn scan_page_typed(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, S3Error> {
        let limit = limit.max(1);
        let replica_prefix = self.layout.replica_prefix(replica);
        let mut records: Vec<StoredRecord> = Vec::new();
        let mut start_after = None;
        if let Some(cursor) = after {
            let (resume, group) = self.layout.resume_point(replica, cursor);
            if let Some(group) = group {
                // The cursor is a long key: the rest of its group (whose names sort by hash)
                // comes first, in key order.
                let mut lister = Lister::new(group, None);
                let mut names = Vec::new();
                while let Some(name) = lister.next(&self.objects).await? {
                    names.push(name);
                }
                let mut rest = self.read_objects(replica, &replica_prefix, names).await?;
                rest.retain(|r| r.key.as_str() > cursor);
                rest.sort_by(|a, b| a.key.cmp(&b.key));
                records.extend(rest);
            }
            start_after = Some(resume);
        }
        let mut lister = match after.and_then(|a| self.listings.take(&replica_prefix, a)) {
            Some(lister) => lister,
            None => Lister::new(replica_prefix.clone(), start_after),
        };
        while records.len() < limit {
            let wanted = limit - records.len();
            let mut names = Vec::with_capacity(wanted);
            while names.len() < wanted {
                match lister.next(&self.objects).await? {
                    Some(name) => names.push(name),
                    None => break,
                }
            }
            // A long key's group is read whole, so that it can be sorted by key.
            if let Some(Ok(Segment::Hashed { group })) = names
                .last()
                .map(|last| self.layout.key_segment(&replica_prefix, last))
            {
                while let Some(name) = lister.next_if_starts_with(&self.objects, &group).await? {
                    names.push(name);
                }
            }
            if names.is_empty() {
                break;
            }
            let mut batch = self.read_objects(replica, &replica_prefix, names).await?;
            // Names sort like keys except inside groups of long keys; sorting by key fixes those.
            batch.sort_by(|a, b| a.key.cmp(&b.key));
            records.extend(batch);
        }
        let truncated = records.len() > limit;
        let more = if truncated {
            // Cut inside a group of long keys: the next page starts over from that group, so the
            // listing position is not kept.
            records.truncate(limit);
            true
        } else {
            lister.has_more()
        };
        let next = if more {
            records.last().map(|r| r.key.clone())
        } else {
            None
        };
        if let Some(cursor) = &next
            && !truncated
        {
            // The next page (usually) continues right here: keep the names already listed.
            self.listings.put(cursor.clone(), lister);
        }
        Ok(ScanPage { records, next })
    }

    /// The replica whose objects are under the hashed replica directory `common_prefix`, read
    /// from one of its objects; `None` if it has none (any more).
    async fn hashed_replica_name(&self, common_prefix: &str) -> Result<Option<String>, S3Error> {
        let mut lister = Lister::new(common_prefix.to_owned(), None);
        while let Some(name) = lister.next(&self.objects).await? {
            let record = RecordRef {
                replica: common_prefix,
                key: &name,
                object: &name,
            };
            let Some(body) = self.objects.get(record).await? else {
                continue;
            };
            if self.layout.replica_prefix(&body.replica) != common_prefix {
                return Err(self.error(record.corrupt(format!(
                    "the body holds replica '{}', which does not belong under '{common_prefix}'",
                    body.replica
                ))));
            }
            return Ok(Some(body.replica));
        }
        Ok(None)
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
                let segment = self.layout.replica_segment_of(prefix).map_err(|reason| {
                    self.error(S3ErrorKind::Corrupt {
                        replica: prefix.clone(),
                        key: String::new(),
                        object: prefix.clone(),
                        reason: format!("not a replica directory of dd-store-s3: {reason}"),
                    })
                })?;
                match segment {
                    None => {}
                    Some(Segment::Exact(replica)) => replicas.push(replica),
                    Some(Segment::Hashed { .. }) => {
                        replicas.extend(self.hashed_replica_name(prefix).await?);
                    }
                }
            }
            match listing.next {
                Some(token) if listing.objects.len() + listing.prefixes.len() > 0 => {
                    continuation = Some(token);
                }
                Some(_) => return Err(self.empty_truncated_listing()),
                None => break,
            }
        }
        replicas.sort();
        replicas.dedup();
        Ok(replicas)
    }

    fn empty_truncated_listing(&self) -> S3Error {
        self.objects.empty_truncated_listing()
    }
}

#[async_trait]
impl DurableStateStore for S3Store {
    fn describe(&self) -> String {
        self.objects.location.clone()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let object = self.object_name(replica, key)?;
        Ok(self.read_object(replica, Some(key), &object).await?)
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

/// Refuses a server that ignores a PutObject precondition, unless `single_writer` is set (then
/// warns); notes a server that ignores `If-Match` on DeleteObject.
fn check_features(
    objects: &ObjectClient,
    options: &S3Options,
    features: ServerFeatures,
) -> Result<(), S3Error> {
    let location = &objects.location;
    if let Some(header) = features.ignored_put_header() {
        if !options.single_writer {
            return Err(S3Error::new(
                location.clone(),
                S3ErrorKind::ConditionalWritesIgnored {
                    endpoint: objects.endpoint.clone(),
                    bucket: objects.bucket.clone(),
                    header,
                    test: if header == "If-Match" {
                        "replace with a wrong If-Match ETag"
                    } else {
                        "second create with If-None-Match: *"
                    },
                },
            ));
        }
        tracing::warn!(
            %location,
            ignored = header,
            "the S3 server ignores conditional writes ({header} on PutObject); single_writer \
             mode: only this process may write its replica, revisions are checked by \
             read-before-write only"
        );
    } else if !features.conditional_delete {
        tracing::info!(
            %location,
            "the S3 server ignores If-Match on DeleteObject; deletes check the revision first \
             (a write racing a delete of the same key can be lost)"
        );
    }
    Ok(())
}

/// Connects, checks the bucket (creating it if `create_bucket` is set) and probes whether the
/// server honours conditional writes (`If-None-Match: *` and `If-Match` on PutObject, `If-Match`
/// on DeleteObject), unless `read_only` is set: then nothing is written. Fails with
/// [`StoreError::Config`] for a missing bucket, bad options, refused credentials, or a server
/// that ignores either PutObject header (unless `single_writer` is set), and with
/// [`StoreError::Unavailable`] naming the endpoint when it cannot be reached within the
/// configured timeouts and retries.
pub async fn open(options: S3Options) -> Result<S3Store, StoreError> {
    Ok(S3Store::open_typed(options).await?)
}

/// Opens the store described by an `s3://` URL; see [`S3Options::from_url`] for the parameters
/// (`read_only=true` opens it for reading only, [`S3Options::read_only`]).
///
/// ```no_run
/// # async fn example() -> Result<(), dd_store::StoreError> {
/// let store = dd_store_s3::open_url(
///     "s3://my-bucket/dd/prod?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn open_url(url: &str) -> Result<S3Store, StoreError> {
    open(S3Options::from_url(url)?).await
}
