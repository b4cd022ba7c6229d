//! The messages replicas exchange, serialised with postcard by every transport.
//!
//! This module sits below both the [`transport`](crate::transport)s, which carry a
//! [`Message`] without looking inside, and the [`replicator`](crate::replicator), which makes
//! and reads them.
//!
//! Values travel as `(type name, postcard bytes)` so that a receiver decodes them with its
//! [`TypeRegistry`](crate::data::TypeRegistry) and never reinterprets one type as another.

use serde::{Deserialize, Serialize};

use crate::replica::{ReplicaId, UniqueReplicaId};

/// The state of one key on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireState {
    /// A CRDT value: its stable type name and its postcard-encoded full state.
    Data {
        /// The stable type name (see [`crate::TypeName`]).
        type_name: String,
        /// The full state, encoded with postcard.
        bytes: Vec<u8>,
    },
    /// The key was deleted (a tombstone, which wins over any value).
    Deleted,
}

/// Pruning progress for one removed replica incarnation within one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WirePruning {
    /// The leader `owner` started pruning; `seen` are the members that have seen the marker.
    Initialized {
        /// The replica that will collapse the removed entries into its own.
        owner: UniqueReplicaId,
        /// Members that have seen the marker.
        seen: Vec<ReplicaId>,
    },
    /// The removed incarnation's entries were collapsed into the owner's; any that still
    /// arrive are dropped.
    Performed {
        /// The incarnation whose entries received the collapse, when known (markers of
        /// versions before protocol 4 did not say). A receiver that has pruned that owner since
        /// without this marker knows the collapse is not in its state and keeps the removed
        /// incarnation's entries instead (see `Envelope::merge`).
        owner: Option<UniqueReplicaId>,
    },
}

/// One key's replicated envelope: value, delta versions and pruning markers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The key id.
    pub key: String,
    /// The value or tombstone.
    pub state: WireState,
    /// The highest delta sequence number per origin that this state includes.
    pub delta_versions: Vec<(UniqueReplicaId, u64)>,
    /// Pruning markers, per removed incarnation.
    pub pruning: Vec<(UniqueReplicaId, WirePruning)>,
}

/// A delta of one key produced by the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDelta {
    /// The key id.
    pub key: String,
    /// The stable type name of the key's value.
    pub type_name: String,
    /// The sender's sequence number for this key (1, 2, 3, ...).
    pub seq: u64,
    /// The delta, encoded with postcard.
    pub bytes: Vec<u8>,
}

/// A replicator message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Anti-entropy: hashes of nodes of the sender's Merkle tree of key digests (the
    /// replicator's `merkle` module). A gossip round starts with the root (`level` 0); the
    /// receiver answers with the children of every node whose hash differs from its own, one
    /// level deeper, until the leaves, whose differing ones it answers with
    /// [`Message::LeafDigests`].
    Tree {
        /// The depth of the sender's tree; a receiver whose tree has another depth ignores
        /// the message (and logs it).
        depth: u8,
        /// The level of these nodes (0: the root; `depth`: the leaves).
        level: u8,
        /// `(index within the level, hash)` of the sender's nodes.
        nodes: Vec<(u32, u64)>,
    },
    /// Anti-entropy: the digests of every key of the sender in the given leaves of its Merkle
    /// tree (leaves whose hash differed from the receiver's). The receiver answers with a
    /// [`Message::Gossip`] carrying the states that differ and asking for the sender's.
    LeafDigests {
        /// The depth of the sender's tree.
        depth: u8,
        /// The leaves covered: every key of the sender in them is in `digests`.
        leaves: Vec<u32>,
        /// Whether `digests` holds every key of the sender (`leaves` is then empty): a replica
        /// with few keys starts its rounds with all its digests instead of its root, which
        /// repairs in one round trip instead of `depth + 2`.
        whole: bool,
        /// `(key, digest)` for every key of the sender in `leaves`.
        digests: Vec<(String, u64)>,
    },
    /// Anti-entropy: full states, plus the keys the sender wants the receiver to send back.
    Gossip {
        /// Full states for the receiver to merge.
        entries: Vec<WireEntry>,
        /// Keys whose state the sender wants.
        request: Vec<String>,
    },
    /// One piece of a full state too large for one [`Message::Gossip`] (more than
    /// `max_gossip_bytes` encoded): the postcard encoding of its [`WireEntry`], cut into
    /// `count` pieces sent in order. The receiver reassembles them (up to its
    /// `max_value_bytes`) and merges the entry as if it came in a `Gossip`.
    EntryChunk {
        /// The sender's id of this transfer (unique per sender incarnation).
        transfer: u64,
        /// The key id.
        key: String,
        /// Which piece this is (0 to `count - 1`).
        index: u32,
        /// How many pieces the transfer has.
        count: u32,
        /// The length of the whole encoded entry.
        total_bytes: u64,
        /// This piece.
        bytes: Vec<u8>,
    },
    /// Deltas of local updates, sent between gossip rounds.
    Deltas {
        /// The deltas, each with the sender's sequence number.
        deltas: Vec<WireDelta>,
    },
    /// A write coordinated by the sender; answered with [`Message::WriteAck`].
    Write {
        /// The coordinator's request id.
        request: u64,
        /// The state to merge.
        entry: WireEntry,
    },
    /// The receiver merged (and, for durable keys, stored) a [`Message::Write`].
    WriteAck {
        /// The coordinator's request id.
        request: u64,
    },
    /// A read coordinated by the sender; answered with [`Message::ReadResult`].
    Read {
        /// The coordinator's request id.
        request: u64,
        /// The key id.
        key: String,
    },
    /// The answer to a [`Message::Read`].
    ReadResult {
        /// The coordinator's request id.
        request: u64,
        /// The key's state, if the receiver has it.
        entry: Option<WireEntry>,
    },
    /// Full states of a stream: states too many for one [`Message::Gossip`] (a join, the
    /// repair of many keys) go as batches, at most `stream_window` of them unacknowledged
    /// per receiver. The receiver merges them like a `Gossip` and answers with a
    /// [`Message::StreamAck`]; the sender sends a batch unacknowledged for too long again.
    StreamBatch {
        /// The sender's number of this stream (unique per sender incarnation): with the
        /// sender's incarnation it identifies the stream, so that an acknowledgement of another
        /// stream (one before the sender restarted) is told apart.
        stream: u64,
        /// The sender's number of this batch (unique per sender incarnation).
        seq: u64,
        /// Full states for the receiver to merge.
        entries: Vec<WireEntry>,
    },
    /// The receiver merged the [`Message::StreamBatch`] `seq` of stream `stream` of the sender
    /// incarnation `incarnation`: the sender may send another. A sender ignores an
    /// acknowledgement whose incarnation or stream is not that of its current stream to the
    /// receiver.
    StreamAck {
        /// The incarnation of the batch's sender (as the receiver saw it).
        incarnation: u64,
        /// The batch's stream.
        stream: u64,
        /// The batch's number.
        seq: u64,
    },
}

impl Message {
    /// Encodes with postcard.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_stdvec(self)
    }

    /// Decodes from postcard.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}
