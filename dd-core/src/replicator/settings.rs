//! Replicator settings, with Akka-like defaults, a builder and TOML loading.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::data::TypeRegistry;
use crate::durable::CrdtValueStore;

use super::error::ReplicatorError;

/// Replicator settings. Build with [`Settings::builder`], start from [`Settings::default`], or
/// read from TOML with [`Settings::from_toml_str`] / [`Settings::from_toml_file`].
///
/// ```
/// use std::time::Duration;
/// use dd_core::replicator::Settings;
/// let s = Settings::builder()
///     .gossip_interval(Duration::from_millis(500))
///     .durable_keys(vec!["user-*".into()])
///     .build()
///     .unwrap();
/// assert_eq!(s.gossip_interval, Duration::from_millis(500));
/// let t = Settings::from_toml_str("gossip_interval_ms = 100\nmax_delta_elements = 10").unwrap();
/// assert_eq!(t.max_delta_elements, 10);
/// ```
#[derive(Clone)]
pub struct Settings {
    /// How often a replica sends its digests to one random peer (Akka: 2 s).
    pub gossip_interval: Duration,
    /// How often changed values are published to subscribers (Akka: 500 ms).
    pub notify_interval: Duration,
    /// How often accumulated deltas are sent to all peers (Akka: 200 ms).
    pub delta_propagation_interval: Duration,
    /// Most deltas in one delta message (Akka: 500).
    pub max_delta_elements: usize,
    /// Most keys in one gossip message (digests or states); more keys are chunked.
    pub max_gossip_entries: usize,
    /// Most encoded bytes of states in one gossip message (keep below the transport's frame
    /// limit); a single state larger than this is sent in pieces of this size
    /// ([`Message::EntryChunk`](super::protocol::Message::EntryChunk)) and reassembled.
    pub max_gossip_bytes: usize,
    /// The largest encoded state sent or received in pieces (default 256 MiB). A larger state
    /// is not sent, and a larger incoming one is refused, each with an error naming the key and
    /// this setting; states being reassembled hold at most twice this much memory.
    pub max_value_bytes: usize,
    /// Most messages of full states in flight to one peer, unacknowledged (default 8). States
    /// that do not fit in one message (a join, the repair of many keys) go as a stream of
    /// [`Message::StreamBatch`](super::protocol::Message::StreamBatch)es, each acknowledged by
    /// the receiver; a batch unacknowledged for two gossip intervals (a lost link) is sent again,
    /// and the stream goes on where it stopped. Memory per stream on either side is about this
    /// many messages of `max_gossip_bytes`, plus the names of the keys still to send.
    pub stream_window: usize,
    /// How often the leader checks for removed replicas to prune (Akka: 120 s).
    pub pruning_interval: Duration,
    /// Whether a pruning also needs a quorum of the replicas its owner knows (default `false`;
    /// `dd-node` turns it on, its gossip member lists being the ones that disagree in practice):
    /// besides every member, more than half of the members, the replicas that left the member
    /// list since this replica started and the replicas of removed incarnations not pruned yet
    /// (exactly half with the lowest-named among them; of two replicas, the survivor alone)
    /// must have seen the marker. For deployments that remove replicas while they run (member
    /// lists that disagree): two views each removing the other then never both prune, so no
    /// incarnation is collapsed twice (dd-sim seed 43). The cost: a replica left with fewer
    /// than a quorum (the last survivor of a chain of removals, or half of the cluster without
    /// the lowest-named replica) prunes nothing until replicas join to make a quorum, or the
    /// removed ones are confirmed stopped
    /// ([`StaticCluster::remove_stopped`](crate::cluster::StaticCluster::remove_stopped)).
    /// Off, pruning assumes, as Akka does, that a removed replica is stopped.
    pub pruning_quorum: bool,
    /// Levels below the root of the anti-entropy Merkle tree (1 to 5, default 4: 16^4 = 65,536
    /// leaves). Replicas in sync exchange one root hash per gossip round; replicas that differ
    /// find the differing keys in `depth + 1` round trips. Deeper trees keep fewer keys per leaf
    /// (less to exchange per differing key with many keys) at 16x the memory per level (depth 4:
    /// about 2 MiB, depth 5: about 32 MiB). Every replica of a cluster needs the same value.
    pub anti_entropy_depth: u8,
    /// Capacity of the command channel of the replica task.
    pub command_buffer: usize,
    /// Which keys are durable: exact ids or prefixes ending in `*` (default: `["*"]`, all).
    /// Only used with a [`durable_store`](Self::durable_store).
    pub durable_keys: Vec<String>,
    /// Most keys queued for the durable store's next batch, and most writes waiting for their
    /// batch (default 10,000). While the queue is at a limit the replica takes no new commands
    /// or messages (callers wait: backpressure); nothing is dropped.
    pub durable_queue_max_entries: usize,
    /// Most encoded bytes of the states queued for the durable store's next batch (default
    /// 64 MiB); see [`durable_queue_max_entries`](Self::durable_queue_max_entries).
    pub durable_queue_max_bytes: usize,
    /// The durable store (`None`: data stays in memory).
    pub durable_store: Option<Arc<dyn CrdtValueStore>>,
    /// Decodes values received from peers and stores; typed calls register their types here.
    pub registry: TypeRegistry,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("gossip_interval", &self.gossip_interval)
            .field("notify_interval", &self.notify_interval)
            .field(
                "delta_propagation_interval",
                &self.delta_propagation_interval,
            )
            .field("max_delta_elements", &self.max_delta_elements)
            .field("max_gossip_entries", &self.max_gossip_entries)
            .field("max_gossip_bytes", &self.max_gossip_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("stream_window", &self.stream_window)
            .field("pruning_interval", &self.pruning_interval)
            .field("pruning_quorum", &self.pruning_quorum)
            .field("anti_entropy_depth", &self.anti_entropy_depth)
            .field("command_buffer", &self.command_buffer)
            .field("durable_keys", &self.durable_keys)
            .field("durable_queue_max_entries", &self.durable_queue_max_entries)
            .field("durable_queue_max_bytes", &self.durable_queue_max_bytes)
            .field(
                "durable_store",
                &self.durable_store.as_ref().map(|s| s.describe()),
            )
            .field("registry", &self.registry)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            gossip_interval: Duration::from_secs(2),
            notify_interval: Duration::from_millis(500),
            delta_propagation_interval: Duration::from_millis(200),
            max_delta_elements: 500,
            max_gossip_entries: 200,
            max_gossip_bytes: 512 * 1024,
            max_value_bytes: 256 * 1024 * 1024,
            stream_window: 8,
            pruning_interval: Duration::from_secs(120),
            pruning_quorum: false,
            anti_entropy_depth: 4,
            command_buffer: 1024,
            durable_keys: vec!["*".to_owned()],
            durable_queue_max_entries: 10_000,
            durable_queue_max_bytes: 64 * 1024 * 1024,
            durable_store: None,
            registry: TypeRegistry::with_builtin_types(),
        }
    }
}

