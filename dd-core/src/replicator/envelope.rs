//! The replicator's in-memory state of one key: value (or tombstone), delta versions and
//! pruning markers, with the merge rules that gossip, writes and durable loading share.

use std::collections::{BTreeMap, BTreeSet};

use crate::data::{DataError, ErasedData, TypeRegistry};
use crate::durable::DurableValue;
use crate::replica::{ReplicaId, UniqueReplicaId};

use super::delta_versions::DeltaVersions;
use super::protocol::{WireEntry, WirePruning, WireState};
use super::pruning_record::PrunedIncarnations;

/// A key's value or tombstone: the one such enum of the crate, [`DurableValue`], which the
/// replicator calls `Value` for short.
pub(crate) use crate::durable::DurableValue as Value;

/// Pruning progress for one removed incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pruning {
    Initialized {
        owner: UniqueReplicaId,
        seen: BTreeSet<ReplicaId>,
        /// Local only (never sent nor stored): the owners of other markers for the same
        /// incarnation that this one replaced here, each with the replicas that had seen it.
        /// A replica that acknowledged such a marker does not acknowledge this one before the
        /// displaced owner has seen it (and so gave up its own) or ended: both owners could
        /// otherwise count its acknowledgement and both perform (see [`Pruning::promises_kept`]).
        displaced: BTreeMap<UniqueReplicaId, BTreeSet<ReplicaId>>,
    },
    /// The entries of the removed incarnation were collapsed; `owner` is the incarnation they
    /// were collapsed into, when known (markers of protocol versions before 4 and of stored
    /// records that predate owners did not say).
    Performed { owner: Option<UniqueReplicaId> },
}

impl Pruning {
    /// A pruning `owner` starts: initialized, seen so far by its own replica only.
    pub(crate) fn started_by(owner: &UniqueReplicaId) -> Self {
        Pruning::Initialized {
            owner: owner.clone(),
            seen: BTreeSet::from([owner.replica().clone()]),
            displaced: BTreeMap::new(),
        }
    }

    /// The owners of markers this one replaced here that `me` acknowledged and that may still
    /// perform their pruning: they have not seen this marker (while they hold their own, every
    /// acknowledgement they counted, `me`'s among them, may still make them perform) and
    /// `ended` does not say they stopped. `me` acknowledges this marker only once there are
    /// none, so its acknowledgement counts for one owner at a time, as a promise: two owners of
    /// the same incarnation never both count it (with a quorum of acknowledgements, two owners
    /// could otherwise both perform and collapse the incarnation twice).
    pub(crate) fn promises_kept(
        &self,
        me: &UniqueReplicaId,
        ended: impl Fn(&UniqueReplicaId) -> bool,
    ) -> Vec<UniqueReplicaId> {
        let Pruning::Initialized {
            seen, displaced, ..
        } = self
        else {
            return Vec::new();
        };
        displaced
            .iter()
            .filter(|(owner, acked)| {
                *owner != me
                    && acked.contains(me.replica())
                    && !seen.contains(owner.replica())
                    && !ended(owner)
            })
            .map(|(owner, _)| owner.clone())
            .collect()
    }

    pub(crate) fn is_performed(&self) -> bool {
        matches!(self, Pruning::Performed { .. })
    }
}

/// The owner of a "pruning performed" marker both sides hold: the one either knows, the lower
/// when they disagree (so every replica ends with the same marker and the same digest).
fn merge_owner(a: Option<UniqueReplicaId>, b: Option<UniqueReplicaId>) -> Option<UniqueReplicaId> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The "pruning performed" markers of `theirs` that are void against `ours`: `removed` was
/// collapsed into `owner`, which `theirs` has not pruned, while `ours` pruned `owner` without
/// knowing of that collapse (it holds no "performed" marker for `removed`). The collapse went
/// into a slot `ours` dropped, so applying the marker would drop `removed`'s entries on top and
/// lose them (dd-sim seed 6: an owner that left right after its collapse, pruned by the others
/// from states without it, returning with the collapse from its store). Markers never expire,
/// so a pruning of `owner` done from a state that had the collapse carries the marker along.
fn void_markers(
    theirs: &BTreeMap<UniqueReplicaId, Pruning>,
    ours: &BTreeMap<UniqueReplicaId, Pruning>,
) -> Vec<(UniqueReplicaId, UniqueReplicaId)> {
    let performed = |m: &BTreeMap<UniqueReplicaId, Pruning>, x: &UniqueReplicaId| {
        m.get(x).is_some_and(Pruning::is_performed)
    };
    theirs
        .iter()
        .filter_map(|(removed, p)| match p {
            Pruning::Performed { owner: Some(owner) }
                if !performed(theirs, owner)
                    && performed(ours, owner)
                    && !performed(ours, removed) =>
            {
                Some((removed.clone(), owner.clone()))
            }
            _ => None,
        })
        .collect()
}

