//! The membership of a running node: the fixed `--peer` list or chitchat gossip
//! (`--gossip-addr`, `--seed`), what `/members` shows of it and `DELETE /members/{name}`
//! (`dd-node remove`) changes.

use std::time::Duration;

use dd_core::cluster::{
    ChitchatCluster, Cluster, GossipMember, Members, RemoveRefused, StaticCluster,
};
use dd_core::{ReplicaId, ReplicatorStatus, UniqueReplicaId};

/// A peer of a fixed member list heard from within this window counts as alive: removing it
/// needs `force`.
pub const STATIC_ALIVE_WINDOW: Duration = Duration::from_secs(10);

/// The membership of a node.
#[derive(Debug, Clone)]
pub enum NodeCluster {
    /// The fixed `--peer` list (editable at run time on this node only).
    Static(StaticCluster),
    /// Chitchat gossip: members join and leave at run time.
    Gossip(ChitchatCluster),
}

impl From<StaticCluster> for NodeCluster {
    fn from(c: StaticCluster) -> Self {
        NodeCluster::Static(c)
    }
}

impl Cluster for NodeCluster {
    fn self_id(&self) -> UniqueReplicaId {
        match self {
            NodeCluster::Static(c) => c.self_id(),
            NodeCluster::Gossip(c) => c.self_id(),
        }
    }

    fn members(&self) -> tokio::sync::watch::Receiver<Members> {
        match self {
            NodeCluster::Static(c) => c.members(),
            NodeCluster::Gossip(c) => c.members(),
        }
    }

    fn view_settled(&self) -> tokio::sync::watch::Receiver<bool> {
        match self {
            NodeCluster::Static(c) => c.view_settled(),
            NodeCluster::Gossip(c) => c.view_settled(),
        }
    }
}

/// Why a member could not be removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// The replica asked is the node asked.
    #[error("'{0}' is this replica: stop it (SIGTERM) to make it leave")]
    IsSelf(String),
    /// No member of that name (or none whose incarnation was heard).
    #[error("'{0}' is not a known member")]
    Unknown(String),
    /// The member is alive; removing it needs `force=true`.
    #[error(
        "'{0}' is alive (heard from recently): remove only a replica that is gone for good, or \
         pass force=true (a removed live replica refuses writes until it restarts)"
    )]
    Alive(String),
}

impl From<RemoveRefused> for RemoveError {
    fn from(e: RemoveRefused) -> Self {
        match e {
            RemoveRefused::IsSelf(r) => RemoveError::IsSelf(r.to_string()),
            RemoveRefused::Alive(r) => RemoveError::Alive(r.to_string()),
            RemoveRefused::Unknown(r) => RemoveError::Unknown(r.to_string()),
            other => RemoveError::Unknown(other.to_string()),
        }
    }
}

impl NodeCluster {
    /// What the gossip membership knows of each node (`None` for a fixed member list).
    pub async fn gossip_members(&self) -> Option<Vec<GossipMember>> {
        match self {
            NodeCluster::Static(_) => None,
            NodeCluster::Gossip(c) => Some(c.gossip_members().await),
        }
    }

    /// Removes the replica `name`, gone for good, so that its entries are pruned. With gossip
    /// the removal spreads to every node; with a fixed list it applies to this node only (ask
    /// every replica, or restart them without that `--peer`). Refused for this node, an unknown
    /// name and, unless `force`, a live member (gossip: the failure detector hears from it;
    /// fixed list: the replicator heard from it within [`STATIC_ALIVE_WINDOW`]). Returns the
    /// incarnation removed (or the name, for a fixed-list member never heard from).
    pub async fn remove(
        &self,
        name: &str,
        force: bool,
        status: &ReplicatorStatus,
    ) -> Result<String, RemoveError> {
        let replica = ReplicaId::new(name);
        match self {
            NodeCluster::Gossip(c) => Ok(c.remove(&replica, force).await?),
            NodeCluster::Static(c) => {
                if &replica == status.self_id.replica() {
                    return Err(RemoveError::IsSelf(name.to_owned()));
                }
                if !status.members.contains_key(&replica) {
                    return Err(RemoveError::Unknown(name.to_owned()));
                }
                let alive = status
                    .peer_last_heard
                    .get(&replica)
                    .is_some_and(|d| *d <= STATIC_ALIVE_WINDOW);
                if alive && !force {
                    return Err(RemoveError::Alive(name.to_owned()));
                }
                let removed = status
                    .peer_incarnations
                    .get(&replica)
                    .map_or_else(|| name.to_owned(), ToString::to_string);
                tracing::info!(removed = %removed, force, "removing a member (this node only)");
                c.remove_member(&replica);
                Ok(removed)
            }
        }
    }
}
