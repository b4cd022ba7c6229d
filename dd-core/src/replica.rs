//! Replica identity.
//!
//! A replica has a stable [`ReplicaId`] (its name, which also keys its durable data) and, for
//! every start of the process, a fresh *incarnation*. CRDTs record their per-replica slots (counter
//! entries, dots) under the [`UniqueReplicaId`] (name + incarnation), as Akka records them under a
//! node's unique address. A restarted replica therefore never reuses a slot or dot it may have
//! handed out before a crash, even if that state was persisted late or not at all.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable name of a replica, for example `"node-a"`.
///
/// It keys the replica's durable data and survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicaId(String);

impl ReplicaId {
    /// Creates a replica id from its name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ReplicaId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for ReplicaId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// One incarnation of a replica: its stable name plus a number unique to this process start.
///
/// This is the identity CRDTs use for their per-replica entries.
///
/// ```
/// use dd_core::{ReplicaId, UniqueReplicaId};
/// let a1 = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// let a2 = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// assert_eq!(a1.replica(), a2.replica());
/// assert_ne!(a1, a2); // a restart never reuses the old identity
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UniqueReplicaId {
    replica: ReplicaId,
    incarnation: u64,
}

impl UniqueReplicaId {
    /// An identity with an explicit incarnation (for tests and deterministic simulations).
    pub fn new(replica: impl Into<ReplicaId>, incarnation: u64) -> Self {
        Self {
            replica: replica.into(),
            incarnation,
        }
    }

    /// A fresh incarnation of `replica`, drawn from the operating system's random source so that
    /// two starts of the same replica never share one.
    pub fn new_incarnation(replica: impl Into<ReplicaId>) -> Self {
        Self::new(replica, rand::random::<u64>())
    }

    /// The stable replica name.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// The incarnation number.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
}

impl fmt::Display for UniqueReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}", self.replica, self.incarnation)
    }
}
