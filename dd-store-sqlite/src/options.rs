//! [`SqliteOptions`]: the database file and how it is used, and the `sqlite:` URL form of it.

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

/// Everything [`crate::open`] needs: the database file and its settings. Make one with
/// [`SqliteOptions::new`] (the defaults for a file) or parse an `sqlite:` URL with
/// [`SqliteOptions::from_url`].
///
/// ```
/// use std::path::PathBuf;
/// use dd_store_sqlite::{SqliteOptions, Synchronous};
/// let options = SqliteOptions::new("/var/lib/dd/dd.db");
/// assert_eq!(options.synchronous, Synchronous::Full);
/// let parsed = SqliteOptions::from_url("sqlite:///var/lib/dd/dd.db").unwrap();
/// assert_eq!(parsed, options);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file (created if missing; its parent directory must exist).
    pub path: PathBuf,
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

impl SqliteOptions {
    /// The defaults for the database file `path`: `synchronous` FULL, a 10 s busy timeout, no
    /// size cap.
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(10),
            max_size_bytes: None,
        }
    }

    /// Parses an `sqlite:` URL.
    ///
    /// Forms: `sqlite:///absolute/path/dd.db`, `sqlite://localhost/absolute/path/dd.db`,
    /// `sqlite:/absolute/path/dd.db`, `sqlite:relative/dd.db`, each optionally followed by
    /// `?synchronous=full|normal`, `busy_timeout_ms=N` and/or `max_size_bytes=N` (joined with
    /// `&`). `%XX` escapes in the path are decoded. Anything else is an
    /// [`SqliteError::BadConfig`] naming the URL and what is wrong.
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use dd_store_sqlite::{SqliteOptions, Synchronous};
    /// let options = SqliteOptions::from_url("sqlite:///var/lib/dd.db?synchronous=normal").unwrap();
    /// assert_eq!(options.path, PathBuf::from("/var/lib/dd.db"));
    /// assert_eq!(options.synchronous, Synchronous::Normal);
    /// let capped = SqliteOptions::from_url("sqlite:dd.db?max_size_bytes=1073741824").unwrap();
    /// assert_eq!(capped.max_size_bytes, Some(1 << 30));
    /// assert!(SqliteOptions::from_url("sqlite:dd.db?synchronous=sometimes").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<SqliteOptions, SqliteError> {
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
        let mut options = SqliteOptions::new(path);
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
                    options.busy_timeout = url::parse_millis(name, value).map_err(bad)?
                }
                "max_size_bytes" => {
                    options.max_size_bytes = Some(url::parse_number(name, value).map_err(bad)?);
                }
                other => {
                    return Err(bad(format!(
                        "unknown option '{other}' (known: synchronous, busy_timeout_ms, \
                     max_size_bytes)"
                    )));
                }
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SqliteOptions, String> {
        SqliteOptions::from_url(url).map_err(|e| e.to_string())
    }

    #[test]
    fn url_forms_and_options() {
        assert_eq!(
            parse("sqlite:///a/dd.db"),
            Ok(SqliteOptions::new("/a/dd.db"))
        );
        assert_eq!(
            parse("sqlite://localhost/a/dd.db"),
            Ok(SqliteOptions::new("/a/dd.db"))
        );
        assert_eq!(
            parse("sqlite:rel/dd%20x.db"),
            Ok(SqliteOptions::new("rel/dd x.db"))
        );
        let options = parse("sqlite:dd.db?synchronous=FULL&busy_timeout_ms=250")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.synchronous, Synchronous::Full);
        assert_eq!(options.busy_timeout, Duration::from_millis(250));
        let options = parse("sqlite:dd.db?synchronous=normal").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.synchronous, Synchronous::Normal);
    }

    /// Each bad URL is refused with an error naming the URL and what is wrong with it.
    #[test]
    fn bad_urls_name_what_is_wrong() {
        for (bad, needle) in [
            ("sqlite:", "names no database file"),
            ("sqlite://", "names no database file"),
            ("sqlite:dir/", "names no database file"),
            ("sqlite://db.example/a.db", "host 'db.example'"),
            ("postgres://x/y", "scheme must be 'sqlite:'"),
            ("sqlite:dd.db#frag", "no fragment"),
            (
                "sqlite:dd.db?synchronous=off",
                "synchronous must be 'full' or 'normal'",
            ),
            ("sqlite:dd.db?journal=delete", "unknown option 'journal'"),
            ("sqlite:dd.db?busy_timeout_ms=soon", "'busy_timeout_ms'"),
            ("sqlite:dd.db?max_size_bytes=1GB", "'max_size_bytes'"),
            ("sqlite::memory:", "not durable"),
            ("sqlite:file:dd.db", "not durable"),
            ("sqlite:a%FF.db", "not UTF-8"),
        ] {
            let Err(err) = parse(bad) else {
                panic!("{bad} was accepted");
            };
            assert!(err.contains(bad), "{bad}: the error names no URL: {err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
