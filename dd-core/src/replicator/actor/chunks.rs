//! Full states larger than one gossip message, sent in pieces and reassembled.
//!
//! A state whose encoding is larger than `max_gossip_bytes` (so possibly larger than a
//! transport frame, 8 MiB on TCP) goes as [`Message::EntryChunk`]s of at most
//! `max_gossip_bytes` each. The receiver keeps the pieces of each transfer until all arrived,
//! then decodes and merges the entry. `max_value_bytes` bounds both sides: a larger state is
//! not sent, a larger announced transfer is refused, each with an error naming the key, the
//! peer, the size and the setting; all transfers being reassembled at once hold at most twice
//! `max_value_bytes`; pieces may arrive in any order, duplicates are ignored. A transfer that
//! stalls (a lost piece) is dropped after [`STALE_AFTER_INTERVALS`] gossip intervals without a
//! new piece; a key's state goes in pieces to the same peer at most once per
//! [`RESEND_AFTER_INTERVALS`], after which anti-entropy sends it again if still needed.

use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use super::Replica;
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::replicator::protocol::{Message, WireEntry};

/// Gossip intervals without a new piece after which an incomplete transfer is dropped.
pub(super) const STALE_AFTER_INTERVALS: u32 = 30;
/// Gossip intervals during which a key's state is not sent in pieces to the same peer again
/// (every round of a replica and of its peer may ask for it while a transfer is under way).
pub(super) const RESEND_AFTER_INTERVALS: u32 = 10;

/// The pieces received so far of one transfer (in any order: a network may reorder them).
pub(super) struct Partial {
    key: String,
    count: u32,
    total_bytes: usize,
    received: usize,
    pieces: BTreeMap<u32, Vec<u8>>,
    /// When the last piece arrived.
    progress: Instant,
}

/// The transfers being reassembled, by sender and transfer id.
#[derive(Default)]
pub(super) struct Reassembly {
    partials: HashMap<(UniqueReplicaId, u64), Partial>,
    /// The announced sizes of all partials.
    reserved: usize,
    /// When this replica last sent each key's state in pieces to each peer.
    sent: HashMap<(ReplicaId, String), Instant>,
}

