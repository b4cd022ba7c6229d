//! [`CassandraStore`]: the [`DurableStateStore`] on Cassandra.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use dd_store::{
    DurableStateStore, RecordStream, Revision, ScanPage, StoreError, StoredRecord, WriteOp,
    WriteOutcome,
};
use futures::{StreamExt, TryStreamExt};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::response::PagingState;
use scylla::response::query_result::QueryResult;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlValue, Row};

use crate::error::CassandraError;
use crate::merge;
use crate::options::CassandraOptions;
use crate::options::{Consistency, SerialConsistency};
use crate::scan::{BucketRows, merge_page, per_bucket_limit};
use crate::schema::{BUCKETS, Cql, bucket_of};

/// The prepared statements of a store.
#[derive(Debug)]
struct Statements {
    get: PreparedStatement,
    /// `get` at the serial consistency: reads what a finished Paxos round left.
    get_serial: PreparedStatement,
    insert_if_not_exists: PreparedStatement,
    update_if_revision: PreparedStatement,
    delete_if_revision: PreparedStatement,
    scan_bucket_first: PreparedStatement,
    scan_bucket_after: PreparedStatement,
    scan_bucket_all: PreparedStatement,
    register_replica: PreparedStatement,
    list_replicas: PreparedStatement,
}

/// A [`DurableStateStore`] keeping records in a Cassandra (or ScyllaDB) table, with
/// lightweight transactions for the conditional writes. See the crate docs.
#[derive(Debug)]
pub struct CassandraStore {
    session: Session,
    statements: Statements,
    describe: String,
    options: CassandraOptions,
    registered: Mutex<HashSet<String>>,
}

impl CassandraStore {
    async fn open_inner(options: CassandraOptions) -> Result<CassandraStore, CassandraError> {
        options.validate()?;
        let describe = options.describe();
        let contact_points = options.contact_points.join(",");
        let profile = ExecutionProfile::builder()
            .consistency(options.consistency)
            .serial_consistency(Some(options.serial_consistency))
            .request_timeout(Some(options.request_timeout))
            .build();
        let builder = SessionBuilder::new()
            .known_nodes(&options.contact_points)
            .connection_timeout(options.connect_timeout)
            .default_execution_profile_handle(profile.into_handle());
        // The driver bounds each connection attempt; this bounds the whole start (metadata
        // fetch included), so a dead cluster fails fast and clearly.
        let bound = options.connect_timeout.saturating_mul(3);
        let session = match tokio::time::timeout(bound, builder.build()).await {
            Ok(Ok(session)) => session,
            Ok(Err(source)) => {
                return Err(CassandraError::Connect {
                    contact_points,
                    source: Box::new(source),
                });
            }
            Err(_) => {
                return Err(CassandraError::ConnectTimeout {
                    contact_points,
                    timeout: bound,
                });
            }
        };
        let cql = Cql::new(&options);
        if options.create_schema {
            for (what, statement) in [
                ("create keyspace", &cql.create_keyspace),
                ("create table", &cql.create_table),
                ("create replicas table", &cql.create_replicas_table),
            ] {
                session
                    .query_unpaged(statement.as_str(), &[])
                    .await
                    .map_err(|source| CassandraError::Execution {
                        what: format!("{what} ({statement})"),
                        source: Box::new(source),
                    })?;
            }
        }
        let statements = match Self::prepare_all(&session, &cql, options.serial_consistency).await {
            Ok(statements) => statements,
            Err(e) if e.is_invalid_request() => {
                return Err(CassandraError::Config(format!(
                    "keyspace '{}' / tables '{}', '{}_replicas' are missing or have other columns \
                     than this backend's schema (create_schema is {}): {e}",
                    options.keyspace, options.table, options.table, options.create_schema
                )));
            }
            Err(e) => return Err(e),
        };
        tracing::info!(store = %describe, "Cassandra store open");
        Ok(CassandraStore {
            session,
            statements,
            describe,
            options,
            registered: Mutex::new(HashSet::new()),
        })
    }

