//! Dynamic membership over [`chitchat`] (a maintained scuttlebutt gossip protocol with a
//! phi-accrual failure detector, used by Quickwit).
//!
//! Each replica runs a chitchat node (UDP) named after its stable [`ReplicaId`] and advertises
//! the address of its replicator transport under the key `dd.address`. The members are every
//! node chitchat knows, alive or suspected dead: a node that stops answering stays a member
//! (like an unreachable node in Akka) until chitchat forgets it after
//! [`ChitchatClusterConfig::dead_node_grace_period`]; only then is it *removed* and its CRDT
//! entries pruned. Keep that period well above any partition you expect to heal: a replica that
//! comes back after it was removed must restart (with a new incarnation) to rejoin safely (once
//! it learns that its incarnation was pruned, it refuses writes with
//! [`ReplicatorError::IncarnationPruned`](crate::replicator::ReplicatorError::IncarnationPruned)).
//!
//! A replica that stops gracefully [leaves](ChitchatCluster::leave): it advertises `dd.leaving`
//! and the others drop it from their members at once (it is removed and pruned without waiting
//! for the grace period). A replica that is gone for good without leaving (killed, its machine
//! lost) is dropped with [`ChitchatCluster::remove`]: the node asked advertises
//! `dd.removed.<name>` with the incarnation removed, and every node that hears it drops that
//! incarnation (a later incarnation of the same name, i.e. a restart, is a member again).
//!
//! With [`ChitchatClusterConfig::secret`] set, every gossip datagram is authenticated with the
//! cluster secret and one from a node without it is dropped (as the TCP transport refuses a peer
//! without it at the handshake).
//!
//! A node starts with only itself as a member and learns the others by gossip. Until it has
//! heard from another node (when it was given seeds other than itself,
//! [`Cluster::view_settled`]) and its view holds every replica its durable data has entries of,
//! the replicator does not complete any pruning it leads, so a node that restarts after a long
//! absence does not prune by itself what the cluster pruned meanwhile.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, Heartbeat,
    NodeState, ProtocolVersion,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::gossip_auth::AuthenticatedUdpTransport;
use super::{Cluster, Members};
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::secret::Secret;

/// The chitchat key under which a replica advertises its replicator transport address.
pub const ADDRESS_KEY: &str = "dd.address";

/// The chitchat key under which a replica advertises its incarnation.
pub const INCARNATION_KEY: &str = "dd.incarnation";

/// The chitchat key a replica sets when it leaves gracefully.
pub const LEAVING_KEY: &str = "dd.leaving";

/// The prefix of the chitchat keys `dd.removed.<name>` = `<incarnation>` that remove a replica
/// that is gone for good.
pub const REMOVED_KEY_PREFIX: &str = "dd.removed.";

/// One node as the gossip membership sees it (see [`ChitchatCluster::gossip_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipMember {
    /// The replica's stable name.
    pub replica: ReplicaId,
    /// The incarnation it advertises (`name#hex`), if heard yet.
    pub incarnation: Option<String>,
    /// Its membership gossip (UDP) address.
    pub gossip_address: SocketAddr,
    /// Its replicator transport address, if advertised.
    pub address: Option<SocketAddr>,
    /// Whether the failure detector considers it alive (always `true` for this node).
    pub live: bool,
    /// Whether it announced a graceful leave.
    pub leaving: bool,
    /// Whether an incarnation it advertises was removed ([`ChitchatCluster::remove`]).
    pub removed: bool,
    /// How long ago its heartbeat last advanced, as this node saw it (`None` for this node).
    pub last_heard: Option<Duration>,
}

/// Why [`ChitchatCluster::remove`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveRefused {
    /// The replica asked is this node: stop it (it leaves) instead.
    #[error("'{0}' is this replica: stop it (SIGTERM) to make it leave")]
    IsSelf(ReplicaId),
    /// The membership does not know the replica (or has not heard its incarnation).
    #[error("'{0}' is not a known member")]
    Unknown(ReplicaId),
    /// The failure detector still hears from it; removing it needs `force`.
    #[error("'{0}' is alive (the failure detector hears from it): remove it only with force")]
    Alive(ReplicaId),
}

