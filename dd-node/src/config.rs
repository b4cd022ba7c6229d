//! Configuration of `dd-node serve`: command-line flags, environment variables (`DD_NODE_*`)
//! and a TOML file (`--config`). A flag wins over its environment variable, which wins over the
//! file, which wins over the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use dd_core::ReplicaId;
use dd_core::replicator::Settings;
use dd_core::transport::tcp::Secret;
use dd_durable::WriteMode;
use serde::Deserialize;

/// The default HTTP listen address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
/// The default cluster (TCP) listen address.
pub const DEFAULT_CLUSTER_ADDR: &str = "127.0.0.1:7000";
/// The default cluster name (peers must use the same one).
pub const DEFAULT_CLUSTER_NAME: &str = "durable-dd";
/// The write-behind interval when `write-behind` is given without one.
pub const DEFAULT_WRITE_BEHIND: Duration = Duration::from_millis(200);

/// The flags of `dd-node serve`; each can also be given as an environment variable.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (flags and environment variables override its settings).
    #[arg(long, env = "DD_NODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This replica's stable name (keys its durable data; unique in the cluster).
    #[arg(long, env = "DD_NODE_REPLICA", value_name = "NAME")]
    pub replica: Option<String>,
    /// HTTP API listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "DD_NODE_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<String>,
    /// Cluster (TCP gossip) listen address [default: 127.0.0.1:7000].
    #[arg(long, env = "DD_NODE_CLUSTER_ADDR", value_name = "HOST:PORT")]
    pub cluster_addr: Option<String>,
    /// Cluster name; only peers with the same name are accepted [default: durable-dd].
    #[arg(long, env = "DD_NODE_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// A file holding the cluster secret: peers must prove they know it (HMAC challenge/response
    /// at the TCP handshake). Every replica of the cluster needs the same setting. Without it,
    /// peers are not authenticated.
    #[arg(long, env = "DD_NODE_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,
    /// The other replicas, as NAME=HOST:PORT of their cluster address (repeat the flag or
    /// separate with commas).
    #[arg(
        long = "peer",
        env = "DD_NODE_PEERS",
        value_name = "NAME=HOST:PORT",
        value_delimiter = ','
    )]
    pub peers: Vec<String>,
    /// Membership by gossip instead of `--peer`: the UDP address this replica's chitchat
    /// membership listens on (and advertises). Needed with `--seed`.
    #[arg(long, env = "DD_NODE_GOSSIP_ADDR", value_name = "HOST:PORT")]
    pub gossip_addr: Option<String>,
    /// A replica's gossip address to join through (repeat the flag or separate with commas);
    /// the members are learnt at run time.
    #[arg(
        long = "seed",
        env = "DD_NODE_SEEDS",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub seeds: Vec<String>,
    /// Durable store URL, e.g. sqlite:///var/lib/dd/a.db, fs:///var/lib/dd, memory:
    /// [default: sqlite://CWD/dd-REPLICA.db].
    #[arg(long, env = "DD_NODE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// When durable writes happen: `sync` (an acknowledged update is stored) or
    /// `write-behind=N` (batched every N milliseconds) [default: sync].
    #[arg(long, env = "DD_NODE_WRITE_MODE", value_name = "MODE")]
    pub write_mode: Option<String>,
    /// Which keys are durable: exact ids or prefixes ending in `*` (comma-separated)
    /// [default: *].
    #[arg(
        long,
        env = "DD_NODE_DURABLE_KEYS",
        value_name = "PATTERNS",
        value_delimiter = ','
    )]
    pub durable_keys: Vec<String>,
}

/// The TOML file of `--config`. Every field is optional.
///
/// ```toml
/// replica = "a"
/// http_addr = "127.0.0.1:8080"
/// cluster_addr = "127.0.0.1:7000"
/// cluster_name = "durable-dd"
/// store = "sqlite:///var/lib/dd/a.db"
/// write_mode = "write-behind=200"
/// durable_keys = ["*"]
///
/// [peers]
/// b = "127.0.0.1:7001"
///
/// [replicator]           # dd_core::replicator::Settings::from_toml_str
/// gossip_interval_ms = 500
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// See [`ServeArgs::replica`].
    pub replica: Option<String>,
    /// See [`ServeArgs::http_addr`].
    pub http_addr: Option<String>,
    /// See [`ServeArgs::cluster_addr`].
    pub cluster_addr: Option<String>,
    /// See [`ServeArgs::cluster_name`].
    pub cluster_name: Option<String>,
    /// See [`ServeArgs::cluster_secret_file`].
    pub cluster_secret_file: Option<PathBuf>,
    /// Replica name → cluster address.
    pub peers: Option<BTreeMap<String, String>>,
    /// See [`ServeArgs::gossip_addr`].
    pub gossip_addr: Option<String>,
    /// See [`ServeArgs::seeds`].
    pub seeds: Option<Vec<String>>,
    /// See [`ServeArgs::store`].
    pub store: Option<String>,
    /// See [`ServeArgs::write_mode`].
    pub write_mode: Option<String>,
    /// See [`ServeArgs::durable_keys`].
    pub durable_keys: Option<Vec<String>>,
    /// Replicator tuning, the keys of [`Settings::from_toml_str`].
    pub replicator: Option<toml::Table>,
}

