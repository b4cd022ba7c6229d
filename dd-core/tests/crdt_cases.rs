//! The cases users trip on, one by one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dd_core::crdt::{
    CrdtError, Flag, GCounter, GSet, LWWMap, LWWRegister, MVRegister, ORMap, ORMultiMap, ORSet,
    PNCounter, PNCounterMap, ReverseClock, VersionVector, WallClock,
};
use dd_core::data::{TypeRegistry, builtin_type_names};
use dd_core::{DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName, UniqueReplicaId};

fn a() -> UniqueReplicaId {
    UniqueReplicaId::new("a", 1)
}
fn b() -> UniqueReplicaId {
    UniqueReplicaId::new("b", 1)
}
fn c() -> UniqueReplicaId {
    UniqueReplicaId::new("c", 1)
}
fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn orset_concurrent_add_and_remove_add_wins() {
    let mut x = ORSet::new();
    x.add(&a(), s("milk"));
    let mut y = x.clone();
    y.remove(&b(), &s("milk"));
    assert!(!y.contains(&s("milk")));
    x.add(&a(), s("milk")); // concurrent re-add
    let mut xy = x.clone();
    xy.merge(&y);
    let mut yx = y.clone();
    yx.merge(&x);
    assert!(xy.contains(&s("milk")));
    assert_eq!(xy, yx);
}

#[test]
fn orset_remove_after_seeing_the_add_removes_everywhere() {
    let mut x = ORSet::new();
    x.add(&a(), 1u64);
    let mut y = x.clone();
    y.remove(&b(), &1);
    x.merge(&y);
    assert!(x.is_empty());
    // and the removal is not undone by the stale state of a third replica
    let mut stale = ORSet::new();
    stale.add(&a(), 1u64);
    x.merge(&stale);
    assert!(x.is_empty());
}

#[test]
fn orset_remove_of_an_element_never_added_is_a_no_op() {
    let mut x: ORSet<String> = ORSet::new();
    x.remove(&a(), &s("ghost"));
    assert!(x.is_empty());
    assert!(x.delta().is_none());
    x.add(&a(), s("real"));
    x.reset_delta();
    x.remove(&a(), &s("ghost"));
    assert!(x.delta().is_none());
    assert_eq!(x.elements().into_iter().collect::<Vec<_>>(), ["real"]);
}

#[test]
fn orset_delta_removes_what_the_remover_saw() {
    let mut x = ORSet::new();
    x.add(&a(), s("e"));
    let mut y = ORSet::new();
    y.merge_delta(&x.delta().unwrap());
    x.reset_delta();
    x.remove(&a(), &s("e"));
    y.merge_delta(&x.delta().unwrap());
    assert!(!y.contains(&s("e")));
    assert_eq!(x, y);
}

#[test]
fn equality_ignores_the_pending_delta() {
    let mut x = ORSet::new();
    x.add(&a(), 1u64);
    let mut y = x.clone();
    y.reset_delta();
    assert!(x.delta().is_some() && y.delta().is_none());
    assert_eq!(x, y);
    let mut p = PNCounter::new();
    p.increment(&a(), 1).unwrap();
    let mut q = p.clone();
    q.reset_delta();
    assert_eq!(p, q);
}

#[test]
fn lww_equal_timestamps_pick_the_greater_replica_whatever_the_merge_order() {
    let fixed = |_: i64, _: &String| 42;
    let x = LWWRegister::new(&a(), s("from a"), &fixed);
    let y = LWWRegister::new(&b(), s("from b"), &fixed);
    assert_eq!(x.clone().merged(&y).value(), "from b");
    assert_eq!(y.clone().merged(&x).value(), "from b");
    // same timestamp and writer (a custom clock can do that): the greater value wins
    let p = LWWRegister::with_timestamp(&a(), s("p"), 7);
    let q = LWWRegister::with_timestamp(&a(), s("q"), 7);
    assert_eq!(p.clone().merged(&q), q.clone().merged(&p));
    assert_eq!(p.merged(&q).value(), "q");
}