/// Errors of cluster membership.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The gossip membership could not start or stop.
    #[error("chitchat membership of '{replica}' on {listen}: {reason}")]
    Gossip {
        /// The local replica.
        replica: String,
        /// The UDP listen address.
        listen: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// Settings of a [`ChitchatCluster`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChitchatClusterConfig {
    /// Only nodes with the same cluster name gossip with each other.
    pub cluster_name: String,
    /// The UDP address to listen on for membership gossip.
    pub gossip_listen: SocketAddr,
    /// The UDP address peers use to reach this node (usually `gossip_listen`).
    pub gossip_advertise: SocketAddr,
    /// Addresses (`host:port`) of nodes to contact first.
    pub seeds: Vec<String>,
    /// The address of this replica's replicator transport (TCP), advertised to peers.
    pub replicator_address: Option<SocketAddr>,
    /// How often membership gossip runs (default 500 ms).
    pub gossip_interval: Duration,
    /// How often the member set is refreshed from chitchat (default 250 ms).
    pub refresh_interval: Duration,
    /// How long a dead node stays a member before it is removed and pruned (default 1 hour).
    pub dead_node_grace_period: Duration,
    /// The cluster secret: when set, every gossip datagram is authenticated with it
    /// ([`AuthenticatedUdpTransport`]) and one from a node without it is dropped.
    pub secret: Option<Secret>,
    /// How long [`ChitchatCluster::leave`] keeps gossiping its leave before it returns
    /// (default 3 gossip intervals, 1.5 s).
    pub leave_announce: Duration,
}

impl ChitchatClusterConfig {
    /// Defaults for a node listening (and advertised) on `gossip_listen`.
    pub fn new(cluster_name: impl Into<String>, gossip_listen: SocketAddr) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            gossip_listen,
            gossip_advertise: gossip_listen,
            seeds: Vec::new(),
            replicator_address: None,
            gossip_interval: Duration::from_millis(500),
            refresh_interval: Duration::from_millis(250),
            dead_node_grace_period: Duration::from_secs(3600),
            secret: None,
            leave_announce: Duration::from_millis(1500),
        }
    }
}

/// Cluster membership by chitchat gossip. Cheap to clone; clones share the node.
///
/// ```no_run
/// use dd_core::cluster::{ChitchatCluster, ChitchatClusterConfig};
/// use dd_core::{ReplicaId, UniqueReplicaId};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let me = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// let mut config = ChitchatClusterConfig::new("demo", "127.0.0.1:7100".parse()?);
/// config.seeds = vec!["127.0.0.1:7101".into()];
/// config.replicator_address = Some("127.0.0.1:7000".parse()?);
/// let cluster = ChitchatCluster::start(me, config).await?;
/// # cluster.shutdown().await?; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChitchatCluster {
    self_id: UniqueReplicaId,
    listen: SocketAddr,
    members: Arc<watch::Sender<Members>>,
    /// Whether the view has heard from another node (or there is none to contact).
    settled: Arc<watch::Sender<bool>>,
    handle: Arc<Mutex<Option<ChitchatHandle>>>,
    chitchat: Arc<tokio::sync::Mutex<Chitchat>>,
    /// When each node's heartbeat last advanced, by chitchat id.
    heard: Arc<Mutex<HashMap<ChitchatId, (Heartbeat, Instant)>>>,
    leave_announce: Duration,
    cancel: CancellationToken,
}

