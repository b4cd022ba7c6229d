//! The oracle: what the run did (every attempted and acknowledged operation) and what every
//! replica must therefore hold after quiescence.
//!
//! - every replica holds the same value of every key;
//! - a counter reads at least the sum of acknowledged increments (that a crash could not
//!   legitimately lose, see [`Model::crashed`], nor the pruning of a replica removed while it
//!   runs, see [`Model::removed_live`]) and at most the sum of attempted ones;
//! - an acknowledged ORSet add (ORMap update) that no later remove attempt may cover is present;
//!   an acknowledged remove that no concurrent or later add covers makes the element absent (an
//!   add is covered when it was issued before a quiescence that preceded the remove, and the
//!   remover did not come back from a long absence since that quiescence);
//! - nothing is present that was never added; a register holds an attempted value, at least as
//!   new as the newest acknowledged one;
//! - an acknowledged delete keeps the key deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one replica shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No value.
    Missing,
    /// Deleted.
    Deleted,
    /// A GCounter.
    Counter(u128),
    /// A PNCounter: its increments and decrements.
    Pn {
        /// The sum of increments.
        inc: u128,
        /// The sum of decrements.
        dec: u128,
    },
    /// An ORSet.
    Set(BTreeSet<String>),
    /// An ORMap of GCounters.
    Map(BTreeMap<String, u128>),
    /// An LWWRegister: value and timestamp.
    Register(String, i64),
    /// The read failed.
    Error(String),
}

/// Every key of one replica.
pub type Snapshot = BTreeMap<String, Observed>;

/// One attempted operation.
#[derive(Debug, Clone)]
struct Op {
    replica: usize,
    acked: bool,
    /// A crash may legitimately have lost it (write-behind, not yet secured), or the pruning
    /// of its replica's incarnation, removed while it ran (see [`Model::removed_live`]).
    maybe_lost: bool,
    /// Made at `Local` level (acknowledged by its replica alone).
    local: bool,
    /// On every store (a quiescence with every store flushed came after it).
    secured: bool,
    seq: u64,
    epoch: u64,
    /// Made by a replica that came back from a long absence (over its stale store) after the
    /// last quiescence: it may not have seen what that quiescence spread yet.
    stale_view: bool,
}

#[derive(Debug, Default)]
struct Counter {
    inc: Vec<(Op, u64)>,
    dec: Vec<(Op, u64)>,
}

#[derive(Debug, Default)]
struct Element {
    adds: Vec<(Op, u64)>,
    removes: Vec<Op>,
}

/// The record of a run's operations.
#[derive(Debug, Default)]
pub struct Model {
    write_behind: bool,
    seq: u64,
    epoch: u64,
    counters: BTreeMap<String, Counter>,
    sets: BTreeMap<String, BTreeMap<String, Element>>,
    register: BTreeMap<String, Vec<(Op, String, i64)>>,
    deletes: BTreeMap<String, Vec<Op>>,
    /// Replicas back from a long absence since the last quiescence.
    returned: BTreeSet<usize>,
    /// Replicas whose current incarnation was removed from the others' member lists while it
    /// ran (see [`Model::removed_live`]), until they restart with a new one.
    removed_live: BTreeSet<usize>,
}

