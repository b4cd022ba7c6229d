//! Many full states to one peer as an acknowledged stream, with a window of messages in flight.
//!
//! States too many for one [`Message::Gossip`] (an empty replica joining, a replica far behind,
//! the repair of many keys) are not all encoded and handed to the transport at once: their keys
//! are queued per peer (names only, not states), and at most `stream_window` batches
//! ([`Message::StreamBatch`], each of at most `max_gossip_entries` states and
//! `max_gossip_bytes`) are unacknowledged at any time. The receiver merges a batch and answers
//! with a [`Message::StreamAck`]; each ack lets the next batch go, encoded from the current
//! state of its keys. Memory per stream is about one window of messages on either side, plus the
//! key names still to send on the sender.
//!
//! A stream without an acknowledgement for [`ACK_TIMEOUT_INTERVALS`] gossip intervals while
//! batches are in flight (a lost link, messages dropped by the network) has the keys of those
//! batches queued again and goes on: after a disconnect only the batches that were in flight are
//! sent again, not the keys acknowledged before it. The timeout doubles with every such resend
//! without an acknowledgement in between (up to [`MAX_BACKOFF_DOUBLINGS`] times), so a receiver
//! slower than the timeout (a loaded machine) is not flooded with copies; and the timeout is at
//! least [`ACK_DELAY_FACTOR`] times the slowest recent acknowledgement of the stream (from
//! sending a batch to its acknowledgement), so a receiver that acknowledges steadily but slowly
//! gets no copies at all once its first batches are acknowledged. The late acknowledgement of a
//! batch already sent again still times the receiver (a receiver slower than the longest
//! timeout would otherwise never have one counted, and get its first batch again for ever).
//! Keys queued or in flight are not queued twice. No anti-entropy round starts with a peer
//! while a stream with it progresses (see [`Replica::defers_anti_entropy`]): a round would only
//! find the keys the stream is still carrying. A state
//! larger than `max_gossip_bytes` goes in pieces outside the window (see [`super::chunks`]).
//! The stream to a peer that is no longer a member is dropped.
//!
//! Each stream is identified by the sender's incarnation and a stream number (a new one each
//! time a stream to a peer starts), carried by its batches and echoed by their
//! acknowledgements. An acknowledgement of another stream is ignored: batch numbers start again
//! after the sender restarts, so an acknowledgement sent to the previous incarnation (still on
//! its way, or replayed by the network) would otherwise release a batch of the new stream that
//! the receiver never merged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use std::time::Duration;

use tokio::time::Instant;

use super::Replica;
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::replicator::StreamStatus;
use crate::replicator::protocol::{Message, WireEntry, WireState};

/// Gossip intervals without an acknowledgement after which the batches in flight are sent again.
pub(super) const ACK_TIMEOUT_INTERVALS: u32 = 2;
/// How often the timeout doubles while resends get no acknowledgement (2 x 2^3 = 16 intervals).
pub(super) const MAX_BACKOFF_DOUBLINGS: u32 = 3;
/// The timeout is at least this many times the slowest recent acknowledgement of the stream,
/// so that a receiver slower than [`ACK_TIMEOUT_INTERVALS`] (a loaded machine, a long queue in
/// front of the batches) does not get copies of batches it is still working through.
pub(super) const ACK_DELAY_FACTOR: u32 = 2;
/// How many windows of batches sent again an [`Outbox`] remembers the sending time of.
const EXPIRED_KEPT_PER_WINDOW: usize = 4;

/// One batch sent and not yet acknowledged.
struct InFlight {
    keys: Vec<String>,
    /// Its entries' sizes (as [`entry_size`] counts them).
    bytes: usize,
    /// When it was sent.
    sent_at: Instant,
}