/// What loading did with one stored "pruning performed" marker whose incarnation still had
/// entries in the stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoadedMarker {
    /// Another replica collapsed the entries: they were dropped.
    StaleEntriesDropped,
    /// An earlier incarnation of this replica collapsed them, but the stored value predates the
    /// collapse: the entries are kept and the marker left out (never collapsed again from the
    /// stored state).
    OwnCollapseNotStored,
}

impl LoadedMarker {
    /// For the log.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            LoadedMarker::StaleEntriesDropped => "stale entries dropped (pruned elsewhere)",
            LoadedMarker::OwnCollapseNotStored => {
                "entries kept, not collapsed again: this replica's earlier collapse never reached \
                 the store (the collapsed value and its marker come back from a peer, or the \
                 pruning is redone)"
            }
        }
    }
}

/// One key's replicated state.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) value: Value,
    pub(crate) delta_versions: DeltaVersions,
    pub(crate) pruning: BTreeMap<UniqueReplicaId, Pruning>,
}

impl Envelope {
    pub(crate) fn data(value: Box<dyn ErasedData>) -> Self {
        Self {
            value: Value::Data(value),
            delta_versions: DeltaVersions::default(),
            pruning: BTreeMap::new(),
        }
    }

    pub(crate) fn deleted() -> Self {
        Self {
            value: Value::Deleted,
            delta_versions: DeltaVersions::default(),
            pruning: BTreeMap::new(),
        }
    }

    /// A value from outside (durable store): any pending delta it carries is not ours to
    /// propagate, so it is dropped.
    pub(crate) fn from_durable(value: DurableValue) -> Self {
        match value {
            DurableValue::Data(mut d) => {
                d.reset_delta();
                Self::data(d)
            }
            DurableValue::Deleted => Self::deleted(),
        }
    }

    /// The value for the durable store (without the pending delta).
    pub(crate) fn to_durable(&self) -> DurableValue {
        match &self.value {
            Value::Data(d) => {
                let mut d = d.clone();
                d.reset_delta();
                DurableValue::Data(d)
            }
            Value::Deleted => DurableValue::Deleted,
        }
    }

    pub(crate) fn type_name(&self) -> Option<String> {
        match &self.value {
            Value::Data(d) => Some(d.data_type_name()),
            Value::Deleted => None,
        }
    }

    /// The "pruning performed" markers of this key, as they are stored durably.
    pub(crate) fn performed_markers(&self) -> PrunedIncarnations {
        PrunedIncarnations {
            performed: self
                .pruning
                .iter()
                .filter_map(|(removed, p)| match p {
                    Pruning::Performed { owner } => Some((removed.clone(), owner.clone())),
                    Pruning::Initialized { .. } => None,
                })
                .collect(),
        }
    }

    /// Applies markers loaded from the durable store to a value loaded with them. Entries of a
    /// pruned incarnation that are still in the value are dropped when another replica collapsed
    /// them (their contribution is in a live incarnation elsewhere). When an earlier incarnation
    /// of this replica (`me`) collapsed them, the stored value is older than the collapse (which
    /// did not reach the store before a crash, or was written by an earlier version without its
    /// markers): collapsing again would mint slots and dots from that older state, which peers
    /// may already hold for other updates. The entries are kept and the marker is left out
    /// instead: a peer that got the collapsed value brings the marker back with its first full
    /// state, and otherwise the pruning is redone through the leader protocol.
    /// Returns what was done, per incarnation, for the log.
    pub(crate) fn apply_loaded_markers(
        &mut self,
        markers: PrunedIncarnations,
        me: &ReplicaId,
    ) -> Vec<(UniqueReplicaId, LoadedMarker)> {
        let mut done = Vec::new();
        if matches!(self.value, Value::Deleted) {
            // A tombstone wins over any value; markers are of no use to it.
            return done;
        }
        for (removed, owner) in markers.performed {
            if let Value::Data(d) = &mut self.value
                && d.mentions(&removed)
            {
                match &owner {
                    Some(o) if o.replica() == me && o != &removed => {
                        done.push((removed.clone(), LoadedMarker::OwnCollapseNotStored));
                        continue;
                    }
                    _ => {
                        d.prune_cleanup(&removed);
                        done.push((removed.clone(), LoadedMarker::StaleEntriesDropped));
                    }
                }
            }
            let merged = match self.pruning.remove(&removed) {
                Some(Pruning::Performed { owner: mine }) => merge_owner(mine, owner),
                _ => owner,
            };
            self.pruning
                .insert(removed, Pruning::Performed { owner: merged });
        }
        self.clean();
        done
    }