#[test]
fn lww_greater_timestamp_wins_over_replica_order() {
    let x = LWWRegister::with_timestamp(&a(), s("newer"), 10);
    let y = LWWRegister::with_timestamp(&b(), s("older"), 9);
    assert_eq!(x.clone().merged(&y).value(), "newer");
    assert_eq!(y.merged(&x).value(), "newer");
}

#[test]
fn lww_wall_clock_orders_own_writes_and_reverse_clock_keeps_the_first() {
    let mut r = LWWRegister::new(&a(), 1u64, &WallClock);
    let t1 = r.timestamp();
    r.set(&a(), 2, &WallClock);
    assert!(r.timestamp() > t1);
    assert_eq!(*r.value(), 2);

    let first = LWWRegister::new(&a(), s("first"), &ReverseClock);
    let mut later = first.clone();
    later.set(&b(), s("second"), &ReverseClock);
    assert!(later.timestamp() < first.timestamp());
    assert_eq!(later.merged(&first).value(), "first");
}

#[test]
fn mv_register_keeps_concurrent_writes_until_one_sees_them() {
    let mut x = MVRegister::new();
    let mut y = MVRegister::new();
    x.set(&a(), 1u64);
    y.set(&b(), 2u64);
    x.merge(&y);
    assert_eq!(x.values().into_iter().collect::<Vec<_>>(), [1, 2]);
    x.set(&a(), 3);
    y.merge(&x);
    assert_eq!(y.values().into_iter().collect::<Vec<_>>(), [3]);
}

#[test]
fn ormap_entry_removed_on_one_replica_and_updated_concurrently_on_another() {
    let mut x: ORMap<String, PNCounter> = ORMap::new();
    x.update(&a(), s("k"), PNCounter::new(), |c| c.increment(&a(), 5))
        .unwrap();
    let mut y = x.clone();
    x.remove(&a(), &s("k"));
    y.update(&b(), s("k"), PNCounter::new(), |c| c.increment(&b(), 1))
        .unwrap();
    let xy = x.clone().merged(&y);
    let yx = y.clone().merged(&x);
    assert_eq!(xy, yx);
    // the update wins, but the removal forgot the 5 it had seen: only b's unseen +1 is left
    // (Akka, and this crate before issue 16, gave 6)
    assert_eq!(xy.get(&s("k")).unwrap().value(), 1);
}

#[test]
fn ormap_removed_then_updated_on_one_replica_starts_fresh() {
    let mut x: PNCounterMap<String> = PNCounterMap::new();
    x.increment(&a(), s("k"), 5).unwrap();
    x.remove(&a(), &s("k"));
    assert_eq!(x.get(&s("k")), None);
    x.increment(&a(), s("k"), 1).unwrap();
    assert_eq!(x.get(&s("k")), Some(1));
}

/// Both merge orders, and `x`'s delta applied to `y` and `y`'s to `x` (the deltas of the
/// updates since both were one state), give the same map; returns it.
fn converged<T: DeltaReplicatedData<Delta = T>>(x: &T, y: &T) -> T {
    let xy = x.clone().merged(y);
    let yx = y.clone().merged(x);
    assert_eq!(xy, yx);
    let mut x_with_y_delta = x.clone();
    x_with_y_delta.merge_delta(&y.delta().unwrap());
    let mut y_with_x_delta = y.clone();
    y_with_x_delta.merge_delta(&x.delta().unwrap());
    assert_eq!(x_with_y_delta, xy);
    assert_eq!(y_with_x_delta, xy);
    xy
}

// Issue 16, scenario 1: a removes a key and adds to it again while b adds to it concurrently;
// a's new binding must not reuse a dot that b had seen (it was lost before).