    async fn prepare_all(
        session: &Session,
        cql: &Cql,
        serial: SerialConsistency,
    ) -> Result<Statements, CassandraError> {
        let prepare = |statement: &str| {
            let statement = statement.to_owned();
            async move {
                let mut prepared = session
                    .prepare(statement.as_str())
                    .await
                    .map_err(|source| CassandraError::Prepare {
                        statement: statement.clone(),
                        source: Box::new(source),
                    })?;
                // Reads and conditional writes are safe to retry or speculate on another node:
                // a retried LWT that already applied answers "not applied" with the new
                // revision, which the caller sees as a conflict and resolves by merging.
                prepared.set_is_idempotent(true);
                Ok::<_, CassandraError>(prepared)
            }
        };
        let get = prepare(&cql.get).await?;
        let mut get_serial = get.clone();
        get_serial.set_consistency(match serial {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        });
        Ok(Statements {
            get,
            get_serial,
            insert_if_not_exists: prepare(&cql.insert_if_not_exists).await?,
            update_if_revision: prepare(&cql.update_if_revision).await?,
            delete_if_revision: prepare(&cql.delete_if_revision).await?,
            scan_bucket_first: prepare(&cql.scan_bucket_first).await?,
            scan_bucket_after: prepare(&cql.scan_bucket_after).await?,
            scan_bucket_all: prepare(&cql.scan_bucket_all).await?,
            register_replica: prepare(&cql.register_replica).await?,
            list_replicas: prepare(&cql.list_replicas).await?,
        })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &CassandraOptions {
        &self.options
    }

    /// The driver session, for health checks and metrics.
    pub fn session(&self) -> &Session {
        &self.session
    }

    fn err(&self, e: CassandraError) -> StoreError {
        e.into_store_error(&self.describe)
    }

    fn registered(&self) -> MutexGuard<'_, HashSet<String>> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the replica's name in `<table>_replicas` before its first write through this
    /// handle (an idempotent plain insert), so that `replicas()` finds it.
    async fn register(&self, replica: &str) -> Result<(), CassandraError> {
        if self.registered().contains(replica) {
            return Ok(());
        }
        self.session
            .execute_unpaged(&self.statements.register_replica, (replica,))
            .await
            .map_err(|source| CassandraError::Execution {
                what: format!("registering replica '{replica}'"),
                source: Box::new(source),
            })?;
        self.registered().insert(replica.to_owned());
        Ok(())
    }

    async fn read_record(
        &self,
        statement: &PreparedStatement,
        replica: &str,
        key: &str,
    ) -> Result<Option<StoredRecord>, CassandraError> {
        let result = self
            .session
            .execute_unpaged(statement, (replica, bucket_of(key), key))
            .await
            .map_err(|source| CassandraError::Execution {
                what: format!("get of replica '{replica}' key '{key}'"),
                source: Box::new(source),
            })?;
        let rows = rows_of(result, "get")?;
        let row = rows
            .maybe_first_row::<(Option<i64>, Option<Vec<u8>>)>()
            .map_err(|e| unexpected("get", e))?;
        row.map(|(revision, value)| record(replica, key.to_owned(), revision, value))
            .transpose()
    }

    /// Runs one conditional write. A CAS write timeout or a client-side timeout leaves the
    /// outcome unknown (the Paxos round may still finish): the record is then read back at serial
    /// consistency, which completes any round in flight, and the write is `Written` if the record
    /// holds exactly what it wrote, a `Conflict` if it holds something else, and, if it is still
    /// as the write expected it, sent again after a coordinator's timeout (at most
    /// [`LWT_ATTEMPTS`] times in all) or reported as not applied after the client's.
    async fn write_one(&self, replica: &str, op: WriteOp) -> Result<WriteOutcome, CassandraError> {
        let key = op.key().to_owned();
        let verb = match &op {
            WriteOp::Put { expected: None, .. } => "create",
            WriteOp::Put { .. } => "update",
            WriteOp::Delete { .. } => "delete",
        };
        let what = format!("{verb} of replica '{replica}' key '{key}'");
        let mut attempt = 1;
        loop {
            let source = match self.execute_lwt(replica, &op).await? {
                Ok(result) => return self.lwt_result(replica, &key, &op, result, &what),
                Err(source) => source,
            };
            if !outcome_is_unknown(&source) {
                return Err(CassandraError::Execution {
                    what,
                    source: Box::new(source),
                });
            }
            tracing::warn!(
                store = %self.describe, %what, attempt, error = %source,
                "conditional write timed out with an unknown outcome; reading it back at serial consistency"
            );
            match self.resolve_unknown(replica, &op).await {
                Ok(Resolved::Outcome(outcome)) => return Ok(outcome),
                // A coordinator's timeout (contention) is worth another round; the client's own
                // timeout means a slow cluster, where resending would only wait again.
                Ok(Resolved::NotApplied)
                    if attempt < LWT_ATTEMPTS
                        && !matches!(source, ExecutionError::RequestTimeout(_)) =>
                {
                    attempt += 1;
                }
                Ok(Resolved::NotApplied) => {
                    return Err(CassandraError::Execution {
                        what: format!(
                            "{what} (timed out {attempt} time(s); read back, it was not applied)"
                        ),
                        source: Box::new(source),
                    });
                }
                Err(read) => {
                    return Err(CassandraError::UnknownOutcome {
                        what,
                        source: Box::new(source),
                        read: Box::new(read),
                    });
                }
            }
        }
    }

    /// Sends the LWT of `op`: the outer `Err` is a value that cannot be bound, the inner one
    /// the driver's error.
    async fn execute_lwt(
        &self,
        replica: &str,
        op: &WriteOp,
    ) -> Result<Result<QueryResult, ExecutionError>, CassandraError> {
        let bucket = bucket_of(op.key());
        Ok(match op {
            WriteOp::Put {
                expected: None,
                value,
                key,
            } => {
                self.session
                    .execute_unpaged(
                        &self.statements.insert_if_not_exists,
                        (
                            replica,
                            bucket,
                            key.as_str(),
                            revision_cql(Revision::FIRST)?,
                            value,
                        ),
                    )
                    .await
            }
            WriteOp::Put {
                expected: Some(expected),
                value,
                key,
            } => {
                self.session
                    .execute_unpaged(
                        &self.statements.update_if_revision,
                        (
                            value,
                            revision_cql(expected.next())?,
                            replica,
                            bucket,
                            key.as_str(),
                            revision_cql(*expected)?,
                        ),
                    )
                    .await
            }
            WriteOp::Delete { expected, key } => {
                self.session
                    .execute_unpaged(
                        &self.statements.delete_if_revision,
                        (replica, bucket, key.as_str(), revision_cql(*expected)?),
                    )
                    .await
            }
        })
    }

    /// The outcome of an LWT that answered.
    fn lwt_result(
        &self,
        replica: &str,
        key: &str,
        op: &WriteOp,
        result: QueryResult,
        what: &str,
    ) -> Result<WriteOutcome, CassandraError> {
        let (applied, actual) = lwt_outcome(result, what)?;
        if applied {
            Ok(WriteOutcome::Written(written_revision(op)))
        } else {
            let actual = actual.map(|r| revision_of(replica, key, r)).transpose()?;
            Ok(WriteOutcome::Conflict { actual })
        }
    }

    /// Reads the record of `op` at serial consistency after a write with an unknown outcome and
    /// tells what became of the write.
    async fn resolve_unknown(
        &self,
        replica: &str,
        op: &WriteOp,
    ) -> Result<Resolved, CassandraError> {
        let current = self
            .read_record(&self.statements.get_serial, replica, op.key())
            .await?;
        Ok(match op {
            WriteOp::Put {
                expected, value, ..
            } => {
                let written = written_revision(op);
                match current {
                    Some(r) if r.revision == written && r.value == *value => {
                        Resolved::Outcome(WriteOutcome::Written(written))
                    }
                    None if expected.is_none() => Resolved::NotApplied,
                    Some(r) if Some(r.revision) == *expected => Resolved::NotApplied,
                    other => Resolved::Outcome(WriteOutcome::Conflict {
                        actual: other.map(|r| r.revision),
                    }),
                }
            }
            WriteOp::Delete { expected, .. } => match current {
                // Gone: this delete (or an equal one) landed.
                None => Resolved::Outcome(WriteOutcome::Written(*expected)),
                Some(r) if r.revision == *expected => Resolved::NotApplied,
                Some(r) => Resolved::Outcome(WriteOutcome::Conflict {
                    actual: Some(r.revision),
                }),
            },
        })
    }

    async fn read_bucket(
        &self,
        replica: &str,
        bucket: i32,
        after: Option<&str>,
        per_bucket: usize,
    ) -> Result<BucketRows, CassandraError> {
        let fetch = i32::try_from(per_bucket + 1).unwrap_or(i32::MAX);
        let result = match after {
            None => {
                self.session
                    .execute_unpaged(&self.statements.scan_bucket_first, (replica, bucket, fetch))
                    .await
            }
            Some(after) => {
                self.session
                    .execute_unpaged(
                        &self.statements.scan_bucket_after,
                        (replica, bucket, after, fetch),
                    )
                    .await
            }
        }
        .map_err(|source| CassandraError::Execution {
            what: format!("scan of replica '{replica}' bucket {bucket}"),
            source: Box::new(source),
        })?;
        let rows = rows_of(result, "scan")?;
        let mut records = Vec::new();
        for row in rows
            .rows::<(String, Option<i64>, Option<Vec<u8>>)>()
            .map_err(|e| unexpected("scan", e))?
        {
            let (key, revision, value) = row.map_err(|e| unexpected("scan", e))?;
            records.push(record(replica, key, revision, value)?);
        }
        let truncated = records.len() > per_bucket;
        records.truncate(per_bucket);
        Ok(BucketRows { records, truncated })
    }

    async fn scan_page_inner(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, CassandraError> {
        let limit = limit.max(1);
        let buckets = usize::try_from(BUCKETS).unwrap_or(1);
        let per_bucket = per_bucket_limit(limit, buckets);
        let reads = futures::stream::iter(0..BUCKETS)
            .map(|bucket| self.read_bucket(replica, bucket, after, per_bucket))
            .buffered(self.options.write_concurrency.min(buckets));
        let rows: Vec<BucketRows> = reads.try_collect().await?;
        Ok(merge_page(rows, limit))
    }

    /// One driver-paged stream per bucket of `replica`, each in key order.
    async fn bucket_streams(
        &self,
        replica: &str,
        page_size: usize,
    ) -> Result<Vec<merge::RecordStream>, CassandraError> {
        let buckets = usize::try_from(BUCKETS).unwrap_or(1);
        let per_bucket_page =
            i32::try_from(per_bucket_limit(page_size.max(1), buckets)).unwrap_or(i32::MAX);
        let opens = futures::stream::iter(0..BUCKETS)
            .map(|bucket| {
                let mut statement = self.statements.scan_bucket_all.clone();
                statement.set_page_size(per_bucket_page);
                async move {
                    let what = || format!("scan of replica '{replica}' bucket {bucket}");
                    let pager = self
                        .session
                        .execute_iter(statement, (replica, bucket))
                        .await
                        .map_err(|source| CassandraError::Pager {
                            what: what(),
                            source: Box::new(source),
                        })?;
                    let rows = pager
                        .rows_stream::<(String, Option<i64>, Option<Vec<u8>>)>()
                        .map_err(|e| unexpected(&what(), e))?;
                    let replica = replica.to_owned();
                    let stream: merge::RecordStream = Box::pin(rows.map(move |row| {
                        let (key, revision, value) =
                            row.map_err(|source| CassandraError::NextRow {
                                what: format!("scan of replica '{replica}' bucket {bucket}"),
                                source: Box::new(source),
                            })?;
                        record(&replica, key, revision, value)
                    }));
                    Ok::<_, CassandraError>(stream)
                }
            })
            .buffered(self.options.write_concurrency.min(buckets));
        opens.try_collect().await
    }

    async fn replicas_inner(&self) -> Result<Vec<String>, CassandraError> {
        let mut names = Vec::new();
        let mut paging = PagingState::start();
        let mut statement = self.statements.list_replicas.clone();
        statement.set_page_size(self.options.page_size);
        // Bounded: each page makes progress; a listing this long would be a corrupt table.
        for _ in 0..1_000_000 {
            let (result, next) = self
                .session
                .execute_single_page(&statement, (), paging)
                .await
                .map_err(|source| CassandraError::Execution {
                    what: "listing replicas".to_owned(),
                    source: Box::new(source),
                })?;
            let rows = rows_of(result, "listing replicas")?;
            for row in rows
                .rows::<(String,)>()
                .map_err(|e| unexpected("listing replicas", e))?
            {
                names.push(row.map_err(|e| unexpected("listing replicas", e))?.0);
            }
            match next.into_paging_control_flow() {
                std::ops::ControlFlow::Continue(state) => paging = state,
                std::ops::ControlFlow::Break(()) => break,
            }
        }
        // A registered replica whose records were all deleted is not listed.
        let checks = futures::stream::iter(names)
            .map(|name| async move {
                let page = self.scan_page_inner(&name, None, 1).await?;
                Ok::<_, CassandraError>((!page.records.is_empty()).then_some(name))
            })
            .buffered(4);
        let mut listed: Vec<String> = checks
            .try_filter_map(|n| async move { Ok(n) })
            .try_collect()
            .await?;
        listed.sort();
        listed.dedup();
        Ok(listed)
    }

    async fn write_batch_inner(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, CassandraError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.register(replica).await?;
        let count = ops.len();
        // Ops on the same key run in order, one after the other; different keys run
        // concurrently (bounded).
        let mut chains: BTreeMap<String, Vec<(usize, WriteOp)>> = BTreeMap::new();
        for (index, op) in ops.into_iter().enumerate() {
            chains
                .entry(op.key().to_owned())
                .or_default()
                .push((index, op));
        }
        let results = futures::stream::iter(chains.into_values())
            .map(|chain| async move {
                let mut outcomes = Vec::with_capacity(chain.len());
                for (index, op) in chain {
                    outcomes.push((index, self.write_one(replica, op).await?));
                }
                Ok::<_, CassandraError>(outcomes)
            })
            .buffer_unordered(self.options.write_concurrency);
        let chains: Vec<Vec<(usize, WriteOutcome)>> = results.try_collect().await?;
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; count];
        for (index, outcome) in chains.into_iter().flatten() {
            outcomes[index] = Some(outcome);
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.ok_or_else(|| CassandraError::UnexpectedResult {
                    what: "write batch".to_owned(),
                    message: format!("no outcome for write {i}"),
                })
            })
            .collect()
    }
}

