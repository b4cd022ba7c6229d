//! [`CassandraOptions`]: where the store is and how it talks to the cluster, and the
//! `cassandra://` URL form of it.

use std::time::Duration;

pub use scylla::statement::{Consistency, SerialConsistency};

use dd_store::url;

use crate::error::CassandraError;

/// The default CQL port.
pub const DEFAULT_PORT: u16 = 9042;

/// The default table name.
pub const DEFAULT_TABLE: &str = "dd_state";

/// The replication of the keyspace, used only when the store creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (single data center, tests).
    Simple {
        /// The replication factor.
        replication_factor: u32,
    },
    /// `NetworkTopologyStrategy` with a replication factor per data center (production).
    NetworkTopology {
        /// `(data center, replication factor)` pairs.
        datacenters: Vec<(String, u32)>,
    },
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple {
            replication_factor: 1,
        }
    }
}

impl Replication {
    /// The CQL map literal of this replication, e.g.
    /// `{'class': 'SimpleStrategy', 'replication_factor': 1}`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple { replication_factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}")
            }
            Replication::NetworkTopology { datacenters } => {
                let mut cql = "{'class': 'NetworkTopologyStrategy'".to_owned();
                for (dc, rf) in datacenters {
                    cql.push_str(&format!(", '{}': {rf}", dc.replace('\'', "''")));
                }
                cql.push('}');
                cql
            }
        }
    }

    /// Parses `simple:RF` or `network:DC1=RF1,DC2=RF2` (the URL's `replication` parameter).
    pub fn parse(text: &str) -> Result<Replication, CassandraError> {
        let bad = |why: &str| {
            CassandraError::Config(format!(
                "replication '{text}' {why} (expected simple:RF or network:DC=RF[,DC=RF])"
            ))
        };
        let rf = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("has a replication factor that is not a positive number"))
        };
        match text.split_once(':') {
            Some(("simple", n)) => Ok(Replication::Simple {
                replication_factor: rf(n)?,
            }),
            Some(("network", dcs)) => {
                let mut datacenters = Vec::new();
                for entry in dcs.split(',') {
                    let (dc, n) = entry.split_once('=').ok_or_else(|| bad("is malformed"))?;
                    if dc.is_empty() {
                        return Err(bad("names an empty data center"));
                    }
                    datacenters.push((dc.to_owned(), rf(n)?));
                }
                Ok(Replication::NetworkTopology { datacenters })
            }
            _ => Err(bad("is malformed")),
        }
    }
}

/// Where and how a [`CassandraStore`](crate::CassandraStore) stores its records.
///
/// ```
/// use dd_store_cassandra::{CassandraOptions, Consistency};
/// let options = CassandraOptions::new(["10.0.0.1:9042", "10.0.0.2:9042"], "durable_dd");
/// assert_eq!(options.table, "dd_state");
/// assert_eq!(options.consistency, Consistency::LocalQuorum);
/// assert!(options.create_schema);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CassandraOptions {
    /// The nodes to connect to first, as `host:port`; the driver discovers the rest.
    pub contact_points: Vec<String>,
    /// The keyspace (lower-case letters, digits and `_`).
    pub keyspace: String,
    /// The records table; its companion tables are `<table>_replicas`.
    pub table: String,
    /// The keyspace's replication, used only when the store creates the keyspace.
    pub replication: Replication,
    /// Create the keyspace and tables when they are missing (`true`), or use them as they are
    /// and fail with a configuration error if they are missing or different (`false`).
    pub create_schema: bool,
    /// The consistency of reads and writes (`LOCAL_QUORUM` by default).
    pub consistency: Consistency,
    /// The serial consistency of the lightweight transactions (`LOCAL_SERIAL` by default).
    pub serial_consistency: SerialConsistency,
    /// The driver's page size for `scan` streams and the replica listing.
    pub page_size: i32,
    /// The client-side timeout of one request.
    pub request_timeout: Duration,
    /// The timeout of opening one connection.
    pub connect_timeout: Duration,
    /// How many writes of one batch run at once.
    pub write_concurrency: usize,
}

impl CassandraOptions {
    /// Options with the defaults for `contact_points` and `keyspace`: table `dd_state`,
    /// `SimpleStrategy` with replication factor 1, schema created when missing, `LOCAL_QUORUM`,
    /// `LOCAL_SERIAL`, page size 1000, 12 s request timeout, 5 s connect timeout, 32 concurrent
    /// writes per batch.
    pub fn new(
        contact_points: impl IntoIterator<Item = impl Into<String>>,
        keyspace: impl Into<String>,
    ) -> Self {
        Self {
            contact_points: contact_points.into_iter().map(Into::into).collect(),
            keyspace: keyspace.into(),
            table: DEFAULT_TABLE.to_owned(),
            replication: Replication::default(),
            create_schema: true,
            consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            page_size: 1000,
            request_timeout: Duration::from_secs(12),
            connect_timeout: Duration::from_secs(5),
            write_concurrency: 32,
        }
    }