impl std::fmt::Debug for ChitchatCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChitchatCluster")
            .field("self_id", &self.self_id)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl ChitchatCluster {
    /// Starts the chitchat node of `self_id` and the task that follows its member list.
    pub async fn start(
        self_id: UniqueReplicaId,
        config: ChitchatClusterConfig,
    ) -> Result<Self, ClusterError> {
        let error = |reason: String| ClusterError::Gossip {
            replica: self_id.to_string(),
            listen: config.gossip_listen,
            reason,
        };
        // chitchat needs generations that grow across restarts: the start time does.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let chitchat_id = ChitchatId::new(
            self_id.replica().as_str(),
            generation,
            config.gossip_advertise,
        );
        let chitchat_config = ChitchatConfig {
            chitchat_id,
            cluster_id: config.cluster_name.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.gossip_listen,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                dead_node_grace_period: config.dead_node_grace_period,
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let mut initial = vec![(
            INCARNATION_KEY.to_owned(),
            self_id.incarnation().to_string(),
        )];
        if let Some(a) = config.replicator_address {
            initial.push((ADDRESS_KEY.to_owned(), a.to_string()));
        }
        let handle = match &config.secret {
            Some(secret) => {
                let transport =
                    AuthenticatedUdpTransport::new(secret.clone(), config.cluster_name.clone());
                chitchat::spawn_chitchat(chitchat_config, initial, &transport).await
            }
            None => {
                tracing::info!(replica = %self_id, listen = %config.gossip_listen,
                    "membership gossip without a cluster secret: peers are not authenticated");
                chitchat::spawn_chitchat(chitchat_config, initial, &UdpTransport).await
            }
        }
        .map_err(|e| error(format!("{e:#}")))?;
        let mut members = Members::new();
        members.insert(self_id.replica().clone(), config.replicator_address);
        let (tx, _) = watch::channel(members);
        let tx = Arc::new(tx);
        // With no other node to contact, the view of this node alone is the whole cluster.
        let own = [config.gossip_listen, config.gossip_advertise];
        let alone = config
            .seeds
            .iter()
            .all(|s| s.parse::<SocketAddr>().is_ok_and(|a| own.contains(&a)));
        let (settled, _) = watch::channel(alone);
        let settled = Arc::new(settled);
        let cancel = CancellationToken::new();
        let chitchat = handle.chitchat();
        let heard = Arc::new(Mutex::new(HashMap::new()));
        {
            let chitchat = chitchat.clone();
            let heard = heard.clone();
            let tx = tx.clone();
            let settled = settled.clone();
            let cancel = cancel.clone();
            let me = self_id.clone();
            let period = config.refresh_interval;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(period) => {}
                    }
                    let snapshot: Members = {
                        let c = chitchat.lock().await;
                        note_heartbeats(&heard, c.node_states());
                        let removed = removed_incarnations(c.node_states());
                        let own = c.self_chitchat_id().clone();
                        c.node_states()
                            .iter()
                            .filter(|(id, state)| {
                                **id == own || !(is_leaving(state) || is_removed(state, &removed))
                            })
                            .map(|(id, state)| {
                                let address = state.get(ADDRESS_KEY).and_then(|a| a.parse().ok());
                                (ReplicaId::new(&*id.node_id), address)
                            })
                            .collect()
                    };
                    if snapshot.len() > 1 {
                        settled.send_if_modified(|s| !std::mem::replace(s, true));
                    }
                    tx.send_if_modified(|current| {
                        if *current == snapshot {
                            return false;
                        }
                        tracing::info!(replica = %me, members = ?snapshot.keys().collect::<Vec<_>>(),
                            "membership changed");
                        *current = snapshot;
                        true
                    });
                }
            });
        }
        Ok(Self {
            listen: config.gossip_listen,
            self_id,
            members: tx,
            settled,
            handle: Arc::new(Mutex::new(Some(handle))),
            chitchat,
            heard,
            leave_announce: config.leave_announce,
            cancel,
        })
    }

    /// Every node chitchat knows (alive, dead, leaving or removed), by name then generation.
    pub async fn gossip_members(&self) -> Vec<GossipMember> {
        let c = self.chitchat.lock().await;
        let removed = removed_incarnations(c.node_states());
        let live: BTreeSet<&ChitchatId> = c.live_nodes().collect();
        let own = c.self_chitchat_id();
        let heard = match self.heard.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let now = Instant::now();
        c.node_states()
            .iter()
            .map(|(id, state)| GossipMember {
                replica: ReplicaId::new(&*id.node_id),
                incarnation: shown_incarnation(id, state),
                gossip_address: id.gossip_advertise_addr,
                address: state.get(ADDRESS_KEY).and_then(|a| a.parse().ok()),
                live: id == own || live.contains(id),
                leaving: is_leaving(state),
                removed: is_removed(state, &removed),
                last_heard: if id == own {
                    None
                } else {
                    heard
                        .get(id)
                        .map(|(_, at)| now.saturating_duration_since(*at))
                },
            })
            .collect()
    }

    /// Removes `replica`, gone for good: advertises `dd.removed.<name>` with the incarnation
    /// it advertises, so that every node drops it from its members (and prunes its entries).
    /// Refused for this node, for a replica not known (or whose incarnation was not heard), and
    /// unless `force`, for one the failure detector considers alive (a live replica that is
    /// removed refuses writes once it learns it was pruned, and must restart to rejoin).
    /// Returns the incarnation removed (`name#hex`).
    pub async fn remove(&self, replica: &ReplicaId, force: bool) -> Result<String, RemoveRefused> {
        if replica == self.self_id.replica() {
            return Err(RemoveRefused::IsSelf(replica.clone()));
        }
        let mut c = self.chitchat.lock().await;
        let live: BTreeSet<ChitchatId> = c.live_nodes().cloned().collect();
        // The latest generation of that name.
        let target = c
            .node_states()
            .iter()
            .filter(|(id, _)| *id.node_id == *replica.as_str())
            .max_by_key(|(id, _)| id.generation_id)
            .and_then(|(id, state)| {
                let shown = shown_incarnation(id, state)?;
                state
                    .get(INCARNATION_KEY)
                    .map(|inc| (id.clone(), inc.to_owned(), shown))
            });
        let Some((id, incarnation, shown)) = target else {
            return Err(RemoveRefused::Unknown(replica.clone()));
        };
        if live.contains(&id) && !force {
            return Err(RemoveRefused::Alive(replica.clone()));
        }
        tracing::info!(replica = %self.self_id, removed = %shown, force,
            "removing a member");
        c.self_node_state()
            .set(format!("{REMOVED_KEY_PREFIX}{replica}"), &incarnation);
        Ok(shown)
    }

    /// Leaves gracefully: advertises `dd.leaving` and keeps gossiping it for
    /// [`ChitchatClusterConfig::leave_announce`], so that the others drop this node from their
    /// members at once instead of after the failure detector and the grace period; then stops
    /// the membership gossip ([`shutdown`](Self::shutdown)).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        {
            let mut c = self.chitchat.lock().await;
            c.self_node_state().set(LEAVING_KEY, "true");
        }
        tracing::info!(replica = %self.self_id, "leaving the cluster");
        tokio::time::sleep(self.leave_announce).await;
        self.shutdown().await
    }

    /// Leaves: stops membership gossip (peers will see this node as dead).
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        self.cancel.cancel();
        let handle = match self.handle.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = handle {
            h.shutdown().await.map_err(|e| ClusterError::Gossip {
                replica: self.self_id.to_string(),
                listen: self.listen,
                reason: format!("shutdown: {e:#}"),
            })?;
        }
        Ok(())
    }
}

