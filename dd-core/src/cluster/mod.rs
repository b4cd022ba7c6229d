//! Cluster membership as the replicator sees it.
//!
//! A [`Cluster`] knows the local replica's [`UniqueReplicaId`] and publishes the current set of
//! members (stable names, with a network address where the transport needs one) through a
//! [`tokio::sync::watch`] channel. The replicator gossips with every member except itself; a
//! member that disappears from the set is *removed* and its CRDT entries are pruned.
//!
//! [`StaticCluster`] is a fixed (but editable) member list for tests and small fixed deployments;
//! [`ChitchatCluster`] is dynamic membership over the `chitchat` gossip protocol (UDP, phi-accrual
//! failure detection), with seed nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::replica::{ReplicaId, UniqueReplicaId};

mod chitchat_cluster;
mod gossip_auth;

pub use chitchat_cluster::{
    ADDRESS_KEY, ChitchatCluster, ChitchatClusterConfig, ClusterError, GossipMember,
    INCARNATION_KEY, LEAVING_KEY, REMOVED_KEY_PREFIX, RemoveRefused,
};
pub use gossip_auth::{AuthenticatedUdpTransport, MAX_AUTHENTICATED_PAYLOAD, TAG_LEN};

/// The members of a cluster: stable replica name → network address (if the transport needs one).
pub type Members = BTreeMap<ReplicaId, Option<SocketAddr>>;

/// Cluster membership: the local identity plus a watch of the member set.
pub trait Cluster: Send + Sync + 'static {
    /// This process's identity (name + incarnation).
    fn self_id(&self) -> UniqueReplicaId;

    /// A watch of the current members (including this replica). Every change is a new set.
    fn members(&self) -> watch::Receiver<Members>;

    /// A watch of whether the member view has heard from the cluster: `false` while a gossip
    /// membership has not yet heard from any other node although it was given nodes to contact
    /// (its view holds only itself, whatever the cluster really is). The replicator completes no
    /// pruning while it is `false`. The default is always `true` (a configured member list).
    fn view_settled(&self) -> watch::Receiver<bool> {
        watch::channel(true).1
    }

    /// A watch of the replicas an operator confirmed stopped for good when removing them
    /// ([`StaticCluster::remove_stopped`]): while such a replica is not a member, none of its
    /// incarnations runs, so it cannot be pruning in a view of its own and leaves the quorum a
    /// pruning needs ([`Settings::pruning_quorum`](crate::replicator::Settings::pruning_quorum)).
    /// The default is always empty.
    fn stopped(&self) -> watch::Receiver<BTreeSet<ReplicaId>> {
        watch::channel(BTreeSet::new()).1
    }
}

/// A fixed member list, editable at run time with [`add_member`](Self::add_member) and
/// [`remove_member`](Self::remove_member). Clones share the same list.
///
/// A replica started with fewer peers than its durable data knows of (for example alone, with
/// the others added later) does not complete pruning while its data holds entries of replicas
/// that are neither members nor known to be removed: they may have pruned while it was away.
///
/// ```
/// use dd_core::cluster::{Cluster, StaticCluster};
/// use dd_core::{ReplicaId, UniqueReplicaId};
/// let me = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// let cluster = StaticCluster::new(me, [ReplicaId::new("b"), ReplicaId::new("c")]);
/// assert_eq!(cluster.members().borrow().len(), 3); // a, b and c
/// ```
#[derive(Clone, Debug)]
pub struct StaticCluster {
    self_id: UniqueReplicaId,
    members: Arc<watch::Sender<Members>>,
    stopped: Arc<watch::Sender<BTreeSet<ReplicaId>>>,
}

impl StaticCluster {
    /// A cluster of `self_id` and the given peers, without addresses (in-memory transport).
    pub fn new(self_id: UniqueReplicaId, peers: impl IntoIterator<Item = ReplicaId>) -> Self {
        Self::with_addresses(self_id, None, peers.into_iter().map(|p| (p, None)))
    }

    /// A cluster of `self_id` (reachable at `self_address`) and the given peers with their
    /// addresses (TCP transport).
    pub fn with_addresses(
        self_id: UniqueReplicaId,
        self_address: Option<SocketAddr>,
        peers: impl IntoIterator<Item = (ReplicaId, Option<SocketAddr>)>,
    ) -> Self {
        let mut members: Members = peers.into_iter().collect();
        members.insert(self_id.replica().clone(), self_address);
        let (tx, _rx) = watch::channel(members);
        let (stopped, _rx) = watch::channel(BTreeSet::new());
        Self {
            self_id,
            members: Arc::new(tx),
            stopped: Arc::new(stopped),
        }
    }

    /// Adds (or re-addresses) a member. A replica confirmed stopped
    /// ([`remove_stopped`](Self::remove_stopped)) no longer is.
    pub fn add_member(&self, replica: ReplicaId, address: Option<SocketAddr>) {
        self.stopped.send_if_modified(|s| s.remove(&replica));
        self.members.send_modify(|m| {
            m.insert(replica, address);
        });
    }

    /// Removes a member that the operator confirms is stopped for good (none of its
    /// incarnations runs, nor will until it is added back): as
    /// [`remove_member`](Self::remove_member), and with
    /// [`Settings::pruning_quorum`](crate::replicator::Settings::pruning_quorum) it no longer
    /// counts in the quorum of this replica's prunings, so a survivor of a cluster that lost
    /// half or more at once prunes again. Confirming a replica that still runs lets both views
    /// prune, as without the quorum.
    pub fn remove_stopped(&self, replica: &ReplicaId) {
        self.stopped.send_if_modified(|s| s.insert(replica.clone()));
        self.remove_member(replica);
    }

    /// Removes a member: the replicator stops gossiping with it and prunes its entries. A member
    /// removed while it runs and added back later refuses writes once it learns that its
    /// incarnation was pruned
    /// ([`ReplicatorError::IncarnationPruned`](crate::replicator::ReplicatorError::IncarnationPruned)):
    /// restart it (a new incarnation) to rejoin.
    pub fn remove_member(&self, replica: &ReplicaId) {
        self.members.send_modify(|m| {
            m.remove(replica);
        });
    }
}

impl Cluster for StaticCluster {
    fn self_id(&self) -> UniqueReplicaId {
        self.self_id.clone()
    }

    fn members(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    fn stopped(&self) -> watch::Receiver<BTreeSet<ReplicaId>> {
        self.stopped.subscribe()
    }
}