#[test]
fn ormultimap_key_removed_and_added_again_keeps_the_new_binding_and_the_concurrent_one() {
    let mut x = ORMultiMap::new();
    x.add_binding(&a(), s("k"), s("x"));
    let mut y = x.clone(); // b has seen {x}
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    x.add_binding(&a(), s("k"), s("y")); // a: remove, then add y
    y.add_binding(&b(), s("k"), s("z")); // b, concurrently: add z
    let merged = converged(&x, &y);
    assert_eq!(merged.get(&s("k")), Some([s("y"), s("z")].into()));
}

#[test]
fn ormap_of_sets_key_removed_and_added_again_keeps_the_new_element_and_the_concurrent_one() {
    let mut x: ORMap<String, ORSet<String>> = ORMap::new();
    x.update(&a(), s("k"), ORSet::new(), |set| set.add(&a(), s("x")));
    let mut y = x.clone();
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    x.update(&a(), s("k"), ORSet::new(), |set| set.add(&a(), s("y")));
    y.update(&b(), s("k"), ORSet::new(), |set| set.add(&b(), s("z")));
    let merged = converged(&x, &y);
    assert_eq!(
        merged.get(&s("k")).unwrap().elements(),
        [s("y"), s("z")].into()
    );
}

#[test]
fn ormultimap_removed_binding_does_not_come_back_through_a_third_replica() {
    // c learns of a's removal, then adds to the key; b's stale copy still holds x
    let mut x = ORMultiMap::new();
    x.add_binding(&a(), s("k"), s("x"));
    let mut y = x.clone();
    let mut z = x.clone();
    x.remove(&a(), &s("k"));
    z.merge(&x);
    z.add_binding(&c(), s("k"), s("w"));
    y.add_binding(&b(), s("k"), s("v"));
    for order in [[&x, &y, &z], [&z, &y, &x], [&y, &z, &x]] {
        let mut all = order[0].clone();
        all.merge(order[1]);
        all.merge(order[2]);
        assert_eq!(all.get(&s("k")), Some([s("v"), s("w")].into()));
    }
}

// Issue 16, scenario 2: a has k = 5, removes k and increments it by 2; b concurrently
// increments the old k by 1. Observed-remove gives 3 (b's unseen +1 and a's +2), not 6.

#[test]
fn pncounter_map_key_removed_and_incremented_again_counts_only_what_the_removal_had_not_seen() {
    let mut x = PNCounterMap::new();
    x.increment(&a(), s("k"), 5).unwrap();
    let mut y = x.clone();
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    x.increment(&a(), s("k"), 2).unwrap();
    y.increment(&b(), s("k"), 1).unwrap();
    let merged = converged(&x, &y);
    assert_eq!(merged.get(&s("k")), Some(3));
    // and a's slot continues past what the removal had seen: nothing is counted twice later
    let mut later = merged.clone();
    later.increment(&a(), s("k"), 1).unwrap();
    assert_eq!(later.get(&s("k")), Some(4));
}

#[test]
fn ormap_of_counters_key_removed_and_incremented_again_counts_only_what_the_removal_had_not_seen() {
    let mut x: ORMap<String, PNCounter> = ORMap::new();
    x.update(&a(), s("k"), PNCounter::new(), |c| c.increment(&a(), 5))
        .unwrap();
    let mut y = x.clone();
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    x.update(&a(), s("k"), PNCounter::new(), |c| c.increment(&a(), 2))
        .unwrap();
    y.update(&b(), s("k"), PNCounter::new(), |c| c.increment(&b(), 1))
        .unwrap();
    let merged = converged(&x, &y);
    assert_eq!(merged.get(&s("k")).unwrap().value(), 3);
}