/// Records when each node's heartbeat last advanced.
fn note_heartbeats(
    heard: &Mutex<HashMap<ChitchatId, (Heartbeat, Instant)>>,
    states: &std::collections::BTreeMap<ChitchatId, NodeState>,
) {
    let mut heard = match heard.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let now = Instant::now();
    heard.retain(|id, _| states.contains_key(id));
    for (id, state) in states {
        let beat = state.heartbeat();
        match heard.get(id) {
            Some((seen, _)) if *seen == beat => {}
            _ => {
                heard.insert(id.clone(), (beat, now));
            }
        }
    }
}

/// Every `(name, incarnation)` some node advertises as removed.
fn removed_incarnations(
    states: &std::collections::BTreeMap<ChitchatId, NodeState>,
) -> BTreeSet<(String, String)> {
    states
        .values()
        .flat_map(|state| {
            state.iter_prefix(REMOVED_KEY_PREFIX).map(|(key, value)| {
                (
                    key[REMOVED_KEY_PREFIX.len()..].to_owned(),
                    value.value.clone(),
                )
            })
        })
        .collect()
}

/// The incarnation a node advertises, shown as a [`UniqueReplicaId`] (`name#hex`).
fn shown_incarnation(id: &ChitchatId, state: &NodeState) -> Option<String> {
    let raw = state.get(INCARNATION_KEY)?;
    Some(match raw.parse::<u64>() {
        Ok(n) => UniqueReplicaId::new(ReplicaId::new(&*id.node_id), n).to_string(),
        Err(_) => format!("{}#{raw}", id.node_id),
    })
}

fn is_leaving(state: &NodeState) -> bool {
    state.get(LEAVING_KEY).is_some()
}

fn is_removed(state: &NodeState, removed: &BTreeSet<(String, String)>) -> bool {
    state.get(INCARNATION_KEY).is_some_and(|inc| {
        removed.contains(&(state.chitchat_id().node_id.to_string(), inc.to_owned()))
    })
}

impl Cluster for ChitchatCluster {
    fn self_id(&self) -> UniqueReplicaId {
        self.self_id.clone()
    }

    fn members(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    /// `false` until this node has heard from another one (when it was given seeds other than
    /// itself): a node that restarts while its seeds are unreachable sees only itself, and must
    /// not complete pruning on that view.
    fn view_settled(&self) -> watch::Receiver<bool> {
        self.settled.subscribe()
    }
}
