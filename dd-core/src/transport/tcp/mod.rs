//! TCP transport: length-delimited frames (`tokio_util::codec::LengthDelimitedCodec`) carrying
//! postcard-encoded messages.
//!
//! Every replica listens on one address and dials every cluster member that has an address
//! (following membership changes, see [`Transport::follow_members`]); a dialled
//! connection carries messages one way (dialler → listener). A connection starts with a
//! [handshake](handshake): protocol version, cluster name and, when
//! [`TcpConfig::cluster_secret`] is set, a mutual HMAC-SHA256 challenge/response over fresh
//! nonces from both sides (so a recorded handshake cannot be replayed). A mismatch is refused
//! with a warning naming the peer address and the reason on both sides, and no frame of an
//! unauthenticated peer ever reaches the replicator. Without a secret any process that knows
//! the cluster name can join; the transport logs that once when it starts.
//!
//! Memory per connection is bounded: handshake frames are limited to
//! [`MAX_HANDSHAKE_FRAME`] bytes and message frames to [`TcpConfig::max_frame_bytes`] (the
//! length prefix is checked before anything is allocated); received messages go through one
//! bounded queue of [`TcpConfig::inbound_queue`] messages, and a reader waits for room instead
//! of reading on, so a slow replicator pushes back on the sockets (TCP flow control) rather
//! than buffering; a frame that starts and then stalls for [`TcpConfig::frame_timeout`] drops
//! the connection; at most [`TcpConfig::max_inbound_connections`] inbound connections are
//! served; [`TcpConfig::max_frames_per_second`] optionally throttles each connection. Frames
//! that do not decode close that connection with a logged error; the replica keeps running.
//! Lost connections are re-dialled with exponential backoff; messages for a peer are queued up
//! to [`TcpConfig::outbound_queue`] and the newest are dropped beyond (counted in
//! [`TcpStats::outbound_dropped`] and logged; gossip repairs losses).
//!
//! ```no_run
//! use dd_core::cluster::StaticCluster;
//! use dd_core::replicator::{DistributedData, Settings};
//! use dd_core::transport::tcp::{Secret, TcpConfig, TcpTransport};
//! use dd_core::{ReplicaId, UniqueReplicaId};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let me = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
//! let config = TcpConfig {
//!     cluster_secret: Some(Secret::from_file("/etc/dd/cluster-secret")?),
//!     ..TcpConfig::new("demo")
//! };
//! let transport = TcpTransport::bind(me.clone(), "127.0.0.1:7000".parse()?, config).await?;
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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::{Incoming, IncomingStream, Message, Transport, TransportError};
use crate::cluster::Members;
use crate::replica::{ReplicaId, UniqueReplicaId};

pub mod handshake;

mod stats;

pub use crate::secret::{Secret, SecretError};
pub use handshake::{Handshake, MAX_HANDSHAKE_FRAME};
pub use stats::TcpStats;

use handshake::Failure;
use stats::Counters;

/// The wire protocol version; a peer with another version is refused. Version 2 added the
/// authenticated handshake; version 3 replaced chunked digest gossip (`Status`) with Merkle
/// tree anti-entropy (`Message::Tree`, `Message::LeafDigests`); version 4 carries the owner
/// of a "pruning performed" marker (`WirePruning::Performed`); version 5 sends many states as
/// acknowledged streams (`Message::StreamBatch`, `Message::StreamAck`); version 6 identifies a
/// stream by the sender's incarnation and a stream number in both.
pub const PROTOCOL_VERSION: u32 = 6;

