//! Shared machinery of the CRDT property tests: a model (random operations and an observed
//! value) per CRDT type, and the generic checks run over it.

#![allow(dead_code)]

use std::fmt::Debug;

use dd_core::crdt::Crdt;
use dd_core::data::TypeRegistry;
use dd_core::{DeltaReplicatedData, UniqueReplicaId};
use proptest::prelude::*;

pub mod models;

/// The replicas of every simulation.
pub fn nodes() -> [UniqueReplicaId; 3] {
    [
        UniqueReplicaId::new("a", 1),
        UniqueReplicaId::new("b", 7),
        UniqueReplicaId::new("c", 3),
    ]
}

/// A CRDT type with random operations and an observed value.
pub trait Model: Crdt {
    /// One operation.
    type Op: Debug + Clone;
    /// What a user reads.
    type Observed: Debug + PartialEq;
    /// Random operations.
    fn op() -> BoxedStrategy<Self::Op>;
    /// Applies one operation at `node` (an operation a type refuses, such as an overflowing
    /// increment, leaves the value unchanged).
    fn apply(&mut self, node: &UniqueReplicaId, op: &Self::Op);
    /// The value every replica starts from.
    fn initial() -> Self {
        Self::zero().expect("type has a zero")
    }
    /// The observed value.
    fn observe(&self) -> Self::Observed;
    /// Whether pruning keeps the observed value (false only for `VersionVector`, whose pruning
    /// bumps the collapse-into entry as in Akka).
    fn pruning_keeps_value() -> bool {
        true
    }
}

/// One round: operations `(replica, op)`.
pub type Round<O> = Vec<(usize, O)>;

/// Rounds of operations at the three replicas.
pub fn rounds<M: Model>() -> impl Strategy<Value = Vec<Round<M::Op>>> {
    prop::collection::vec(prop::collection::vec((0usize..3, M::op()), 0..8), 1..6)
}

/// Rounds of operations, each followed by some one-way merges `(from, to)`, giving three
/// diverged replica states.
pub fn diverged_states<M: Model>() -> impl Strategy<Value = [M; 3]> {
    prop::collection::vec(
        (
            prop::collection::vec((0usize..3, M::op()), 0..6),
            prop::collection::vec((0usize..3, 0usize..3), 0..3),
        ),
        1..6,
    )
    .prop_map(|script| {
        let nodes = nodes();
        let mut replicas = [M::initial(), M::initial(), M::initial()];
        for (ops, merges) in script {
            for (r, op) in ops {
                replicas[r].apply(&nodes[r], &op);
            }
            for (from, to) in merges {
                let from_state = replicas[from].clone();
                replicas[to].merge(&from_state);
            }
        }
        replicas
    })
}

/// Merge is commutative, associative and idempotent.
pub fn check_merge_laws<M: Model>(states: &[M; 3]) -> Result<(), TestCaseError> {
    let [a, b, c] = states;
    prop_assert_eq!(a.clone().merged(b), b.clone().merged(a), "commutative");
    prop_assert_eq!(
        a.clone().merged(b).merged(c),
        a.clone().merged(&b.clone().merged(c)),
        "associative"
    );
    prop_assert_eq!(a.clone().merged(a), a.clone(), "idempotent");
    let ab = a.clone().merged(b);
    prop_assert_eq!(
        ab.clone().merged(a),
        ab.clone(),
        "merging a part again changes nothing"
    );
    prop_assert_eq!(
        a.clone().merged(b).observe(),
        b.clone().merged(a).observe(),
        "observed values commute"
    );
    Ok(())
}

/// Applying each replica's deltas (reset after every round, delivered in causal order and
/// through postcard) gives the same states as merging full states; a replica that starts from
/// `zero()` and only receives deltas ends in the same state too.
pub fn check_deltas_match_full_states<M: Model>(
    script: &[Round<M::Op>],
) -> Result<(), TestCaseError> {
    let nodes = nodes();
    let mut full = [M::initial(), M::initial(), M::initial()];
    let mut by_delta = [M::initial(), M::initial(), M::initial()];
    let mut observer = M::zero();
    for round in script {
        for (r, op) in round {
            full[*r].apply(&nodes[*r], op);
            by_delta[*r].apply(&nodes[*r], op);
        }
        let mut all = full[0].clone();
        all.merge(&full[1]);
        all.merge(&full[2]);
        full = [all.clone(), all.clone(), all.clone()];

        // What each replica sends: its delta (through the wire format), or its full state when
        // the type has no delta.
        enum Sent<M: DeltaReplicatedData> {
            Delta(M::Delta),
            Full(M),
        }
        let mut sent = Vec::new();
        for (r, replica) in by_delta.iter_mut().enumerate() {
            match replica.delta() {
                Some(d) => {
                    let bytes =
                        postcard::to_stdvec(&d).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let d: M::Delta = postcard::from_bytes(&bytes)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    sent.push((r, Sent::Delta(d)));
                }
                None => sent.push((r, Sent::<M>::Full(replica.clone()))),
            }
            replica.reset_delta();
            prop_assert!(replica.delta().is_none(), "reset_delta forgets the delta");
        }
        for (from, message) in &sent {
            for (to, replica) in by_delta.iter_mut().enumerate() {
                if to == *from {
                    continue;
                }
                match message {
                    Sent::Delta(d) => replica.merge_delta(d),
                    Sent::Full(s) => replica.merge(s),
                }
            }
            if let Some(obs) = observer.as_mut() {
                match message {
                    Sent::Delta(d) => obs.merge_delta(d),
                    Sent::Full(s) => obs.merge(s),
                }
            }
        }
        for replica in &by_delta {
            prop_assert_eq!(replica, &all, "delta replica differs from full-state merge");
        }
        if let Some(obs) = observer.as_ref() {
            prop_assert_eq!(obs, &all, "zero() + deltas differs from full-state merge");
        }
    }
    Ok(())
}