/// The stream of states to one peer.
struct Outbox {
    /// This stream's number (unique per sender incarnation).
    stream: u64,
    /// Keys still to send, in key order.
    queue: BTreeSet<String>,
    /// Batches sent and not yet acknowledged, by number.
    in_flight: BTreeMap<u64, InFlight>,
    /// The keys of `in_flight`.
    in_flight_keys: HashSet<String>,
    /// The bytes of `in_flight`.
    in_flight_bytes: usize,
    /// A state taken from the queue that did not fit the last batch: it opens the next one.
    carry: Option<(WireEntry, usize)>,
    /// The last acknowledgement, or the sending of a batch while none was in flight.
    progress: Option<Instant>,
    /// Resends since the last acknowledgement (the timeout doubles with each).
    stalls: u32,
    /// The slowest recent acknowledgement (from sending a batch to its acknowledgement; it
    /// decays by an eighth with each faster one): the timeout is at least twice it.
    ack_delay: Duration,
    /// When the most recent batches whose keys were queued again after the timeout were sent,
    /// by number (at most [`EXPIRED_KEPT_PER_WINDOW`] windows of them): the late
    /// acknowledgement of such a batch still times the receiver (see [`Replica::on_stream_ack`]).
    expired: BTreeMap<u64, Instant>,
}

impl Outbox {
    fn new(stream: u64) -> Self {
        Self {
            stream,
            queue: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            in_flight_keys: HashSet::new(),
            in_flight_bytes: 0,
            carry: None,
            progress: None,
            stalls: 0,
            ack_delay: Duration::ZERO,
            expired: BTreeMap::new(),
        }
    }

    fn is_done(&self) -> bool {
        self.queue.is_empty() && self.in_flight.is_empty() && self.carry.is_none()
    }

    /// The bytes this stream holds: its batches in flight and the state carried to the next.
    fn buffered(&self) -> usize {
        self.in_flight_bytes + self.carry.as_ref().map_or(0, |(_, size)| *size)
    }
}

/// The streams of this replica, by receiver.
#[derive(Default)]
pub(super) struct Streams {
    outboxes: HashMap<ReplicaId, Outbox>,
    /// The number of the next batch sent (to any peer).
    next_seq: u64,
    /// The number of the next stream started (to any peer).
    next_stream: u64,
    /// The counters of the streams to each peer (kept after a stream ends, until the peer
    /// leaves).
    stats: HashMap<ReplicaId, StreamStatus>,
    /// When the last batch of each sender's stream arrived, by sender incarnation (see
    /// [`Replica::defers_anti_entropy`]).
    last_received: HashMap<UniqueReplicaId, Instant>,
}

/// `n` as a counter of [`StreamStatus`] (saturating).
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Counts `n` more in a counter of [`StreamStatus`].
fn add(counter: &mut u64, n: usize) {
    *counter = counter.saturating_add(count(n));
}

/// What a state takes in a batch (as `send_entries` counts it).
fn entry_size(entry: &WireEntry) -> usize {
    let state = match &entry.state {
        WireState::Data { bytes, .. } => bytes.len(),
        WireState::Deleted => 0,
    };
    state + entry.key.len()
}

impl Replica {
    /// Queues the states of `keys` for `to` and sends what the window allows.
    pub(super) fn stream_keys(&mut self, to: &ReplicaId, keys: Vec<String>) {
        let streams = &mut self.streams;
        let outbox = streams.outboxes.entry(to.clone()).or_insert_with(|| {
            let stream = streams.next_stream;
            streams.next_stream = streams.next_stream.wrapping_add(1);
            Outbox::new(stream)
        });
        for key in keys {
            if !outbox.in_flight_keys.contains(&key) {
                outbox.queue.insert(key);
            }
        }
        self.pump_stream(to);
    }