/// Settings of a [`TcpTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Only peers with the same cluster name are accepted.
    pub cluster_name: String,
    /// The shared secret peers must prove knowledge of (default none: peers are not
    /// authenticated, which is logged once at startup). Every replica of a cluster needs the
    /// same setting: a replica with a secret refuses one without, and the other way round.
    pub cluster_secret: Option<Secret>,
    /// The largest frame accepted or sent (default 8 MiB).
    pub max_frame_bytes: usize,
    /// Messages queued per peer (default 4096); beyond, new messages are dropped and counted.
    pub outbound_queue: usize,
    /// Received messages waiting for the replicator, over all connections (default 4096);
    /// when full, readers stop reading their sockets until there is room.
    pub inbound_queue: usize,
    /// Inbound connections served at once (default 256); more are closed on accept.
    pub max_inbound_connections: usize,
    /// A connection whose frame started arriving but has not completed within this time is
    /// dropped (default 30 s). An idle connection (no partial frame) is kept.
    pub frame_timeout: Duration,
    /// At most this many frames per second are read from one connection; a faster peer is
    /// paused (default none: unlimited).
    pub max_frames_per_second: Option<u32>,
    /// First reconnection delay (default 100 ms), doubled up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnection delay (default 5 s).
    pub reconnect_max: Duration,
    /// How long a whole handshake may take (default 5 s).
    pub handshake_timeout: Duration,
}

