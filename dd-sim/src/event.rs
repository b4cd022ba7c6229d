//! The events of a run, all drawn from one seed before the run starts (so a run is its event
//! list, which the shrinker cuts down).

use std::fmt;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::config::{FaultClass, SimConfig};

/// A write or read consistency level (the timeouts are fixed by the runner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `Local`.
    Local,
    /// `From { n: 2 }`.
    Two,
    /// `Majority`.
    Majority,
    /// `All`.
    All,
}

/// A key that can be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doomed {
    /// The GCounter `g2`.
    Counter,
    /// The ORSet `s1`.
    Set,
}

/// A fault of one replica's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// Down: every call fails.
    Down,
    /// Writes fail, reads work.
    RefuseWrites,
    /// Each call fails with probability 0.3.
    Flaky,
    /// Every call hangs (past the operation timeout).
    Hang,
    /// Batches land their first operation, then fail.
    Partial,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Increments GCounter `g0`, `G1` or `g2` (key 0..=2; `g2` may be deleted).
    IncCounter {
        /// The replica.
        replica: usize,
        /// Which counter.
        key: u8,
        /// By how much.
        by: u64,
        /// The write level.
        level: Level,
    },
    /// Changes PNCounter `p0`.
    ChangePn {
        /// The replica.
        replica: usize,
        /// By how much (negative: a decrement).
        by: i64,
        /// The write level.
        level: Level,
    },
    /// Adds element `e{element}` to ORSet `0s` or `s1` (set 0 or 1; `s1` may be deleted).
    AddElement {
        /// The replica.
        replica: usize,
        /// Which set.
        set: u8,
        /// The element.
        element: u32,
        /// The write level.
        level: Level,
    },
    /// Removes element `e{element}` from ORSet `0s` or `s1`.
    RemoveElement {
        /// The replica.
        replica: usize,
        /// Which set.
        set: u8,
        /// The element.
        element: u32,
        /// The write level.
        level: Level,
    },
    /// Increments the GCounter of entry `k{entry}` of ORMap `m0`.
    IncEntry {
        /// The replica.
        replica: usize,
        /// The entry.
        entry: u32,
        /// By how much.
        by: u64,
        /// The write level.
        level: Level,
    },
    /// Removes entry `k{entry}` of ORMap `m0`.
    RemoveEntry {
        /// The replica.
        replica: usize,
        /// The entry.
        entry: u32,
        /// The write level.
        level: Level,
    },
    /// Sets LWWRegister `l0` to `v{value}`.
    SetRegister {
        /// The replica.
        replica: usize,
        /// The value.
        value: u32,
        /// The write level.
        level: Level,
    },
    /// Deletes a key for good.
    Delete {
        /// The replica.
        replica: usize,
        /// The key.
        key: Doomed,
        /// The write level.
        level: Level,
    },
    /// Reads every key at a level (the result is not checked; the read must not hang).
    Read {
        /// The replica.
        replica: usize,
        /// The read level.
        level: Level,
    },
    /// Lets simulated time pass.
    Sleep {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// Partitions replicas `0..split` from `split..`.
    Partition {
        /// The first replica of the second group.
        split: usize,
    },
    /// Heals every partition.
    Heal,
    /// Injects a fault into a replica's store.
    StoreFault {
        /// The replica.
        replica: usize,
        /// The fault.
        fault: StoreFault,
    },
    /// Clears a replica's store fault.
    StoreClear {
        /// The replica.
        replica: usize,
    },
    /// Crashes a replica at once (no flush).
    Crash {
        /// The replica.
        replica: usize,
    },
    /// Restarts a crashed replica with a new incarnation.
    Restart {
        /// The replica.
        replica: usize,
        /// Its member list starts with only itself; the others are added a little later.
        alone: bool,
    },
    /// Quiesces, stops the whole cluster at once and restarts it; values must be as before.
    FullRestart,
    /// Crashes the whole cluster at once, with no quiescence, and restarts it.
    FullCrash,
    /// Quiesces, crashes a replica and removes it from every member list (a long absence).
    Leave {
        /// The replica.
        replica: usize,
    },
    /// Brings a replica that left back (after its incarnation was pruned, waiting for that up
    /// to a bound) with a new incarnation over its stale store.
    Return {
        /// The replica.
        replica: usize,
    },
    /// Removes a live replica from every other member list.
    RemoveLive {
        /// The replica.
        replica: usize,
    },
    /// Adds a live replica removed by [`Event::RemoveLive`] back.
    AddBack {
        /// The replica.
        replica: usize,
    },
    /// Heals everything, waits for convergence and the stores, and checks the oracle.
    Quiesce,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

fn level(rng: &mut StdRng) -> Level {
    match rng.random_range(0..8u32) {
        0..=3 => Level::Local,
        4 => Level::Two,
        5..=6 => Level::Majority,
        _ => Level::All,
    }
}

/// Draws the events of a run from `seed`.
pub fn generate(seed: u64, config: &SimConfig) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_D00D);
    let n = config.replicas.max(2);
    let mut events = Vec::with_capacity(config.steps + 1);
    let mut next_element = 0u32;
    let mut next_entry = 0u32;
    let mut next_value = 0u32;
    // The generator's own view, to draw mostly meaningful events (the runner still skips any
    // event that does not apply, so that every sub-list of events is a valid run).
    let mut down: Vec<bool> = vec![false; n];
    let mut left: Vec<bool> = vec![false; n];
    let mut removed_live: Vec<bool> = vec![false; n];
    let pick = |rng: &mut StdRng| rng.random_range(0..n);
    for _ in 0..config.steps {
        let r = pick(&mut rng);
        let roll = rng.random_range(0..100u32);
        let ev = match roll {
            0..=14 => Event::IncCounter {
                replica: r,
                key: rng.random_range(0..3u8),
                by: rng.random_range(1..6u64),
                level: level(&mut rng),
            },
            15..=21 => Event::ChangePn {
                replica: r,
                by: rng.random_range(-4..6i64),
                level: level(&mut rng),
            },
            22..=29 => {
                let element = if next_element > 0 && rng.random_bool(0.25) {
                    rng.random_range(0..next_element)
                } else {
                    next_element += 1;
                    next_element - 1
                };
                Event::AddElement {
                    replica: r,
                    set: rng.random_range(0..2u8),
                    element,
                    level: level(&mut rng),
                }
            }
            30..=33 if next_element > 0 => Event::RemoveElement {
                replica: r,
                set: rng.random_range(0..2u8),
                element: rng.random_range(0..next_element),
                level: level(&mut rng),
            },
            34..=39 => {
                let entry = if next_entry > 0 && rng.random_bool(0.6) {
                    rng.random_range(0..next_entry)
                } else {
                    next_entry += 1;
                    next_entry - 1
                };
                Event::IncEntry {
                    replica: r,
                    entry,
                    by: rng.random_range(1..4u64),
                    level: level(&mut rng),
                }
            }
            40..=41 if next_entry > 0 => Event::RemoveEntry {
                replica: r,
                entry: rng.random_range(0..next_entry),
                level: level(&mut rng),
            },
            42..=45 => {
                next_value += 1;
                Event::SetRegister {
                    replica: r,
                    value: next_value,
                    level: level(&mut rng),
                }
            }
            46 if config.has(FaultClass::Deletes) => Event::Delete {
                replica: r,
                key: if rng.random_bool(0.5) {
                    Doomed::Counter
                } else {
                    Doomed::Set
                },
                level: level(&mut rng),
            },
            47..=49 => Event::Read {
                replica: r,
                level: level(&mut rng),
            },
            50..=61 => Event::Sleep {
                ms: rng.random_range(1..400u64),
            },
            62..=64 if config.has(FaultClass::Partitions) => Event::Partition {
                split: rng.random_range(1..n),
            },
            65..=66 if config.has(FaultClass::Partitions) => Event::Heal,
            67..=72 => {
                let mut faults = Vec::new();
                if config.has(FaultClass::StoreErrors) {
                    faults.extend([
                        StoreFault::Down,
                        StoreFault::RefuseWrites,
                        StoreFault::Flaky,
                    ]);
                }
                if config.has(FaultClass::StoreHangs) {
                    faults.push(StoreFault::Hang);
                }
                if config.has(FaultClass::PartialBatches) {
                    faults.extend([StoreFault::Partial, StoreFault::Partial]);
                }
                if faults.is_empty() {
                    Event::Sleep { ms: 50 }
                } else if rng.random_bool(0.4) {
                    Event::StoreClear { replica: r }
                } else {
                    Event::StoreFault {
                        replica: r,
                        fault: faults[rng.random_range(0..faults.len())],
                    }
                }
            }
            73..=77 if config.has(FaultClass::Crashes) => {
                if down[r] && !left[r] {
                    down[r] = false;
                    Event::Restart {
                        replica: r,
                        alone: config.has(FaultClass::StartAlone) && rng.random_bool(0.5),
                    }
                } else if !down[r] {
                    down[r] = true;
                    Event::Crash { replica: r }
                } else {
                    Event::Sleep { ms: 10 }
                }
            }
            78 if config.has(FaultClass::FullRestarts) => {
                down.iter_mut().for_each(|d| *d = false);
                left.iter_mut().for_each(|d| *d = false);
                Event::FullRestart
            }
            79 if config.has(FaultClass::FullCrashes) => {
                down.iter_mut().for_each(|d| *d = false);
                left.iter_mut().for_each(|d| *d = false);
                Event::FullCrash
            }
            80..=81 if config.has(FaultClass::LongAbsences) => {
                if left[r] {
                    left[r] = false;
                    down[r] = false;
                    Event::Return { replica: r }
                } else if !down[r] && left.iter().all(|l| !l) {
                    left[r] = true;
                    down[r] = true;
                    Event::Leave { replica: r }
                } else {
                    Event::Sleep { ms: 200 }
                }
            }
            82 if config.has(FaultClass::LiveRemovals) => {
                removed_live[r] = !removed_live[r];
                if removed_live[r] {
                    Event::RemoveLive { replica: r }
                } else {
                    Event::AddBack { replica: r }
                }
            }
            83..=85 => Event::Quiesce,
            _ => Event::Sleep {
                ms: rng.random_range(1..100u64),
            },
        };
        if matches!(ev, Event::Quiesce) {
            // The runner restarts crashed replicas to quiesce.
            for (d, l) in down.iter_mut().zip(&left) {
                if !l {
                    *d = false;
                }
            }
        }
        events.push(ev);
    }
    events.push(Event::Quiesce);
    events
}