    /// Parses `cassandra://host:port[,host2:port]/keyspace?table=dd_state&replication=simple:3
    /// &consistency=local_quorum&serial_consistency=local_serial&create_schema=true
    /// &page_size=1000&request_timeout_ms=12000&connect_timeout_ms=5000&write_concurrency=32`.
    /// Every query parameter is optional; a port defaults to 9042.
    ///
    /// ```
    /// use dd_store_cassandra::{CassandraOptions, Consistency, Replication};
    /// let o = CassandraOptions::from_url(
    ///     "cassandra://db1,db2:9043/dd?replication=network:dc1=3&consistency=quorum",
    /// )
    /// .unwrap();
    /// assert_eq!(o.contact_points, vec!["db1:9042", "db2:9043"]);
    /// assert_eq!(o.keyspace, "dd");
    /// assert_eq!(o.consistency, Consistency::Quorum);
    /// assert_eq!(
    ///     o.replication,
    ///     Replication::NetworkTopology { datacenters: vec![("dc1".into(), 3)] }
    /// );
    /// assert!(CassandraOptions::from_url("cassandra://db1/dd?colour=blue").is_err());
    /// ```
    pub fn from_url(text: &str) -> Result<Self, CassandraError> {
        let bad = |why: String| CassandraError::Config(format!("URL '{text}': {why}"));
        // The errors of the value parsers and of `validate`, naming the URL too.
        let in_url = |e: CassandraError| match e {
            CassandraError::Config(why) => bad(why),
            other => other,
        };
        let rest = match url::scheme_of(text) {
            Some(scheme) if scheme.eq_ignore_ascii_case("cassandra") => &text[scheme.len() + 1..],
            _ => return Err(bad("must start with cassandra://".to_owned())),
        };
        if rest.contains('#') {
            return Err(bad("takes no fragment".to_owned()));
        }
        let (location, query) = url::split_query(rest);
        let (hosts, path) = url::authority(location)
            .ok_or_else(|| bad("must start with cassandra://".to_owned()))?;
        let keyspace = path
            .strip_prefix('/')
            .ok_or_else(|| bad("names no keyspace (cassandra://host:port/keyspace)".to_owned()))?;
        let mut contact_points = Vec::new();
        for host in hosts.split(',') {
            if host.is_empty() {
                return Err(bad("has an empty host".to_owned()));
            }
            contact_points.push(with_port(host).map_err(&bad)?);
        }
        let mut options = CassandraOptions::new(contact_points, keyspace.trim_end_matches('/'));
        for (name, value) in url::form_pairs(query) {
            let number = || url::parse_number::<u64>(&name, &value).map_err(bad);
            match name.as_ref() {
                "table" => options.table = value.into_owned(),
                "replication" => {
                    options.replication = Replication::parse(&value).map_err(in_url)?
                }
                "consistency" => options.consistency = parse_consistency(&value).map_err(in_url)?,
                "serial_consistency" => {
                    options.serial_consistency =
                        parse_serial_consistency(&value).map_err(in_url)?;
                }
                "create_schema" => {
                    options.create_schema = url::parse_bool(&name, &value).map_err(bad)?;
                }
                "page_size" => {
                    options.page_size = i32::try_from(number()?)
                        .map_err(|_| bad("page_size is too large".to_owned()))?;
                }
                "request_timeout_ms" => {
                    options.request_timeout = Duration::from_millis(number()?);
                }
                "connect_timeout_ms" => {
                    options.connect_timeout = Duration::from_millis(number()?);
                }
                "write_concurrency" => {
                    options.write_concurrency = usize::try_from(number()?)
                        .map_err(|_| bad("write_concurrency is too large".to_owned()))?;
                }
                other => return Err(bad(format!("unknown parameter '{other}'"))),
            }
        }
        options.validate().map_err(in_url)?;
        Ok(options)
    }

