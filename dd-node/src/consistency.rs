//! The `consistency` and `timeout_ms` query parameters of the HTTP API.
//!
//! `consistency` is `local` (default), `majority`, `all` or `from:N`; `timeout_ms` (default
//! 5000) bounds how long a non-local read or write waits for other replicas.
//!
//! ```
//! use dd_core::ReadConsistency;
//! use dd_node::consistency::ConsistencyQuery;
//! let q = ConsistencyQuery { consistency: Some("from:2".into()), timeout_ms: Some("100".into()) };
//! assert!(matches!(q.read().unwrap(), ReadConsistency::From { n: 2, .. }));
//! let bad = ConsistencyQuery { consistency: Some("quorum".into()), timeout_ms: None };
//! assert!(bad.read().unwrap_err().to_string().contains("local, majority, all or from:N"));
//! ```

use std::time::Duration;

use dd_core::{ReadConsistency, WriteConsistency};
use serde::Deserialize;

/// The default `timeout_ms`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

/// The query parameters of reads, writes and deletes (their doc comments are the parameters'
/// descriptions in the OpenAPI document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// local (default), majority, all or from:N (N counts this replica; capped at the members)
    #[param(pattern = "^(local|majority|all|from:[0-9]+)$")]
    pub consistency: Option<String>,
    /// How long the non-local levels wait for other replicas (default 5000)
    #[param(value_type = Option<u64>, minimum = 0)]
    pub timeout_ms: Option<String>,
}

/// A bad `consistency` or `timeout_ms` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistencyError {
    /// Not one of the levels.
    #[error("bad consistency '{0}': expected local, majority, all or from:N (N >= 1)")]
    Level(String),
    /// Not a positive number of milliseconds.
    #[error("bad timeout_ms '{0}': expected a positive integer (milliseconds)")]
    Timeout(String),
}

/// A parsed level, before it becomes a read or write consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Only this replica.
    Local,
    /// A majority of the members.
    Majority,
    /// Every member.
    All,
    /// `n` replicas including this one.
    From(usize),
}

/// Parses `local`, `majority`, `all` or `from:N`.
pub fn parse_level(s: &str) -> Result<Level, ConsistencyError> {
    let bad = || ConsistencyError::Level(s.to_owned());
    match s {
        "local" => Ok(Level::Local),
        "majority" => Ok(Level::Majority),
        "all" => Ok(Level::All),
        _ => {
            let n = s.strip_prefix("from:").ok_or_else(bad)?;
            match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Level::From(n)),
                _ => Err(bad()),
            }
        }
    }
}

impl ConsistencyQuery {
    fn parts(&self) -> Result<(Level, Duration), ConsistencyError> {
        let level = match &self.consistency {
            None => Level::Local,
            Some(s) => parse_level(s)?,
        };
        let timeout = match &self.timeout_ms {
            None => DEFAULT_TIMEOUT,
            Some(t) => match t.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => return Err(ConsistencyError::Timeout(t.clone())),
            },
        };
        Ok((level, timeout))
    }

    /// The read consistency asked for.
    pub fn read(&self) -> Result<ReadConsistency, ConsistencyError> {
        let (level, timeout) = self.parts()?;
        Ok(match level {
            Level::Local => ReadConsistency::Local,
            Level::Majority => ReadConsistency::Majority {
                timeout,
                min_capacity: 0,
            },
            Level::All => ReadConsistency::All { timeout },
            Level::From(n) => ReadConsistency::From { n, timeout },
        })
    }

    /// The write consistency asked for.
    pub fn write(&self) -> Result<WriteConsistency, ConsistencyError> {
        let (level, timeout) = self.parts()?;
        Ok(match level {
            Level::Local => WriteConsistency::Local,
            Level::Majority => WriteConsistency::Majority {
                timeout,
                min_capacity: 0,
            },
            Level::All => WriteConsistency::All { timeout },
            Level::From(n) => WriteConsistency::From { n, timeout },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn q(c: Option<&str>, t: Option<&str>) -> ConsistencyQuery {
        ConsistencyQuery {
            consistency: c.map(String::from),
            timeout_ms: t.map(String::from),
        }
    }

    #[test]
    fn levels() {
        assert_eq!(q(None, None).write().unwrap(), WriteConsistency::Local);
        assert_eq!(
            q(Some("all"), Some("250")).write().unwrap(),
            WriteConsistency::All {
                timeout: Duration::from_millis(250)
            }
        );
        assert_eq!(
            q(Some("majority"), None).read().unwrap(),
            ReadConsistency::Majority {
                timeout: DEFAULT_TIMEOUT,
                min_capacity: 0
            }
        );
        for bad in ["from:0", "from:", "from:x", "MAJORITY", ""] {
            assert!(matches!(
                q(Some(bad), None).read(),
                Err(ConsistencyError::Level(_))
            ));
        }
        for bad in ["0", "-1", "1s"] {
            assert!(matches!(
                q(None, Some(bad)).write(),
                Err(ConsistencyError::Timeout(_))
            ));
        }
    }
}
