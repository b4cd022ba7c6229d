//! A dot: one event of one replica incarnation.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::replica::UniqueReplicaId;

/// One event (an add or a write) of one replica incarnation: the incarnation and its event
/// counter, starting at 1.
///
/// Dot-based CRDTs ([`ORSet`](super::ORSet), [`MVRegister`](super::MVRegister),
/// [`ORMap`](super::ORMap) and the maps built on it) tag each live entry with the dot of the event
/// that created it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    node: UniqueReplicaId,
    counter: u64,
}

impl Dot {
    /// The dot `counter` of `node`.
    pub fn new(node: UniqueReplicaId, counter: u64) -> Self {
        Self { node, counter }
    }

    /// The replica incarnation that produced the event, by value.
    pub(crate) fn into_node(self) -> UniqueReplicaId {
        self.node
    }

    /// The replica incarnation that produced the event.
    pub fn node(&self) -> &UniqueReplicaId {
        &self.node
    }

    /// The event's counter at that incarnation (1 for its first event).
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.counter)
    }
}