#[test]
fn lww_map_key_removed_and_put_again_keeps_the_newest_surviving_put() {
    // scenario 1's shape: the removed value never comes back, even with the greatest timestamp
    let mut x = LWWMap::new();
    x.put(&a(), s("k"), s("x"), &|_, _: &String| 100);
    let mut y = x.clone();
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    x.put(&a(), s("k"), s("y"), &|_, _: &String| 3);
    y.put(&b(), s("k"), s("z"), &|_, _: &String| 2);
    let merged = converged(&x, &y);
    assert_eq!(merged.get(&s("k")), Some(s("y")));
    // scenario 2's shape: the put concurrent with the removal survives it
    let mut x = LWWMap::new();
    x.put(&a(), s("k"), 5u64, &|_, _: &u64| 5);
    let mut y = x.clone();
    x.reset_delta();
    y.reset_delta();
    x.remove(&a(), &s("k"));
    y.put(&b(), s("k"), 6, &|_, _: &u64| 1);
    let merged = converged(&x, &y);
    assert_eq!(merged.get(&s("k")), Some(6));
}

#[test]
fn ormap_concurrent_updates_merge_the_values() {
    let mut x: ORMap<String, ORSet<u64>> = ORMap::new();
    let mut y = x.clone();
    x.update(&a(), s("k"), ORSet::new(), |set| set.add(&a(), 1));
    y.update(&b(), s("k"), ORSet::new(), |set| set.add(&b(), 2));
    x.merge(&y);
    assert_eq!(x.get(&s("k")).unwrap().elements().len(), 2);
}

#[test]
fn lww_map_remove_racing_a_put_keeps_the_put() {
    let clock = |current: i64, _: &String| current + 1;
    let mut x = LWWMap::new();
    x.put(&a(), s("k"), s("v1"), &clock);
    let mut y = x.clone();
    x.remove(&a(), &s("k"));
    y.put(&b(), s("k"), s("v2"), &clock);
    x.merge(&y);
    assert_eq!(x.get(&s("k")), Some(s("v2")));
}

#[test]
fn ormultimap_removing_the_last_binding_removes_the_key() {
    let mut x = ORMultiMap::new();
    x.add_binding(&a(), s("k"), 1u64);
    x.remove_binding(&a(), &s("k"), &1);
    assert!(!x.contains_key(&s("k")));
    x.remove_binding(&a(), &s("absent"), &1); // no-op
    x.put(&a(), s("k"), [1, 2, 3]);
    x.put(&a(), s("k"), [4]);
    assert_eq!(x.get(&s("k")).unwrap().into_iter().collect::<Vec<_>>(), [4]);
}

#[test]
fn pncounter_overflow_is_refused_and_changes_nothing() {
    let mut p = PNCounter::new();
    p.increment(&a(), u64::MAX).unwrap();
    let before = p.clone();
    assert_eq!(
        p.increment(&a(), 1),
        Err(CrdtError::Overflow("GCounter slot exceeds u64::MAX"))
    );
    assert_eq!(p, before);
    assert!(p.delta().is_some());
    // other replicas still count, and the value is exact beyond u64/i64
    p.increment(&b(), u64::MAX).unwrap();
    p.increment(&c(), u64::MAX).unwrap();
    assert_eq!(p.value(), 3 * i128::from(u64::MAX));
    p.decrement(&a(), u64::MAX).unwrap();
    assert!(p.decrement(&a(), 1).is_err());
    assert_eq!(p.checked_value(), Ok(2 * i128::from(u64::MAX)));
    let mut n = PNCounter::new();
    n.change(&a(), i64::MIN).unwrap();
    assert_eq!(n.value(), i128::from(i64::MIN));
}

#[test]
fn pncounter_map_overflow_leaves_the_map_unchanged() {
    let mut m = PNCounterMap::new();
    m.increment(&a(), s("k"), u64::MAX).unwrap();
    m.reset_delta();
    let before = m.clone();
    assert!(m.increment(&a(), s("k"), 1).is_err());
    assert_eq!(m, before);
    assert!(m.delta().is_none());
}

