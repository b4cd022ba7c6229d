//! Membership gossip authenticated by the cluster secret: every chitchat datagram carries an
//! HMAC-SHA256 tag of its bytes (keyed by the [`Secret`] of the TCP transport, bound to the
//! cluster name), and a datagram whose tag does not verify is dropped before chitchat decodes
//! it, so a node without the secret neither joins nor changes anyone's view.
//!
//! chitchat 0.13 keeps its message encoding to itself, so each socket encodes and decodes through
//! a chitchat UDP socket of its own on 127.0.0.1 (a loopback hop per message): an outgoing
//! message is sent to a local codec socket, which tags its bytes and sends them to the peer; an
//! incoming datagram whose tag verifies is handed to the chitchat socket to decode, followed by
//! a marker message, so that each decoded message is matched with its sender even when
//! chitchat drops one it cannot decode.
//!
//! A tag authenticates the sender, not freshness: a datagram recorded earlier can be replayed,
//! which only repeats state chitchat already has (its versions only grow). The tag takes
//! [`TAG_LEN`] bytes of the UDP payload: a chitchat message larger than
//! [`MAX_AUTHENTICATED_PAYLOAD`] (a membership state of hundreds of nodes) is not sent, with a
//! warning.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket};
use chitchat::{ChitchatEnvelope, ChitchatMessage, ProtocolVersion};
use hmac::Mac;
use sha2::Sha256;

use crate::secret::Secret;

/// Bytes of the tag appended to every datagram.
pub const TAG_LEN: usize = 32;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

/// The largest chitchat message that can be sent with its tag.
pub const MAX_AUTHENTICATED_PAYLOAD: usize = MAX_DATAGRAM - TAG_LEN;

/// How often a socket logs the datagrams it refused (with their count).
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A chitchat transport over UDP whose datagrams are authenticated by the cluster secret.
#[derive(Clone)]
pub struct AuthenticatedUdpTransport {
    secret: Secret,
    cluster_name: String,
}

impl std::fmt::Debug for AuthenticatedUdpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedUdpTransport")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

impl AuthenticatedUdpTransport {
    /// A transport whose peers must know `secret` and use the same `cluster_name`.
    pub fn new(secret: Secret, cluster_name: impl Into<String>) -> Self {
        Self {
            secret,
            cluster_name: cluster_name.into(),
        }
    }
}

#[async_trait]
impl Transport for AuthenticatedUdpTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let socket = tokio::net::UdpSocket::bind(listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding {listen_addr}/UDP for gossip: {e}"))?;
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let codec = tokio::net::UdpSocket::bind(loopback)
            .await
            .map_err(|e| anyhow::anyhow!("binding the local gossip codec socket: {e}"))?;
        let inner = UdpSocket::open(loopback).await?;
        let inner_addr = inner.local_addr()?;
        let codec_addr = codec
            .local_addr()
            .map_err(|e| anyhow::anyhow!("local gossip codec socket address: {e}"))?;
        let mut inner = inner;
        // The encoding of a `BadCluster` message: handed to decode after every datagram, it
        // marks where that datagram's decoding ends (chitchat drops an undecodable one without a
        // word). No authenticated peer sends one: the tag binds the cluster name.
        inner.send(codec_addr, sentinel()).await?;
        let mut buf = vec![0u8; MAX_DATAGRAM].into_boxed_slice();
        let (n, _) = codec
            .recv_from(&mut buf[..])
            .await
            .map_err(|e| anyhow::anyhow!("encoding the gossip decoding marker: {e}"))?;
        let marker = buf[..n].to_vec();
        Ok(Box::new(AuthenticatedSocket {
            marker,
            keys: self.clone(),
            socket,
            codec,
            codec_addr,
            inner,
            inner_addr,
            in_decoding: VecDeque::new(),
            buf,
            refused: 0,
            last_refused_log: None,
        }))
    }
}

impl AuthenticatedUdpTransport {
    /// The tag of `payload`: HMAC-SHA256 over a domain label, the cluster name and the payload.
    fn mac(&self, payload: &[u8]) -> Option<hmac::Hmac<Sha256>> {
        let mut mac = self.secret.mac(b"durable-dd gossip v1\0")?;
        mac.update(&(self.cluster_name.len() as u64).to_be_bytes());
        mac.update(self.cluster_name.as_bytes());
        mac.update(payload);
        Some(mac)
    }
}

struct AuthenticatedSocket {
    keys: AuthenticatedUdpTransport,
    /// The public socket peers talk to.
    socket: tokio::net::UdpSocket,
    /// Local: receives the encoded outgoing messages, sends the incoming ones to decode.
    codec: tokio::net::UdpSocket,
    codec_addr: SocketAddr,
    /// Local chitchat socket: encodes (sends to `codec`) and decodes (receives from `codec`).
    inner: UdpSocket,
    inner_addr: SocketAddr,
    /// The senders (and sizes) of the datagrams handed to `inner` to decode, oldest first, and
    /// whether that datagram came out decoded already (its marker not yet).
    in_decoding: VecDeque<(SocketAddr, usize, bool)>,
    /// The encoded [`sentinel`].
    marker: Vec<u8>,
    buf: Box<[u8]>,
    /// Datagrams refused since the last log line.
    refused: u64,
    last_refused_log: Option<Instant>,
}

