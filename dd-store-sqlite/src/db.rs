//! The blocking implementation over one `rusqlite::Connection`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dd_store::revision;
use dd_store::{Revision, ScanPage, StoredRecord, WriteOp, WriteOutcome, batch_subject};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tracing::{debug, info, warn};

use crate::error::SqliteError;
use crate::options::SqliteOptions;

/// The schema version this build writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of durable-dd databases ("ddST").
pub const APPLICATION_ID: i64 = 0x6464_5354;

const CREATE_SCHEMA: &str = "
CREATE TABLE dd_state (
    replica  TEXT    NOT NULL,
    key      TEXT    NOT NULL,
    revision INTEGER NOT NULL CHECK (revision > 0),
    value    BLOB    NOT NULL,
    PRIMARY KEY (replica, key)
);
";

/// An open database.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    conn: Connection,
    /// SQLite's own `max_page_count` (the limit without a cap).
    uncapped_max_pages: i64,
}

/// Whether the file system holding `path` (or, if it does not exist, its directory) is mounted
/// read-only.
#[cfg(unix)]
fn on_read_only_file_system(path: &Path) -> bool {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let probe = if path.exists() {
        path
    } else {
        match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    };
    statvfs(probe).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

#[cfg(not(unix))]
fn on_read_only_file_system(_path: &Path) -> bool {
    false
}

/// [`SqliteError::ReadOnly`] for `path`, with what SQLite said (`detail`) if anything.
fn read_only(path: &Path, detail: Option<String>) -> SqliteError {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    let reason = if on_read_only_file_system(path) {
        format!(
            "its file system is read-only (EROFS){detail}; in WAL mode SQLite must also create \
             the -wal and -shm files next to the database. Remount the file system read-write, \
             then open the store again"
        )
    } else {
        format!(
            "the database file or its directory is not writable by this process{detail}. Make \
             them writable, then open the store again"
        )
    };
    SqliteError::ReadOnly {
        path: path.to_path_buf(),
        reason,
    }
}

impl Database {
    /// Opens (creating if needed) the database at `path`: WAL mode, the `synchronous` setting,
    /// the busy timeout, the schema (created in a fresh database, checked in an existing one) and
    /// the size cap. A database that can only be opened read-only is refused with
    /// [`SqliteError::ReadOnly`].
    pub fn open(path: &Path, options: &SqliteOptions) -> Result<Database, SqliteError> {
        match Self::open_read_write(path, options) {
            // SQLite opens a database it cannot write read-only (when its -wal and -shm files
            // exist); every write would then fail, so the store refuses to open instead.
            Ok(db) if db.conn.is_readonly(MAIN_DB).unwrap_or(false) => Err(read_only(path, None)),
            Ok(db) => Ok(db),
            Err(SqliteError::Sqlite { op, source, .. }) if on_read_only_file_system(path) => {
                Err(read_only(path, Some(format!("{op} failed: {source}"))))
            }
            Err(e) => Err(e),
        }
    }

    fn open_read_write(path: &Path, options: &SqliteOptions) -> Result<Database, SqliteError> {
        let err = |op| move |e| SqliteError::sqlite(path, op, e);
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err("open"))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(err("set busy_timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(err("switch to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqliteError::Schema {
                path: path.to_path_buf(),
                reason: format!("the database refused WAL mode (journal_mode is {mode})"),
            });
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
            .map_err(err("set synchronous"))?;
        let uncapped_max_pages: i64 = conn
            .pragma_query_value(None, "max_page_count", |row| row.get(0))
            .map_err(err("read max_page_count"))?;
        let mut db = Database {
            path: path.to_path_buf(),
            conn,
            uncapped_max_pages,
        };
        db.init_schema()?;
        if options.max_size_bytes.is_some() {
            db.set_max_size_bytes(options.max_size_bytes)?;
        }
        Ok(db)
    }

    /// Caps the database file at `max_size_bytes` (rounded down to whole pages; `None` removes
    /// the cap) with `PRAGMA max_page_count`; returns the cap in effect, in bytes, which is the
    /// database's current size if that is larger.
    pub fn set_max_size_bytes(&mut self, max_size_bytes: Option<u64>) -> Result<u64, SqliteError> {
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .map_err(self.err("read page_size"))?;
        let page_size = u64::try_from(page_size).unwrap_or(1).max(1);
        let uncapped = self.uncapped_max_pages;
        let pages = match max_size_bytes {
            None => uncapped,
            Some(bytes) => i64::try_from(bytes / page_size)
                .unwrap_or(i64::MAX)
                .clamp(1, uncapped.max(1)),
        };
        let set: i64 = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |row| row.get(0))
            .map_err(self.err("set max_page_count"))?;
        let effective = u64::try_from(set).unwrap_or(0).saturating_mul(page_size);
        if set > pages {
            warn!(path = %self.path.display(), max_size_bytes, effective,
                "the database is already larger than max_size_bytes: it is held at its current \
                 size, writes that need more room fail until records are deleted");
        }
        Ok(effective)
    }

    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> SqliteError + '_ {
        move |e| SqliteError::sqlite(&self.path, op, e)
    }

    /// The current `PRAGMA synchronous` value (for tests and diagnostics).
    pub fn synchronous(&self) -> Result<i64, SqliteError> {
        self.conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(self.err("read synchronous"))
    }

    fn init_schema(&mut self) -> Result<(), SqliteError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| SqliteError::sqlite(&path, "begin schema transaction", e))?;
        let err = |op| {
            let path = path.clone();
            move |e| SqliteError::sqlite(&path, op, e)
        };
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(err("read user_version"))?;
        let application_id: i64 = tx
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(err("read application_id"))?;
        let schema_error = |reason: String| SqliteError::Schema {
            path: path.clone(),
            reason,
        };
        if application_id != 0 && application_id != APPLICATION_ID {
            return Err(schema_error(format!(
                "the database belongs to another application (application_id {application_id:#x})"
            )));
        }
        match version {
            SCHEMA_VERSION if application_id == APPLICATION_ID => {}
            0 => {
                let tables: i64 = tx
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
                    .map_err(err("list tables"))?;
                if tables != 0 {
                    return Err(schema_error(
                        "the database already holds tables and is not a durable-dd database"
                            .to_owned(),
                    ));
                }
                tx.execute_batch(CREATE_SCHEMA)
                    .map_err(err("create the schema"))?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(err("set application_id"))?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(err("set user_version"))?;
                info!(path = %path.display(), "created durable-dd schema version {SCHEMA_VERSION}");
            }
            newer if newer > SCHEMA_VERSION => {
                return Err(schema_error(format!(
                    "schema version {newer} is newer than this build supports ({SCHEMA_VERSION}); \
                     upgrade durable-dd"
                )));
            }
            other => {
                return Err(schema_error(format!(
                    "unknown schema version {other} (application_id {application_id:#x})"
                )));
            }
        }
        tx.commit().map_err(err("commit the schema"))
    }

    fn corrupt(&self, replica: &str, key: &str, reason: String) -> SqliteError {
        SqliteError::CorruptRecord {
            path: self.path.clone(),
            replica: replica.to_owned(),
            key: key.to_owned(),
            reason,
        }
    }

    fn revision_of(&self, replica: &str, key: &str, stored: i64) -> Result<Revision, SqliteError> {
        u64::try_from(stored)
            .ok()
            .filter(|r| *r > 0)
            .map(Revision)
            .ok_or_else(|| self.corrupt(replica, key, format!("invalid revision {stored}")))
    }

    fn record_from(
        &self,
        replica: &str,
        key: String,
        revision: i64,
        value: ValueRef<'_>,
    ) -> Result<StoredRecord, SqliteError> {
        let revision = self.revision_of(replica, &key, revision)?;
        let value = match value {
            ValueRef::Blob(bytes) => Bytes::copy_from_slice(bytes),
            other => {
                return Err(self.corrupt(
                    replica,
                    &key,
                    format!("the value is {:?}, not a BLOB", other.data_type()),
                ));
            }
        };
        Ok(StoredRecord {
            key,
            revision,
            value,
        })
    }

    /// Reads one record.
    pub fn get(&self, replica: &str, key: &str) -> Result<Option<StoredRecord>, SqliteError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT revision, value FROM dd_state WHERE replica = ?1 AND key = ?2")
            .map_err(self.err("prepare get"))?;
        let mut rows = stmt.query(params![replica, key]).map_err(self.err("get"))?;
        let Some(row) = rows.next().map_err(self.err("get"))? else {
            return Ok(None);
        };
        let revision: i64 = row.get(0).map_err(self.err("read revision"))?;
        let value = row.get_ref(1).map_err(self.err("read value"))?;
        self.record_from(replica, key.to_owned(), revision, value)
            .map(Some)
    }

    /// Applies a batch in one IMMEDIATE transaction (so that the read-check-write of each op is
    /// atomic against other connections too).
    /// Errors name the replica and the key (or the keys of the batch).
    pub fn write_batch(
        &mut self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, SqliteError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ops.iter().map(|op| op.key().to_owned()).collect();
        self.apply_batch(replica, ops).map_err(|e| {
            e.about(|| {
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                batch_subject(replica, &keys)
            })
        })
    }

    fn apply_batch(
        &mut self,
        replica: &str,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<WriteOutcome>, SqliteError> {
        let path = self.path.clone();
        let err = |op| {
            let path = path.clone();
            move |e| SqliteError::sqlite(&path, op, e)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin transaction"))?;
        let mut outcomes = Vec::with_capacity(ops.len());
        {
            let mut select = tx
                .prepare_cached(
                    "SELECT revision, typeof(value) FROM dd_state WHERE replica = ?1 AND key = ?2",
                )
                .map_err(err("prepare select"))?;
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO dd_state (replica, key, revision, value) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (replica, key) DO UPDATE SET revision = excluded.revision, \
                     value = excluded.value",
                )
                .map_err(err("prepare upsert"))?;
            let mut delete = tx
                .prepare_cached("DELETE FROM dd_state WHERE replica = ?1 AND key = ?2")
                .map_err(err("prepare delete"))?;
            for op in ops {
                let key = op.key();
                let stored: Option<(i64, String)> = select
                    .query_row(params![replica, key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .map_err(err("read revision"))?;
                // A record that cannot be read back is never overwritten.
                if let Some((_, value_type)) = &stored
                    && value_type != "blob"
                {
                    return Err(SqliteError::CorruptRecord {
                        path: path.clone(),
                        replica: replica.to_owned(),
                        key: key.to_owned(),
                        reason: format!("the value is {value_type}, not a BLOB"),
                    });
                }
                let actual = match stored.map(|(r, _)| r) {
                    Some(r) => Some(
                        u64::try_from(r)
                            .ok()
                            .filter(|r| *r > 0)
                            .map(Revision)
                            .ok_or_else(|| SqliteError::CorruptRecord {
                                path: path.clone(),
                                replica: replica.to_owned(),
                                key: key.to_owned(),
                                reason: format!("invalid revision {r}"),
                            })?,
                    ),
                    None => None,
                };
                let outcome = match (&op, revision::check(&op, actual)) {
                    (_, Err(conflict)) => conflict,
                    (WriteOp::Put { key, value, .. }, Ok(revision)) => {
                        let stored =
                            i64::try_from(revision.0).map_err(|_| SqliteError::CorruptRecord {
                                path: path.clone(),
                                replica: replica.to_owned(),
                                key: key.clone(),
                                reason: format!("revision {revision} exceeds SQLite's range"),
                            })?;
                        upsert
                            .execute(params![replica, key, stored, value.as_ref()])
                            .map_err(err("write"))?;
                        WriteOutcome::Written(revision)
                    }
                    (WriteOp::Delete { key, .. }, Ok(revision)) => {
                        delete
                            .execute(params![replica, key])
                            .map_err(err("delete"))?;
                        WriteOutcome::Written(revision)
                    }
                };
                outcomes.push(outcome);
            }
        }
        tx.commit().map_err(err("commit"))?;
        debug!(path = %path.display(), replica, ops = outcomes.len(), "batch committed");
        Ok(outcomes)
    }

    /// One page of a replica's records, by key (BINARY collation: byte order of UTF-8).
    pub fn scan_page(
        &self,
        replica: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, SqliteError> {
        let limit = limit.max(1);
        // One more than the page, to know whether another page follows.
        let fetch = i64::try_from(limit)
            .unwrap_or(i64::MAX - 1)
            .saturating_add(1);
        let mut rows = match after {
            Some(after) => {
                let stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT key, revision, value FROM dd_state WHERE replica = ?1 AND key > ?2 \
                         ORDER BY key LIMIT ?3",
                    )
                    .map_err(self.err("prepare scan"))?;
                (stmt, Some(after))
            }
            None => {
                let stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT key, revision, value FROM dd_state WHERE replica = ?1 \
                         ORDER BY key LIMIT ?2",
                    )
                    .map_err(self.err("prepare scan"))?;
                (stmt, None)
            }
        };
        let (stmt, after) = &mut rows;
        let mut rows = match after {
            Some(after) => stmt.query(params![replica, *after, fetch]),
            None => stmt.query(params![replica, fetch]),
        }
        .map_err(self.err("scan"))?;
        let mut records = Vec::new();
        let mut more = false;
        while let Some(row) = rows.next().map_err(self.err("scan"))? {
            if records.len() == limit {
                more = true;
                break;
            }
            let key: String = row.get(0).map_err(self.err("read key"))?;
            let revision: i64 = row.get(1).map_err(self.err("read revision"))?;
            let value = row.get_ref(2).map_err(self.err("read value"))?;
            records.push(self.record_from(replica, key, revision, value)?);
        }
        let next = if more {
            records.last().map(|r| r.key.clone())
        } else {
            None
        };
        Ok(ScanPage { records, next })
    }

    /// The names of the replicas with records, sorted.
    pub fn replicas(&self) -> Result<Vec<String>, SqliteError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT replica FROM dd_state ORDER BY replica")
            .map_err(self.err("prepare replicas"))?;
        let names = stmt
            .query_map([], |row| row.get(0))
            .map_err(self.err("list replicas"))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(self.err("list replicas"))?;
        Ok(names)
    }
}