#[test]
fn gcounter_pruning_past_u64_is_exact() {
    let mut g = GCounter::new();
    g.increment(&a(), u64::MAX).unwrap();
    g.increment(&c(), u64::MAX).unwrap();
    g.prune(&c(), &a());
    assert_eq!(g.value(), 2 * u128::from(u64::MAX));
    assert!(!g.needs_pruning_from(&c()));
    assert!(g.increment(&a(), 1).is_err()); // a's slot is past u64::MAX now
}

/// Dot-based values collapse nothing (N1: re-tagging a removed incarnation's elements undid a
/// remove made concurrently by a replica that saw the old dot): pruning leaves them as they
/// are, and a remove concurrent with it wins either way round.
#[test]
fn orset_pruning_changes_nothing_and_a_concurrent_remove_wins() {
    let mut x = ORSet::new();
    x.add(&c(), s("from c"));
    x.add(&a(), s("from a"));
    let mut remover = x.clone();
    remover.remove(&b(), &s("from c"));
    assert!(!x.needs_pruning_from(&c()));
    assert!(x.modified_by_nodes().is_empty());
    assert!(x.mentions(&c()));
    let before = x.clone();
    x.prune(&c(), &a());
    assert_eq!(x, before);
    let merged = x.clone().merged(&remover);
    assert_eq!(merged.elements(), [s("from a")].into());
    assert_eq!(remover.merged(&x), merged);
    // An earlier version's "pruning performed" marker still drops c's dots from a stale state.
    let mut stale = before;
    stale.prune_cleanup(&c());
    assert!(!stale.mentions(&c()));
    assert_eq!(stale.elements(), [s("from a")].into());
}

/// Maps collapse nothing either: the removed incarnation's slots stay in the nested counters
/// (so an update that superseded its dot keeps the removed incarnation's increments) and a
/// remove concurrent with the pruning takes the key away.
#[test]
fn ormap_pruning_changes_nothing() {
    let mut m: PNCounterMap<String> = PNCounterMap::new();
    m.increment(&c(), s("k"), 3).unwrap();
    let mut other = m.clone();
    other.increment(&b(), s("k"), 2).unwrap();
    m.increment(&a(), s("k"), 4).unwrap();
    m.merge(&other); // two concurrent dots for k
    assert_eq!(m.get(&s("k")), Some(9));
    let before = m.clone();
    m.prune(&c(), &a());
    assert_eq!(m, before);
    assert!(!m.needs_pruning_from(&c()) && m.mentions(&c()));
    assert!(m.modified_by_nodes().is_empty());
    let mut stale = m.clone();
    stale.prune_cleanup(&c());
    assert!(!stale.mentions(&c()));
}

#[test]
fn version_vector_order_and_pruning() {
    let mut x = VersionVector::new();
    x.increment(&a());
    x.increment(&c());
    let y = x.clone();
    x.prune(&c(), &a());
    assert_eq!((x.get(&a()), x.get(&c())), (2, 0));
    assert_eq!(x.partial_cmp(&y), None);
    assert!(!x.needs_pruning_from(&c()));
}

#[test]
fn types_without_a_delta_and_without_a_zero() {
    let mut f = Flag::new();
    f.switch_on();
    assert!(f.delta().is_none());
    let mut v = VersionVector::new();
    v.increment(&a());
    assert!(v.delta().is_none());
    let r = LWWRegister::new(&a(), 1u64, &WallClock);
    assert!(r.delta().is_none());
    assert!(LWWRegister::<u64>::zero().is_none());
    assert_eq!(Flag::zero(), Some(Flag::new()));
    assert!(!GSet::<u64>::requires_causal_delivery());
    assert!(ORSet::<u64>::requires_causal_delivery());
    assert!(ORMap::<String, PNCounter>::requires_causal_delivery());
}

