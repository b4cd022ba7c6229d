//! Area 4: CRDT operations and merges against the `crdts` crate on the same workload, with the
//! same actor type (`UniqueReplicaId`) on both sides.

use std::hint::black_box;
use std::time::Instant;

use crdts::{CmRDT, CvRDT};
use dd_core::crdt::{GCounter, ORMap, ORSet, PNCounter};
use dd_core::{ReplicatedData, UniqueReplicaId};

use crate::Sizes;
use crate::error::{BenchError, Result};
use crate::report::{Row, Table, Verdict};
use crate::stats::{fmt_ratio, fmt_secs, median, ratio};

type Orswot = crdts::Orswot<u64, UniqueReplicaId>;
type CrdtsGCounter = crdts::GCounter<UniqueReplicaId>;
type CrdtsPNCounter = crdts::PNCounter<UniqueReplicaId>;
type CrdtsMap = crdts::Map<u64, CrdtsPNCounter, UniqueReplicaId>;

/// Adds between two resets of the pending delta in the add workload.
const DELTA_RESET_EVERY: u64 = 100;
/// Adds of the burst workload (pending delta never reset).
const BURST_ADDS: usize = 2_000;
/// Keys the map-update workload spreads its updates over.
const MAP_KEYS: u64 = 1_000;
/// Actors of the counter workloads.
const ACTORS: usize = 64;
/// Actors with a slot in each counter of the counter workloads.
const SLOTS_PER_COUNTER: usize = 8;

fn actor(i: usize) -> UniqueReplicaId {
    UniqueReplicaId::new(format!("replica-{i:03}"), 1)
}

/// Times `run` on a fresh input from `prepare` (not timed).
fn time<I>(prepare: impl Fn() -> I, run: impl Fn(I)) -> f64 {
    let input = prepare();
    let started = Instant::now();
    run(input);
    started.elapsed().as_secs_f64()
}

/// One workload on both sides: `ours` and `theirs` alternate, `runs` times each.
struct Workload {
    name: String,
    ours: Vec<f64>,
    theirs: Vec<f64>,
}

fn alternate(
    name: String,
    runs: usize,
    mut ours: impl FnMut() -> f64,
    mut theirs: impl FnMut() -> f64,
) -> Workload {
    // One unmeasured warm-up each.
    ours();
    theirs();
    let mut w = Workload {
        name,
        ours: Vec::new(),
        theirs: Vec::new(),
    };
    for run in 0..runs {
        if run % 2 == 0 {
            w.ours.push(ours());
            w.theirs.push(theirs());
        } else {
            w.theirs.push(theirs());
            w.ours.push(ours());
        }
    }
    w
}

fn orset_with(node: &UniqueReplicaId, elements: std::ops::Range<u64>) -> ORSet<u64> {
    let mut s = ORSet::new();
    for e in elements {
        s.add(node, e);
        if (e + 1) % DELTA_RESET_EVERY == 0 {
            s.reset_delta_for_bench();
        }
    }
    s.reset_delta_for_bench();
    s
}

/// `reset_delta` through the trait, named for what it is for here.
trait ResetDelta {
    fn reset_delta_for_bench(&mut self);
}

impl<T: dd_core::DeltaReplicatedData> ResetDelta for T {
    fn reset_delta_for_bench(&mut self) {
        self.reset_delta();
    }
}

/// Times `elements.len()` adds to an empty `Orswot`, the way its docs show.
fn orswot_adds(node: &UniqueReplicaId, elements: std::ops::Range<u64>) -> f64 {
    time(Orswot::new, |mut s| {
        for e in elements.clone() {
            let ctx = s.read_ctx().derive_add_ctx(node.clone());
            let op = s.add(e, ctx);
            s.apply(op);
        }
        black_box(s);
    })
}

fn orswot_with(node: &UniqueReplicaId, elements: std::ops::Range<u64>) -> Orswot {
    let mut s = Orswot::new();
    for e in elements {
        let ctx = s.read_ctx().derive_add_ctx(node.clone());
        let op = s.add(e, ctx);
        s.apply(op);
    }
    s
}