    /// Sends batches to `to` until its window is full or its queue empty.
    fn pump_stream(&mut self, to: &ReplicaId) {
        let window = self.settings.stream_window.max(1);
        let max_entries = self.settings.max_gossip_entries.max(1);
        let max_bytes = self.settings.max_gossip_bytes;
        loop {
            let Some(outbox) = self.streams.outboxes.get_mut(to) else {
                return;
            };
            if outbox.in_flight.len() >= window {
                return;
            }
            let mut entries = Vec::new();
            let mut keys = Vec::new();
            let mut bytes = 0usize;
            let mut carry = outbox.carry.take();
            loop {
                let (entry, size) = match carry.take() {
                    Some(c) => c,
                    None => {
                        let Some(outbox) = self.streams.outboxes.get_mut(to) else {
                            return;
                        };
                        let Some(key) = outbox.queue.pop_first() else {
                            break;
                        };
                        let Some(entry) = self.wire(&key) else {
                            continue;
                        };
                        let size = entry_size(&entry);
                        (entry, size)
                    }
                };
                if size > max_bytes {
                    self.send_chunked(to, &entry);
                    continue;
                }
                if !entries.is_empty() && bytes + size > max_bytes {
                    if let Some(outbox) = self.streams.outboxes.get_mut(to) {
                        outbox.carry = Some((entry, size));
                    }
                    break;
                }
                bytes += size;
                keys.push(entry.key.clone());
                entries.push(entry);
                if entries.len() >= max_entries {
                    break;
                }
            }
            let Some(outbox) = self.streams.outboxes.get_mut(to) else {
                return;
            };
            if entries.is_empty() {
                if outbox.is_done() {
                    self.streams.outboxes.remove(to);
                }
                return;
            }
            let seq = self.streams.next_seq;
            self.streams.next_seq = self.streams.next_seq.wrapping_add(1);
            outbox.in_flight_keys.extend(keys.iter().cloned());
            if outbox.in_flight.is_empty() {
                outbox.progress = Some(Instant::now());
            }
            outbox.in_flight.insert(
                seq,
                InFlight {
                    keys,
                    bytes,
                    sent_at: Instant::now(),
                },
            );
            outbox.in_flight_bytes += bytes;
            let buffered = count(outbox.buffered());
            let stream = outbox.stream;
            let stats = self.streams.stats.entry(to.clone()).or_default();
            add(&mut stats.batches_sent, 1);
            stats.peak_buffered_bytes = stats.peak_buffered_bytes.max(buffered);
            stats.largest_batch_bytes = stats.largest_batch_bytes.max(count(bytes));
            self.transport.send(
                to,
                Message::StreamBatch {
                    stream,
                    seq,
                    entries,
                },
            );
        }
    }

    /// Merges a batch of a peer's stream and acknowledges it (naming the sender's incarnation
    /// and stream).
    pub(super) fn on_stream_batch(
        &mut self,
        from: &UniqueReplicaId,
        stream: u64,
        seq: u64,
        entries: Vec<WireEntry>,
    ) {
        self.streams
            .last_received
            .insert(from.clone(), Instant::now());
        self.merge_wire_entries(from, entries);
        self.transport.send(
            from.replica(),
            Message::StreamAck {
                incarnation: from.incarnation(),
                stream,
                seq,
            },
        );
    }

    /// A peer merged batch `seq` of stream `stream` of this replica's incarnation
    /// `incarnation`: if that is the current stream to it, the next batch may go; an
    /// acknowledgement of another stream or incarnation is ignored.
    pub(super) fn on_stream_ack(
        &mut self,
        from: &UniqueReplicaId,
        incarnation: u64,
        stream: u64,
        seq: u64,
    ) {
        let to = from.replica();
        let Some(outbox) = self.streams.outboxes.get_mut(to) else {
            return;
        };
        if incarnation != self.self_id.incarnation() || stream != outbox.stream {
            add(
                &mut self.streams.stats.entry(to.clone()).or_default().stale_acks,
                1,
            );
            tracing::debug!(replica = %self.self_id, %from, incarnation, stream, seq,
                current = outbox.stream, "acknowledgement of another stream ignored");
            return;
        }
        let now = Instant::now();
        let Some(done) = outbox.in_flight.remove(&seq) else {
            // A duplicate, or a batch whose keys went again after the timeout. The latter's
            // late acknowledgement times the receiver all the same: without it, a receiver
            // slower than the longest timeout would never have an acknowledgement counted, and
            // the stream would send its first batch again for ever.
            if let Some(sent_at) = outbox.expired.remove(&seq) {
                let delay = now.saturating_duration_since(sent_at);
                outbox.ack_delay = delay.max(outbox.ack_delay);
                outbox.progress = Some(now);
                outbox.stalls = 0;
                tracing::debug!(replica = %self.self_id, %from, seq, ?delay,
                    "late acknowledgement of a batch sent again: the timeout follows it");
            }
            return;
        };
        for key in &done.keys {
            outbox.in_flight_keys.remove(key);
        }
        outbox.in_flight_bytes = outbox.in_flight_bytes.saturating_sub(done.bytes);
        let delay = now.saturating_duration_since(done.sent_at);
        outbox.ack_delay = delay.max(outbox.ack_delay.saturating_sub(outbox.ack_delay / 8));
        outbox.progress = Some(now);
        outbox.stalls = 0;
        self.pump_stream(to);
    }