    /// Drops entries (and delta versions) of incarnations whose pruning was performed, and the
    /// unfinished pruning of a value that collapses nothing (a dot-based value: its "pruning
    /// initialized" markers come from earlier versions, and performing them would leave a
    /// "performed" marker that drops the incarnation's dots from every stale state).
    ///
    /// The entries dropped are those the value [`mentions`](crate::RemovedNodePruning::mentions):
    /// for a counter, the slot a collapse moved elsewhere; for a dot-based value, which today's
    /// pruning never marks, the dots an earlier version's pruning re-tagged and forgot.
    fn clean(&mut self) {
        for (removed, p) in &self.pruning {
            if p.is_performed() {
                self.delta_versions.remove(removed);
            }
        }
        if let Value::Data(d) = &mut self.value {
            if !d.prunes_by_collapsing() {
                self.pruning.retain(|_, p| p.is_performed());
            }
            for (removed, p) in &self.pruning {
                if p.is_performed() && d.mentions(removed) {
                    d.prune_cleanup(removed);
                }
            }
        }
    }

    /// Owners whose "pruning initialized" marker a merge of `self` and `other` replaces by
    /// another owner's marker for the same incarnation (the lower owner's, or a "performed" one
    /// by another owner), on either side. Such an owner may already have performed its pruning
    /// (every member had seen its marker before the other was started, for example by a leader
    /// that restarted and lost its unstored markers) and stored its collapse: if it is gone, it
    /// must be pruned on the key too, or that collapse counts twice when it comes back (dd-sim
    /// seed 3735).
    pub(crate) fn displaced_owners(&self, other: &Envelope) -> BTreeSet<UniqueReplicaId> {
        let mut out = BTreeSet::new();
        for (removed, theirs) in &other.pruning {
            let Some(mine) = self.pruning.get(removed) else {
                continue;
            };
            match (mine, theirs) {
                (Pruning::Initialized { owner: a, .. }, Pruning::Initialized { owner: b, .. })
                    if a != b =>
                {
                    out.insert(a.max(b).clone());
                }
                (Pruning::Initialized { owner: a, .. }, Pruning::Performed { owner: b })
                | (Pruning::Performed { owner: b }, Pruning::Initialized { owner: a, .. })
                    if b.as_ref() != Some(a) =>
                {
                    out.insert(a.clone());
                }
                _ => {}
            }
        }
        out
    }

