//! Loading a replica's durable data at start, pruning records first.
//!
//! Stored values may predate pruning that the rest of the cluster performed while this replica
//! was away (for any length of time). Every value is therefore brought in line with the pruning
//! markers stored with it before the replica serves or gossips anything (never by collapsing an
//! incarnation again from the stored state: see `Envelope::apply_loaded_markers`), and the removed
//! incarnations this replica knew of (plus its own earlier incarnations, found in its data) are
//! handed to the pruning leader logic so that they are pruned too.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;

use super::envelope::{Envelope, LoadedMarker};
use super::error::ReplicatorError;
use super::pruning_record::{
    PEERS_KEY, PrunedIncarnations, REMOVED_KEY, RESTARTED_KEY, RemovedIncarnations, is_reserved,
    marked_key,
};
use crate::data::{DataError, TypeRegistry};
use crate::durable::{CrdtValueStore, DurableValue};
use crate::replica::{ReplicaId, UniqueReplicaId};

/// What a replica starts from.
#[derive(Default)]
pub(crate) struct Recovered {
    /// Every key's envelope, with its pruning markers applied.
    pub(crate) data: BTreeMap<String, Envelope>,
    /// Incarnations still to be pruned: the stored removed set plus this replica's own earlier
    /// incarnations that still have entries.
    pub(crate) removed: BTreeSet<UniqueReplicaId>,
    /// The removed set as it is in the store.
    pub(crate) stored_removed: BTreeSet<UniqueReplicaId>,
    /// The stored removed incarnations whose replica restarted (see `RESTARTED_KEY`).
    pub(crate) restarted: BTreeSet<UniqueReplicaId>,
    /// The peers of the member list the store last recorded (see `PEERS_KEY`).
    pub(crate) peers: BTreeSet<ReplicaId>,
}

fn reserved_value<T: Clone + 'static>(
    key: &str,
    value: DurableValue,
    expected: String,
) -> Result<Option<T>, ReplicatorError> {
    match value {
        DurableValue::Deleted => Ok(None),
        DurableValue::Data(d) => match d.downcast_ref::<T>() {
            Some(v) => Ok(Some(v.clone())),
            None => Err(ReplicatorError::Data {
                key: key.to_owned(),
                source: Box::new(DataError::TypeMismatch {
                    expected,
                    found: d.data_type_name(),
                }),
            }),
        },
    }
}

/// Loads every stored entry of `self_id`'s replica and applies the stored pruning markers.
pub(crate) async fn load_durable(
    store: &dyn CrdtValueStore,
    self_id: &UniqueReplicaId,
    registry: &TypeRegistry,
) -> Result<Recovered, ReplicatorError> {
    use crate::crdt::{ReplicatedData, TypeName};
    let mut data = BTreeMap::<String, Envelope>::new();
    let mut markers = BTreeMap::<String, PrunedIncarnations>::new();
    let mut removed = RemovedIncarnations::default();
    let mut restarted = RemovedIncarnations::default();
    let mut peers = RemovedIncarnations::default();
    // The store gets the registry once, here: later writes do not carry it.
    store.attach(self_id.replica(), registry);
    let mut entries = store.load(self_id.replica(), registry);
    while let Some(item) = entries.next().await {
        let (key, value) = item.map_err(|source| ReplicatorError::LoadFailure {
            store: store.describe(),
            source: Box::new(source),
        })?;
        if let Some(user_key) = marked_key(&key) {
            if let Some(m) =
                reserved_value::<PrunedIncarnations>(&key, value, PrunedIncarnations::type_name())?
            {
                markers.entry(user_key.to_owned()).or_default().merge(&m);
            }
            continue;
        }
        if key == REMOVED_KEY || key == RESTARTED_KEY || key == PEERS_KEY {
            if let Some(r) = reserved_value::<RemovedIncarnations>(
                &key,
                value,
                RemovedIncarnations::type_name(),
            )? {
                match key.as_str() {
                    REMOVED_KEY => removed.merge(&r),
                    RESTARTED_KEY => restarted.merge(&r),
                    _ => peers.merge(&r),
                }
            }
            continue;
        }
        if is_reserved(&key) {
            tracing::warn!(replica = %self_id, store = %store.describe(), key,
                "unknown reserved key in the durable store left alone");
            continue;
        }
        let env = Envelope::from_durable(value);
        match data.get_mut(&key) {
            None => {
                data.insert(key, env);
            }
            Some(existing) => {
                existing
                    .merge(env)
                    .map_err(|source| ReplicatorError::Data {
                        key,
                        source: Box::new(source),
                    })?;
            }
        }
    }
    drop(entries);
    let stored_removed = removed.removed.clone();
    let mut removed = removed.removed;
    for (key, m) in markers {
        if let Some(env) = data.get_mut(&key) {
            for (incarnation, what) in env.apply_loaded_markers(m, self_id.replica()) {
                tracing::info!(replica = %self_id, key, pruned = %incarnation,
                    what = what.describe(),
                    "stored value brought in line with pruning performed before it was loaded");
                if what == LoadedMarker::OwnCollapseNotStored {
                    // Still to be pruned, unless a peer's collapsed value comes first.
                    removed.insert(incarnation);
                }
            }
        }
    }
    for env in data.values() {
        if let super::envelope::Value::Data(d) = &env.value {
            removed.extend(
                d.modified_by_nodes()
                    .into_iter()
                    .filter(|n| n.replica() == self_id.replica() && n != self_id),
            );
        }
    }
    removed.remove(self_id);
    tracing::info!(replica = %self_id, store = %store.describe(), keys = data.len(),
        removed = removed.len(), "durable data loaded");
    Ok(Recovered {
        data,
        removed,
        stored_removed,
        restarted: restarted.removed,
        peers: peers
            .removed
            .into_iter()
            .map(|p| p.replica().clone())
            .filter(|p| p != self_id.replica())
            .collect(),
    })
}
