//! [`SqliteOptions`] and `sqlite:` URLs.

use std::path::PathBuf;
use std::time::Duration;

use dd_store::url;

use crate::error::SqliteError;

/// SQLite's `synchronous` setting, which decides what an acknowledged write survives (in WAL
/// mode, which this store always uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `FULL` (default): the WAL is synced at every commit; an acknowledged write survives a
    /// process crash **and** power loss or an OS crash.
    #[default]
    Full,
    /// `NORMAL`: the WAL is synced only at checkpoints; an acknowledged write survives a process
    /// crash, but the last commits may be lost on power loss or an OS crash (the database stays
    /// consistent). Faster.
    Normal,
}

impl Synchronous {
    /// The value for `PRAGMA synchronous`.
    pub fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }

    /// The value `PRAGMA synchronous` reads back (`2` for FULL, `1` for NORMAL).
    pub fn pragma_number(self) -> i64 {
        match self {
            Synchronous::Full => 2,
            Synchronous::Normal => 1,
        }
    }
}

/// Options of [`crate::SqliteStore::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of acknowledged writes; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// How long a statement waits for another connection's lock before failing with "database is
    /// busy" ([`dd_store::StoreError::Unavailable`]).
    pub busy_timeout: Duration,
    /// The most bytes the database file may grow to (`None`: no cap but the disk). A write that
    /// would grow it beyond fails like a full disk (`SQLITE_FULL`,
    /// [`dd_store::StoreError::Unavailable`]), with nothing of its batch written; deleting
    /// records frees room inside the cap, and [`crate::SqliteStore::set_max_size_bytes`] raises
    /// it on an open store. Rounded down to whole database pages (4096 bytes by default); a cap
    /// below the database's current size holds it at that size. The `-wal` file, which shrinks
    /// back at checkpoints, is not counted.
    pub max_size_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(10),
            max_size_bytes: None,
        }
    }
}

/// The database path and options an `sqlite:` URL names.
///
/// Forms: `sqlite:///absolute/path/dd.db`, `sqlite://localhost/absolute/path/dd.db`,
/// `sqlite:/absolute/path/dd.db`, `sqlite:relative/dd.db`, each optionally followed by
/// `?synchronous=full|normal`, `busy_timeout_ms=N` and/or `max_size_bytes=N` (joined with `&`).
/// `%XX` escapes in the path are decoded. Anything else is an [`SqliteError::BadConfig`].
///
/// ```
/// use std::path::PathBuf;
/// use dd_store_sqlite::{parse_url, Synchronous};
/// let (path, options) = parse_url("sqlite:///var/lib/dd.db?synchronous=normal").unwrap();
/// assert_eq!(path, PathBuf::from("/var/lib/dd.db"));
/// assert_eq!(options.synchronous, Synchronous::Normal);
/// let (_, capped) = parse_url("sqlite:dd.db?max_size_bytes=1073741824").unwrap();
/// assert_eq!(capped.max_size_bytes, Some(1 << 30));
/// assert!(parse_url("sqlite:dd.db?synchronous=sometimes").is_err());
/// ```
pub fn parse_url(url: &str) -> Result<(PathBuf, SqliteOptions), SqliteError> {
    let bad = |reason: String| SqliteError::BadConfig {
        input: url.to_owned(),
        reason,
    };
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(bad(
            "the scheme must be 'sqlite:' (sqlite:///absolute/dd.db or sqlite:relative.db)"
                .to_owned(),
        ));
    };
    if rest.contains('#') {
        return Err(bad("sqlite URLs take no fragment".to_owned()));
    }
    let (path, query) = url::split_query(rest);
    let path = url::local_path(path).map_err(|host| {
        bad(format!(
            "host '{host}' is not supported: the database must be a local file"
        ))
    })?;
    let path = url::decode(path).map_err(bad)?;
    if path.is_empty() || path.ends_with('/') {
        return Err(bad("the URL names no database file".to_owned()));
    }
    if path == ":memory:" || path.starts_with("file:") {
        return Err(bad(
            "in-memory and URI databases are not durable; name a database file".to_owned(),
        ));
    }
    let mut options = SqliteOptions::default();
    for (name, value) in url::query_pairs(query) {
        match name {
            "synchronous" => {
                options.synchronous = match value.to_ascii_lowercase().as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    other => {
                        return Err(bad(format!(
                            "synchronous must be 'full' or 'normal', not '{other}'"
                        )));
                    }
                }
            }
            "busy_timeout_ms" => {
                let ms: u64 = value.parse().map_err(|_| {
                    bad(format!(
                        "busy_timeout_ms must be a number of milliseconds, not '{value}'"
                    ))
                })?;
                options.busy_timeout = Duration::from_millis(ms);
            }
            "max_size_bytes" => {
                let bytes: u64 = value.parse().map_err(|_| {
                    bad(format!(
                        "max_size_bytes must be a number of bytes, not '{value}'"
                    ))
                })?;
                options.max_size_bytes = Some(bytes);
            }
            other => {
                return Err(bad(format!(
                    "unknown option '{other}' (known: synchronous, busy_timeout_ms, \
                     max_size_bytes)"
                )));
            }
        }
    }
    Ok((PathBuf::from(path), options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms_and_options() {
        let parse = |u: &str| parse_url(u).map_err(|e| e.to_string());
        let defaults = SqliteOptions::default();
        assert_eq!(
            parse("sqlite:///a/dd.db"),
            Ok((PathBuf::from("/a/dd.db"), defaults.clone()))
        );
        assert_eq!(
            parse("sqlite://localhost/a/dd.db"),
            Ok((PathBuf::from("/a/dd.db"), defaults.clone()))
        );
        assert_eq!(
            parse("sqlite:rel/dd%20x.db"),
            Ok((PathBuf::from("rel/dd x.db"), defaults.clone()))
        );
        let (_, options) = parse_url("sqlite:dd.db?synchronous=FULL&busy_timeout_ms=250")
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.synchronous, Synchronous::Full);
        assert_eq!(options.busy_timeout, Duration::from_millis(250));
        let (_, options) = parse_url("sqlite:dd.db?synchronous=normal")
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.synchronous, Synchronous::Normal);
        for bad in [
            "sqlite:",
            "sqlite://",
            "sqlite://db.example/a.db",
            "postgres://x/y",
            "sqlite:dd.db?synchronous=off",
            "sqlite:dd.db?journal=delete",
            "sqlite:dd.db?busy_timeout_ms=soon",
            "sqlite:dd.db?max_size_bytes=1GB",
            "sqlite::memory:",
            "sqlite:dir/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
