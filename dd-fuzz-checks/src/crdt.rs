//! The checks of the `crdt_decode` target: the built-in CRDT states and deltas that arrive from
//! peers and durable stores, decoded by [`TypeRegistry::with_builtin_types`].
//!
//! The first byte of an input picks one of [`builtin_type_names`] (modulo their number); the
//! rest is fed to [`check_typed`], which the `transport_frame` target also uses for the values
//! and deltas inside replicator messages.

use std::hint::black_box;
use std::sync::OnceLock;

use dd_core::UniqueReplicaId;
use dd_core::crdt::{
    Element, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet,
    PNCounter, PNCounterMap, VersionVector,
};
use dd_core::data::{ErasedData, TypeRegistry, builtin_type_names};

use crate::{CheckFailure, Outcome, Target, seeds};

/// The replica that pruning collapses removed entries into.
const PRUNING_OWNER: &str = "fuzz-pruning-owner";

struct Types {
    registry: TypeRegistry,
    names: Vec<String>,
    /// A sample value of every built-in type (those of the seeds), to merge decoded states with.
    samples: Vec<Box<dyn ErasedData>>,
}

fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| Types {
        registry: TypeRegistry::with_builtin_types(),
        names: builtin_type_names(),
        // The seeds test fails if the samples cannot be built; merging with them is then skipped.
        samples: seeds::sample_values().unwrap_or_default(),
    })
}

/// The selector byte that makes [`check`] decode the rest of an input as `type_name`, or `None`
/// for a name outside [`builtin_type_names`].
pub fn selector(type_name: &str) -> Option<u8> {
    let index = types().names.iter().position(|n| n == type_name)?;
    u8::try_from(index).ok()
}

/// Checks one input: its first byte picks the built-in type (see the module docs).
///
/// ```
/// use dd_core::UniqueReplicaId;
/// use dd_core::crdt::GCounter;
/// use dd_core::data::ErasedData;
/// use dd_core::TypeName;
/// use dd_fuzz_checks::{crdt, Outcome};
/// let mut counter = GCounter::new();
/// counter.increment(&UniqueReplicaId::new("a", 1), 3).unwrap();
/// let mut input = vec![crdt::selector(&GCounter::type_name()).unwrap()];
/// input.extend(ErasedData::encode(&counter).unwrap());
/// assert_eq!(crdt::check(&input), Ok(Outcome::Accepted));
/// assert_eq!(crdt::check(&[]), Ok(Outcome::Rejected));
/// ```
pub fn check(data: &[u8]) -> Result<Outcome, CheckFailure> {
    let Some((&selector, bytes)) = data.split_first() else {
        return Ok(Outcome::Rejected);
    };
    let names = &types().names;
    let Some(type_name) = names.get(usize::from(selector) % names.len().max(1)) else {
        return Ok(Outcome::Rejected);
    };
    check_typed(Target::CrdtDecode, type_name, bytes)
}

/// Checks `bytes` as a full state and as a delta of `type_name` (any name; an unknown one is
/// rejected), reporting failures as `target`'s.
///
/// As a state, what decodes must re-encode and decode again to an equal value, merge with that
/// copy and (both ways) with a sample value of its type, give its values to the type's readers
/// (counter sums, map entries, set elements), and survive pruning of the first replica it
/// mentions; as a delta, what decodes must merge into the type's zero value and into the
/// decoded state (if any), and the result must re-encode and decode again to an equal value.
pub fn check_typed(target: Target, type_name: &str, bytes: &[u8]) -> Result<Outcome, CheckFailure> {
    let registry = &types().registry;
    let fail = |reason: String| CheckFailure::new(target, format!("{type_name}: {reason}"));
    let mut outcome = Outcome::Rejected;
    let state = registry.decode(type_name, bytes).ok();
    if let Some(value) = &state {
        outcome = Outcome::Accepted;
        check_state(registry, type_name, value.as_ref()).map_err(fail)?;
    }
    let zero = registry.zero(type_name).ok().flatten();
    for (what, base) in [("the zero value", zero), ("the decoded state", state)] {
        let Some(mut base) = base else { continue };
        if base.merge_delta_bytes(bytes).is_ok() {
            outcome = Outcome::Accepted;
            round_trip(registry, type_name, base.as_ref())
                .map_err(|reason| fail(format!("after merging the delta into {what}: {reason}")))?;
        }
    }
    Ok(outcome)
}

