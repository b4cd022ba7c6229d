//! Counters of a [`TcpTransport`](super::TcpTransport), for metrics and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a transport's counters (see [`TcpTransport::stats`](super::TcpTransport::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Message frames read from authenticated inbound connections.
    pub frames_received: u64,
    /// Received messages waiting for the replicator right now.
    pub inbound_queued: u64,
    /// The most received messages ever waiting at once (never above `inbound_queue`).
    pub inbound_queued_high_water: u64,
    /// Messages dropped because a peer's outbound queue was full.
    pub outbound_dropped: u64,
    /// Handshakes refused, by either side (other cluster, protocol version, secret).
    pub handshakes_refused: u64,
    /// Inbound connections refused because `max_inbound_connections` were open.
    pub connections_over_limit: u64,
    /// Connections dropped because a frame started and stalled past `frame_timeout`.
    pub stalled_connections: u64,
    /// Connections closed because of an oversized, truncated or malformed frame.
    pub bad_frames: u64,
    /// Times a connection was paused for exceeding `max_frames_per_second`.
    pub rate_limited: u64,
}

/// The live counters behind [`TcpStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_received: AtomicU64,
    pub(crate) inbound_queued: AtomicU64,
    pub(crate) inbound_queued_high_water: AtomicU64,
    pub(crate) outbound_dropped: AtomicU64,
    pub(crate) handshakes_refused: AtomicU64,
    pub(crate) connections_over_limit: AtomicU64,
    pub(crate) stalled_connections: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`, returning the new value.
    pub(crate) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A message entered the inbound queue.
    pub(crate) fn enqueued(&self) {
        let now = self.inbound_queued.fetch_add(1, Ordering::AcqRel) + 1;
        self.inbound_queued_high_water
            .fetch_max(now, Ordering::AcqRel);
    }

    /// A message left the inbound queue.
    pub(crate) fn dequeued(&self) {
        let _ = self
            .inbound_queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }

    pub(crate) fn snapshot(&self) -> TcpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        TcpStats {
            frames_received: get(&self.frames_received),
            inbound_queued: get(&self.inbound_queued),
            inbound_queued_high_water: get(&self.inbound_queued_high_water),
            outbound_dropped: get(&self.outbound_dropped),
            handshakes_refused: get(&self.handshakes_refused),
            connections_over_limit: get(&self.connections_over_limit),
            stalled_connections: get(&self.stalled_connections),
            bad_frames: get(&self.bad_frames),
            rate_limited: get(&self.rate_limited),
        }
    }
}