/// The counters merged in the counter workloads: `count` counters, each with slots for
/// `SLOTS_PER_COUNTER` of `ACTORS` actors.
fn counter_slots(count: usize) -> Vec<Vec<(usize, u64)>> {
    (0..count)
        .map(|c| {
            (0..SLOTS_PER_COUNTER)
                .map(|s| ((c * 7 + s * 13) % ACTORS, (c + s) as u64 % 17 + 1))
                .collect()
        })
        .collect()
}

fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Failed(format!(
            "{what}: dd-core and crdts disagree on the result"
        )))
    }
}

/// Runs area 4 (CPU only; no runtime needed).
pub fn run(sizes: &Sizes) -> Result<Table> {
    let n = sizes.crdt_elements as u64;
    let runs = sizes.crdt_runs;
    let a = actor(0);
    let b = actor(1);
    let mut workloads = Vec::new();

    // Sanity: both sides compute the same sets, so they do the same work.
    let mut ours = orset_with(&a, 0..n);
    ours.merge(&orset_with(&b, n / 2..n + n / 2));
    let mut theirs = orswot_with(&a, 0..n);
    theirs.merge(orswot_with(&b, n / 2..n + n / 2));
    check(ours.len() == theirs.read().val.len(), "ORSet merge")?;

    workloads.push(alternate(
        format!(
            "ORSet: {n} adds by one replica, pending delta reset every {DELTA_RESET_EVERY} adds \
             (as the replicator resets it at each propagation tick)"
        ),
        runs,
        || {
            time(ORSet::<u64>::new, |mut s| {
                for e in 0..n {
                    s.add(&a, e);
                    if (e + 1) % DELTA_RESET_EVERY == 0 {
                        s.reset_delta_for_bench();
                    }
                }
                black_box(s);
            })
        },
        || orswot_adds(&a, 0..n),
    ));
    let burst = (BURST_ADDS as u64).min(n);
    workloads.push(alternate(
        format!(
            "ORSet: {burst} adds by one replica without resetting the pending delta (a burst \
             between two propagation ticks)"
        ),
        runs,
        || {
            time(ORSet::<u64>::new, |mut s| {
                for e in 0..burst {
                    s.add(&a, e);
                }
                black_box(s);
            })
        },
        || orswot_adds(&a, 0..burst),
    ));
    let full_ours = orset_with(&a, 0..n);
    let full_theirs = orswot_with(&a, 0..n);
    workloads.push(alternate(
        format!(
            "ORSet: {n} removes from a set of {n}, pending delta reset every \
             {DELTA_RESET_EVERY} removes"
        ),
        runs,
        || {
            time(
                || full_ours.clone(),
                |mut s| {
                    for e in 0..n {
                        s.remove(&a, &e);
                        if (e + 1) % DELTA_RESET_EVERY == 0 {
                            s.reset_delta_for_bench();
                        }
                    }
                    black_box(s);
                },
            )
        },
        || {
            time(
                || full_theirs.clone(),
                |mut s| {
                    for e in 0..n {
                        let ctx = s.contains(&e).derive_rm_ctx();
                        let op = s.rm(e, ctx);
                        s.apply(op);
                    }
                    black_box(s);
                },
            )
        },
    ));
    let other_ours = orset_with(&b, n / 2..n + n / 2);
    let other_theirs = orswot_with(&b, n / 2..n + n / 2);
    workloads.push(alternate(
        format!("ORSet: merge of two sets of {n} elements (half shared), two replicas"),
        runs,
        || {
            time(
                || full_ours.clone(),
                |mut s| {
                    s.merge(&other_ours);
                    black_box(s);
                },
            )
        },
        || {
            time(
                || (full_theirs.clone(), other_theirs.clone()),
                |(mut s, o)| {
                    s.merge(o);
                    black_box(s);
                },
            )
        },
    ));

    // Map updates: increments of counters spread over MAP_KEYS keys.
    let map_keys = MAP_KEYS.min(n);
    let ours_map_update = |m: &mut ORMap<u64, PNCounter>, i: u64| {
        let _ = m.update(&a, i % map_keys, PNCounter::new(), |c| c.increment(&a, 1));
    };
    let theirs_map_update = |m: &mut CrdtsMap, i: u64| {
        let ctx = m.read_ctx().derive_add_ctx(a.clone());
        let op = m.update(i % map_keys, ctx, |c, ctx| c.inc(ctx.dot.actor));
        m.apply(op);
    };
    {
        let mut ours = ORMap::new();
        let mut theirs = CrdtsMap::new();
        for i in 0..n {
            ours_map_update(&mut ours, i);
            theirs_map_update(&mut theirs, i);
        }
        let ours_first = ours.get(&0).map(|c| c.value().to_string());
        let theirs_first = theirs.get(&0).val.map(|c| c.read().to_string());
        check(
            ours.len() == theirs.len().val && ours_first == theirs_first,
            "ORMap updates",
        )?;
    }
    workloads.push(alternate(
        format!(
            "ORMap<u64, PNCounter>: {n} increments spread over {map_keys} keys by one replica, \
             pending delta reset every {DELTA_RESET_EVERY} updates (crdts: `Map` of `PNCounter`)"
        ),
        runs,
        || {
            time(ORMap::<u64, PNCounter>::new, |mut m| {
                for i in 0..n {
                    ours_map_update(&mut m, i);
                    if (i + 1) % DELTA_RESET_EVERY == 0 {
                        m.reset_delta_for_bench();
                    }
                }
                black_box(m);
            })
        },
        || {
            time(CrdtsMap::new, |mut m| {
                for i in 0..n {
                    theirs_map_update(&mut m, i);
                }
                black_box(m);
            })
        },
    ));

    // Map merges: two replicas' maps of counters, half of the keys shared (updated
    // concurrently on both).
    let map_of = |node: &UniqueReplicaId, keys: std::ops::Range<u64>| {
        let mut m: ORMap<u64, PNCounter> = ORMap::new();
        for i in 0..n {
            let key = keys.start + i % (keys.end - keys.start);
            let _ = m.update(node, key, PNCounter::new(), |c| c.increment(node, 1));
        }
        m.reset_delta_for_bench();
        m
    };
    let crdts_map_of = |node: &UniqueReplicaId, keys: std::ops::Range<u64>| {
        let mut m = CrdtsMap::new();
        for i in 0..n {
            let key = keys.start + i % (keys.end - keys.start);
            let ctx = m.read_ctx().derive_add_ctx(node.clone());
            let op = m.update(key, ctx, |c, ctx| c.inc(ctx.dot.actor));
            m.apply(op);
        }
        m
    };
    let (left_ours, right_ours) = (
        map_of(&a, 0..map_keys),
        map_of(&b, map_keys / 2..map_keys + map_keys / 2),
    );
    let (left_theirs, right_theirs) = (
        crdts_map_of(&a, 0..map_keys),
        crdts_map_of(&b, map_keys / 2..map_keys + map_keys / 2),
    );
    {
        let merged_ours = left_ours.clone().merged(&right_ours);
        let mut merged_theirs = left_theirs.clone();
        merged_theirs.merge(right_theirs.clone());
        let shared = map_keys / 2;
        check(
            merged_ours.len() == merged_theirs.len().val
                && merged_ours.get(&shared).map(|c| c.value().to_string())
                    == merged_theirs.get(&shared).val.map(|c| c.read().to_string()),
            "ORMap merge",
        )?;
    }
    workloads.push(alternate(
        format!(
            "ORMap<u64, PNCounter>: merge of two maps of {map_keys} counters (half of the keys \
             shared, updated on both replicas), two replicas"
        ),
        runs,
        || {
            time(
                || left_ours.clone(),
                |mut m| {
                    m.merge(&right_ours);
                    black_box(m);
                },
            )
        },
        || {
            time(
                || (left_theirs.clone(), right_theirs.clone()),
                |(mut m, o)| {
                    m.merge(o);
                    black_box(m);
                },
            )
        },
    ));

    let merges = sizes.counter_merges;
    let slots = counter_slots(merges);
    let ours_g: Vec<GCounter> = slots
        .iter()
        .map(|c| {
            let mut g = GCounter::new();
            for (act, n) in c {
                let _ = g.increment(&actor(*act), *n);
            }
            g.reset_delta_for_bench();
            g
        })
        .collect();
    let theirs_g: Vec<CrdtsGCounter> = slots
        .iter()
        .map(|c| {
            let mut g = CrdtsGCounter::new();
            for (act, n) in c {
                let op = g.inc_many(actor(*act), *n);
                g.apply(op);
            }
            g
        })
        .collect();
    let ours_p: Vec<PNCounter> = slots
        .iter()
        .map(|c| {
            let mut p = PNCounter::new();
            for (i, (act, n)) in c.iter().enumerate() {
                let _ = if i % 2 == 0 {
                    p.increment(&actor(*act), *n)
                } else {
                    p.decrement(&actor(*act), *n)
                };
            }
            p.reset_delta_for_bench();
            p
        })
        .collect();
    let theirs_p: Vec<CrdtsPNCounter> = slots
        .iter()
        .map(|c| {
            let mut p = CrdtsPNCounter::new();
            for (i, (act, n)) in c.iter().enumerate() {
                let op = if i % 2 == 0 {
                    p.inc_many(actor(*act), *n)
                } else {
                    p.dec_many(actor(*act), *n)
                };
                p.apply(op);
            }
            p
        })
        .collect();
    // Sanity: the same merged values.
    let mut g_all = GCounter::new();
    let mut tg_all = CrdtsGCounter::new();
    for (o, t) in ours_g.iter().zip(&theirs_g) {
        g_all.merge(o);
        tg_all.merge(t.clone());
    }
    check(
        g_all.value().to_string() == tg_all.read().to_string(),
        "GCounter merge",
    )?;

    workloads.push(alternate(
        format!("GCounter: {merges} merges (counters with {SLOTS_PER_COUNTER} of {ACTORS} replicas' slots)"),
        runs,
        || {
            time(
                || (),
                |()| {
                    let mut acc = GCounter::new();
                    for g in &ours_g {
                        acc.merge(g);
                    }
                    black_box(acc);
                },
            )
        },
        || {
            // crdts merges by value: the clone of each counter is part of its merge API.
            time(
                || theirs_g.clone(),
                |all| {
                    let mut acc = CrdtsGCounter::new();
                    for g in all {
                        acc.merge(g);
                    }
                    black_box(acc);
                },
            )
        },
    ));
    workloads.push(alternate(
        format!("PNCounter: {merges} merges (counters with {SLOTS_PER_COUNTER} of {ACTORS} replicas' slots)"),
        runs,
        || {
            time(
                || (),
                |()| {
                    let mut acc = PNCounter::new();
                    for p in &ours_p {
                        acc.merge(p);
                    }
                    black_box(acc);
                },
            )
        },
        || {
            time(
                || theirs_p.clone(),
                |all| {
                    let mut acc = CrdtsPNCounter::new();
                    for p in all {
                        acc.merge(p);
                    }
                    black_box(acc);
                },
            )
        },
    ));

    let mut table = Table::new(
        "4. CRDT operations and merges against the `crdts` crate",
        format!(
            "The same workload on dd-core's CRDTs and on `crdts` 7 (`Orswot`, `Map`, `GCounter`, \
             `PNCounter`), both with `UniqueReplicaId` as the actor, single-threaded, inputs \
             built (and cloned) outside the timed part; `crdts` merges take the other state by \
             value, so its inputs are cloned before timing too. {runs} runs per side, \
             alternating, after one warm-up each; medians. Ratio = crdts time / dd-core time \
             (crdts = 1; above 1 means dd-core is faster). Both sides are checked to compute the \
             same result."
        ),
    );
    for w in workloads {
        let (ours, theirs) = (median(&w.ours), median(&w.theirs));
        let r = ratio(theirs, ours);
        table.rows.push(Row {
            what: format!("dd-core {}", w.name),
            figure: fmt_secs(ours),
            baseline: format!("{} (crdts)", fmt_secs(theirs)),
            ratio: format!("{} the speed of crdts", fmt_ratio(r)),
            target: "≥ 1x (at least as fast)".into(),
            met: Verdict::from_bool(r >= 1.0),
        });
    }
    Ok(table)
}