/// Every delta of a run, applied in reverse order to `zero()`, still gives the final state:
/// deltas are states of the lattice, so delivery order only affects how compact the
/// intermediate contexts are.
pub fn check_deltas_out_of_order<M: Model>(script: &[Round<M::Op>]) -> Result<(), TestCaseError> {
    let Some(mut observer) = M::zero() else {
        return Ok(());
    };
    let nodes = nodes();
    let mut replicas = [M::initial(), M::initial(), M::initial()];
    let mut deltas = Vec::new();
    for round in script {
        for (r, op) in round {
            replicas[*r].apply(&nodes[*r], op);
        }
        for replica in replicas.iter_mut() {
            if let Some(d) = replica.delta() {
                deltas.push(d);
            }
            replica.reset_delta();
        }
        let mut all = replicas[0].clone();
        all.merge(&replicas[1]);
        all.merge(&replicas[2]);
        replicas = [all.clone(), all.clone(), all];
    }
    if deltas.is_empty() {
        // No operation, or a type without deltas: nothing to check.
        return Ok(());
    }
    for d in deltas.iter().rev() {
        observer.merge_delta(d);
    }
    prop_assert_eq!(&observer, &replicas[0]);
    Ok(())
}

/// postcard round-trips the state, directly and through the type registry.
pub fn check_serde<M: Model>(state: &M) -> Result<(), TestCaseError> {
    let bytes = postcard::to_stdvec(state).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: M = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, state);
    let registry = TypeRegistry::with_builtin_types();
    let erased = registry
        .decode(&M::type_name(), &bytes)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(erased.downcast_ref::<M>(), Some(state));
    Ok(())
}

/// Pruning `c` into `a` keeps the observed value and removes every trace of `c`; entries of
/// `c` merged in later go away with `prune_cleanup`.
pub fn check_pruning<M: Model>(states: &[M; 3]) -> Result<(), TestCaseError> {
    let [a, _, c] = nodes();
    let state = states[0].clone().merged(&states[1]).merged(&states[2]);
    let mut pruned = state.clone();
    pruned.prune(&c, &a);
    if M::pruning_keeps_value() {
        prop_assert_eq!(
            pruned.observe(),
            state.observe(),
            "pruning changed the value"
        );
    }
    prop_assert!(!pruned.modified_by_nodes().contains(&c));
    prop_assert!(!pruned.needs_pruning_from(&c));
    // Pruning is idempotent and the pruned state stays a valid CRDT state.
    let mut twice = pruned.clone();
    twice.prune(&c, &a);
    prop_assert_eq!(&twice, &pruned);
    prop_assert_eq!(pruned.clone().merged(&pruned), pruned.clone());

    // A replica that had not seen the pruning sends its old state; cleanup drops c again.
    let mut late = pruned.clone();
    late.merge(&states[2]);
    late.prune_cleanup(&c);
    prop_assert!(!late.modified_by_nodes().contains(&c));
    prop_assert!(!late.needs_pruning_from(&c));
    Ok(())
}

/// Declares the property tests of one model type.
#[macro_export]
macro_rules! crdt_properties {
    ($name:ident, $ty:ty) => {
        mod $name {
            use super::crdt_support::*;
            #[allow(unused_imports)]
            use super::*;
            use proptest::prelude::*;

            proptest! {
                #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

                #[test]
                fn merge_laws(states in diverged_states::<$ty>()) {
                    check_merge_laws(&states)?;
                }

                #[test]
                fn deltas_match_full_states(script in rounds::<$ty>()) {
                    check_deltas_match_full_states::<$ty>(&script)?;
                }

                #[test]
                fn deltas_out_of_order(script in rounds::<$ty>()) {
                    check_deltas_out_of_order::<$ty>(&script)?;
                }

                #[test]
                fn serde_round_trip(states in diverged_states::<$ty>()) {
                    for s in &states {
                        check_serde(s)?;
                    }
                }

                #[test]
                fn pruning(states in diverged_states::<$ty>()) {
                    check_pruning(&states)?;
                }
            }
        }
    };
}
