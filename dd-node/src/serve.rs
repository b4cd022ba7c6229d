//! `dd-node serve`: one replica with its durable store, TCP cluster transport and HTTP API.
//!
//! Start-up order: the HTTP listener first (so `/health` answers 503 while loading), then the
//! store, the cluster transport and the replicator (which loads every durable entry before it
//! serves); then `/health` turns 200. On SIGTERM or SIGINT the HTTP server stops taking requests
//! (subscriptions end), and [`Replicator::shutdown`](dd_core::Replicator::shutdown) stops gossip
//! and flushes write-behind data before the process exits. If the store fails then, the flush is
//! retried for [`SHUTDOWN_FLUSH_GRACE`] before the node gives up with an error saying how many
//! entries were not written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dd_core::ReplicatorError;
use dd_core::UniqueReplicaId;
use dd_core::cluster::{ChitchatCluster, ChitchatClusterConfig, StaticCluster};
use dd_core::durable::CrdtValueStore;
use dd_core::replicator::DistributedData;
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::config::{NodeConfig, write_mode_name};
use crate::membership::NodeCluster;
use crate::metrics::{MeteredTransport, Metrics};
use crate::store_url::open_state_store;

/// Why a node could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An address could not be resolved or bound.
    #[error("{what} {addr}: {source}")]
    Address {
        /// Which address.
        what: &'static str,
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("opening store {url}: {source}")]
    Store {
        /// The store URL.
        url: String,
        /// The error.
        #[source]
        source: dd_durable::OpenError,
    },
    /// The membership gossip could not start.
    #[error("membership gossip: {0}")]
    Gossip(String),
    /// The cluster transport failed.
    #[error("cluster transport: {0}")]
    Transport(#[from] dd_core::transport::TransportError),
    /// The replicator failed to start (e.g. unreadable durable data) or to shut down.
    #[error(transparent)]
    Replicator(#[from] dd_core::ReplicatorError),
    /// Installing the signal handlers failed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// At shutdown the durable store still failed after retrying for the shutdown grace period.
    #[error(
        "stopping: {pending} entries could not be written to {store} within {grace:?} ({error}); \
         replicas that received them by gossip still have them"
    )]
    Unflushed {
        /// The store.
        store: String,
        /// Entries not written.
        pending: usize,
        /// How long the flush was retried.
        grace: Duration,
        /// The last error.
        error: String,
    },
}

/// How long a stopping node keeps retrying to write what its failing store has not taken yet
/// (below Kubernetes' default termination grace period of 30 s).
pub const SHUTDOWN_FLUSH_GRACE: Duration = Duration::from_secs(20);

/// After a failed flush at shutdown (`first`), retries with backoff until everything pending is
/// written or `grace` has passed.
pub async fn flush_within_grace(
    durable: &DurableDistributedDataStore,
    first: String,
    grace: Duration,
) -> Result<(), ServeError> {
    let deadline = tokio::time::Instant::now() + grace;
    let mut delay = Duration::from_millis(100);
    let mut last = first;
    loop {
        let pending = durable.health().pending;
        tracing::warn!(store = %durable.describe(), pending, error = %last,
            "stopping: the durable store failed; retrying until everything is written or \
             {grace:?} have passed");
        let now = tokio::time::Instant::now();
        if now + delay >= deadline {
            return Err(ServeError::Unflushed {
                store: durable.describe(),
                pending,
                grace,
                error: last,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
        match tokio::time::timeout_at(deadline, durable.flush()).await {
            Ok(Ok(())) => {
                tracing::info!(store = %durable.describe(), "stopping: durable data flushed after retries");
                return Ok(());
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "the flush did not finish before the grace period ended".to_owned(),
        }
    }
}

/// Resolves `host:port` to one socket address.
pub async fn resolve_addr(what: &'static str, addr: &str) -> Result<SocketAddr, ServeError> {
    let err = |source| ServeError::Address {
        what,
        addr: addr.to_owned(),
        source,
    };
    tokio::net::lookup_host(addr)
        .await
        .map_err(err)?
        .next()
        .ok_or_else(|| {
            err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address",
            ))
        })
}

/// Cancels `token` on the first SIGTERM or SIGINT (Ctrl-C).
pub fn cancel_on_signals(token: CancellationToken) -> Result<(), ServeError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = which, "shutting down");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C: shutting down");
            }
            token.cancel();
        });
    }
    Ok(())
}

