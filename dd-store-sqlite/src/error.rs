//! [`SqliteError`], the typed error of this backend, and its conversion into [`StoreError`].

use std::path::{Path, PathBuf};

use dd_core::store::StoreError;
use rusqlite::ErrorCode;

/// An error of the SQLite store. Every variant names the database file; converts into
/// [`StoreError`] (busy, locked, full, read-only and I/O failures become
/// [`StoreError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// An SQLite call failed.
    #[error("sqlite:{}: {op} failed: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not an SQLite database, or the database is damaged.
    #[error("sqlite:{}: the database file is damaged or not an SQLite database ({op}): {source}", path.display())]
    DamagedDatabase {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database holds a schema this build does not know (newer, or not durable-dd's).
    #[error("sqlite:{}: {reason}", path.display())]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A stored row cannot be read as a record.
    #[error("sqlite:{}: record of replica '{replica}' key '{key}' is corrupt: {reason}", path.display())]
    CorruptRecord {
        /// The database file.
        path: PathBuf,
        /// The replica.
        replica: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A URL or option is not understood.
    #[error("invalid sqlite store configuration '{input}': {reason}")]
    BadConfig {
        /// The URL or option.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// A blocking database task panicked or was cancelled.
    #[error("sqlite:{}: a database task failed: {message}", path.display())]
    Task {
        /// The database file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
}

impl SqliteError {
    /// Classifies an SQLite error of `op` on `path`.
    pub(crate) fn sqlite(path: &Path, op: &'static str, source: rusqlite::Error) -> SqliteError {
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                SqliteError::DamagedDatabase {
                    path: path.to_path_buf(),
                    op,
                    source,
                }
            }
            _ => SqliteError::Sqlite {
                path: path.to_path_buf(),
                op,
                source,
            },
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        let SqliteError::Sqlite { source, .. } = self else {
            return false;
        };
        matches!(
            source.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::DiskFull
                    | ErrorCode::ReadOnly
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::OutOfMemory
                    | ErrorCode::FileLockingProtocolFailed
            )
        )
    }
}

fn backend(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> StoreError {
        if e.is_transient()
            && let SqliteError::Sqlite { path, .. } = &e
        {
            return StoreError::Unavailable {
                backend: backend(path),
                source: Box::new(e),
            };
        }
        match e {
            SqliteError::CorruptRecord {
                path,
                replica,
                key,
                reason,
            } => StoreError::Corrupt {
                backend: backend(&path),
                replica,
                key,
                reason,
            },
            SqliteError::Schema { ref path, .. }
            | SqliteError::DamagedDatabase { ref path, .. } => StoreError::Config {
                backend: backend(path),
                message: e.to_string(),
            },
            SqliteError::BadConfig { ref input, .. } => StoreError::Config {
                backend: format!("sqlite ({input})"),
                message: e.to_string(),
            },
            SqliteError::Sqlite { ref path, .. } | SqliteError::Task { ref path, .. } => {
                StoreError::Backend {
                    backend: backend(path),
                    message: e.to_string(),
                    source: Some(Box::new(e)),
                }
            }
        }
    }
}