    /// Merges `other` into `self`. Returns whether `self` changed (by value, versions or markers).
    pub(crate) fn merge(&mut self, mut other: Envelope) -> Result<bool, DataError> {
        if matches!(self.value, Value::Deleted) {
            return Ok(false);
        }
        let Value::Data(mine) = &mut self.value else {
            return Ok(false);
        };
        let theirs = match other.value {
            Value::Deleted => {
                *self = Envelope::deleted();
                return Ok(true);
            }
            Value::Data(ref mut d) => d,
        };
        if mine.data_type_name() != theirs.data_type_name() {
            return Err(DataError::TypeMismatch {
                expected: mine.data_type_name(),
                found: theirs.data_type_name(),
            });
        }
        let before_value = mine.clone();
        let before_versions = self.delta_versions.clone();
        let before_pruning = self.pruning.clone();
        // A collapse into an incarnation the other side pruned without it is dropped on both
        // sides: the removed incarnation's entries (which the side that pruned the owner still
        // has) stay, and its pruning is redone.
        let void_theirs = void_markers(&other.pruning, &self.pruning);
        let void_mine = void_markers(&self.pruning, &other.pruning);
        for (removed, owner) in void_theirs {
            tracing::info!(%removed, %owner,
                "pruning marker not applied: the incarnation it was collapsed into was pruned \
                 here without that collapse; the removed incarnation's entries are kept");
            other.pruning.remove(&removed);
        }
        for (removed, owner) in void_mine {
            tracing::info!(%removed, %owner,
                "pruning marker dropped: the incarnation it was collapsed into was pruned \
                 elsewhere without that collapse; the removed incarnation's entries are taken");
            self.pruning.remove(&removed);
        }
        // Pruning markers first, so that both sides are cleaned of performed incarnations.
        for (removed, p) in std::mem::take(&mut other.pruning) {
            let merged = match (self.pruning.remove(&removed), p) {
                (None, p) => p,
                (Some(Pruning::Performed { owner: a }), Pruning::Performed { owner: b }) => {
                    Pruning::Performed {
                        owner: merge_owner(a, b),
                    }
                }
                (Some(p @ Pruning::Performed { .. }), _) | (_, p @ Pruning::Performed { .. }) => p,
                (
                    Some(Pruning::Initialized {
                        owner: o1,
                        seen: s1,
                        displaced: d1,
                    }),
                    Pruning::Initialized {
                        owner: o2,
                        seen: s2,
                        displaced: d2,
                    },
                ) => {
                    let mut displaced = d1;
                    for (owner, acked) in d2 {
                        displaced.entry(owner).or_default().extend(acked);
                    }
                    if o1 == o2 {
                        Pruning::Initialized {
                            owner: o1,
                            seen: s1.union(&s2).cloned().collect(),
                            displaced,
                        }
                    } else {
                        let (winner, seen, loser, lost) = if o1 < o2 {
                            (o1, s1, o2, s2)
                        } else {
                            (o2, s2, o1, s1)
                        };
                        displaced.entry(loser).or_default().extend(lost);
                        displaced.remove(&winner);
                        Pruning::Initialized {
                            owner: winner,
                            seen,
                            displaced,
                        }
                    }
                }
            };
            self.pruning.insert(removed, merged);
        }
        for (removed, p) in &self.pruning {
            if p.is_performed() && theirs.mentions(removed) {
                theirs.prune_cleanup(removed);
            }
        }
        mine.merge_erased(theirs.as_ref())?;
        for (origin, seq) in other.delta_versions {
            self.delta_versions.raise(origin, seq);
        }
        self.clean();
        let changed = match &self.value {
            Value::Data(d) => !d.eq_erased(before_value.as_ref()),
            Value::Deleted => true,
        } || self.delta_versions != before_versions
            || self.pruning != before_pruning;
        Ok(changed)
    }

    /// Whether the value (not only metadata) differs from `other`.
    pub(crate) fn value_differs(&self, before: &Value) -> bool {
        match (&self.value, before) {
            (Value::Data(a), Value::Data(b)) => !a.eq_erased(b.as_ref()),
            (Value::Deleted, Value::Deleted) => false,
            _ => true,
        }
    }

    /// Applies pruning markers after a delta merge.
    pub(crate) fn clean_after_delta(&mut self) {
        self.clean();
    }

    pub(crate) fn to_wire(&self, key: &str) -> Result<WireEntry, DataError> {
        let state = match &self.value {
            Value::Data(d) => WireState::Data {
                type_name: d.data_type_name(),
                bytes: d.encode()?,
            },
            Value::Deleted => WireState::Deleted,
        };
        Ok(WireEntry {
            key: key.to_owned(),
            state,
            delta_versions: self
                .delta_versions
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            pruning: self
                .pruning
                .iter()
                .map(|(k, p)| {
                    let p = match p {
                        Pruning::Initialized { owner, seen, .. } => WirePruning::Initialized {
                            owner: owner.clone(),
                            seen: seen.iter().cloned().collect(),
                        },
                        Pruning::Performed { owner } => WirePruning::Performed {
                            owner: owner.clone(),
                        },
                    };
                    (k.clone(), p)
                })
                .collect(),
        })
    }

