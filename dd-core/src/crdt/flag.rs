//! A boolean that can only be switched on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName};
use crate::replica::UniqueReplicaId;

/// A flag that starts off and, once switched on, stays on; merge is the logical or (Akka's
/// `Flag`).
///
/// It is its own delta: the state is one bit, so [`delta`](DeltaReplicatedData::delta) is `None`
/// and the replicator sends the full state.
///
/// ```
/// use dd_core::crdt::Flag;
/// use dd_core::ReplicatedData;
/// let mut x = Flag::new();
/// let mut y = Flag::new();
/// y.switch_on();
/// x.merge(&y);
/// assert!(x.enabled());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flag {
    enabled: bool,
}

impl Flag {
    /// A flag that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag that is on.
    pub fn enabled_flag() -> Self {
        Self { enabled: true }
    }

    /// Switches the flag on (for good).
    pub fn switch_on(&mut self) {
        self.enabled = true;
    }

    /// Whether the flag is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
}

impl TypeName for Flag {
    fn type_name() -> String {
        "Flag".into()
    }
}

impl ReplicatedData for Flag {
    fn merge(&mut self, other: &Self) {
        self.enabled |= other.enabled;
    }
}

/// No delta: the full state is a single bit.
impl DeltaReplicatedData for Flag {
    type Delta = Flag;

    fn delta(&self) -> Option<Flag> {
        None
    }

    fn reset_delta(&mut self) {}

    fn merge_delta(&mut self, delta: &Flag) {
        self.merge(delta);
    }

    fn zero() -> Option<Self> {
        Some(Self::new())
    }
}

/// A flag records no replica identity: nothing to prune.
impl RemovedNodePruning for Flag {
    fn modified_by_nodes(&self) -> BTreeSet<UniqueReplicaId> {
        BTreeSet::new()
    }

    fn needs_pruning_from(&self, _removed: &UniqueReplicaId) -> bool {
        false
    }

    fn prune(&mut self, _removed: &UniqueReplicaId, _collapse_into: &UniqueReplicaId) {}

    fn prune_cleanup(&mut self, _removed: &UniqueReplicaId) {}
}