#[test]
fn type_names_are_stable_and_registered() {
    assert_eq!(ORSet::<String>::type_name(), "ORSet<String>");
    assert_eq!(
        ORMap::<String, PNCounter>::type_name(),
        "ORMap<String, PNCounter>"
    );
    assert_eq!(
        ORMap::<String, ORSet<String>>::type_name(),
        "ORMap<String, ORSet<String>>"
    );
    assert_eq!(
        LWWMap::<String, String>::type_name(),
        "LWWMap<String, String>"
    );
    assert_eq!(PNCounterMap::<String>::type_name(), "PNCounterMap<String>");
    assert_eq!(
        ORMultiMap::<String, String>::type_name(),
        "ORMultiMap<String, String>"
    );
    assert_eq!(GSet::<Vec<u8>>::type_name(), "GSet<Vec<u8>>");
    assert_eq!(LWWRegister::<i64>::type_name(), "LWWRegister<i64>");
    assert_eq!(MVRegister::<u64>::type_name(), "MVRegister<u64>");
    let registry = TypeRegistry::with_builtin_types();
    for name in builtin_type_names() {
        assert!(registry.contains(&name), "{name} not registered");
        // every registered type decodes its own zero, where it has one
        if let Some(zero) = registry.zero(&name).unwrap() {
            let bytes = zero.encode().unwrap();
            let back = registry.decode(&name, &bytes).unwrap();
            assert!(back.eq_erased(zero.as_ref()), "{name}");
        }
    }
}

#[test]
fn corrupt_bytes_are_a_decode_error_naming_the_type() {
    let registry = TypeRegistry::with_builtin_types();
    let err = registry
        .decode("ORSet<String>", &[0xff, 0xff, 0xff])
        .unwrap_err();
    assert!(err.to_string().contains("ORSet<String>"), "{err}");
}

/// The cost of never collapsing the dot-based types (N1): a key keeps one causal context entry
/// per incarnation that ever wrote it, and a map's counter entry one slot per incarnation that
/// updated it. Measured as postcard bytes after `n` restarts of one replica, each incarnation
/// adding the same element again / incrementing the same entry once, against one incarnation
/// (printed with `--nocapture`; the README and BENCHMARKS.md quote the figures).
#[test]
fn dot_based_values_grow_by_one_context_entry_per_writing_incarnation() {
    fn bytes<T: serde::Serialize>(v: &T) -> usize {
        postcard::to_stdvec(v).unwrap().len()
    }
    let sizes = |n: u64| {
        let mut set = ORSet::new();
        let mut map: PNCounterMap<String> = PNCounterMap::new();
        let mut gmap: ORMap<String, GCounter> = ORMap::new();
        for i in 1..=n {
            let r = UniqueReplicaId::new("replica-1", i);
            set.add(&r, s("element"));
            map.increment(&r, s("key"), 1).unwrap();
            gmap.update(&r, s("key"), GCounter::new(), |g| g.increment(&r, 1))
                .unwrap();
        }
        assert_eq!(set.len(), 1);
        assert_eq!(map.get(&s("key")), Some(i128::from(n)));
        (bytes(&set), bytes(&map), bytes(&gmap))
    };
    let one = sizes(1);
    for n in [10u64, 100] {
        let grown = sizes(n);
        let per = |a: usize, b: usize| (b - a) as f64 / (n - 1) as f64;
        println!(
            "after {n} incarnations: ORSet {} B ({:.1} B per incarnation), PNCounterMap {} B \
             ({:.1}), ORMap<String, GCounter> {} B ({:.1}); one incarnation: {one:?}",
            grown.0,
            per(one.0, grown.0),
            grown.1,
            per(one.1, grown.1),
            grown.2,
            per(one.2, grown.2),
        );
        // Linear in the incarnations, a context entry (id + counter) and a slot each: no more
        // than the id's bytes and a few varints per incarnation.
        assert!(
            per(one.0, grown.0) <= 16.0,
            "ORSet grows {}",
            per(one.0, grown.0)
        );
        assert!(
            per(one.2, grown.2) <= 48.0,
            "ORMap grows {}",
            per(one.2, grown.2)
        );
    }
}