    pub(crate) fn from_wire(
        entry: WireEntry,
        registry: &TypeRegistry,
    ) -> Result<(String, Envelope), DataError> {
        let value = match entry.state {
            WireState::Data { type_name, bytes } => {
                Value::Data(registry.decode(&type_name, &bytes)?)
            }
            WireState::Deleted => Value::Deleted,
        };
        let pruning = entry
            .pruning
            .into_iter()
            .map(|(k, p)| {
                let p = match p {
                    WirePruning::Initialized { owner, seen } => Pruning::Initialized {
                        owner,
                        seen: seen.into_iter().collect(),
                        displaced: BTreeMap::new(),
                    },
                    WirePruning::Performed { owner } => Pruning::Performed { owner },
                };
                (k, p)
            })
            .collect();
        Ok((
            entry.key,
            Envelope {
                value,
                delta_versions: entry.delta_versions.into_iter().collect(),
                pruning,
            },
        ))
    }

    /// A stable 64-bit digest of the encoded envelope (xxh3), for anti-entropy.
    pub(crate) fn digest(&self, key: &str) -> Result<u64, DataError> {
        let wire = self.to_wire(key)?;
        let bytes = postcard::to_stdvec(&wire).map_err(|source| DataError::Encode {
            type_name: self.type_name().unwrap_or_else(|| "tombstone".into()),
            source,
        })?;
        Ok(xxhash_rust::xxh3::xxh3_64(&bytes))
    }
}