/// The TOML form of [`Settings`] (durations in milliseconds; every field optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    gossip_interval_ms: Option<u64>,
    notify_interval_ms: Option<u64>,
    delta_propagation_interval_ms: Option<u64>,
    max_delta_elements: Option<usize>,
    max_gossip_entries: Option<usize>,
    max_gossip_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    stream_window: Option<usize>,
    pruning_interval_ms: Option<u64>,
    pruning_quorum: Option<bool>,
    anti_entropy_depth: Option<u8>,
    command_buffer: Option<usize>,
    durable_keys: Option<Vec<String>>,
    durable_queue_max_entries: Option<usize>,
    durable_queue_max_bytes: Option<usize>,
}

impl Settings {
    /// A builder starting from the defaults.
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder {
            settings: Settings::default(),
        }
    }

    /// Parses TOML (keys: `gossip_interval_ms`, `notify_interval_ms`,
    /// `delta_propagation_interval_ms`, `max_delta_elements`, `max_gossip_entries`,
    /// `max_gossip_bytes`, `max_value_bytes`, `stream_window`, `pruning_interval_ms`,
    /// `pruning_quorum`, `anti_entropy_depth`,
    /// `command_buffer`, `durable_keys`, `durable_queue_max_entries`, `durable_queue_max_bytes`);
    /// missing keys keep their defaults, unknown keys are an error.
    pub fn from_toml_str(text: &str) -> Result<Self, ReplicatorError> {
        let file: SettingsFile = toml::from_str(text)
            .map_err(|e| ReplicatorError::Settings(format!("replicator settings: {e}")))?;
        let mut b = Settings::builder();
        let ms = Duration::from_millis;
        if let Some(v) = file.gossip_interval_ms {
            b = b.gossip_interval(ms(v));
        }
        if let Some(v) = file.notify_interval_ms {
            b = b.notify_interval(ms(v));
        }
        if let Some(v) = file.delta_propagation_interval_ms {
            b = b.delta_propagation_interval(ms(v));
        }
        if let Some(v) = file.max_delta_elements {
            b = b.max_delta_elements(v);
        }
        if let Some(v) = file.max_gossip_entries {
            b = b.max_gossip_entries(v);
        }
        if let Some(v) = file.max_gossip_bytes {
            b = b.max_gossip_bytes(v);
        }
        if let Some(v) = file.max_value_bytes {
            b = b.max_value_bytes(v);
        }
        if let Some(v) = file.stream_window {
            b = b.stream_window(v);
        }
        if let Some(v) = file.pruning_interval_ms {
            b = b.pruning_interval(ms(v));
        }
        if let Some(v) = file.pruning_quorum {
            b = b.pruning_quorum(v);
        }
        if let Some(v) = file.anti_entropy_depth {
            b = b.anti_entropy_depth(v);
        }
        if let Some(v) = file.command_buffer {
            b = b.command_buffer(v);
        }
        if let Some(v) = file.durable_keys {
            b = b.durable_keys(v);
        }
        if let Some(v) = file.durable_queue_max_entries {
            b = b.durable_queue_max_entries(v);
        }
        if let Some(v) = file.durable_queue_max_bytes {
            b = b.durable_queue_max_bytes(v);
        }
        b.build()
    }

    /// Reads and parses a TOML file (see [`from_toml_str`](Self::from_toml_str)).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ReplicatorError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ReplicatorError::Settings(format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ReplicatorError::Settings(m) => {
                ReplicatorError::Settings(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Uses `store` for durable keys (see [`durable_keys`](Self::durable_keys)).
    pub fn durable_store(mut self, store: Arc<dyn CrdtValueStore>) -> Self {
        self.durable_store = Some(store);
        self
    }

    /// Checks that intervals and limits are non-zero and the tree depth is 1 to 5.
    pub fn validate(&self) -> Result<(), ReplicatorError> {
        let checks = [
            ("gossip_interval", self.gossip_interval.is_zero()),
            ("notify_interval", self.notify_interval.is_zero()),
            (
                "delta_propagation_interval",
                self.delta_propagation_interval.is_zero(),
            ),
            ("pruning_interval", self.pruning_interval.is_zero()),
            ("max_delta_elements", self.max_delta_elements == 0),
            ("max_gossip_entries", self.max_gossip_entries == 0),
            ("max_gossip_bytes", self.max_gossip_bytes == 0),
            ("max_value_bytes", self.max_value_bytes == 0),
            ("stream_window", self.stream_window == 0),
            ("command_buffer", self.command_buffer == 0),
            (
                "durable_queue_max_entries",
                self.durable_queue_max_entries == 0,
            ),
            ("durable_queue_max_bytes", self.durable_queue_max_bytes == 0),
        ];
        for (name, bad) in checks {
            if bad {
                return Err(ReplicatorError::Settings(format!("{name} must be > 0")));
            }
        }
        if !(1..=super::merkle::MAX_DEPTH).contains(&self.anti_entropy_depth) {
            return Err(ReplicatorError::Settings(format!(
                "anti_entropy_depth must be 1 to {}, not {}",
                super::merkle::MAX_DEPTH,
                self.anti_entropy_depth
            )));
        }
        Ok(())
    }
}