/// Runs a node until `shutdown` is cancelled, then stops it gracefully.
pub async fn serve(config: NodeConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let http_addr = resolve_addr("HTTP address", &config.http_addr).await?;
    let listener = TcpListener::bind(http_addr)
        .await
        .map_err(|source| ServeError::Address {
            what: "binding HTTP address",
            addr: http_addr.to_string(),
            source,
        })?;
    let state = AppState::new(
        config.replica.as_str(),
        config.store.clone(),
        write_mode_name(config.write_mode),
        Arc::clone(&metrics),
        shutdown.clone(),
    );
    // Hyper's own error responses (malformed request heads, URI and head limits) get JSON bodies.
    let listener = crate::http_errors::JsonErrorListener::new(listener);
    let http = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let http = tokio::spawn(async move { http.await });
    tracing::info!(replica = %config.replica, http = %http_addr, "HTTP API listening");

    let started = tokio::select! {
        r = start_replica(&config, &metrics) => r,
        _ = shutdown.cancelled() => {
            tracing::info!("stopped while starting");
            return finish_http(http).await;
        }
    };
    let (replicator, cluster, durable) = match started {
        Ok(v) => v,
        Err(e) => {
            shutdown.cancel();
            // The start error is the one to report.
            let _ = finish_http(http).await;
            return Err(e);
        }
    };
    state.set_ready(replicator.clone(), cluster.clone());
    // The intervals in effect (flags, config file or defaults), so that a config file that was
    // not the expected one shows in the log.
    let s = &config.settings;
    tracing::info!(replica = %replicator.self_id(), store = %config.store,
        write_mode = %write_mode_name(config.write_mode),
        gossip_interval = ?s.gossip_interval,
        delta_propagation_interval = ?s.delta_propagation_interval,
        pruning_interval = ?s.pruning_interval, pruning_quorum = s.pruning_quorum, "serving");

    shutdown.cancelled().await;
    let http_result = finish_http(http).await;
    if let NodeCluster::Gossip(c) = &cluster {
        // No more writes come in: flush what the store holds, then announce the leave while
        // the replicator still gossips (the others drop this node at once and prune its
        // entries, instead of after the failure detector and the dead-node grace period).
        if let Err(e) = durable.flush().await {
            tracing::warn!(error = %e, "flushing the durable store before leaving");
        }
        if let Err(e) = c.leave().await {
            tracing::warn!(error = %e, "leaving the membership gossip");
        }
    }
    match replicator.shutdown().await {
        Ok(()) => {}
        Err(e @ ReplicatorError::StoreFailure { .. }) => {
            flush_within_grace(&durable, e.to_string(), SHUTDOWN_FLUSH_GRACE).await?;
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!("stopped; durable data flushed");
    http_result
}

async fn finish_http(
    http: tokio::task::JoinHandle<Result<(), std::io::Error>>,
) -> Result<(), ServeError> {
    match http.await {
        Ok(r) => r.map_err(ServeError::Http),
        Err(join) => Err(ServeError::Http(std::io::Error::other(join.to_string()))),
    }
}

async fn start_replica(
    config: &NodeConfig,
    metrics: &Metrics,
) -> Result<
    (
        dd_core::Replicator,
        NodeCluster,
        Arc<DurableDistributedDataStore>,
    ),
    ServeError,
> {
    let state_store =
        open_state_store(&config.store)
            .await
            .map_err(|source| ServeError::Store {
                url: config.store.clone(),
                source,
            })?;
    let durable = Arc::new(DurableDistributedDataStore::from_arc(
        state_store,
        DurableOptions {
            write_mode: config.write_mode,
            ..DurableOptions::default()
        },
    ));
    metrics.watch_durable(Arc::clone(&durable));

    let id = UniqueReplicaId::new_incarnation(config.replica.clone());
    let cluster_addr = resolve_addr("cluster address", &config.cluster_addr).await?;
    let transport = TcpTransport::bind(
        id.clone(),
        cluster_addr,
        TcpConfig {
            cluster_secret: config.cluster_secret.clone(),
            ..TcpConfig::new(config.cluster_name.clone())
        },
    )
    .await?;
    let mut peers = Vec::new();
    for (name, addr) in &config.peers {
        peers.push((
            name.clone(),
            Some(resolve_addr("peer address", addr).await?),
        ));
    }
    let cluster = match &config.gossip {
        None => {
            tracing::info!(cluster = %transport.local_addr(), peers = config.peers.len(),
                "cluster transport listening");
            NodeCluster::Static(StaticCluster::with_addresses(
                id,
                Some(transport.local_addr()),
                peers,
            ))
        }
        Some(gossip) => {
            let listen = resolve_addr("gossip address", &gossip.listen).await?;
            let mut chitchat = ChitchatClusterConfig::new(config.cluster_name.clone(), listen);
            chitchat.seeds = gossip.seeds.clone();
            chitchat.replicator_address = Some(transport.local_addr());
            chitchat.secret = config.cluster_secret.clone();
            let cluster = ChitchatCluster::start(id, chitchat)
                .await
                .map_err(|e| ServeError::Gossip(e.to_string()))?;
            tracing::info!(cluster = %transport.local_addr(), gossip = %listen,
                seeds = ?gossip.seeds, "cluster transport listening; members learnt by gossip");
            NodeCluster::Gossip(cluster)
        }
    };
    let settings = config
        .settings
        .clone()
        .durable_store(Arc::clone(&durable) as Arc<dyn CrdtValueStore>);
    let transport = MeteredTransport::new(transport, metrics.gossip.clone());
    let replicator = DistributedData::start(cluster.clone(), transport, settings).await?;
    Ok((replicator, cluster, durable))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use dd_core::ReplicaId;
    use dd_core::crdt::GCounter;
    use dd_core::durable::DurableValue;
    use dd_core::store::DurableStateStore;
    use dd_core::store::fault::{Fault, FaultInjectingStore, FaultSwitch};
    use dd_core::store::memory::MemoryStore;
    use dd_durable::DurableOptions;

    use super::*;

    /// A durable store over a failing memory store, holding one entry it could not write.
    async fn failing_with_one_pending() -> (DurableDistributedDataStore, FaultSwitch, MemoryStore) {
        let backend = MemoryStore::new();
        let faulty = FaultInjectingStore::new(backend.clone());
        let switch = faulty.switch();
        let store: Arc<dyn DurableStateStore> = Arc::new(faulty);
        let durable = DurableDistributedDataStore::from_arc(
            store,
            DurableOptions {
                retry_interval: Duration::from_secs(3600),
                ..DurableOptions::default()
            },
        );
        switch.set(Fault::Fail);
        let entry = (
            "k".to_owned(),
            DurableValue::Data(Box::new(GCounter::new())),
        );
        let replica = ReplicaId::new("a");
        assert!(durable.store(&replica, vec![entry]).await.is_err());
        assert_eq!(durable.health().pending, 1);
        (durable, switch, backend)
    }

    #[tokio::test]
    async fn a_store_that_returns_within_the_grace_period_gets_everything() {
        let (durable, switch, backend) = failing_with_one_pending().await;
        let clear = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            switch.clear();
        });
        flush_within_grace(&durable, "down".into(), Duration::from_secs(60))
            .await
            .unwrap();
        clear.await.unwrap();
        assert_eq!(durable.health().pending, 0);
        assert!(backend.get("a", "k").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_store_still_down_after_the_grace_period_is_an_error_counting_the_loss() {
        let (durable, _switch, backend) = failing_with_one_pending().await;
        let err = flush_within_grace(&durable, "down".into(), Duration::from_millis(500))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("1 entries could not be written"),
            "{message}"
        );
        assert!(message.contains("faulty(memory"), "{message}");
        assert!(backend.get("a", "k").await.unwrap().is_none());
    }
}