impl Replica {
    /// Sends one entry as pieces of at most `max_gossip_bytes`.
    pub(super) fn send_chunked(&mut self, to: &ReplicaId, entry: &WireEntry) {
        let now = Instant::now();
        let resend = self
            .settings
            .gossip_interval
            .saturating_mul(RESEND_AFTER_INTERVALS);
        let sent = (to.clone(), entry.key.clone());
        if self
            .reassembly
            .sent
            .get(&sent)
            .is_some_and(|t| now.saturating_duration_since(*t) < resend)
        {
            return;
        }
        let encoded = match postcard::to_stdvec(entry) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(replica = %self.self_id, key = entry.key, error = %e,
                    "cannot encode state");
                return;
            }
        };
        let limit = self.settings.max_value_bytes;
        if encoded.len() > limit {
            tracing::error!(replica = %self.self_id, key = entry.key, to = %to,
                bytes = encoded.len(), max_value_bytes = limit,
                "state of key '{}' is {} bytes encoded, more than max_value_bytes ({limit}): \
                 not sent; raise max_value_bytes on every replica to replicate it",
                entry.key, encoded.len());
            return;
        }
        let piece = self.settings.max_gossip_bytes.max(1);
        let Ok(count) = u32::try_from(encoded.len().div_ceil(piece)) else {
            return;
        };
        self.reassembly.sent.insert(sent, now);
        let transfer = self.next_transfer;
        self.next_transfer = self.next_transfer.wrapping_add(1);
        let total_bytes = encoded.len() as u64;
        for (index, bytes) in (0u32..).zip(encoded.chunks(piece)) {
            self.transport.send(
                to,
                Message::EntryChunk {
                    transfer,
                    key: entry.key.clone(),
                    index,
                    count,
                    total_bytes,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    /// Takes one piece; merges the entry once its last piece arrived.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_entry_chunk(
        &mut self,
        from: &UniqueReplicaId,
        transfer: u64,
        key: String,
        index: u32,
        count: u32,
        total_bytes: u64,
        bytes: Vec<u8>,
    ) {
        let limit = self.settings.max_value_bytes;
        let id = (from.clone(), transfer);
        if !self.reassembly.partials.contains_key(&id) {
            let total = usize::try_from(total_bytes).unwrap_or(usize::MAX);
            if total > limit {
                tracing::error!(replica = %self.self_id, %from, key, bytes = total_bytes,
                    max_value_bytes = limit,
                    "state of key '{key}' from {from} is {total_bytes} bytes encoded, more than \
                     max_value_bytes ({limit}): refused; raise max_value_bytes on every replica \
                     to replicate it");
                return;
            }
            if self.reassembly.reserved.saturating_add(total) > limit.saturating_mul(2) {
                tracing::warn!(replica = %self.self_id, %from, key, bytes = total_bytes,
                    "too many large states being received at once; this one is refused and \
                     comes again with a later anti-entropy round");
                return;
            }
            if count == 0 || u64::from(count) > total_bytes {
                tracing::warn!(replica = %self.self_id, %from, key, count, total_bytes,
                    "malformed chunked state ignored");
                return;
            }
            self.reassembly.reserved += total;
            self.reassembly.partials.insert(
                id.clone(),
                Partial {
                    key: key.clone(),
                    count,
                    total_bytes: total,
                    received: 0,
                    pieces: BTreeMap::new(),
                    progress: Instant::now(),
                },
            );
        }
        let Some(p) = self.reassembly.partials.get_mut(&id) else {
            return;
        };
        if p.pieces.contains_key(&index) {
            return; // a duplicate
        }
        let fits = p.received + bytes.len() <= p.total_bytes;
        if p.key != key || p.count != count || index >= count || bytes.is_empty() || !fits {
            tracing::warn!(replica = %self.self_id, %from, key, index,
                "piece not matching its transfer: transfer dropped (anti-entropy sends the state \
                 again)");
            self.drop_transfer(&id);
            return;
        }
        p.received += bytes.len();
        p.progress = Instant::now();
        p.pieces.insert(index, bytes);
        if p.pieces.len() < usize::try_from(p.count).unwrap_or(usize::MAX) {
            return;
        }
        let Some(done) = self.drop_transfer(&id) else {
            return;
        };
        if done.received != done.total_bytes {
            tracing::warn!(replica = %self.self_id, %from, key,
                "chunked state of the wrong length ignored");
            return;
        }
        let mut encoded = Vec::with_capacity(done.total_bytes);
        for piece in done.pieces.into_values() {
            encoded.extend_from_slice(&piece);
        }
        match postcard::from_bytes::<WireEntry>(&encoded) {
            Ok(entry) if entry.key == done.key => self.merge_wire_entries(from, vec![entry]),
            Ok(entry) => tracing::warn!(replica = %self.self_id, %from, key,
                found = entry.key, "chunked state of another key ignored"),
            Err(e) => tracing::warn!(replica = %self.self_id, %from, key, error = %e,
                "undecodable chunked state"),
        }
    }

    fn drop_transfer(&mut self, id: &(UniqueReplicaId, u64)) -> Option<Partial> {
        let p = self.reassembly.partials.remove(id)?;
        self.reassembly.reserved -= p.total_bytes;
        Some(p)
    }

    /// Drops transfers that stalled (see [`STALE_AFTER_INTERVALS`]).
    pub(super) fn drop_stale_transfers(&mut self) {
        let window = self
            .settings
            .gossip_interval
            .saturating_mul(STALE_AFTER_INTERVALS);
        let now = Instant::now();
        let stale: Vec<_> = self
            .reassembly
            .partials
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.progress) > window)
            .map(|(id, _)| id.clone())
            .collect();
        let resend = self
            .settings
            .gossip_interval
            .saturating_mul(RESEND_AFTER_INTERVALS);
        self.reassembly
            .sent
            .retain(|_, t| now.saturating_duration_since(*t) < resend);
        for id in stale {
            if let Some(p) = self.drop_transfer(&id) {
                tracing::debug!(replica = %self.self_id, from = %id.0, key = p.key,
                    "stalled chunked state dropped");
            }
        }
    }
}
