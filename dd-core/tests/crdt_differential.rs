//! Differential tests against the `crdts` crate (v7): random operation sequences at three
//! replicas, with random merges, applied to both implementations; the observed values must agree
//! at every step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod crdt_support;

use std::collections::BTreeSet;

use crdts::{CmRDT, CvRDT};
use dd_core::ReplicatedData;
use dd_core::crdt::{GCounter, LWWRegister, MVRegister, ORSet, PNCounter};
use proptest::prelude::*;

use crdt_support::nodes;

/// One step of a script: an operation at a replica, or a one-way merge.
#[derive(Debug, Clone)]
enum Step<O> {
    Op(usize, O),
    Merge { from: usize, to: usize },
}

fn script<O: std::fmt::Debug + Clone>(
    op: impl Strategy<Value = O>,
) -> impl Strategy<Value = Vec<Step<O>>> {
    prop::collection::vec(
        prop_oneof![
            3 => (0usize..3, op).prop_map(|(r, o)| Step::Op(r, o)),
            2 => (0usize..3, 0usize..3).prop_map(|(from, to)| Step::Merge { from, to }),
        ],
        0..40,
    )
}

/// Runs `steps` on three replicas of ours and three of theirs, comparing observations.
fn run<O, Ours, Theirs, Obs>(
    steps: &[Step<O>],
    ours: Ours,
    theirs: Theirs,
    apply_ours: impl Fn(&mut Ours, usize, &O),
    apply_theirs: impl Fn(&mut Theirs, usize, &O),
    observe_ours: impl Fn(&Ours) -> Obs,
    observe_theirs: impl Fn(&Theirs) -> Obs,
) -> Result<(), TestCaseError>
where
    Ours: ReplicatedData,
    Theirs: CvRDT + Clone,
    Obs: PartialEq + std::fmt::Debug,
{
    let mut ours = [ours.clone(), ours.clone(), ours];
    let mut theirs = [theirs.clone(), theirs.clone(), theirs];
    for step in steps {
        match step {
            Step::Op(r, op) => {
                apply_ours(&mut ours[*r], *r, op);
                apply_theirs(&mut theirs[*r], *r, op);
            }
            Step::Merge { from, to } => {
                let o = ours[*from].clone();
                ours[*to].merge(&o);
                let t = theirs[*from].clone();
                theirs[*to].merge(t);
            }
        }
        for r in 0..3 {
            prop_assert_eq!(
                observe_ours(&ours[r]),
                observe_theirs(&theirs[r]),
                "replica {}",
                r
            );
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum SetOp {
    Add(u64),
    Remove(u64),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn gcounter_matches_crdts(steps in script(0u64..1000)) {
        let nodes = nodes();
        run(
            &steps,
            GCounter::new(),
            crdts::GCounter::<usize>::new(),
            |c, r, n| c.increment(&nodes[r], *n).expect("small increment"),
            |c, r, n| { let op = c.inc_many(r, *n); c.apply(op) },
            |c| c.value().to_string(),
            |c| c.read().to_string(),
        )?;
    }

    #[test]
    fn pncounter_matches_crdts(steps in script((any::<bool>(), 0u64..1000))) {
        let nodes = nodes();
        run(
            &steps,
            PNCounter::new(),
            crdts::PNCounter::<usize>::new(),
            |c, r, (up, n)| {
                if *up { c.increment(&nodes[r], *n) } else { c.decrement(&nodes[r], *n) }
                    .expect("small change")
            },
            |c, r, (up, n)| {
                let op = if *up { c.inc_many(r, *n) } else { c.dec_many(r, *n) };
                c.apply(op)
            },
            |c| c.value().to_string(),
            |c| c.read().to_string(),
        )?;
    }

    #[test]
    fn orset_matches_orswot(steps in script(prop_oneof![
        (0u64..5).prop_map(SetOp::Add),
        (0u64..5).prop_map(SetOp::Remove),
    ])) {
        let nodes = nodes();
        run(
            &steps,
            ORSet::<u64>::new(),
            crdts::Orswot::<u64, usize>::new(),
            |s, r, op| match op {
                SetOp::Add(e) => s.add(&nodes[r], *e),
                SetOp::Remove(e) => s.remove(&nodes[r], e),
            },
            |s, r, op| match op {
                SetOp::Add(e) => {
                    let ctx = s.read_ctx().derive_add_ctx(r);
                    let op = s.add(*e, ctx);
                    s.apply(op)
                }
                SetOp::Remove(e) => {
                    let ctx = s.contains(e).derive_rm_ctx();
                    let op = s.rm(*e, ctx);
                    s.apply(op)
                }
            },
            |s| s.elements(),
            |s| s.read().val.into_iter().collect::<BTreeSet<u64>>(),
        )?;
    }

    #[test]
    fn mv_register_matches_mvreg(steps in script(0u64..5)) {
        let nodes = nodes();
        run(
            &steps,
            MVRegister::<u64>::new(),
            crdts::MVReg::<u64, usize>::new(),
            |m, r, v| m.set(&nodes[r], *v),
            |m, r, v| {
                let ctx = m.read_ctx().derive_add_ctx(r);
                let op = m.write(*v, ctx);
                m.apply(op)
            },
            |m| m.values(),
            |m| m.read().val.into_iter().collect::<BTreeSet<u64>>(),
        )?;
    }

    #[test]
    fn lww_register_matches_lwwreg(steps in script((0u64..5, 1i64..3))) {
        let nodes = nodes();
        // Writers a < b < c order like their indices 0 < 1 < 2; "origin" sorts after them.
        let origin = dd_core::UniqueReplicaId::new("origin", 0);
        run(
            &steps,
            LWWRegister::with_timestamp(&origin, 0u64, 0),
            crdts::LWWReg { val: 0u64, marker: (0i64, 3usize) },
            |reg, r, (v, step)| {
                let step = *step;
                reg.set(&nodes[r], *v, &move |current: i64, _: &u64| current + step)
            },
            |reg, r, (v, step)| {
                let ts = reg.marker.0 + step;
                reg.update(*v, (ts, r))
            },
            |reg| *reg.value(),
            |reg| reg.val,
        )?;
    }
}
