//! `dd-node serve`: one replica with its durable store, TCP cluster transport and HTTP API.
//!
//! Start-up order: the HTTP listener first (so `/health` answers 503 while loading), then the
//! store, the cluster transport and the replicator (which loads every durable entry before it
//! serves); then `/health` turns 200. On SIGTERM or SIGINT the HTTP server stops taking requests
//! (subscriptions end), and [`Replicator::shutdown`](dd_core::Replicator::shutdown) stops gossip
//! and flushes write-behind data before the process exits.

use std::net::SocketAddr;
use std::sync::Arc;

use dd_core::UniqueReplicaId;
use dd_core::cluster::{Cluster, StaticCluster};
use dd_core::replicator::DistributedData;
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, router};
use crate::config::{NodeConfig, write_mode_name};
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
    let (replicator, cluster) = match started {
        Ok(v) => v,
        Err(e) => {
            shutdown.cancel();
            // The start error is the one to report.
            let _ = finish_http(http).await;
            return Err(e);
        }
    };
    state.set_ready(replicator.clone(), cluster.members());
    tracing::info!(replica = %replicator.self_id(), store = %config.store,
        write_mode = %write_mode_name(config.write_mode), "serving");

    shutdown.cancelled().await;
    let http_result = finish_http(http).await;
    replicator.shutdown().await?;
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
) -> Result<(dd_core::Replicator, StaticCluster), ServeError> {
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
    let cluster = StaticCluster::with_addresses(id, Some(transport.local_addr()), peers);
    tracing::info!(cluster = %transport.local_addr(), peers = config.peers.len(), "cluster transport listening");
    let settings = config.settings.clone().durable_store(durable);
    let transport = MeteredTransport::new(transport, metrics.gossip.clone());
    let replicator = DistributedData::start(cluster.clone(), transport, settings).await?;
    Ok((replicator, cluster))
}