/// Builds [`Settings`]; see [`Settings::builder`].
#[derive(Debug, Clone)]
pub struct SettingsBuilder {
    settings: Settings,
}

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $ty:ty),+ $(,)?) => {
        $(#[$doc]
        pub fn $name(mut self, value: $ty) -> Self {
            self.settings.$name = value;
            self
        })+
    };
}

impl SettingsBuilder {
    setter!(
        /// See [`Settings::gossip_interval`].
        gossip_interval: Duration,
        /// See [`Settings::notify_interval`].
        notify_interval: Duration,
        /// See [`Settings::delta_propagation_interval`].
        delta_propagation_interval: Duration,
        /// See [`Settings::max_delta_elements`].
        max_delta_elements: usize,
        /// See [`Settings::max_gossip_entries`].
        max_gossip_entries: usize,
        /// See [`Settings::max_gossip_bytes`].
        max_gossip_bytes: usize,
        /// See [`Settings::max_value_bytes`].
        max_value_bytes: usize,
        /// See [`Settings::stream_window`].
        stream_window: usize,
        /// See [`Settings::pruning_interval`].
        pruning_interval: Duration,
        /// See [`Settings::pruning_quorum`].
        pruning_quorum: bool,
        /// See [`Settings::anti_entropy_depth`].
        anti_entropy_depth: u8,
        /// See [`Settings::command_buffer`].
        command_buffer: usize,
        /// See [`Settings::durable_keys`].
        durable_keys: Vec<String>,
        /// See [`Settings::durable_queue_max_entries`].
        durable_queue_max_entries: usize,
        /// See [`Settings::durable_queue_max_bytes`].
        durable_queue_max_bytes: usize,
        /// See [`Settings::registry`].
        registry: TypeRegistry,
    );

