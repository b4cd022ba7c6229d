//! TCP transport: length-delimited frames (`tokio_util::codec::LengthDelimitedCodec`) carrying
//! postcard-encoded messages.
//!
//! Every replica listens on one address and dials every cluster member that has an address
//! (following membership changes, see [`Transport::follow_members`]); a dialled
//! connection carries messages one way (dialler → listener). A connection starts with a
//! handshake: the dialler sends its protocol version, cluster name and incarnation; the listener
//! refuses a mismatch with a clear log line on both sides. Frames larger than
//! [`TcpConfig::max_frame_bytes`] and frames that do not decode close that connection with a
//! logged error; the replica keeps running. Lost connections are re-dialled with exponential
//! backoff; messages for a peer without a connection are queued up to
//! [`TcpConfig::outbound_queue`] and dropped beyond (gossip repairs losses).
//!
//! ```no_run
//! use dd_core::cluster::StaticCluster;
//! use dd_core::replicator::{DistributedData, Settings};
//! use dd_core::transport::tcp::{TcpConfig, TcpTransport};
//! use dd_core::{ReplicaId, UniqueReplicaId};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let me = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
//! let transport =
//!     TcpTransport::bind(me.clone(), "127.0.0.1:7000".parse()?, TcpConfig::new("demo")).await?;
//! let cluster = StaticCluster::with_addresses(
//!     me,
//!     Some(transport.local_addr()),
//!     [(ReplicaId::new("b"), Some("127.0.0.1:7001".parse()?))],
//! );
//! let replicator = DistributedData::start(cluster, transport, Settings::default()).await?;
//! # drop(replicator); Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::{Incoming, IncomingStream, Message, Transport, TransportError};
use crate::cluster::Members;
use crate::replica::{ReplicaId, UniqueReplicaId};

/// The wire protocol version; a peer with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Settings of a [`TcpTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Only peers with the same cluster name are accepted.
    pub cluster_name: String,
    /// The largest frame accepted or sent (default 8 MiB).
    pub max_frame_bytes: usize,
    /// Messages queued per peer while it is not connected (default 4096).
    pub outbound_queue: usize,
    /// First reconnection delay (default 100 ms), doubled up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnection delay (default 5 s).
    pub reconnect_max: Duration,
    /// How long a handshake may take (default 5 s).
    pub handshake_timeout: Duration,
}

impl TcpConfig {
    /// Defaults for a cluster named `cluster_name`.
    pub fn new(cluster_name: impl Into<String>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            max_frame_bytes: 8 * 1024 * 1024,
            outbound_queue: 4096,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// The first frames of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// Sent by the dialler.
    Hello {
        /// [`PROTOCOL_VERSION`] of the dialler.
        protocol: u32,
        /// The dialler's cluster name.
        cluster: String,
        /// The dialler's incarnation.
        from: UniqueReplicaId,
    },
    /// The listener accepted.
    Welcome {
        /// The listener's incarnation.
        from: UniqueReplicaId,
    },
    /// The listener refused, with the reason.
    Rejected {
        /// Why.
        reason: String,
    },
}

struct Peer {
    address: SocketAddr,
    tx: mpsc::Sender<Message>,
    cancel: CancellationToken,
}

struct Inner {
    self_id: UniqueReplicaId,
    config: TcpConfig,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<ReplicaId, Peer>>,
    incoming_rx: Mutex<Option<mpsc::Receiver<Incoming>>>,
    cancel: CancellationToken,
}

/// A TCP transport. Cheap to clone; clones share the listener and connections.
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("self_id", &self.inner.self_id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max)
        .new_codec()
}

impl TcpTransport {
    /// Listens on `address` (port 0 picks a free port; see [`local_addr`](Self::local_addr)).
    pub async fn bind(
        self_id: UniqueReplicaId,
        address: SocketAddr,
        config: TcpConfig,
    ) -> Result<Self, TransportError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| TransportError::Io {
                context: format!("binding {address}"),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| TransportError::Io {
            context: format!("local address of {address}"),
            source,
        })?;
        let (incoming_tx, incoming_rx) = mpsc::channel(4096);
        let inner = Arc::new(Inner {
            self_id,
            config,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            incoming_rx: Mutex::new(Some(incoming_rx)),
            cancel: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(inner.clone(), listener, incoming_tx));
        Ok(Self { inner })
    }

