//! [`CassandraError`], the typed error of this backend, and its conversion into
//! [`StoreError`].

use std::time::Duration;

use dd_store::StoreError;
use scylla::errors::{
    DbError, ExecutionError, NewSessionError, NextPageError, NextRowError, PagerExecutionError,
    PrepareError, RequestAttemptError, RequestError,
};

/// What can go wrong talking to Cassandra.
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    /// The options or URL are wrong, or the schema is missing or different.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// No session could be opened.
    #[error("cannot connect to {contact_points}: {source}")]
    Connect {
        /// The contact points tried.
        contact_points: String,
        /// The driver's error.
        #[source]
        source: Box<NewSessionError>,
    },
    /// Opening the session did not finish in time.
    #[error("connecting to {contact_points} did not finish within {timeout:?}")]
    ConnectTimeout {
        /// The contact points tried.
        contact_points: String,
        /// The bound.
        timeout: Duration,
    },
    /// A statement failed.
    #[error("{what} failed: {source}")]
    Execution {
        /// What was being done (`get`, `put`, `create table`, ...).
        what: String,
        /// The driver's error.
        #[source]
        source: Box<ExecutionError>,
    },
    /// A conditional write timed out, so it may or may not have been applied, and reading the
    /// record back at serial consistency failed as well: the caller must re-read (as after a
    /// conflict) before relying on the record.
    #[error(
        "{what}: the outcome is unknown, the write may have been applied ({source}); reading it \
         back at serial consistency failed too: {read}"
    )]
    UnknownOutcome {
        /// What was being done.
        what: String,
        /// The write's error (a timeout).
        #[source]
        source: Box<ExecutionError>,
        /// Why reading it back failed.
        read: Box<CassandraError>,
    },
    /// A paged read could not start.
    #[error("{what} failed: {source}")]
    Pager {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<PagerExecutionError>,
    },
    /// A paged read failed part way.
    #[error("{what} failed: {source}")]
    NextRow {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<NextRowError>,
    },
    /// A statement could not be prepared.
    #[error("cannot prepare `{statement}`: {source}")]
    Prepare {
        /// The CQL.
        statement: String,
        /// The driver's error.
        #[source]
        source: Box<PrepareError>,
    },
    /// The cluster answered with something this backend does not expect.
    #[error("{what}: unexpected result: {message}")]
    UnexpectedResult {
        /// What was being done.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// A stored row cannot be read as a record.
    #[error("record of replica '{replica}' key '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl CassandraError {
    /// Whether retrying later may succeed: the cluster (or enough replicas) could not be
    /// reached, timed out, or is overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            CassandraError::Connect { source, .. } => !matches!(
                **source,
                NewSessionError::EmptyKnownNodesList | NewSessionError::IllegalConfig(_)
            ),
            CassandraError::ConnectTimeout { .. } | CassandraError::UnknownOutcome { .. } => true,
            CassandraError::Execution { source, .. } => execution_is_transient(source),
            CassandraError::Prepare { source, .. } => prepare_is_transient(source),
            CassandraError::Pager { source, .. } => match &**source {
                PagerExecutionError::PrepareError(p) => prepare_is_transient(p),
                PagerExecutionError::NextPageError(n) => next_page_is_transient(n),
                PagerExecutionError::SchemaAgreementError(_)
                | PagerExecutionError::MetadataError(_) => true,
                _ => false,
            },
            CassandraError::NextRow { source, .. } => match &**source {
                NextRowError::NextPageError(n) => next_page_is_transient(n),
                _ => false,
            },
            CassandraError::Config(_)
            | CassandraError::UnexpectedResult { .. }
            | CassandraError::Corrupt { .. } => false,
        }
    }

    /// Whether the cluster rejected a statement as invalid (for example an unknown table or
    /// column): the schema is not what this backend expects.
    pub fn is_invalid_request(&self) -> bool {
        let attempt = match self {
            CassandraError::Prepare { source, .. } => match &**source {
                PrepareError::AllAttemptsFailed { first_attempt } => first_attempt,
                _ => return false,
            },
            CassandraError::Execution { source, .. } => match &**source {
                ExecutionError::LastAttemptError(attempt) => attempt,
                _ => return false,
            },
            _ => return false,
        };
        matches!(
            attempt,
            RequestAttemptError::DbError(DbError::Invalid | DbError::SyntaxError, _)
        )
    }

    /// Converts into the public [`StoreError`] of the store described by `backend`.
    pub fn into_store_error(self, backend: &str) -> StoreError {
        let backend = backend.to_owned();
        if self.is_transient() {
            return StoreError::unavailable(backend, self);
        }
        match self {
            CassandraError::Config(message) => StoreError::Config { backend, message },
            CassandraError::Corrupt {
                replica,
                key,
                reason,
            } => StoreError::Corrupt {
                backend,
                replica,
                key,
                reason,
            },
            other => StoreError::backend(backend, other),
        }
    }
}

fn db_error_is_transient(error: &DbError) -> bool {
    matches!(
        error,
        DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::TruncateError
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. }
    )
}

fn attempt_is_transient(error: &RequestAttemptError) -> bool {
    match error {
        RequestAttemptError::BrokenConnectionError(_)
        | RequestAttemptError::UnableToAllocStreamId => true,
        RequestAttemptError::DbError(db, _) => db_error_is_transient(db),
        _ => false,
    }
}

fn request_is_transient(error: &RequestError) -> bool {
    match error {
        RequestError::EmptyPlan
        | RequestError::ConnectionPoolError(_)
        | RequestError::RequestTimeout(_) => true,
        RequestError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        _ => false,
    }
}

fn next_page_is_transient(error: &NextPageError) -> bool {
    match error {
        NextPageError::RequestFailure(request) => request_is_transient(request),
        _ => false,
    }
}

fn prepare_is_transient(error: &PrepareError) -> bool {
    match error {
        PrepareError::ConnectionPoolError(_) => true,
        PrepareError::AllAttemptsFailed { first_attempt } => attempt_is_transient(first_attempt),
        _ => false,
    }
}

fn execution_is_transient(error: &ExecutionError) -> bool {
    match error {
        ExecutionError::EmptyPlan
        | ExecutionError::ConnectionPoolError(_)
        | ExecutionError::RequestTimeout(_)
        | ExecutionError::SchemaAgreementError(_)
        | ExecutionError::MetadataError(_) => true,
        ExecutionError::LastAttemptError(attempt) => attempt_is_transient(attempt),
        ExecutionError::PrepareError(prepare) => prepare_is_transient(prepare),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_unavailable_are_transient() {
        let timeout = CassandraError::Execution {
            what: "get".into(),
            source: Box::new(ExecutionError::RequestTimeout(Duration::from_secs(1))),
        };
        assert!(timeout.is_transient());
        let store_error = timeout.into_store_error("cassandra://h:9042/ks.t");
        assert!(store_error.is_transient());
        assert!(store_error.to_string().contains("cassandra://h:9042/ks.t"));
        let invalid = CassandraError::Execution {
            what: "get".into(),
            source: Box::new(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(DbError::Invalid, "unconfigured table".into()),
            )),
        };
        assert!(!invalid.is_transient());
        assert!(invalid.is_invalid_request());
        let corrupt = CassandraError::Corrupt {
            replica: "r".into(),
            key: "k".into(),
            reason: "null revision".into(),
        };
        assert!(matches!(
            corrupt.into_store_error("x"),
            StoreError::Corrupt { .. }
        ));
    }
}