impl AuthenticatedSocket {
    fn note_refused(&mut self, from: SocketAddr, why: &str) {
        self.refused += 1;
        let due = self
            .last_refused_log
            .is_none_or(|t| t.elapsed() >= REFUSED_LOG_INTERVAL);
        if due {
            tracing::warn!(%from, refused = self.refused, reason = why,
                "gossip datagram refused: not authenticated by the cluster secret");
            self.refused = 0;
            self.last_refused_log = Some(Instant::now());
        }
    }
}

/// The message whose encoding marks the end of a datagram handed to decode.
fn sentinel() -> ChitchatEnvelope {
    ChitchatEnvelope {
        version: ProtocolVersion::V0,
        message: ChitchatMessage::BadCluster,
    }
}

fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::OutOfMemory
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
    )
}

#[async_trait]
impl Socket for AuthenticatedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.socket
            .local_addr()
            .map_err(|e| anyhow::anyhow!("gossip socket address: {e}"))
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        // Nothing stale from an earlier, interrupted send.
        while self.codec.try_recv_from(&mut self.buf[..]).is_ok() {}
        self.inner.send(self.codec_addr, envelope).await?;
        let n = loop {
            let (n, from) = self
                .codec
                .recv_from(&mut self.buf[..])
                .await
                .map_err(|e| anyhow::anyhow!("encoding a gossip message: {e}"))?;
            if from == self.inner_addr {
                break n;
            }
        };
        if n > MAX_AUTHENTICATED_PAYLOAD {
            tracing::warn!(%to, bytes = n, max = MAX_AUTHENTICATED_PAYLOAD,
                "gossip message too large to carry its authentication tag: not sent");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let mac = self
            .keys
            .mac(&self.buf[..n])
            .ok_or_else(|| anyhow::anyhow!("the cluster secret cannot key HMAC-SHA256"))?;
        let tag = mac.finalize().into_bytes();
        self.buf[n..n + TAG_LEN].copy_from_slice(&tag);
        match self.socket.send_to(&self.buf[..n + TAG_LEN], to).await {
            Ok(sent) => Ok(SendOutcome {
                num_bytes_sent: sent,
            }),
            Err(e) if transient(&e) => Ok(SendOutcome { num_bytes_sent: 0 }),
            Err(e) => Err(anyhow::anyhow!("sending gossip to {to}: {e}")),
        }
    }

    /// Cancellable (chitchat cancels it at every gossip tick): a datagram handed to the local
    /// chitchat socket stays queued there with its sender until the next call.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            if !self.in_decoding.is_empty() {
                // Already queued on the loopback: returns at once (or is cancelled, and the
                // datagram stays queued for the next call).
                let decoded = self.inner.recv().await?;
                if decoded.from_addr != self.codec_addr {
                    // Sent straight to the local decoding socket: not authenticated.
                    self.note_refused(decoded.from_addr, "not through the codec");
                    continue;
                }
                if matches!(decoded.envelope.message, ChitchatMessage::BadCluster) {
                    // The marker: the front datagram is done (decoded, or dropped by chitchat).
                    if let Some((from, _, false)) = self.in_decoding.pop_front() {
                        tracing::warn!(%from, "authenticated gossip datagram not decodable");
                    }
                    continue;
                }
                if self.in_decoding.front().is_some_and(|(_, _, done)| *done) {
                    // Its marker was lost (an interrupted hand-over): this is the next one's.
                    self.in_decoding.pop_front();
                }
                let Some(front) = self.in_decoding.front_mut() else {
                    continue;
                };
                front.2 = true;
                return Ok(RecvOutcome {
                    from_addr: front.0,
                    envelope: decoded.envelope,
                    num_bytes_received: front.1,
                });
            }
            let (n, from) = match self.socket.recv_from(&mut self.buf[..]).await {
                Ok(r) => r,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(anyhow::anyhow!("receiving gossip: {e}")),
            };
            if n < TAG_LEN {
                self.note_refused(from, "shorter than a tag");
                continue;
            }
            let (payload, tag) = self.buf[..n].split_at(n - TAG_LEN);
            let verified = self
                .keys
                .mac(payload)
                .is_some_and(|mac| mac.verify_slice(tag).is_ok());
            if !verified {
                self.note_refused(from, "bad tag");
                continue;
            }
            match self.codec.send_to(payload, self.inner_addr).await {
                Ok(_) => self.in_decoding.push_back((from, n, false)),
                Err(e) => {
                    tracing::warn!(%from, error = %e, "handing a gossip datagram to decode");
                    continue;
                }
            }
            if let Err(e) = self.codec.send_to(&self.marker, self.inner_addr).await {
                tracing::warn!(error = %e, "handing the gossip decoding marker");
            }
        }
    }
}