/// The properties of a decoded full state.
fn check_state(
    registry: &TypeRegistry,
    type_name: &str,
    value: &dyn ErasedData,
) -> Result<(), String> {
    let copy = round_trip(registry, type_name, value)?;
    let mut merged = value.clone_boxed();
    merged
        .merge_erased(copy.as_ref())
        .map_err(|e| format!("the state does not merge with its own copy: {e}"))?;
    merged
        .encode_delta()
        .map_err(|e| format!("the merged state's delta does not encode: {e}"))?;
    read_values(value);
    let sample = types()
        .samples
        .iter()
        .find(|s| s.data_type_name() == value.data_type_name());
    if let Some(sample) = sample {
        let mut into_value = value.clone_boxed();
        into_value
            .merge_erased(sample.as_ref())
            .map_err(|e| format!("the state does not merge with a sample value: {e}"))?;
        let mut into_sample = sample.clone_boxed();
        into_sample
            .merge_erased(value)
            .map_err(|e| format!("a sample value does not merge with the state: {e}"))?;
        read_values(into_value.as_ref());
        round_trip(registry, type_name, into_value.as_ref())
            .map_err(|reason| format!("after merging a sample value into the state: {reason}"))?;
    }
    let mut pruned = value.clone_boxed();
    if let Some(removed) = pruned.modified_by_nodes().into_iter().next() {
        let owner = UniqueReplicaId::new(PRUNING_OWNER, 1);
        if pruned.needs_pruning_from(&removed) {
            pruned.prune(&removed, &owner);
        }
        pruned.prune_cleanup(&removed);
        round_trip(registry, type_name, pruned.as_ref())
            .map_err(|reason| format!("after pruning {removed}: {reason}"))?;
    }
    Ok(())
}

/// Encodes `value`, decodes it again and checks the copy equals it; returns the copy.
fn round_trip(
    registry: &TypeRegistry,
    type_name: &str,
    value: &dyn ErasedData,
) -> Result<Box<dyn ErasedData>, String> {
    let encoded = value
        .encode()
        .map_err(|e| format!("value {value:?} does not encode: {e}"))?;
    let copy = registry
        .decode(type_name, &encoded)
        .map_err(|e| format!("re-encoded value {value:?} does not decode: {e}"))?;
    if !copy.eq_erased(value) {
        return Err(format!(
            "value {value:?} decodes as {copy:?} after re-encoding"
        ));
    }
    Ok(copy)
}

/// Calls the readers of the concrete type (sums, entries, elements) on a decoded value, as an
/// application reading a replicated value would.
fn read_values(value: &dyn ErasedData) {
    fn over<T: Element>(value: &dyn ErasedData) {
        if let Some(v) = value.downcast_ref::<GSet<T>>() {
            black_box(v.len());
        } else if let Some(v) = value.downcast_ref::<ORSet<T>>() {
            black_box(v.elements());
        } else if let Some(v) = value.downcast_ref::<LWWRegister<T>>() {
            black_box((v.value(), v.timestamp()));
        } else if let Some(v) = value.downcast_ref::<MVRegister<T>>() {
            black_box(v.values());
        } else if let Some(v) = value.downcast_ref::<LWWMap<String, T>>() {
            black_box(v.entries());
        } else if let Some(v) = value.downcast_ref::<ORMultiMap<String, T>>() {
            black_box(v.entries());
        } else if let Some(v) = value.downcast_ref::<ORMap<String, ORSet<T>>>() {
            black_box(v.entries().values().map(ORSet::elements).count());
        } else if let Some(v) = value.downcast_ref::<ORMap<String, GSet<T>>>() {
            black_box(v.entries());
        } else if let Some(v) = value.downcast_ref::<ORMap<String, LWWRegister<T>>>() {
            black_box(v.entries());
        } else if let Some(v) = value.downcast_ref::<ORMap<String, MVRegister<T>>>() {
            black_box(v.entries().values().map(MVRegister::values).count());
        }
    }
    if let Some(v) = value.downcast_ref::<GCounter>() {
        black_box(v.value());
    } else if let Some(v) = value.downcast_ref::<PNCounter>() {
        black_box(v.value());
    } else if let Some(v) = value.downcast_ref::<Flag>() {
        black_box(v.enabled());
    } else if let Some(v) = value.downcast_ref::<VersionVector>() {
        black_box(v.iter().map(|(_, version)| version).max());
    } else if let Some(v) = value.downcast_ref::<ORMap<String, GCounter>>() {
        black_box(v.entries().values().map(GCounter::value).max());
    } else if let Some(v) = value.downcast_ref::<ORMap<String, PNCounter>>() {
        black_box(v.entries().values().map(PNCounter::value).max());
    } else if let Some(v) = value.downcast_ref::<ORMap<String, Flag>>() {
        black_box(v.entries());
    } else if let Some(v) = value.downcast_ref::<PNCounterMap<String>>() {
        black_box(v.entries());
    } else {
        over::<String>(value);
        over::<u64>(value);
        over::<i64>(value);
        over::<Vec<u8>>(value);
    }
}