    /// Queues again the keys of the batches in flight of every stream without an
    /// acknowledgement for its timeout (see [`ACK_TIMEOUT_INTERVALS`]) and goes on with every
    /// stream; drops the streams to peers that are no longer members.
    pub(super) fn resume_streams(&mut self) {
        let members = &self.members;
        self.streams
            .outboxes
            .retain(|peer, _| members.contains_key(peer));
        self.streams
            .stats
            .retain(|peer, _| members.contains_key(peer));
        let incarnations = &self.incarnations;
        self.streams
            .last_received
            .retain(|from, _| incarnations.get(from.replica()) == Some(from));
        let base = self.ack_timeout();
        let now = Instant::now();
        let kept = self
            .settings
            .stream_window
            .max(1)
            .saturating_mul(EXPIRED_KEPT_PER_WINDOW);
        let mut resumed = Vec::new();
        for (peer, outbox) in &mut self.streams.outboxes {
            let timeout = base
                .max(outbox.ack_delay.saturating_mul(ACK_DELAY_FACTOR))
                .saturating_mul(1 << outbox.stalls.min(MAX_BACKOFF_DOUBLINGS));
            let stalled = !outbox.in_flight.is_empty()
                && outbox
                    .progress
                    .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
            if stalled {
                let batches = outbox.in_flight.len();
                for (seq, b) in std::mem::take(&mut outbox.in_flight) {
                    outbox.expired.insert(seq, b.sent_at);
                    outbox.queue.extend(b.keys);
                }
                while outbox.expired.len() > kept {
                    outbox.expired.pop_first();
                }
                outbox.in_flight_keys.clear();
                outbox.in_flight_bytes = 0;
                outbox.stalls = outbox.stalls.saturating_add(1);
                add(
                    &mut self
                        .streams
                        .stats
                        .entry(peer.clone())
                        .or_default()
                        .batches_resent,
                    batches,
                );
                tracing::debug!(replica = %self.self_id, to = %peer, batches,
                    queued = outbox.queue.len(), stalls = outbox.stalls,
                    "stream batches unacknowledged: sent again");
            }
            if outbox.in_flight.len() < self.settings.stream_window {
                resumed.push(peer.clone());
            }
        }
        for peer in resumed {
            self.pump_stream(&peer);
        }
    }
}

impl Replica {
    /// [`ACK_TIMEOUT_INTERVALS`] gossip intervals: the shortest resend timeout, and how recent
    /// a stream's progress must be for the anti-entropy rounds with its peer to wait.
    fn ack_timeout(&self) -> Duration {
        self.settings
            .gossip_interval
            .saturating_mul(ACK_TIMEOUT_INTERVALS)
    }

    /// Whether an anti-entropy round with `peer` waits: while this replica streams to `peer`
    /// (its stream acknowledged within [`ACK_TIMEOUT_INTERVALS`] gossip intervals), or
    /// receives a stream from `peer`'s current incarnation (a batch within as long; a restarted
    /// peer gets its round at once). A round then would only find
    /// the keys the stream is still carrying: at 1,000,000 keys it compares every key's digest
    /// on both sides and queues every key not yet received again, more work per gossip
    /// interval than the interval, so the join never finished. The rounds resume when the
    /// stream ends or stalls, and find what it did not carry.
    pub(super) fn defers_anti_entropy(&self, peer: &ReplicaId) -> bool {
        let window = self.ack_timeout();
        let now = Instant::now();
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < window);
        let sending = self
            .streams
            .outboxes
            .get(peer)
            .is_some_and(|o| !o.is_done() && recent(o.progress));
        let receiving = self
            .incarnations
            .get(peer)
            .and_then(|current| self.streams.last_received.get(current))
            .is_some_and(|t| recent(Some(*t)));
        sending || receiving
    }

    /// The counters of the streams to each peer, with what each buffers now.
    pub(super) fn stream_status(&self) -> BTreeMap<ReplicaId, StreamStatus> {
        self.streams
            .stats
            .iter()
            .map(|(peer, stats)| {
                let mut status = *stats;
                if let Some(outbox) = self.streams.outboxes.get(peer) {
                    status.buffered_bytes = count(outbox.buffered());
                    status.queued_keys = count(outbox.queue.len());
                }
                (peer.clone(), status)
            })
            .collect()
    }
}