    /// Checks the options: non-empty contact points, CQL-safe keyspace and table names,
    /// positive sizes and timeouts.
    pub fn validate(&self) -> Result<(), CassandraError> {
        if self.contact_points.is_empty() {
            return Err(CassandraError::Config("no contact points".to_owned()));
        }
        check_name("keyspace", &self.keyspace)?;
        // The replicas table appends 9 characters; Cassandra allows 48 per name.
        check_name("table", &self.table)?;
        if self.table.len() > 48 - "_replicas".len() {
            return Err(CassandraError::Config(format!(
                "table name '{}' is longer than 39 characters",
                self.table
            )));
        }
        if self.page_size <= 0 {
            return Err(CassandraError::Config(
                "page_size must be positive".to_owned(),
            ));
        }
        if self.write_concurrency == 0 {
            return Err(CassandraError::Config(
                "write_concurrency must be positive".to_owned(),
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(CassandraError::Config(
                "timeouts must be positive".to_owned(),
            ));
        }
        if let Replication::NetworkTopology { datacenters } = &self.replication
            && datacenters.is_empty()
        {
            return Err(CassandraError::Config(
                "NetworkTopologyStrategy needs at least one data center".to_owned(),
            ));
        }
        Ok(())
    }

    /// `cassandra://hosts/keyspace.table`, naming the store in errors and logs.
    pub fn describe(&self) -> String {
        format!(
            "cassandra://{}/{}.{}",
            self.contact_points.join(","),
            self.keyspace,
            self.table
        )
    }
}

fn with_port(host: &str) -> Result<String, String> {
    // `[::1]:9042`, `[::1]`, `host:9042`, `host`.
    if let Some(rest) = host.strip_prefix('[') {
        let (ip, port) = rest
            .split_once(']')
            .ok_or_else(|| format!("host '{host}' has an unclosed '['"))?;
        return match port.strip_prefix(':') {
            Some(p) => p
                .parse::<u16>()
                .map(|p| format!("[{ip}]:{p}"))
                .map_err(|_| format!("host '{host}' has a bad port")),
            None if port.is_empty() => Ok(format!("[{ip}]:{DEFAULT_PORT}")),
            None => Err(format!("host '{host}' is malformed")),
        };
    }
    match host.split_once(':') {
        Some((name, port)) => port
            .parse::<u16>()
            .map(|p| format!("{name}:{p}"))
            .map_err(|_| format!("host '{host}' has a bad port")),
        None => Ok(format!("{host}:{DEFAULT_PORT}")),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), CassandraError> {
    let ok = !name.is_empty()
        && name.len() <= 48
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CassandraError::Config(format!(
            "{what} name '{name}' must be 1 to 48 lower-case letters, digits or '_'"
        )))
    }
}

/// Parses a consistency level name (`local_quorum`, `QUORUM`, `one`, ...).
pub fn parse_consistency(text: &str) -> Result<Consistency, CassandraError> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => {
            return Err(CassandraError::Config(format!(
                "unknown consistency '{other}'"
            )));
        }
    })
}

/// Parses a serial consistency name (`local_serial` or `serial`).
pub fn parse_serial_consistency(text: &str) -> Result<SerialConsistency, CassandraError> {
    match text.to_ascii_lowercase().as_str() {
        "serial" => Ok(SerialConsistency::Serial),
        "local_serial" => Ok(SerialConsistency::LocalSerial),
        other => Err(CassandraError::Config(format!(
            "unknown serial consistency '{other}' (serial or local_serial)"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_and_ipv6() {
        let o = CassandraOptions::from_url("cassandra://[::1]:9142,127.0.0.1/dd").unwrap();
        assert_eq!(o.contact_points, vec!["[::1]:9142", "127.0.0.1:9042"]);
        assert_eq!(o.table, "dd_state");
        assert_eq!(o.serial_consistency, SerialConsistency::LocalSerial);
        assert_eq!(
            o.describe(),
            "cassandra://[::1]:9142,127.0.0.1:9042/dd.dd_state"
        );
    }

    /// Each bad URL is refused with an error naming the URL and what is wrong with it.
    #[test]
    fn bad_urls_name_the_problem() {
        for (url, needle) in [
            ("http://x/dd", "cassandra://"),
            ("cassandra:x/dd", "cassandra://"),
            ("cassandra://x", "keyspace"),
            ("cassandra://x/dd#frag", "no fragment"),
            ("cassandra://,x/dd", "empty host"),
            ("cassandra://[::1/dd", "unclosed '['"),
            ("cassandra://x/Bad-Name", "keyspace name"),
            ("cassandra://x:notaport/dd", "bad port"),
            ("cassandra://x/dd?consistency=most", "consistency"),
            (
                "cassandra://x/dd?serial_consistency=most",
                "serial consistency",
            ),
            ("cassandra://x/dd?table=Dd", "table name 'Dd'"),
            ("cassandra://x/dd?replication=simple:0", "replication"),
            ("cassandra://x/dd?page_size=-1", "parameter 'page_size'"),
            (
                "cassandra://x/dd?create_schema=maybe",
                "parameter 'create_schema'",
            ),
            (
                "cassandra://x/dd?request_timeout_ms=soon",
                "parameter 'request_timeout_ms'",
            ),
            ("cassandra://x/dd?colour=blue", "unknown parameter 'colour'"),
        ] {
            let err = CassandraOptions::from_url(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains(url), "{url}: the error names no URL: {err}");
        }
        let o = CassandraOptions::from_url("CASSANDRA://x/dd?table=t%5Fx&create_schema=false");
        let o = o.unwrap();
        assert_eq!((o.table.as_str(), o.create_schema), ("t_x", false));
    }

    #[test]
    fn replication_cql() {
        assert_eq!(
            Replication::default().to_cql(),
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        );
        let r = Replication::parse("network:dc1=3,dc2=2").unwrap();
        assert_eq!(
            r.to_cql(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 2}"
        );
    }
}