/// How many times one conditional write is sent when it times out and reading it back shows it
/// was not applied.
const LWT_ATTEMPTS: u32 = 3;

/// What reading a record back after a write with an unknown outcome showed.
enum Resolved {
    /// The write's outcome is known.
    Outcome(WriteOutcome),
    /// The record is still as the write expected it: the write was not applied.
    NotApplied,
}

/// Whether the write may or may not have been applied: a coordinator's write timeout (for an
/// LWT, `CAS`: the Paxos round may still finish) or the driver's own request timeout.
fn outcome_is_unknown(error: &ExecutionError) -> bool {
    matches!(
        error,
        ExecutionError::RequestTimeout(_)
            | ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::WriteTimeout { .. },
                _
            ))
    )
}

/// The revision a write leaves when applied (for a delete, the revision it removed).
fn written_revision(op: &WriteOp) -> Revision {
    match op {
        WriteOp::Put { expected, .. } => expected.map_or(Revision::FIRST, Revision::next),
        WriteOp::Delete { expected, .. } => *expected,
    }
}

fn unexpected(what: &str, e: impl std::fmt::Display) -> CassandraError {
    CassandraError::UnexpectedResult {
        what: what.to_owned(),
        message: e.to_string(),
    }
}

fn rows_of(
    result: QueryResult,
    what: &str,
) -> Result<scylla::response::query_result::QueryRowsResult, CassandraError> {
    result.into_rows_result().map_err(|e| unexpected(what, e))
}