/// Whether `key` matches one of the durable key patterns (exact, or prefix with a trailing `*`).
pub(crate) fn is_durable_key(patterns: &[String], key: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => p == key,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::crdt::{GCounter, ORSet, RemovedNodePruning};

    fn counter(node: &UniqueReplicaId, n: u64) -> Box<dyn ErasedData> {
        let mut c = GCounter::new();
        c.increment(node, n).unwrap();
        Box::new(c)
    }

    /// A merge that replaces an owner's "pruning initialized" marker by another owner's (the
    /// lower one's, or a "performed" one by another owner) reports the replaced owner, from
    /// either side; the same owner on both sides, or its own collapse, reports nothing.
    #[test]
    fn displaced_owners_are_the_replaced_markers_owners() {
        let x = UniqueReplicaId::new("x", 1);
        let (a, b) = (UniqueReplicaId::new("a", 2), UniqueReplicaId::new("d", 2));
        let with = |removed: &UniqueReplicaId, p: Pruning| {
            let mut e = Envelope::data(counter(removed, 3));
            e.pruning.insert(removed.clone(), p);
            e
        };
        let init = |owner: &UniqueReplicaId| Pruning::started_by(owner);
        let done = |owner: &UniqueReplicaId| Pruning::Performed {
            owner: Some(owner.clone()),
        };
        let (lower, higher) = (with(&x, init(&a)), with(&x, init(&b)));
        assert_eq!(lower.displaced_owners(&higher), BTreeSet::from([b.clone()]));
        assert_eq!(higher.displaced_owners(&lower), BTreeSet::from([b.clone()]));
        let performed_by_a = with(&x, done(&a));
        assert_eq!(
            higher.displaced_owners(&performed_by_a),
            BTreeSet::from([b.clone()])
        );
        assert_eq!(
            performed_by_a.displaced_owners(&higher),
            BTreeSet::from([b.clone()])
        );
        assert!(lower.displaced_owners(&performed_by_a).is_empty());
        assert!(lower.displaced_owners(&lower.clone()).is_empty());
        assert!(
            lower
                .displaced_owners(&Envelope::data(counter(&x, 3)))
                .is_empty()
        );
    }

    #[test]
    fn tombstone_wins_both_ways() {
        let a = UniqueReplicaId::new("a", 1);
        let mut x = Envelope::data(counter(&a, 1));
        assert!(x.merge(Envelope::deleted()).unwrap());
        assert!(matches!(x.value, Value::Deleted));
        let mut y = Envelope::deleted();
        assert!(!y.merge(Envelope::data(counter(&a, 1))).unwrap());
        assert!(matches!(y.value, Value::Deleted));
    }

    #[test]
    fn performed_pruning_cleans_late_entries() {
        let a = UniqueReplicaId::new("a", 1);
        let b = UniqueReplicaId::new("b", 1);
        let mut pruned = Envelope::data(counter(&a, 5));
        if let Value::Data(d) = &mut pruned.value {
            d.prune(&a, &b);
        }
        pruned.pruning.insert(
            a.clone(),
            Pruning::Performed {
                owner: Some(b.clone()),
            },
        );
        // A stale replica still has a's entry.
        pruned.merge(Envelope::data(counter(&a, 5))).unwrap();
        let Value::Data(d) = &pruned.value else {
            panic!("deleted")
        };
        assert_eq!(d.downcast_ref::<GCounter>().unwrap().value(), 5);
        let mut stale = Envelope::data(counter(&a, 5));
        stale.merge(pruned.clone()).unwrap();
        let Value::Data(d) = &stale.value else {
            panic!("deleted")
        };
        assert_eq!(d.downcast_ref::<GCounter>().unwrap().value(), 5);
    }

    #[test]
    fn loaded_markers_drop_stale_entries_but_never_collapse_again() {
        let x = UniqueReplicaId::new("x", 1);
        let other = UniqueReplicaId::new("o", 1);
        let me_before = UniqueReplicaId::new("m", 1);
        let me = ReplicaId::new("m");
        let value = |c: &Envelope| match &c.value {
            Value::Data(d) => d.downcast_ref::<GCounter>().unwrap().clone(),
            Value::Deleted => panic!("deleted"),
        };
        // Pruned elsewhere: the stale entries go (the owner holds their contribution).
        let mut stale = Envelope::data(counter(&x, 5));
        let mut markers = PrunedIncarnations::default();
        markers.performed.insert(x.clone(), Some(other.clone()));
        let done = stale.apply_loaded_markers(markers, &me);
        assert_eq!(done, vec![(x.clone(), LoadedMarker::StaleEntriesDropped)]);
        assert_eq!(value(&stale).value(), 0);
        assert!(stale.pruning.get(&x).unwrap().is_performed());
        // Collapsed by an earlier incarnation of this replica, whose collapsed value never
        // reached the store: nothing is minted from the stored state, the entries stay, and the
        // marker is left for a peer (or a new pruning) to bring.
        let mut own = Envelope::data(counter(&x, 5));
        let mut markers = PrunedIncarnations::default();
        markers.performed.insert(x.clone(), Some(me_before.clone()));
        let done = own.apply_loaded_markers(markers, &me);
        assert_eq!(done, vec![(x.clone(), LoadedMarker::OwnCollapseNotStored)]);
        assert_eq!(value(&own).value(), 5);
        assert_eq!(value(&own).slot(&me_before), 0);
        assert_eq!(value(&own).slot(&x), 5);
        assert!(RemovedNodePruning::needs_pruning_from(&value(&own), &x));
        assert!(!own.pruning.contains_key(&x));
        // Without leftover entries the marker is kept whoever collapsed.
        let mut clean = Envelope::data(counter(&me_before, 5));
        let mut markers = PrunedIncarnations::default();
        markers.performed.insert(x.clone(), Some(me_before.clone()));
        assert!(clean.apply_loaded_markers(markers, &me).is_empty());
        assert!(clean.pruning.get(&x).unwrap().is_performed());
    }

    /// dd-sim seed 6: r0#2 collapsed r2#1's 2 into its own slot and left before anyone got
    /// it; the others pruned r0#2 (from states without that collapse) while their r2#1 slot
    /// still held the 2. r0's returning state (the collapse, from its store) must not make them
    /// drop the 2, whichever way round the states merge; the owner travels on the wire.
    #[test]
    fn collapse_into_an_owner_pruned_meanwhile_keeps_the_removed_entries() {
        let r0_2 = UniqueReplicaId::new("r0", 2);
        let r1 = UniqueReplicaId::new("r1", 1);
        let r2_1 = UniqueReplicaId::new("r2", 1);
        let r3 = UniqueReplicaId::new("r3", 1);
        let read = |e: &Envelope| match &e.value {
            Value::Data(d) => d.downcast_ref::<GCounter>().unwrap().value(),
            Value::Deleted => panic!("deleted"),
        };
        let both = |a: (&UniqueReplicaId, u64), b: (&UniqueReplicaId, u64)| {
            let mut c = GCounter::new();
            c.increment(a.0, a.1).unwrap();
            c.increment(b.0, b.1).unwrap();
            Box::new(c) as Box<dyn ErasedData>
        };
        // r0's store: r3's 5, and r2#1's 2 collapsed into r0#2.
        let mut returning = Envelope::data(both((&r3, 5), (&r0_2, 2)));
        returning.pruning.insert(
            r2_1.clone(),
            Pruning::Performed {
                owner: Some(r0_2.clone()),
            },
        );
        // The others: r3's 5, r2#1's 2, and r0#2 pruned (into r1#1, which had nothing of it).
        let mut others = Envelope::data(both((&r3, 5), (&r2_1, 2)));
        others.pruning.insert(
            r0_2.clone(),
            Pruning::Performed {
                owner: Some(r1.clone()),
            },
        );
        let (_, wire_returning) = Envelope::from_wire(
            returning.to_wire("p0").unwrap(),
            &TypeRegistry::with_builtin_types(),
        )
        .unwrap();
        let (_, wire_others) = Envelope::from_wire(
            others.to_wire("p0").unwrap(),
            &TypeRegistry::with_builtin_types(),
        )
        .unwrap();
        let mut at_others = others.clone();
        at_others.merge(wire_returning).unwrap();
        assert_eq!(read(&at_others), 7, "the others lost r2#1's 2");
        let mut at_returning = returning.clone();
        at_returning.merge(wire_others).unwrap();
        assert_eq!(
            read(&at_returning),
            7,
            "the returning replica lost r2#1's 2"
        );
        // Both sides end alike: r2#1's entries kept (its pruning is redone), r0#2 pruned.
        for e in [&at_others, &at_returning] {
            assert!(!e.pruning.contains_key(&r2_1), "{:?}", e.pruning);
            assert!(e.pruning.get(&r0_2).unwrap().is_performed());
        }
        // A collapse that the owner's pruning included (the pruning side has both markers)
        // still drops a stale copy of the removed entries.
        let mut complete = Envelope::data(both((&r3, 5), (&r1, 2)));
        complete.pruning.insert(
            r2_1.clone(),
            Pruning::Performed {
                owner: Some(r0_2.clone()),
            },
        );
        complete.pruning.insert(
            r0_2.clone(),
            Pruning::Performed {
                owner: Some(r1.clone()),
            },
        );
        let mut stale = Envelope::data(both((&r3, 5), (&r2_1, 2)));
        stale.merge(complete.clone()).unwrap();
        assert_eq!(read(&stale), 7);
        let mut c = complete;
        c.merge(returning).unwrap();
        assert_eq!(read(&c), 7);
    }

    #[test]
    fn durable_patterns() {
        let p = vec!["user-*".to_owned(), "exact".to_owned()];
        assert!(is_durable_key(&p, "user-1"));
        assert!(is_durable_key(&p, "exact"));
        assert!(!is_durable_key(&p, "exactly"));
        assert!(is_durable_key(&["*".to_owned()], "anything"));
    }

    fn elements(e: &Envelope) -> BTreeSet<String> {
        match &e.value {
            Value::Data(d) => d.downcast_ref::<ORSet<String>>().unwrap().elements(),
            Value::Deleted => panic!("deleted"),
        }
    }

    /// Compatibility with the "pruning performed" markers of the version before N1's fix, whose
    /// pruning of c#1 re-tagged c's elements with new dots of the owner and forgot c#1: a stale
    /// state still holding c's dots (a long-absent replica's store) must still be cleaned of
    /// them, else an element removed after that pruning comes back, by merge either way round
    /// and at load.
    #[test]
    fn earlier_versions_markers_still_clean_a_stale_dot_based_state() {
        let c = UniqueReplicaId::new("c", 1);
        let a = UniqueReplicaId::new("a", 1);
        let e = "e".to_string();
        // The owner's state as the earlier version left it: c's "e" re-tagged as a's, c
        // forgotten; then "e" was removed.
        let mut pruned = ORSet::new();
        pruned.add(&a, e.clone());
        pruned.remove(&a, &e);
        let mut owner = Envelope::data(Box::new(pruned));
        owner
            .pruning
            .insert(c.clone(), Pruning::Performed { owner: None });
        let mut stale = ORSet::new();
        stale.add(&c, e.clone());

        let mut mine = owner.clone();
        mine.merge(Envelope::data(Box::new(stale.clone()))).unwrap();
        assert!(
            elements(&mine).is_empty(),
            "stale state merged into the pruned one"
        );
        let mut theirs = Envelope::data(Box::new(stale.clone()));
        theirs.merge(owner).unwrap();
        assert!(
            elements(&theirs).is_empty(),
            "pruned state merged into the stale one"
        );
        let mut loaded = Envelope::data(Box::new(stale));
        let mut markers = PrunedIncarnations::default();
        markers.performed.insert(c.clone(), Some(a));
        let done = loaded.apply_loaded_markers(markers, &ReplicaId::new("b"));
        assert_eq!(done, vec![(c, LoadedMarker::StaleEntriesDropped)]);
        assert!(
            elements(&loaded).is_empty(),
            "stale value loaded with the marker"
        );
    }

    /// A replica that acknowledged one owner's marker and then got a lower owner's for the same
    /// incarnation (the merge keeps the lower owner's) does not acknowledge the new one while
    /// the first owner may still perform: only once that owner has seen the new marker (it
    /// holds it and gave up its own) or ended. Without it, both owners count its
    /// acknowledgement towards a quorum and both collapse the incarnation.
    #[test]
    fn an_acknowledgement_counts_for_one_owner_at_a_time() {
        let x = UniqueReplicaId::new("x", 1);
        let (r0, r1, r3) = (
            UniqueReplicaId::new("r0", 1),
            UniqueReplicaId::new("r1", 1),
            UniqueReplicaId::new("r3", 1),
        );
        let with = |p: Pruning| {
            let mut e = Envelope::data(counter(&x, 3));
            e.pruning.insert(x.clone(), p);
            e
        };
        let marker = |owner: &UniqueReplicaId, seen: &[&UniqueReplicaId]| Pruning::Initialized {
            owner: owner.clone(),
            seen: seen.iter().map(|r| r.replica().clone()).collect(),
            displaced: BTreeMap::new(),
        };
        let never_ended = |_: &UniqueReplicaId| false;
        // r1 holds r3's marker and acknowledged it; r0's (lower) arrives and replaces it.
        let mut at_r1 = with(marker(&r3, &[&r3, &r1]));
        at_r1.merge(with(marker(&r0, &[&r0]))).unwrap();
        let held = &at_r1.pruning[&x];
        assert!(matches!(held, Pruning::Initialized { owner, .. } if *owner == r0));
        assert_eq!(held.promises_kept(&r1, never_ended), vec![r3.clone()]);
        // A replica that never acknowledged r3's marker, and r3 itself, are free.
        assert!(
            held.promises_kept(&UniqueReplicaId::new("r2", 1), never_ended)
                .is_empty()
        );
        assert!(held.promises_kept(&r3, never_ended).is_empty());
        // r1 is free once r3 ended, or once r3 saw r0's marker (its own is gone).
        assert!(held.promises_kept(&r1, |o| *o == r3).is_empty());
        at_r1.merge(with(marker(&r0, &[&r0, &r3]))).unwrap();
        assert!(at_r1.pruning[&x].promises_kept(&r1, never_ended).is_empty());
        // What was displaced is never sent: the wire carries owner and seen only.
        let wire = at_r1.to_wire("k").unwrap();
        let registry = TypeRegistry::with_builtin_types();
        let (_, back) = Envelope::from_wire(wire, &registry).unwrap();
        assert!(matches!(&back.pruning[&x],
            Pruning::Initialized { displaced, .. } if displaced.is_empty()));
    }

    /// Today's pruning never marks a dot-based value: a "pruning initialized" marker an earlier
    /// version started on one is dropped by the merge, so it is never performed.
    #[test]
    fn unfinished_pruning_of_a_dot_based_value_is_dropped() {
        let c = UniqueReplicaId::new("c", 1);
        let a = UniqueReplicaId::new("a", 1);
        let mut set = ORSet::new();
        set.add(&c, "e".to_string());
        let mut mine = Envelope::data(Box::new(set.clone()));
        let mut theirs = Envelope::data(Box::new(set));
        theirs.pruning.insert(
            c.clone(),
            Pruning::Initialized {
                owner: a,
                seen: BTreeSet::from([ReplicaId::new("a")]),
                displaced: BTreeMap::new(),
            },
        );
        mine.merge(theirs).unwrap();
        assert!(mine.pruning.is_empty());
        assert_eq!(elements(&mine), BTreeSet::from(["e".to_string()]));
    }
}
