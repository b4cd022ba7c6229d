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

use std::collections::BTreeMap;
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
        Self {
            self_id,
            members: Arc::new(tx),
        }
    }

    /// Adds (or re-addresses) a member.
    pub fn add_member(&self, replica: ReplicaId, address: Option<SocketAddr>) {
        self.members.send_modify(|m| {
            m.insert(replica, address);
        });
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
}
