//! Replica identity.
//!
//! A replica has a stable [`ReplicaId`] (its name, which also keys its durable data) and, for
//! every start of the process, a fresh *incarnation*. CRDTs record their per-replica slots (counter
//! entries, dots) under the [`UniqueReplicaId`] (name + incarnation), as Akka records them under a
//! node's unique address. A restarted replica therefore never reuses a slot or dot it may have
//! handed out before a crash, even if that state was persisted late or not at all.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
/// An id is a pointer to one shared copy of its name and number, interned per process: every
/// CRDT entry, dot and delta version of the same incarnation shares that copy (8 bytes each
/// instead of a name `String` and a number). Equality, order, hashing, `Debug` and the serde
/// form are those of the name and number.
///
/// ```
/// use dd_core::{ReplicaId, UniqueReplicaId};
/// let a1 = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// let a2 = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
/// assert_eq!(a1.replica(), a2.replica());
/// assert_ne!(a1, a2); // a restart never reuses the old identity
/// ```
#[derive(Clone)]
pub struct UniqueReplicaId(Arc<IdParts>);

/// What a [`UniqueReplicaId`] points to (and how it is serialized: as a struct of that name).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename = "UniqueReplicaId")]
struct IdParts {
    replica: ReplicaId,
    incarnation: u64,
}

/// The process-wide table of live ids, by incarnation number (random, so nearly always one id
/// per number). It holds weak references: an id no CRDT holds any more is freed, and its slot is
/// swept when the table has doubled since the last sweep.
struct Interner {
    by_incarnation: HashMap<u64, Vec<Weak<IdParts>>>,
    swept_at: usize,
}

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);

fn intern(parts: IdParts) -> UniqueReplicaId {
    // A poisoned lock only means another thread panicked while holding it; the table is
    // still consistent (every change to it is a single insert or retain).
    let mut guard = INTERNER.lock().unwrap_or_else(PoisonError::into_inner);
    let table = guard.get_or_insert_with(|| Interner {
        by_incarnation: HashMap::new(),
        swept_at: 0,
    });
    let slot = table.by_incarnation.entry(parts.incarnation).or_default();
    slot.retain(|w| w.strong_count() > 0);
    if let Some(live) = slot
        .iter()
        .filter_map(Weak::upgrade)
        .find(|p| p.replica == parts.replica)
    {
        return UniqueReplicaId(live);
    }
    let id = Arc::new(parts);
    slot.push(Arc::downgrade(&id));
    if table.by_incarnation.len() > 2 * table.swept_at.max(64) {
        table.by_incarnation.retain(|_, slot| {
            slot.retain(|w| w.strong_count() > 0);
            !slot.is_empty()
        });
        table.swept_at = table.by_incarnation.len();
    }
    UniqueReplicaId(id)
}

impl UniqueReplicaId {
    /// An identity with an explicit incarnation (for tests and deterministic simulations).
    pub fn new(replica: impl Into<ReplicaId>, incarnation: u64) -> Self {
        intern(IdParts {
            replica: replica.into(),
            incarnation,
        })
    }

    /// A fresh incarnation of `replica`, drawn from the operating system's random source so that
    /// two starts of the same replica never share one.
    pub fn new_incarnation(replica: impl Into<ReplicaId>) -> Self {
        Self::new(replica, rand::random::<u64>())
    }

    /// The stable replica name.
    pub fn replica(&self) -> &ReplicaId {
        &self.0.replica
    }

    /// The incarnation number.
    pub fn incarnation(&self) -> u64 {
        self.0.incarnation
    }
}

impl PartialEq for UniqueReplicaId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for UniqueReplicaId {}

impl PartialOrd for UniqueReplicaId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UniqueReplicaId {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl Hash for UniqueReplicaId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for UniqueReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UniqueReplicaId")
            .field("replica", &self.0.replica)
            .field("incarnation", &self.0.incarnation)
            .finish()
    }
}

impl Serialize for UniqueReplicaId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UniqueReplicaId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IdParts::deserialize(deserializer).map(intern)
    }
}

impl fmt::Display for UniqueReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{:016x}", self.0.replica, self.0.incarnation)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_one_incarnation_share_one_copy() {
        let a = UniqueReplicaId::new("interned-a", 7);
        let b = UniqueReplicaId::new(ReplicaId::new("interned-a".to_owned()), 7);
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let other_name = UniqueReplicaId::new("interned-b", 7);
        assert_ne!(a, other_name);
        assert_eq!(a.cmp(&other_name), Ordering::Less);
        assert_eq!(std::mem::size_of::<UniqueReplicaId>(), 8);
    }

    #[test]
    fn serde_form_and_debug_are_those_of_name_and_number() {
        #[derive(Serialize)]
        struct Plain {
            replica: ReplicaId,
            incarnation: u64,
        }
        let id = UniqueReplicaId::new("serde-x", 0x1234_5678);
        let plain = Plain {
            replica: ReplicaId::new("serde-x"),
            incarnation: 0x1234_5678,
        };
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        let back: UniqueReplicaId = postcard::from_bytes(&bytes).unwrap();
        assert!(Arc::ptr_eq(&back.0, &id.0));
        assert_eq!(
            format!("{id:?}"),
            r#"UniqueReplicaId { replica: ReplicaId("serde-x"), incarnation: 305419896 }"#
        );
    }

    #[test]
    fn freed_ids_are_swept_from_the_table() {
        for i in 0..10_000u64 {
            let _ = UniqueReplicaId::new("swept", u64::MAX - i);
        }
        let left = {
            let guard = INTERNER.lock().unwrap();
            guard
                .as_ref()
                .unwrap()
                .by_incarnation
                .keys()
                .filter(|&&n| n > u64::MAX - 10_000)
                .count()
        };
        // Swept whenever the table doubled: at most about as many left as the table held.
        assert!(
            left < 5_000,
            "{left} of 10000 dropped ids still in the table"
        );
    }
}