fn revision_cql(revision: Revision) -> Result<i64, CassandraError> {
    i64::try_from(revision.0).map_err(|_| CassandraError::UnexpectedResult {
        what: "write".to_owned(),
        message: format!("revision {revision} does not fit a CQL bigint"),
    })
}

fn revision_of(replica: &str, key: &str, revision: i64) -> Result<Revision, CassandraError> {
    u64::try_from(revision)
        .ok()
        .filter(|r| *r >= 1)
        .map(Revision)
        .ok_or_else(|| CassandraError::Corrupt {
            replica: replica.to_owned(),
            key: key.to_owned(),
            reason: format!("revision {revision} is not a positive number"),
        })
}

fn record(
    replica: &str,
    key: String,
    revision: Option<i64>,
    value: Option<Vec<u8>>,
) -> Result<StoredRecord, CassandraError> {
    let corrupt = |reason: &str| CassandraError::Corrupt {
        replica: replica.to_owned(),
        key: key.clone(),
        reason: reason.to_owned(),
    };
    let revision = revision.ok_or_else(|| corrupt("the revision is null"))?;
    let value = value.ok_or_else(|| corrupt("the value is null"))?;
    Ok(StoredRecord {
        revision: revision_of(replica, &key, revision)?,
        key,
        value: Bytes::from(value),
    })
}