impl TcpConfig {
    /// Defaults for a cluster named `cluster_name`.
    pub fn new(cluster_name: impl Into<String>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            cluster_secret: None,
            max_frame_bytes: 8 * 1024 * 1024,
            outbound_queue: 4096,
            inbound_queue: 4096,
            max_inbound_connections: 256,
            frame_timeout: Duration::from_secs(30),
            max_frames_per_second: None,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
        }
    }
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
    counters: Counters,
    connections: Arc<Semaphore>,
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
        if config.cluster_secret.is_none() {
            tracing::warn!(me = %self_id, %local_addr, cluster = %config.cluster_name,
                "no cluster secret configured: peers are not authenticated, any process that \
                 can reach this address and knows the cluster name can join");
        }
        let (incoming_tx, incoming_rx) = mpsc::channel(config.inbound_queue.max(1));
        let connections = Arc::new(Semaphore::new(config.max_inbound_connections.max(1)));
        let inner = Arc::new(Inner {
            self_id,
            config,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            incoming_rx: Mutex::new(Some(incoming_rx)),
            counters: Counters::default(),
            connections,
            cancel: CancellationToken::new(),
        });
        tokio::spawn(accept_loop(inner.clone(), listener, incoming_tx));
        Ok(Self { inner })
    }

    /// The address this transport listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// A snapshot of this transport's counters.
    pub fn stats(&self) -> TcpStats {
        self.inner.counters.snapshot()
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
                    let dropped = Counters::bump(&self.inner.counters.outbound_dropped);
                    if dropped == 1 || dropped.is_multiple_of(1024) {
                        tracing::warn!(from = %self.inner.self_id, %to, address = %peer.address,
                            dropped_so_far = dropped,
                            "outbound queue full; newest message dropped (gossip repairs it)");
                    }
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
        let inner = self.inner.clone();
        Ok(Box::pin(futures::stream::unfold(
            (rx, inner),
            |(mut rx, inner)| async move {
                let m = rx.recv().await?;
                inner.counters.dequeued();
                Some((m, (rx, inner)))
            },
        )))
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
                let Ok(permit) = inner.connections.clone().try_acquire_owned() else {
                    let n = Counters::bump(&inner.counters.connections_over_limit);
                    tracing::warn!(me = %inner.self_id, %remote,
                        max = inner.config.max_inbound_connections, refused_so_far = n,
                        "too many inbound connections; closing this one");
                    drop(stream);
                    continue;
                };
                let inner = inner.clone();
                let incoming = incoming.clone();
                tokio::spawn(async move {
                    let cancel = inner.cancel.clone();
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = serve_connection(inner, stream, remote, incoming) => {}
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(local = %inner.local_addr, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Logs and counts a handshake that did not complete.
fn handshake_failed(inner: &Inner, remote: SocketAddr, side: &str, failure: Failure) {
    let me = &inner.self_id;
    match failure {
        Failure::Refused(reason) => {
            Counters::bump(&inner.counters.handshakes_refused);
            tracing::warn!(%me, peer_address = %remote, side, reason, "handshake refused");
        }
        Failure::Broken(reason) => {
            tracing::debug!(%me, peer_address = %remote, side, reason, "handshake failed");
        }
    }
}

/// Runs the listener handshake, then reads messages from one accepted connection.
async fn serve_connection(
    inner: Arc<Inner>,
    stream: TcpStream,
    remote: SocketAddr,
    incoming: mpsc::Sender<Incoming>,
) {
    let me = &inner.self_id;
    let config = &inner.config;
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    let accepted = tokio::time::timeout(
        config.handshake_timeout,
        handshake::accept(
            &mut framed,
            me,
            &config.cluster_name,
            config.cluster_secret.as_ref(),
        ),
    )
    .await;
    let from = match accepted {
        Ok(Ok(from)) => from,
        Ok(Err(failure)) => return handshake_failed(&inner, remote, "listener", failure),
        Err(_) => {
            tracing::warn!(%me, peer_address = %remote, timeout = ?config.handshake_timeout,
                "handshake not completed in time; closing connection");
            return;
        }
    };
    framed
        .codec_mut()
        .set_max_frame_length(config.max_frame_bytes);
    tracing::debug!(%me, peer = %from, %remote, "inbound connection established");
    let mut window = Instant::now();
    let mut in_window: u32 = 0;
    loop {
        let frame = match tokio::time::timeout(config.frame_timeout, framed.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(_) if framed.read_buffer().is_empty() => continue,
            Err(_) => {
                Counters::bump(&inner.counters.stalled_connections);
                tracing::warn!(%me, peer = %from, peer_address = %remote,
                    buffered = framed.read_buffer().len(), timeout = ?config.frame_timeout,
                    "a frame stalled part-way; closing connection");
                return;
            }
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                Counters::bump(&inner.counters.bad_frames);
                tracing::error!(%me, peer = %from, %remote, error = %e,
                    "bad frame (oversized or truncated); closing connection");
                return;
            }
        };
        Counters::bump(&inner.counters.frames_received);
        if let Some(limit) = config.max_frames_per_second {
            if window.elapsed() >= Duration::from_secs(1) {
                window = Instant::now();
                in_window = 0;
            }
            in_window += 1;
            if in_window > limit {
                Counters::bump(&inner.counters.rate_limited);
                tracing::debug!(%me, peer = %from, limit, "frame rate limit reached; pausing this connection");
                tokio::time::sleep_until(window + Duration::from_secs(1)).await;
                window = Instant::now();
                in_window = 1;
            }
        }
        let message = match Message::decode(&frame) {
            Ok(message) => message,
            Err(e) => {
                Counters::bump(&inner.counters.bad_frames);
                tracing::error!(%me, peer = %from, %remote, error = %e, bytes = frame.len(),
                    "malformed message frame; closing connection");
                return;
            }
        };
        drop(frame);
        // Waiting here (instead of buffering) stops reading this socket while the queue is
        // full: TCP flow control then slows the peer down.
        let Ok(permit) = incoming.reserve().await else {
            return;
        };
        inner.counters.enqueued();
        permit.send(Incoming {
            from: from.clone(),
            message,
        });
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
            Err(Some(failure)) => handshake_failed(&inner, address, "dialler", failure),
            Err(None) => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(inner.config.reconnect_max);
    }
}

/// Connects and runs the dialler handshake; `Err(None)` when the connection itself failed
/// (logged at debug level: the peer may simply be down).
async fn connect(
    inner: &Inner,
    address: SocketAddr,
) -> Result<(Framed<TcpStream, LengthDelimitedCodec>, UniqueReplicaId), Option<Failure>> {
    let me = &inner.self_id;
    let config = &inner.config;
    let stream = match TcpStream::connect(address).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%me, %address, error = %e, "cannot connect; retrying");
            return Err(None);
        }
    };
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, codec(MAX_HANDSHAKE_FRAME));
    let dialled = tokio::time::timeout(
        config.handshake_timeout,
        handshake::dial(
            &mut framed,
            me,
            &config.cluster_name,
            config.cluster_secret.as_ref(),
        ),
    )
    .await
    .map_err(|_| Some(Failure::Broken("no handshake reply in time".into())))?;
    let from = dialled.map_err(Some)?;
    framed
        .codec_mut()
        .set_max_frame_length(config.max_frame_bytes);
    Ok((framed, from))
}
