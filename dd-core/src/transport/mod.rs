//! How replicas exchange [`Message`]s.
//!
//! A [`Transport`] sends a message to a replica (by stable name, best effort: gossip repairs
//! losses) and delivers a single stream of `(sender incarnation, message)`. Two implementations:
//!
//! - [`memory`]: an in-process network with a seeded RNG that can drop, delay, duplicate and
//!   reorder messages and partition replicas, for tests and simulations;
//! - [`tcp`]: TCP with length-delimited postcard frames, a handshake (protocol version, cluster
//!   name and optional shared-secret authentication), bounded memory per connection and
//!   reconnection with backoff.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;

use crate::cluster::Members;

use crate::replica::{ReplicaId, UniqueReplicaId};

pub mod memory;
pub mod tcp;

pub use crate::protocol::{Message, WireDelta, WireEntry, WirePruning, WireState};

/// A message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The sending replica incarnation.
    pub from: UniqueReplicaId,
    /// The message.
    pub message: Message,
}

/// The stream of received messages.
pub type IncomingStream = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

/// Errors of transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// [`Transport::incoming`] was called twice.
    #[error("the incoming stream of {0} was already taken")]
    IncomingTaken(String),
    /// Binding or accepting failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Sends messages to replicas and receives theirs.
pub trait Transport: Send + Sync + 'static {
    /// Sends `message` to the current incarnation of `to`. Best effort and non-blocking: a
    /// message to an unreachable replica is dropped (and logged at debug level).
    fn send(&self, to: &ReplicaId, message: Message);

    /// The stream of received messages; can be taken once.
    fn incoming(&self) -> Result<IncomingStream, TransportError>;

    /// Follows cluster membership (called once by
    /// [`DistributedData::start`](crate::replicator::DistributedData::start)): a transport
    /// that connects to addresses dials new members and drops removed ones. The default does
    /// nothing.
    fn follow_members(&self, members: watch::Receiver<Members>) {
        drop(members);
    }

    /// Stops sending and receiving (called by the replicator on shutdown).
    fn shutdown(&self) {}
}
