//! [`SqliteError`], the typed error of this backend, and its conversion into [`StoreError`].

use std::path::{Path, PathBuf};

use dd_store::StoreError;
use rusqlite::ErrorCode;

/// An error of the SQLite store. Every variant names the database file; converts into
/// [`StoreError`] (busy, locked, full, read-only and I/O failures become
/// [`StoreError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// An SQLite call failed. The message ends with what the error means and what to do for the
    /// errors an operator can fix (full disk or size cap, read-only database).
    #[error("sqlite:{}: {}{op} failed: {source}{}", path.display(), subject_prefix(subject.as_deref()), advice(source))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Which records were being written (`replica 'r' key 'k'`), where known.
        subject: Option<Box<str>>,
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database can only be opened read-only: its file system is read-only, or its file or
    /// directory is not writable by this process. The store refuses to open rather than fail
    /// every write later; it opens once the database is writable again.
    #[error("sqlite:{}: cannot open the database for writing: {reason}", path.display())]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
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
                subject: None,
                op,
                source,
            },
        }
    }

    /// Names the records concerned (`replica 'r' key 'k'`) in an [`SqliteError::Sqlite`] that
    /// names none yet; other errors are returned as they are.
    pub(crate) fn about(self, subject: impl FnOnce() -> String) -> SqliteError {
        match self {
            SqliteError::Sqlite {
                path,
                subject: None,
                op,
                source,
            } => SqliteError::Sqlite {
                path,
                subject: Some(subject().into_boxed_str()),
                op,
                source,
            },
            other => other,
        }
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            SqliteError::Sqlite { source, .. } => source,
            SqliteError::ReadOnly { .. } => return true,
            _ => return false,
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

fn subject_prefix(subject: Option<&str>) -> String {
    subject.map(|s| format!("{s}: ")).unwrap_or_default()
}

/// What an SQLite error an operator can fix means here, and what to do about it (empty for
/// others).
fn advice(source: &rusqlite::Error) -> &'static str {
    match source.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => {
            ". The database or its disk is full (SQLITE_FULL: no space left on the file system, \
             or the database reached its max_size_bytes cap): nothing of this batch was written \
             and the records written before are intact. Free space on the file system or raise \
             max_size_bytes, then retry: the store writes again without a restart"
        }
        Some(ErrorCode::ReadOnly) => {
            ". The database is read-only (SQLITE_READONLY: the file, its directory or its file \
             system is not writable): nothing was written. Make it writable, then open the store \
             again"
        }
        Some(ErrorCode::CannotOpen) => {
            ". SQLite cannot open the database or its -wal/-shm files: check that the directory \
             exists and is writable and that the file system is mounted read-write"
        }
        _ => "",
    }
}

fn backend(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

impl From<SqliteError> for StoreError {
    fn from(e: SqliteError) -> StoreError {
        if e.is_transient()
            && let SqliteError::Sqlite { path, .. } | SqliteError::ReadOnly { path, .. } = &e
        {
            return StoreError::unavailable(backend(path), e);
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
            | SqliteError::DamagedDatabase { ref path, .. } => {
                StoreError::config(backend(path), &e)
            }
            SqliteError::BadConfig { ref input, .. } => {
                StoreError::config(format!("sqlite ({input})"), &e)
            }
            SqliteError::Sqlite { ref path, .. }
            | SqliteError::ReadOnly { ref path, .. }
            | SqliteError::Task { ref path, .. } => StoreError::backend(backend(path), e),
        }
    }
}