/// A breach of the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach(pub String);

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Model {
    /// A model for a run in write-behind (`true`) or Sync mode.
    pub fn new(write_behind: bool) -> Self {
        Self {
            write_behind,
            ..Self::default()
        }
    }

    fn op(&mut self, replica: usize, acked: bool, local: bool) -> Op {
        self.seq += 1;
        Op {
            replica,
            acked,
            maybe_lost: local && self.removed_live.contains(&replica),
            local,
            secured: false,
            seq: self.seq,
            epoch: self.epoch,
            stale_view: self.returned.contains(&replica),
        }
    }

    /// `replica` came back from a long absence with a new incarnation over its stale store: until
    /// the next quiescence, a remove it makes covers only what it has seen, which need not be
    /// every add that quiescence spread (an observed remove of an element it has not received
    /// yet removes nothing).
    pub fn returned(&mut self, replica: usize) {
        self.returned.insert(replica);
    }

    /// The next operation's sequence number (used as the register's timestamp).
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// A counter increment (`by` > 0) or decrement (`by` < 0) of `key`.
    pub fn counter(&mut self, key: &str, replica: usize, by: i64, acked: bool, local: bool) {
        let op = self.op(replica, acked, local);
        let c = self.counters.entry(key.to_owned()).or_default();
        if by >= 0 {
            c.inc.push((op, by.unsigned_abs()));
        } else {
            c.dec.push((op, by.unsigned_abs()));
        }
    }

    /// An ORSet add (or ORMap update by `by`) of `element` in `key`.
    pub fn add(
        &mut self,
        key: &str,
        element: &str,
        replica: usize,
        by: u64,
        acked: bool,
        local: bool,
    ) {
        let op = self.op(replica, acked, local);
        self.sets
            .entry(key.to_owned())
            .or_default()
            .entry(element.to_owned())
            .or_default()
            .adds
            .push((op, by));
    }

    /// An ORSet (ORMap) remove of `element` in `key`.
    pub fn remove(&mut self, key: &str, element: &str, replica: usize, acked: bool, local: bool) {
        let op = self.op(replica, acked, local);
        self.sets
            .entry(key.to_owned())
            .or_default()
            .entry(element.to_owned())
            .or_default()
            .removes
            .push(op);
    }

    /// A register write of `value` at `timestamp`.
    pub fn set_register(
        &mut self,
        key: &str,
        value: &str,
        timestamp: i64,
        replica: usize,
        acked: bool,
        local: bool,
    ) {
        let op = self.op(replica, acked, local);
        self.register
            .entry(key.to_owned())
            .or_default()
            .push((op, value.to_owned(), timestamp));
    }

    /// A delete of `key`.
    pub fn delete(&mut self, key: &str, replica: usize, acked: bool, local: bool) {
        let op = self.op(replica, acked, local);
        self.deletes.entry(key.to_owned()).or_default().push(op);
    }

    fn ops_mut(&mut self) -> impl Iterator<Item = &mut Op> {
        let counters = self
            .counters
            .values_mut()
            .flat_map(|c| c.inc.iter_mut().chain(c.dec.iter_mut()).map(|(o, _)| o));
        let sets = self.sets.values_mut().flat_map(|s| {
            s.values_mut().flat_map(|e| {
                e.adds
                    .iter_mut()
                    .map(|(o, _)| o)
                    .chain(e.removes.iter_mut())
            })
        });
        let register = self
            .register
            .values_mut()
            .flat_map(|r| r.iter_mut().map(|(o, _, _)| o));
        let deletes = self.deletes.values_mut().flat_map(|d| d.iter_mut());
        counters.chain(sets).chain(register).chain(deletes)
    }

    /// `replica` crashed (`None`: every replica). In write-behind mode, what it acknowledged
    /// and no quiescence secured since may be lost (at most the last interval, by the promise;
    /// the oracle does not measure how much).
    pub fn crashed(&mut self, replica: Option<usize>) {
        if !self.write_behind {
            return;
        }
        for op in self.ops_mut() {
            if !op.secured && replica.is_none_or(|r| r == op.replica) {
                op.maybe_lost = true;
            }
        }
    }

    /// `replica`'s current incarnation was removed from the others' member lists while it runs
    /// (`RemoveLive`). The others prune it, and what it alone had when they perform that pruning
    /// is dropped with its slot (the root README, "Not promised yet": updates only a removed
    /// replica had are lost to pruning, and so is a `Local` write it acknowledged before it
    /// learned of its removal). So its `Local` writes since the last quiescence (which spread
    /// everything before it) may be lost, and so may those it makes until it restarts with a new
    /// incarnation: being added back does not end the pruning of the removed incarnation (the
    /// others keep it removed), and once it learns of the pruning it refuses writes. Only lost:
    /// the upper bounds (attempted) are unchanged, so nothing may count twice, and writes at
    /// other levels are not affected (the others do not acknowledge a removed incarnation's).
    pub fn removed_live(&mut self, replica: usize) {
        self.removed_live.insert(replica);
        for op in self.ops_mut() {
            if op.replica == replica && op.local && !op.secured {
                op.maybe_lost = true;
            }
        }
    }

    /// `replica` started a new incarnation: its writes from now on are not of the one removed.
    /// A replica that restarts while the others still keep it out of their member lists runs
    /// removed again: the simulator calls [`Model::removed_live`] for the new incarnation then.
    pub fn restarted(&mut self, replica: usize) {
        self.removed_live.remove(&replica);
    }

    /// A quiescence with every store flushed: everything so far is on every store, and every
    /// later operation is causally after everything so far.
    pub fn quiesced(&mut self) {
        for op in self.ops_mut() {
            op.secured = true;
        }
        self.epoch += 1;
        self.returned.clear();
    }

    /// Checks a converged snapshot (the one value every replica holds).
    pub fn check(&self, snap: &Snapshot) -> Result<(), Breach> {
        let mut breaches = Vec::new();
        for (key, value) in snap {
            if let Observed::Error(e) = value {
                breaches.push(format!("{key}: read failed: {e}"));
            }
        }
        let deleted = |key: &str| -> (bool, bool) {
            let ops = self.deletes.get(key);
            let acked = ops.is_some_and(|d| d.iter().any(|o| o.acked && !o.maybe_lost));
            let tried = ops.is_some_and(|d| !d.is_empty());
            (acked, tried)
        };
        for (key, value) in snap {
            let (del_acked, del_tried) = deleted(key);
            if del_acked && *value != Observed::Deleted {
                breaches.push(format!(
                    "{key}: an acknowledged delete, yet the key reads {value:?}"
                ));
            }
            if *value == Observed::Deleted && !del_tried {
                breaches.push(format!("{key}: deleted, yet nobody deleted it"));
            }
        }
        for (key, c) in &self.counters {
            let (_, del_tried) = deleted(key);
            let bounds = |ops: &[(Op, u64)]| {
                let lo: u128 = ops
                    .iter()
                    .filter(|(o, _)| o.acked && !o.maybe_lost)
                    .map(|(_, n)| u128::from(*n))
                    .sum();
                let hi: u128 = ops.iter().map(|(_, n)| u128::from(*n)).sum();
                (lo, hi)
            };
            let (ilo, ihi) = bounds(&c.inc);
            let (dlo, dhi) = bounds(&c.dec);
            let (inc, dec) = match snap.get(key) {
                Some(Observed::Counter(v)) => (*v, 0),
                Some(Observed::Pn { inc, dec }) => (*inc, *dec),
                Some(Observed::Deleted) if del_tried => continue,
                Some(Observed::Missing) | None => (0, 0),
                Some(other) => {
                    breaches.push(format!("{key}: a counter reads {other:?}"));
                    continue;
                }
            };
            let lower_ok = del_tried || (inc >= ilo && dec >= dlo);
            if !lower_ok || inc > ihi || dec > dhi {
                breaches.push(format!(
                    "{key}: increments {inc} not in [{ilo}, {ihi}] or decrements {dec} not in \
                     [{dlo}, {dhi}] (acknowledged, attempted)"
                ));
            }
        }
        for (key, elements) in &self.sets {
            let (_, del_tried) = deleted(key);
            let present: BTreeMap<String, Option<u128>> = match snap.get(key) {
                Some(Observed::Set(s)) => s.iter().map(|e| (e.clone(), None)).collect(),
                Some(Observed::Map(m)) => m.iter().map(|(k, v)| (k.clone(), Some(*v))).collect(),
                Some(Observed::Deleted) if del_tried => continue,
                Some(Observed::Missing) | None => BTreeMap::new(),
                Some(other) => {
                    breaches.push(format!("{key}: a set or map reads {other:?}"));
                    continue;
                }
            };
            for e in present.keys() {
                if !elements.contains_key(e) {
                    breaches.push(format!("{key}: holds {e}, which nobody added"));
                }
            }
            for (name, h) in elements {
                let here = present.get(name);
                let must_be_present = !del_tried
                    && h.adds.iter().any(|(a, _)| {
                        a.acked && !a.maybe_lost && h.removes.iter().all(|r| r.seq < a.seq)
                    });
                let must_be_absent = h.removes.iter().any(|r| {
                    r.acked
                        && !r.maybe_lost
                        && !r.stale_view
                        && h.adds.iter().all(|(a, _)| a.epoch < r.epoch)
                });
                if must_be_present && here.is_none() {
                    breaches.push(format!(
                        "{key}: {name} was added (acknowledged, no remove after it) but is absent"
                    ));
                }
                if must_be_absent && here.is_some() {
                    breaches.push(format!(
                        "{key}: {name} was removed (acknowledged, after every add had spread) \
                         but is present"
                    ));
                }
                if let Some(Some(v)) = here
                    && h.removes.is_empty()
                    && !del_tried
                {
                    let lo: u128 = h
                        .adds
                        .iter()
                        .filter(|(o, _)| o.acked && !o.maybe_lost)
                        .map(|(_, n)| u128::from(*n))
                        .sum();
                    let hi: u128 = h.adds.iter().map(|(_, n)| u128::from(*n)).sum();
                    if *v < lo || *v > hi {
                        breaches.push(format!(
                            "{key}: entry {name} reads {v}, not in [{lo}, {hi}] (acknowledged, \
                             attempted)"
                        ));
                    }
                }
            }
        }
        for (key, writes) in &self.register {
            let newest_acked = writes
                .iter()
                .filter(|(o, _, _)| o.acked && !o.maybe_lost)
                .map(|(_, _, t)| *t)
                .max();
            match snap.get(key) {
                Some(Observed::Register(v, t)) => {
                    if !writes.iter().any(|(_, wv, wt)| wv == v && wt == t) {
                        breaches.push(format!("{key}: holds {v}@{t}, which nobody wrote"));
                    }
                    if newest_acked.is_some_and(|n| *t < n) {
                        breaches.push(format!(
                            "{key}: holds {v}@{t}, older than the acknowledged write at {}",
                            newest_acked.unwrap_or_default()
                        ));
                    }
                }
                Some(Observed::Missing) | None if newest_acked.is_some() => {
                    breaches.push(format!("{key}: an acknowledged write, yet no value"));
                }
                _ => {}
            }
        }
        if breaches.is_empty() {
            Ok(())
        } else {
            Err(Breach(breaches.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_reads(n: u128) -> Snapshot {
        BTreeMap::from([("g".to_owned(), Observed::Counter(n))])
    }

    /// The `Local` writes of a replica removed while it runs may be lost from the last
    /// quiescence before its removal until it restarts; nothing else may, and nothing may count
    /// twice.
    #[test]
    fn local_writes_of_a_replica_removed_while_it_runs_may_be_lost_and_nothing_else() {
        let mut m = Model::new(false);
        m.counter("g", 0, 2, true, true);
        m.quiesced();
        m.counter("g", 0, 3, true, true); // after the quiescence: not spread yet
        m.counter("g", 1, 4, true, true);
        m.removed_live(0);
        m.counter("g", 0, 5, true, true); // removed, before it learned
        // r0's 3 and 5 may be lost; its 2 (spread by the quiescence) and r1's 4 may not.
        assert!(m.check(&counter_reads(6)).is_ok());
        assert!(m.check(&counter_reads(14)).is_ok());
        assert!(m.check(&counter_reads(5)).is_err(), "r1's 4 lost");
        assert!(m.check(&counter_reads(4)).is_err(), "r0's spread 2 lost");
        assert!(m.check(&counter_reads(15)).is_err(), "counted twice");
        // A new incarnation's writes are not of the removed one.
        m.restarted(0);
        m.counter("g", 0, 7, true, true);
        assert!(m.check(&counter_reads(13)).is_ok());
        assert!(
            m.check(&counter_reads(12)).is_err(),
            "the new incarnation's 7 lost"
        );

        // Writes at other levels are not covered (the others do not acknowledge them).
        let mut m = Model::new(false);
        m.removed_live(0);
        m.counter("g", 0, 3, true, false);
        assert!(m.check(&counter_reads(0)).is_err());
        // Nor are another replica's `Local` writes.
        let mut m = Model::new(false);
        m.counter("g", 1, 3, true, true);
        m.removed_live(0);
        assert!(m.check(&counter_reads(0)).is_err());
    }
}