/// A configuration error, naming the setting and where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A required setting is missing.
    #[error("no replica name: give --replica, DD_NODE_REPLICA or `replica` in the config file")]
    MissingReplica,
    /// A setting has a bad value.
    #[error("bad {setting} '{value}': {reason}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The replicator settings are invalid.
    #[error("[replicator] settings: {0}")]
    Replicator(String),
}

/// The resolved configuration of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This replica's name.
    pub replica: ReplicaId,
    /// HTTP listen address (`host:port`).
    pub http_addr: String,
    /// Cluster listen address (`host:port`).
    pub cluster_addr: String,
    /// Cluster name.
    pub cluster_name: String,
    /// The cluster secret peers must prove they know (`None`: peers are not authenticated).
    pub cluster_secret: Option<Secret>,
    /// Peer name → cluster address (`host:port`).
    pub peers: BTreeMap<ReplicaId, String>,
    /// Membership by chitchat gossip (`--gossip-addr`, `--seed`) instead of `peers`.
    pub gossip: Option<GossipMembership>,
    /// Durable store URL.
    pub store: String,
    /// Durable write mode.
    pub write_mode: WriteMode,
    /// Replicator settings (durable keys included; the store is added at start).
    pub settings: Settings,
}

/// Membership learnt at run time through chitchat gossip (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipMembership {
    /// This replica's gossip listen (and advertised) address, `host:port`.
    pub listen: String,
    /// Gossip addresses of replicas to join through, `host:port`.
    pub seeds: Vec<String>,
}

/// Parses `sync` or `write-behind[=<ms>]` (the number may end in `ms`).
///
/// ```
/// use std::time::Duration;
/// use dd_durable::WriteMode;
/// use dd_node::config::parse_write_mode;
/// assert_eq!(parse_write_mode("sync").unwrap(), WriteMode::Sync);
/// assert_eq!(
///     parse_write_mode("write-behind=50").unwrap(),
///     WriteMode::WriteBehind { interval: Duration::from_millis(50) }
/// );
/// assert!(parse_write_mode("async").is_err());
/// ```
pub fn parse_write_mode(s: &str) -> Result<WriteMode, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        setting: "write mode",
        value: s.to_owned(),
        reason: reason.to_owned(),
    };
    match s.trim() {
        "sync" => Ok(WriteMode::Sync),
        "write-behind" => Ok(WriteMode::WriteBehind {
            interval: DEFAULT_WRITE_BEHIND,
        }),
        other => {
            let ms = other
                .strip_prefix("write-behind=")
                .ok_or_else(|| invalid("expected sync or write-behind=<ms>"))?;
            let ms = ms.strip_suffix("ms").unwrap_or(ms);
            match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Ok(WriteMode::WriteBehind {
                    interval: Duration::from_millis(ms),
                }),
                _ => Err(invalid(
                    "the interval must be a positive number of milliseconds",
                )),
            }
        }
    }
}

/// A write mode as `sync` or `write-behind=<ms>`.
pub fn write_mode_name(mode: WriteMode) -> String {
    match mode {
        WriteMode::Sync => "sync".to_owned(),
        WriteMode::WriteBehind { interval } => format!("write-behind={}", interval.as_millis()),
    }
}

/// Parses `NAME=HOST:PORT`.
pub fn parse_peer(s: &str) -> Result<(ReplicaId, String), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        setting: "peer",
        value: s.to_owned(),
        reason: reason.to_owned(),
    };
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| invalid("expected NAME=HOST:PORT"))?;
    let (name, addr) = (name.trim(), addr.trim());
    if name.is_empty() {
        return Err(invalid("the replica name is empty"));
    }
    check_host_port("peer", addr)?;
    Ok((ReplicaId::new(name), addr.to_owned()))
}

fn check_host_port(setting: &'static str, addr: &str) -> Result<(), ConfigError> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting,
            value: addr.to_owned(),
            reason: "expected HOST:PORT".to_owned(),
        })
    }
}

/// Reads a config file.
pub fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The default store URL of `replica`: a SQLite file `dd-<replica>.db` in the working directory.
pub fn default_store_url(replica: &ReplicaId) -> String {
    let file = format!("dd-{replica}.db");
    let path = std::env::current_dir()
        .map(|d| d.join(&file))
        .unwrap_or_else(|_| PathBuf::from(&file));
    crate::store_url::path_url("sqlite", &path)
}