/// The `[applied]` flag of a lightweight transaction's result and, when not applied, the
/// current `revision` if the row exists (Cassandra omits the columns for a missing row, ScyllaDB
/// sends them as null).
fn lwt_outcome(result: QueryResult, what: &str) -> Result<(bool, Option<i64>), CassandraError> {
    let rows = rows_of(result, what)?;
    let specs = rows.column_specs();
    let applied_index = specs
        .get_by_name("[applied]")
        .map(|(i, _)| i)
        .ok_or_else(|| unexpected(what, "the result has no [applied] column"))?;
    let revision_index = specs.get_by_name("revision").map(|(i, _)| i);
    let row: Row = rows.single_row().map_err(|e| unexpected(what, e))?;
    let applied = match row.columns.get(applied_index) {
        Some(Some(CqlValue::Boolean(b))) => *b,
        other => {
            return Err(unexpected(
                what,
                format!("[applied] is {other:?}, not a boolean"),
            ));
        }
    };
    let revision = match revision_index.and_then(|i| row.columns.get(i)) {
        Some(Some(CqlValue::BigInt(r))) => Some(*r),
        Some(None) | None => None,
        Some(Some(other)) => {
            return Err(unexpected(
                what,
                format!("revision is {other:?}, not a bigint"),
            ));
        }
    };
    Ok((applied, revision))
}

