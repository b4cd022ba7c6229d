//! Starting and stopping replicas with durable data over a store, alone or as a cluster over the
//! in-memory or the TCP (127.0.0.1) transport.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dd_core::cluster::StaticCluster;
use dd_core::replicator::{DistributedData, Replicator, Settings};
use dd_core::store::DurableStateStore;
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

use crate::error::HarnessError;

/// Replicator settings of the tests: short gossip, delta and notify intervals so that replicas
/// converge quickly; pruning keeps its default (2 minutes), so it never runs within a test and
/// states compare equal across restarts.
pub fn test_settings() -> Settings {
    Settings {
        gossip_interval: Duration::from_millis(100),
        delta_propagation_interval: Duration::from_millis(30),
        notify_interval: Duration::from_millis(20),
        ..Settings::default()
    }
}

/// How one replica is configured: its stable name, the write mode of its durable store and which
/// keys are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The stable replica name (the same across restarts).
    pub name: String,
    /// The write mode of its `DurableDistributedDataStore`.
    pub write_mode: WriteMode,
    /// `Settings::durable_keys`.
    pub durable_keys: Vec<String>,
}

impl ReplicaConfig {
    /// A replica named `name`, writing synchronously, every key durable.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            write_mode: WriteMode::Sync,
            durable_keys: vec!["*".to_owned()],
        }
    }

    /// With another write mode.
    pub fn write_mode(mut self, write_mode: WriteMode) -> Self {
        self.write_mode = write_mode;
        self
    }

    /// With other durable key patterns.
    pub fn durable_keys(mut self, patterns: &[&str]) -> Self {
        self.durable_keys = patterns.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// The settings of this replica with durable data over `store`.
    pub fn settings(&self, store: Arc<dyn DurableStateStore>) -> Settings {
        let options = DurableOptions {
            write_mode: self.write_mode,
            ..DurableOptions::default()
        };
        let durable = DurableDistributedDataStore::from_arc(store, options);
        Settings {
            durable_keys: self.durable_keys.clone(),
            ..test_settings()
        }
        .durable_store(Arc::new(durable))
    }
}

/// Starts one replica without peers (on its own in-memory network) with durable data over
/// `store`. The replica's incarnation is new, as after a process restart.
pub async fn start_alone(
    config: &ReplicaConfig,
    store: Arc<dyn DurableStateStore>,
) -> Result<Replicator, HarnessError> {
    let network = MemoryNetwork::new(1, Faults::default());
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new(config.name.clone()));
    let cluster = StaticCluster::new(id.clone(), []);
    DistributedData::start(cluster, network.join(id), config.settings(store))
        .await
        .map_err(|e| HarnessError::replicator(&config.name, e))
}

/// The transport a cluster of tests runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// `dd_core::transport::memory`.
    Memory,
    /// `dd_core::transport::tcp` on 127.0.0.1, ports chosen by the OS.
    Tcp,
}

/// The TCP settings of the tests: quick reconnection.
pub fn tcp_config() -> TcpConfig {
    TcpConfig {
        reconnect_max: Duration::from_millis(500),
        ..TcpConfig::new("dd-itest")
    }
}

/// Starts a static cluster of the given replicas, each with durable data over its store (several
/// replicas may share one store: data is kept per replica name). Every replica gets a new
/// incarnation, and with TCP a new port. Returns the replicators in the order given.
pub async fn start_cluster(
    transport: TransportKind,
    members: &[(ReplicaConfig, Arc<dyn DurableStateStore>)],
) -> Result<Vec<Replicator>, HarnessError> {
    let ids: Vec<UniqueReplicaId> = members
        .iter()
        .map(|(c, _)| UniqueReplicaId::new_incarnation(ReplicaId::new(c.name.clone())))
        .collect();
    let mut replicators = Vec::with_capacity(members.len());
    match transport {
        TransportKind::Memory => {
            let network = MemoryNetwork::new(1, Faults::default());
            let transports: Vec<_> = ids.iter().map(|id| network.join(id.clone())).collect();
            for ((id, t), (config, store)) in ids.iter().zip(transports).zip(members) {
                let peers = ids.iter().filter(|p| *p != id).map(|p| p.replica().clone());
                let cluster = StaticCluster::new(id.clone(), peers);
                let r = DistributedData::start(cluster, t, config.settings(store.clone()))
                    .await
                    .map_err(|e| HarnessError::replicator(&config.name, e))?;
                replicators.push(r);
            }
        }
        TransportKind::Tcp => {
            let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let mut transports = Vec::with_capacity(ids.len());
            for id in &ids {
                let t = TcpTransport::bind(id.clone(), local, tcp_config())
                    .await
                    .map_err(|source| HarnessError::Transport {
                        replica: id.replica().to_string(),
                        source,
                    })?;
                transports.push(t);
            }
            let addresses: Vec<(ReplicaId, Option<SocketAddr>)> = ids
                .iter()
                .zip(&transports)
                .map(|(id, t)| (id.replica().clone(), Some(t.local_addr())))
                .collect();
            for ((id, t), (config, store)) in ids.iter().zip(transports).zip(members) {
                let peers = addresses
                    .iter()
                    .filter(|(name, _)| name != id.replica())
                    .cloned();
                let cluster =
                    StaticCluster::with_addresses(id.clone(), Some(t.local_addr()), peers);
                let r = DistributedData::start(cluster, t, config.settings(store.clone()))
                    .await
                    .map_err(|e| HarnessError::replicator(&config.name, e))?;
                replicators.push(r);
            }
        }
    }
    Ok(replicators)
}

/// Shuts every replica down gracefully (durable data flushed), all of them even if one fails;
/// the first error is returned.
pub async fn stop_all(replicators: &[Replicator]) -> Result<(), HarnessError> {
    let mut first = None;
    for r in replicators {
        if let Err(e) = r.shutdown().await {
            first.get_or_insert(HarnessError::replicator(
                r.self_id().replica().to_string(),
                e,
            ));
        }
    }
    first.map_or(Ok(()), Err)
}