impl ServeArgs {
    /// Resolves flags and environment (already merged by clap) over the config file and the
    /// defaults.
    pub fn resolve(&self) -> Result<NodeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };
        resolve(self, file)
    }
}

/// Resolves `args` over `file` and the defaults.
pub fn resolve(args: &ServeArgs, file: ConfigFile) -> Result<NodeConfig, ConfigError> {
    let replica = args
        .replica
        .clone()
        .or(file.replica)
        .filter(|r| !r.trim().is_empty())
        .map(ReplicaId::new)
        .ok_or(ConfigError::MissingReplica)?;
    let http_addr = args
        .http_addr
        .clone()
        .or(file.http_addr)
        .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_owned());
    check_host_port("HTTP address", &http_addr)?;
    let cluster_addr = args
        .cluster_addr
        .clone()
        .or(file.cluster_addr)
        .unwrap_or_else(|| DEFAULT_CLUSTER_ADDR.to_owned());
    check_host_port("cluster address", &cluster_addr)?;
    let cluster_name = args
        .cluster_name
        .clone()
        .or(file.cluster_name)
        .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned());
    let cluster_secret = match args
        .cluster_secret_file
        .clone()
        .or(file.cluster_secret_file)
    {
        Some(path) => Some(Secret::from_file(&path).map_err(|e| ConfigError::Invalid {
            setting: "cluster secret file",
            value: path.display().to_string(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let peers: BTreeMap<ReplicaId, String> = if args.peers.is_empty() {
        let mut peers = BTreeMap::new();
        for (name, addr) in file.peers.unwrap_or_default() {
            let (name, addr) = parse_peer(&format!("{name}={addr}"))?;
            peers.insert(name, addr);
        }
        peers
    } else {
        args.peers
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| parse_peer(p))
            .collect::<Result<_, _>>()?
    };
    if peers.contains_key(&replica) {
        return Err(ConfigError::Invalid {
            setting: "peer",
            value: replica.to_string(),
            reason: "a replica cannot be its own peer".to_owned(),
        });
    }
    let seeds: Vec<String> = if args.seeds.is_empty() {
        file.seeds.unwrap_or_default()
    } else {
        args.seeds.clone()
    };
    let seeds: Vec<String> = seeds
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for seed in &seeds {
        check_host_port("seed", seed)?;
    }
    let gossip = match args.gossip_addr.clone().or(file.gossip_addr) {
        Some(listen) => {
            check_host_port("gossip address", &listen)?;
            if !peers.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "peer",
                    value: peers
                        .keys()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    reason: "--peer (a fixed member list) and --gossip-addr (members learnt by \
                             gossip) exclude each other"
                        .to_owned(),
                });
            }
            Some(GossipMembership { listen, seeds })
        }
        None if !seeds.is_empty() => {
            return Err(ConfigError::Invalid {
                setting: "seed",
                value: seeds.join(","),
                reason: "--seed needs --gossip-addr (this replica's own gossip address)".to_owned(),
            });
        }
        None => None,
    };
    let store = args
        .store
        .clone()
        .or(file.store)
        .unwrap_or_else(|| default_store_url(&replica));
    let write_mode = match args.write_mode.clone().or(file.write_mode) {
        Some(m) => parse_write_mode(&m)?,
        None => WriteMode::Sync,
    };
    let mut settings = match file.replicator {
        Some(table) => {
            let text =
                toml::to_string(&table).map_err(|e| ConfigError::Replicator(e.to_string()))?;
            let mut settings = Settings::from_toml_str(&text)
                .map_err(|e| ConfigError::Replicator(e.to_string()))?;
            // A node's member list (chitchat's, or the operator's `remove`) may disagree with
            // another's while replicas run: it prunes only with a quorum unless told otherwise.
            if !table.contains_key("pruning_quorum") {
                settings.pruning_quorum = true;
            }
            settings
        }
        None => Settings::builder()
            .pruning_quorum(true)
            .build()
            .map_err(|e| ConfigError::Replicator(e.to_string()))?,
    };
    if !args.durable_keys.is_empty() {
        settings.durable_keys = args.durable_keys.clone();
    } else if let Some(keys) = file.durable_keys {
        settings.durable_keys = keys;
    }
    Ok(NodeConfig {
        replica,
        http_addr,
        cluster_addr,
        cluster_name,
        cluster_secret,
        peers,
        gossip,
        store,
        write_mode,
        settings,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn args(replica: Option<&str>) -> ServeArgs {
        ServeArgs {
            replica: replica.map(String::from),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_in() {
        let file: ConfigFile = toml::from_str(
            r#"
            replica = "from-file"
            http_addr = "127.0.0.1:9000"
            write_mode = "write-behind=100"
            durable_keys = ["a*"]
            [peers]
            b = "127.0.0.1:7001"
            [replicator]
            gossip_interval_ms = 250
            "#,
        )
        .unwrap();
        let mut a = args(Some("from-flag"));
        a.write_mode = Some("sync".into());
        let c = resolve(&a, file).unwrap();
        assert_eq!(c.replica, ReplicaId::new("from-flag"));
        assert_eq!(c.http_addr, "127.0.0.1:9000");
        assert_eq!(c.cluster_addr, DEFAULT_CLUSTER_ADDR);
        assert_eq!(c.write_mode, WriteMode::Sync);
        assert_eq!(c.settings.durable_keys, vec!["a*".to_owned()]);
        assert_eq!(c.settings.gossip_interval, Duration::from_millis(250));
        assert!(
            c.settings.pruning_quorum,
            "a node prunes with a quorum by default"
        );
        assert_eq!(c.peers[&ReplicaId::new("b")], "127.0.0.1:7001");
        assert!(c.store.starts_with("sqlite://") && c.store.ends_with("dd-from-flag.db"));
    }

    #[test]
    fn pruning_quorum_is_on_unless_the_replicator_table_turns_it_off() {
        let on = resolve(&args(Some("a")), ConfigFile::default()).unwrap();
        assert!(on.settings.pruning_quorum);
        let file: ConfigFile = toml::from_str("[replicator]\npruning_quorum = false").unwrap();
        let off = resolve(&args(Some("a")), file).unwrap();
        assert!(!off.settings.pruning_quorum);
    }

    #[test]
    fn cluster_secret_is_read_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let mut a = args(Some("a"));
        a.cluster_secret_file = Some(path.clone());
        let config = resolve(&a, ConfigFile::default()).unwrap();
        assert_eq!(config.cluster_secret, Some(Secret::new("s3cr3t").unwrap()));
        assert!(
            resolve(&args(Some("a")), ConfigFile::default())
                .unwrap()
                .cluster_secret
                .is_none()
        );
        a.cluster_secret_file = Some(dir.path().join("missing"));
        let e = resolve(&a, ConfigFile::default()).unwrap_err().to_string();
        assert!(
            e.contains("cluster secret file") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(matches!(
            resolve(&args(None), ConfigFile::default()),
            Err(ConfigError::MissingReplica)
        ));
        let mut a = args(Some("a"));
        a.peers = vec!["b:7001".into()];
        let e = resolve(&a, ConfigFile::default()).unwrap_err().to_string();
        assert!(e.contains("bad peer 'b:7001'"), "{e}");
        a.peers = vec!["a=127.0.0.1:1".into()];
        assert!(resolve(&a, ConfigFile::default()).is_err());
        let mut a = args(Some("a"));
        a.write_mode = Some("write-behind=0".into());
        assert!(resolve(&a, ConfigFile::default()).is_err());
        let file: Result<ConfigFile, _> = toml::from_str("replica = \"a\"\nstorage = \"x\"");
        assert!(
            file.unwrap_err()
                .to_string()
                .contains("unknown field `storage`")
        );
        let file: ConfigFile = toml::from_str("[replicator]\ngossip_interval_ms = 0").unwrap();
        assert!(matches!(
            resolve(&args(Some("a")), file),
            Err(ConfigError::Replicator(_))
        ));
    }

    #[test]
    fn gossip_membership_takes_seeds_and_excludes_peers() {
        let mut a = args(Some("a"));
        a.gossip_addr = Some("127.0.0.1:7100".into());
        a.seeds = vec!["127.0.0.1:7101".into(), " ".into()];
        let c = resolve(&a, ConfigFile::default()).unwrap();
        assert_eq!(
            c.gossip,
            Some(GossipMembership {
                listen: "127.0.0.1:7100".into(),
                seeds: vec!["127.0.0.1:7101".into()],
            })
        );
        let mut seed_only = args(Some("a"));
        seed_only.seeds = vec!["127.0.0.1:7101".into()];
        let e = resolve(&seed_only, ConfigFile::default()).unwrap_err();
        assert!(e.to_string().contains("--seed needs --gossip-addr"), "{e}");
        let mut bad_seed = a.clone();
        bad_seed.seeds = vec!["nowhere".into()];
        assert!(resolve(&bad_seed, ConfigFile::default()).is_err());
        let mut both = a.clone();
        both.peers = vec!["b=127.0.0.1:7001".into()];
        let e = resolve(&both, ConfigFile::default()).unwrap_err();
        assert!(e.to_string().contains("exclude each other"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret").unwrap();
        let mut secret = a.clone();
        secret.cluster_secret_file = Some(path);
        // The gossip datagrams are authenticated by the secret too.
        let c = resolve(&secret, ConfigFile::default()).unwrap();
        assert!(c.gossip.is_some() && c.cluster_secret.is_some());
    }
}