#[async_trait]
impl DurableStateStore for CassandraStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        self.read_record(&self.statements.get, replica, key)
            .await
            .map_err(|e| self.err(e))
    }

    async fn write_batch(
        &self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        self.write_batch_inner(replica, ops)
            .await
            .map_err(|e| self.err(e))
    }

    async fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.scan_page_inner(replica, after, limit)
            .await
            .map_err(|e| self.err(e))
    }

    async fn replicas(&self) -> Result<Vec<String>, StoreError> {
        self.replicas_inner().await.map_err(|e| self.err(e))
    }

    /// Streams every record of `replica` by merging one driver-paged stream per bucket: each
    /// row is read once (instead of 64 queries per page of `scan_page`), and memory stays
    /// bounded by about `2 × page_size` rows.
    fn scan<'a>(&'a self, replica: &'a str, page_size: usize) -> RecordStream<'a> {
        let opened = futures::stream::once(self.bucket_streams(replica, page_size))
            .map_ok(merge::merge_streams)
            .try_flatten();
        Box::pin(opened.map_err(|e| self.err(e)))
    }
}

/// Connects, creates the keyspace and tables if `options.create_schema` (else checks that they
/// exist with the expected columns), and prepares every statement.
///
/// Errors: [`StoreError::Config`] for bad options or a missing/different schema,
/// [`StoreError::Unavailable`] (naming the contact points) when the cluster cannot be reached
/// within `options.connect_timeout`.
pub async fn open(options: CassandraOptions) -> Result<CassandraStore, StoreError> {
    let describe = options.describe();
    CassandraStore::open_inner(options)
        .await
        .map_err(|e| e.into_store_error(&describe))
}

/// Opens a store from a `cassandra://` URL; see [`CassandraOptions::from_url`].
pub async fn open_url(url: &str) -> Result<CassandraStore, StoreError> {
    let options = CassandraOptions::from_url(url).map_err(|e| e.into_store_error(url))?;
    open(options).await
}