    /// See [`Settings::durable_store`].
    pub fn durable_store(mut self, store: Arc<dyn CrdtValueStore>) -> Self {
        self.settings.durable_store = Some(store);
        self
    }

    /// Validates and returns the settings.
    pub fn build(self) -> Result<Settings, ReplicatorError> {
        self.settings.validate()?;
        Ok(self.settings)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn toml_rejects_unknown_and_zero() {
        assert!(Settings::from_toml_str("gossip_intervall_ms = 5").is_err());
        assert!(Settings::from_toml_str("gossip_interval_ms = 0").is_err());
        let depth = Settings::from_toml_str("anti_entropy_depth = 6").unwrap_err();
        assert!(depth.to_string().contains("anti_entropy_depth"), "{depth}");
        let s = Settings::from_toml_str("anti_entropy_depth = 2").unwrap();
        assert_eq!(s.anti_entropy_depth, 2);
        assert!(!Settings::default().pruning_quorum);
        let s = Settings::from_toml_str("pruning_quorum = true").unwrap();
        assert!(s.pruning_quorum);
        let s = Settings::from_toml_str("durable_keys = [\"a*\"]").unwrap();
        assert_eq!(s.durable_keys, vec!["a*".to_owned()]);
        assert_eq!(s.gossip_interval, Duration::from_secs(2));
    }

    #[test]
    fn toml_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replicator.toml");
        std::fs::write(&path, "notify_interval_ms = 250\nmax_gossip_bytes = 4096\n").unwrap();
        let s = Settings::from_toml_file(&path).unwrap();
        assert_eq!(s.notify_interval, Duration::from_millis(250));
        assert_eq!(s.max_gossip_bytes, 4096);
        std::fs::write(&path, "max_gossip_bytes = \"big\"\n").unwrap();
        let err = Settings::from_toml_file(&path).unwrap_err().to_string();
        assert!(err.contains("replicator.toml"), "{err}");
        let missing = Settings::from_toml_file(dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }
}