    /// The address this transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<ReplicaId, Peer>> {
        match self.inner.peers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn apply_members(&self, members: &Members) {
        let mut peers = self.peers();
        peers.retain(|name, peer| {
            let keep = members.get(name).copied().flatten() == Some(peer.address);
            if !keep {
                peer.cancel.cancel();
            }
            keep
        });
        for (name, address) in members {
            if name == self.inner.self_id.replica() || peers.contains_key(name) {
                continue;
            }
            let Some(address) = *address else { continue };
            let (tx, rx) = mpsc::channel(self.inner.config.outbound_queue.max(1));
            let cancel = self.inner.cancel.child_token();
            tokio::spawn(dial_loop(
                self.inner.clone(),
                name.clone(),
                address,
                rx,
                cancel.clone(),
            ));
            peers.insert(
                name.clone(),
                Peer {
                    address,
                    tx,
                    cancel,
                },
            );
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, to: &ReplicaId, message: Message) {
        let peers = self.peers();
        match peers.get(to) {
            Some(peer) => {
                if peer.tx.try_send(message).is_err() {
                    tracing::debug!(from = %self.inner.self_id, %to, "outbound queue full; message dropped");
                }
            }
            None => {
                tracing::debug!(from = %self.inner.self_id, %to, "no address for peer; message dropped")
            }
        }
    }

    fn incoming(&self) -> Result<IncomingStream, TransportError> {
        let rx = match self.inner.incoming_rx.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        let rx = rx.ok_or_else(|| TransportError::IncomingTaken(self.inner.self_id.to_string()))?;
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        })))
    }

    /// Connects to every member that has an address, and follows membership changes (new
    /// members are dialled, removed ones disconnected).
    fn follow_members(&self, mut members: watch::Receiver<Members>) {
        let this = self.clone();
        let cancel = self.inner.cancel.clone();
        this.apply_members(&members.borrow_and_update().clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = members.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let m = members.borrow_and_update().clone();
                        this.apply_members(&m);
                    }
                }
            }
        });
    }

    fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, incoming: mpsc::Sender<Incoming>) {
    loop {
        let accepted = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, remote)) => {
                let inner = inner.clone();
                let incoming = incoming.clone();
                tokio::spawn(async move {
                    let cancel = inner.cancel.clone();
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = serve_connection(inner, stream, remote, incoming) => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!(local = %inner.local_addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads the handshake, then messages, from one accepted connection.
async fn serve_connection(
    inner: Arc<Inner>,
    stream: TcpStream,
    remote: SocketAddr,
    incoming: mpsc::Sender<Incoming>,
) {
    let me = &inner.self_id;
    let mut framed = Framed::new(stream, codec(inner.config.max_frame_bytes));
    let first = tokio::time::timeout(inner.config.handshake_timeout, framed.next()).await;
    let hello = match first {
        Ok(Some(Ok(frame))) => postcard::from_bytes::<Handshake>(&frame),
        Ok(Some(Err(e))) => {
            tracing::error!(%me, %remote, error = %e, "bad handshake frame; closing connection");
            return;
        }
        Ok(None) => return,
        Err(_) => {
            tracing::error!(%me, %remote, "no handshake in time; closing connection");
            return;
        }
    };
    let from = match hello {
        Ok(Handshake::Hello {
            protocol,
            cluster,
            from,
        }) => {
            let refusal = if protocol != PROTOCOL_VERSION {
                Some(format!(
                    "protocol version {protocol} is not supported (this replica speaks {PROTOCOL_VERSION})"
                ))
            } else if cluster != inner.config.cluster_name {
                Some(format!(
                    "cluster name '{cluster}' does not match this replica's cluster '{}'",
                    inner.config.cluster_name
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                tracing::error!(%me, %remote, peer = %from, reason, "handshake refused");
                if let Ok(bytes) = postcard::to_stdvec(&Handshake::Rejected { reason }) {
                    let _ = framed.send(Bytes::from(bytes)).await;
                }
                return;
            }
            from
        }
        Ok(other) => {
            tracing::error!(%me, %remote, frame = ?other, "expected a Hello handshake; closing connection");
            return;
        }
        Err(e) => {
            tracing::error!(%me, %remote, error = %e, "malformed handshake; closing connection");
            return;
        }
    };
    match postcard::to_stdvec(&Handshake::Welcome { from: me.clone() }) {
        Ok(bytes) => {
            if framed.send(Bytes::from(bytes)).await.is_err() {
                return;
            }
        }
        Err(e) => {
            tracing::error!(%me, error = %e, "cannot encode Welcome");
            return;
        }
    }
    tracing::debug!(%me, peer = %from, %remote, "inbound connection established");
    while let Some(frame) = framed.next().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(%me, peer = %from, %remote, error = %e,
                    "bad frame (oversized or truncated); closing connection");
                return;
            }
        };
        match Message::decode(&frame) {
            Ok(message) => {
                let delivered = incoming
                    .send(Incoming {
                        from: from.clone(),
                        message,
                    })
                    .await;
                if delivered.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(%me, peer = %from, %remote, error = %e, bytes = frame.len(),
                    "malformed message frame; closing connection");
                return;
            }
        }
    }
}

/// Dials `address`, hands messages from `rx` to it and re-dials with backoff when it fails.
async fn dial_loop(
    inner: Arc<Inner>,
    peer: ReplicaId,
    address: SocketAddr,
    mut rx: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let me = inner.self_id.clone();
    let mut backoff = inner.config.reconnect_min;
    loop {
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            c = connect(&inner, address) => c,
        };
        match connected {
            Ok((mut framed, remote_id)) => {
                if remote_id.replica() != &peer {
                    tracing::warn!(%me, expected = %peer, found = %remote_id, %address,
                        "the replica at this address has another name; check the member addresses");
                }
                tracing::debug!(%me, peer = %remote_id, %address, "outbound connection established");
                backoff = inner.config.reconnect_min;
                loop {
                    let message = tokio::select! {
                        _ = cancel.cancelled() => return,
                        m = rx.recv() => m,
                    };
                    let Some(message) = message else { return };
                    let bytes = match message.encode() {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(%me, %peer, error = %e, "cannot encode message; dropped");
                            continue;
                        }
                    };
                    if bytes.len() > inner.config.max_frame_bytes {
                        tracing::error!(%me, %peer, bytes = bytes.len(),
                            max = inner.config.max_frame_bytes, "message exceeds max frame size; dropped");
                        continue;
                    }
                    if let Err(e) = framed.send(Bytes::from(bytes)).await {
                        tracing::debug!(%me, %peer, %address, error = %e, "connection lost; reconnecting");
                        break;
                    }
                }
            }
            Err(reason) => {
                tracing::debug!(%me, %peer, %address, reason, "cannot connect; retrying");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(inner.config.reconnect_max);
    }
}

async fn connect(
    inner: &Inner,
    address: SocketAddr,
) -> Result<(Framed<TcpStream, LengthDelimitedCodec>, UniqueReplicaId), String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec(inner.config.max_frame_bytes));
    let hello = Handshake::Hello {
        protocol: PROTOCOL_VERSION,
        cluster: inner.config.cluster_name.clone(),
        from: inner.self_id.clone(),
    };
    let bytes = postcard::to_stdvec(&hello).map_err(|e| format!("encode hello: {e}"))?;
    framed
        .send(Bytes::from(bytes))
        .await
        .map_err(|e| format!("send hello: {e}"))?;
    let reply = tokio::time::timeout(inner.config.handshake_timeout, framed.next())
        .await
        .map_err(|_| "no handshake reply in time".to_owned())?;
    let frame = match reply {
        Some(Ok(f)) => f,
        Some(Err(e)) => return Err(format!("handshake reply: {e}")),
        None => return Err("closed during handshake".into()),
    };
    match postcard::from_bytes::<Handshake>(&frame) {
        Ok(Handshake::Welcome { from }) => Ok((framed, from)),
        Ok(Handshake::Rejected { reason }) => {
            tracing::error!(me = %inner.self_id, %address, reason, "peer refused the handshake");
            Err(format!("refused: {reason}"))
        }
        Ok(other) => Err(format!("unexpected handshake reply {other:?}")),
        Err(e) => Err(format!("malformed handshake reply: {e}")),
    }
}
