//! Pruning with durable data: a replica that comes back from its store after pruning it did not
//! see (the pruning leader itself restarted meanwhile, so no marker survives in memory) keeps
//! every value exact, and restarts of a replica do not make CRDTs grow.
//!
//! "Pruning performed" markers have no lifetime in this design (they are stored with each key
//! and kept), so there is no clock to move: the returning replica is tested against the worst
//! case instead, where no replica holds any marker in memory any more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use dd_core::cluster::StaticCluster;
use dd_core::crdt::{GCounter, MVRegister, ORSet, PNCounter, PNCounterMap};
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, RemovedNodePruning, ReplicaId, UniqueReplicaId};
use replicator_support::*;

fn settings(store: &Arc<MapStore>, pruning: Duration) -> Settings {
    Settings::builder()
        .gossip_interval(Duration::from_millis(50))
        .delta_propagation_interval(Duration::from_millis(20))
        .notify_interval(Duration::from_millis(20))
        .pruning_interval(pruning)
        .build()
        .unwrap()
        .durable_store(store.clone())
}

async fn start(
    net: &MemoryNetwork,
    name: &ReplicaId,
    incarnation: u64,
    peers: &[&ReplicaId],
    store: &Arc<MapStore>,
    pruning: Duration,
) -> (Replicator, StaticCluster) {
    let id = UniqueReplicaId::new(name.clone(), incarnation);
    let cluster = StaticCluster::new(id.clone(), peers.iter().map(|p| (*p).clone()));
    let r = DistributedData::start(cluster.clone(), net.join(id), settings(store, pruning))
        .await
        .unwrap();
    (r, cluster)
}

struct Keys {
    counter: Key<GCounter>,
    pn: Key<PNCounter>,
    set: Key<ORSet<String>>,
    map: Key<PNCounterMap<String>>,
}

fn keys() -> Keys {
    Keys {
        counter: Key::new("counter"),
        pn: Key::new("pn"),
        set: Key::new("set"),
        map: Key::new("map"),
    }
}

/// Every replica writes to every key, so each value has entries of every incarnation.
async fn write_all(r: &Replicator, k: &Keys, i: u64) {
    let me = r.self_id();
    let name = me.replica().to_string();
    let m = me.clone();
    r.update(
        &k.counter,
        GCounter::new(),
        WriteConsistency::Local,
        move |c| c.increment(&m, 10 + i),
    )
    .await
    .unwrap();
    let m = me.clone();
    r.update(&k.pn, PNCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&m, 7)?;
        c.decrement(&m, i)
    })
    .await
    .unwrap();
    let m = me.clone();
    let n = name.clone();
    r.update(&k.set, ORSet::new(), WriteConsistency::Local, move |s| {
        s.add(&m, format!("{n}-a"));
        s.add(&m, format!("{n}-b"));
        s.remove(&m, &format!("{n}-b"));
        Ok::<(), Infallible>(())
    })
    .await
    .unwrap();
    let m = me.clone();
    r.update(
        &k.map,
        PNCounterMap::new(),
        WriteConsistency::Local,
        move |c| {
            c.increment(&m, "shared".to_owned(), 3)?;
            c.increment(&m, name, i + 1)
        },
    )
    .await
    .unwrap();
}

#[derive(Debug, Clone, PartialEq)]
struct Values {
    counter: u128,
    pn: i128,
    set: BTreeSet<String>,
    map: std::collections::BTreeMap<String, i128>,
}

async fn values(r: &Replicator, k: &Keys) -> Option<Values> {
    Some(Values {
        counter: r
            .get(&k.counter, ReadConsistency::Local)
            .await
            .ok()?
            .value(),
        pn: r.get(&k.pn, ReadConsistency::Local).await.ok()?.value(),
        set: r.get(&k.set, ReadConsistency::Local).await.ok()?.elements(),
        map: r.get(&k.map, ReadConsistency::Local).await.ok()?.entries(),
    })
}

/// Every incarnation that still has entries in any of the values.
async fn incarnations(r: &Replicator, k: &Keys) -> BTreeSet<UniqueReplicaId> {
    let mut out = BTreeSet::new();
    if let Ok(v) = r.get(&k.counter, ReadConsistency::Local).await {
        out.extend(v.modified_by_nodes());
    }
    if let Ok(v) = r.get(&k.pn, ReadConsistency::Local).await {
        out.extend(v.modified_by_nodes());
    }
    if let Ok(v) = r.get(&k.set, ReadConsistency::Local).await {
        out.extend(v.modified_by_nodes());
    }
    if let Ok(v) = r.get(&k.map, ReadConsistency::Local).await {
        out.extend(v.modified_by_nodes());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_returning_after_pruning_it_missed_keeps_every_value() {
    let net = MemoryNetwork::new(7, Faults::default());
    let store = Arc::new(MapStore::default());
    let [r0n, r1n, r2n] = ["r0", "r1", "r2"].map(ReplicaId::new);
    let pruning = Duration::from_millis(100);
    let (r0, c0) = start(&net, &r0n, 1, &[&r1n, &r2n], &store, pruning).await;
    let (r1, c1) = start(&net, &r1n, 1, &[&r0n, &r2n], &store, pruning).await;
    let (r2, _c2) = start(&net, &r2n, 1, &[&r0n, &r1n], &store, pruning).await;
    let k = keys();
    for (i, r) in [&r0, &r1, &r2].into_iter().enumerate() {
        write_all(r, &k, i as u64).await;
    }
    let expected = Values {
        counter: 10 + 11 + 12,
        pn: 21 - 3,
        set: ["r0-a", "r1-a", "r2-a"].map(String::from).into(),
        map: [
            ("shared".to_owned(), 9),
            ("r0".to_owned(), 1),
            ("r1".to_owned(), 2),
            ("r2".to_owned(), 3),
        ]
        .into(),
    };
    eventually("all three replicas hold every write", LONG, || async {
        for r in [&r0, &r1, &r2] {
            if values(r, &k).await.as_ref() != Some(&expected) {
                return false;
            }
        }
        true
    })
    .await;
    // Make sure r2's store holds entries of all three incarnations before it goes away.
    eventually("r2 holds entries of every incarnation", LONG, || async {
        incarnations(&r2, &k).await.len() == 3
    })
    .await;

    // r2 goes down for a long time; the failure detector removes it. Then r1 leaves for good.
    r2.shutdown().await.unwrap();
    c0.remove_member(&r2n);
    c1.remove_member(&r2n);
    r1.shutdown().await.unwrap();
    c0.remove_member(&r1n);
    drop(c1);

    // r0 leads and prunes both removed incarnations into its own.
    let r0_id = r0.self_id();
    eventually("r0 pruned r1#1 and r2#1 everywhere", LONG, || async {
        incarnations(&r0, &k).await == BTreeSet::from([r0_id.clone()])
    })
    .await;
    assert_eq!(values(&r0, &k).await.as_ref(), Some(&expected));

    // The pruning leader restarts as well: nothing of the pruning survives in memory anywhere.
    r0.shutdown().await.unwrap();
    drop(c0);
    let (r0, c0) = start(&net, &r0n, 2, &[], &store, pruning).await;
    assert_eq!(values(&r0, &k).await.as_ref(), Some(&expected));
    let r0_id = r0.self_id();
    eventually("r0#2 pruned its own earlier incarnation", LONG, || async {
        incarnations(&r0, &k).await == BTreeSet::from([r0_id.clone()])
    })
    .await;

    // r2 comes back from its store, which predates all of that pruning.
    c0.add_member(r2n.clone(), None);
    let (r2, _c2) = start(&net, &r2n, 2, &[&r0n], &store, pruning).await;
    // No value ever changes on either replica while r2 catches up, ...
    let r2_id = r2.self_id();
    let mut rounds = 0;
    loop {
        for (name, r) in [("r0", &r0), ("r2", &r2)] {
            let v = values(r, &k).await;
            assert_eq!(v.as_ref(), Some(&expected), "{name} after {rounds} rounds");
        }
        let live = BTreeSet::from([r0_id.clone(), r2_id.clone()]);
        let settled = incarnations(&r2, &k).await.is_subset(&live)
            && incarnations(&r0, &k).await.is_subset(&live);
        // ... and the stale entries of r1#1, r2#1 and r0#1 are gone from both.
        if settled && rounds >= 20 {
            break;
        }
        rounds += 1;
        assert!(
            rounds < 1200,
            "stale entries not pruned from r2: {:?}",
            incarnations(&r2, &k).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new write after the return counts once.
    let me = r2.self_id();
    r2.update(
        &k.counter,
        GCounter::new(),
        WriteConsistency::Local,
        move |c| c.increment(&me, 5),
    )
    .await
    .unwrap();
    converge_counter(&[r0.clone(), r2.clone()], &k.counter, expected.counter + 5).await;
    r0.shutdown().await.unwrap();
    r2.shutdown().await.unwrap();
}

/// A replica (incarnation 1) with `Settings::pruning_quorum` on.
async fn start_quorum(
    net: &MemoryNetwork,
    name: &ReplicaId,
    peers: &[&ReplicaId],
    store: &Arc<MapStore>,
    pruning: Duration,
) -> (Replicator, StaticCluster) {
    let id = UniqueReplicaId::new(name.clone(), 1);
    let cluster = StaticCluster::new(id.clone(), peers.iter().map(|p| (*p).clone()));
    let mut s = settings(store, pruning);
    s.pruning_quorum = true;
    let r = DistributedData::start(cluster.clone(), net.join(id), s)
        .await
        .unwrap();
    (r, cluster)
}

/// What `write_all` of r0, r1 and r2 leaves.
fn expected_of_three() -> Values {
    Values {
        counter: 10 + 11 + 12,
        pn: 21 - 3,
        set: ["r0-a", "r1-a", "r2-a"].map(String::from).into(),
        map: [
            ("shared".to_owned(), 9),
            ("r0".to_owned(), 1),
            ("r1".to_owned(), 2),
            ("r2".to_owned(), 3),
        ]
        .into(),
    }
}

/// r0, r1 and r2 with the pruning quorum, each written to every key; then r1 and r2 stop at
/// once and r0 removes them (`remove_stopped`: confirmed stopped for good, else
/// `remove_member`). Returns r0 and its cluster once it knows both incarnations removed.
async fn three_then_two_removed(
    net: &MemoryNetwork,
    store: &Arc<MapStore>,
    pruning: Duration,
    confirmed_stopped: bool,
) -> (Replicator, StaticCluster) {
    let [r0n, r1n, r2n] = ["r0", "r1", "r2"].map(ReplicaId::new);
    let (r0, c0) = start_quorum(net, &r0n, &[&r1n, &r2n], store, pruning).await;
    let (r1, _c1) = start_quorum(net, &r1n, &[&r0n, &r2n], store, pruning).await;
    let (r2, _c2) = start_quorum(net, &r2n, &[&r0n, &r1n], store, pruning).await;
    let k = keys();
    for (i, r) in [&r0, &r1, &r2].into_iter().enumerate() {
        write_all(r, &k, i as u64).await;
    }
    let expected = expected_of_three();
    eventually("all three replicas hold every write", LONG, || async {
        for r in [&r0, &r1, &r2] {
            if values(r, &k).await.as_ref() != Some(&expected) {
                return false;
            }
        }
        true
    })
    .await;
    let all_three: BTreeSet<UniqueReplicaId> = [&r0, &r1, &r2].map(|r| r.self_id()).into();
    eventually("r0 holds entries of every incarnation", LONG, || async {
        incarnations(&r0, &k).await == all_three
    })
    .await;
    r1.shutdown().await.unwrap();
    r2.shutdown().await.unwrap();
    for gone in [&r1n, &r2n] {
        if confirmed_stopped {
            c0.remove_stopped(gone);
        } else {
            c0.remove_member(gone);
        }
    }
    let gone = BTreeSet::from([
        UniqueReplicaId::new(r1n.clone(), 1),
        UniqueReplicaId::new(r2n.clone(), 1),
    ]);
    eventually("r0 knows r1#1 and r2#1 are removed", LONG, || async {
        gone.is_subset(&r0.status().await.unwrap().removed)
    })
    .await;
    (r0, c0)
}

/// Issue 17, the liveness of the pruning quorum (`Settings::pruning_quorum`): a cluster of three
/// that lost two replicas at once (both stopped and removed) holds no quorum of the replicas it
/// knows ({r0, r1, r2}, only r0 saw the markers), so it prunes nothing, and the values stay
/// exact. Once two new replicas join, the markers are seen by three of the five replicas known
/// ({r0, r3, r4} of {r0..r4}): the removed incarnations are pruned, the values still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_quorum_a_cluster_that_lost_half_prunes_once_it_grows_back() {
    let net = MemoryNetwork::new(11, Faults::default());
    let store = Arc::new(MapStore::default());
    let pruning = Duration::from_millis(50);
    let (r0, c0) = three_then_two_removed(&net, &store, pruning, false).await;
    let k = keys();
    let expected = expected_of_three();
    // Forty pruning intervals: r0 leads and is every member, yet prunes nothing.
    tokio::time::sleep(pruning * 40).await;
    assert_eq!(
        incarnations(&r0, &k).await.len(),
        3,
        "pruned without a quorum"
    );
    assert_eq!(values(&r0, &k).await.as_ref(), Some(&expected));

    // Two new replicas join: three of the five known replicas see the markers.
    let [r0n, r3n, r4n] = ["r0", "r3", "r4"].map(ReplicaId::new);
    let (r3, _c3) = start_quorum(&net, &r3n, &[&r0n, &r4n], &store, pruning).await;
    let (r4, _c4) = start_quorum(&net, &r4n, &[&r0n, &r3n], &store, pruning).await;
    c0.add_member(r3n.clone(), None);
    c0.add_member(r4n.clone(), None);
    let r0_only = BTreeSet::from([r0.self_id()]);
    eventually("r1#1 and r2#1 pruned on r0, r3 and r4", LONG, || async {
        for r in [&r0, &r3, &r4] {
            if incarnations(r, &k).await != r0_only {
                return false;
            }
        }
        true
    })
    .await;
    for (name, r) in [("r0", &r0), ("r3", &r3), ("r4", &r4)] {
        assert_eq!(values(r, &k).await.as_ref(), Some(&expected), "{name}");
    }
    for r in [r0, r3, r4] {
        r.shutdown().await.unwrap();
    }
}

/// The operator's way out of the wait above: removing r1 and r2 with `remove_stopped`
/// (confirmed stopped for good) takes them out of r0's quorum, and r0 prunes them alone, the
/// values exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_quorum_replicas_removed_as_stopped_are_pruned_by_the_lone_survivor() {
    let net = MemoryNetwork::new(12, Faults::default());
    let store = Arc::new(MapStore::default());
    let (r0, _c0) = three_then_two_removed(&net, &store, Duration::from_millis(50), true).await;
    let k = keys();
    let r0_only = BTreeSet::from([r0.self_id()]);
    eventually("r0 pruned r1#1 and r2#1 alone", LONG, || async {
        incarnations(&r0, &k).await == r0_only
    })
    .await;
    assert_eq!(values(&r0, &k).await.as_ref(), Some(&expected_of_three()));
    r0.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_restarts_keep_values_exact_and_entries_bounded() {
    let net = MemoryNetwork::new(11, Faults::default());
    let store = Arc::new(MapStore::default());
    let name = ReplicaId::new("solo");
    let k = keys();
    let mut expected_set = BTreeSet::new();
    for restart in 1..=100u64 {
        let (r, _c) = start(&net, &name, restart, &[], &store, Duration::from_millis(10)).await;
        let me = r.self_id();
        let m = me.clone();
        r.update(
            &k.counter,
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&m, 1),
        )
        .await
        .unwrap();
        let m = me.clone();
        r.update(&k.pn, PNCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&m, 2)?;
            c.decrement(&m, 1)
        })
        .await
        .unwrap();
        let m = me.clone();
        let element = format!("e{}", restart % 7);
        expected_set.insert(element.clone());
        r.update(&k.set, ORSet::new(), WriteConsistency::Local, move |s| {
            s.add(&m, element);
            Ok::<(), Infallible>(())
        })
        .await
        .unwrap();
        let c = r.get(&k.counter, ReadConsistency::Local).await.unwrap();
        assert_eq!(c.value(), u128::from(restart), "restart {restart}");
        let p = r.get(&k.pn, ReadConsistency::Local).await.unwrap();
        assert_eq!(p.value(), i128::from(restart), "restart {restart}");
        let s = r.get(&k.set, ReadConsistency::Local).await.unwrap();
        assert_eq!(s.elements(), expected_set, "restart {restart}");
        // The previous incarnation is pruned into this one: entries stay bounded.
        eventually(
            &format!("restart {restart}: earlier incarnations pruned"),
            LONG,
            || async { incarnations(&r, &k).await == BTreeSet::from([me.clone()]) },
        )
        .await;
        let c = r.get(&k.counter, ReadConsistency::Local).await.unwrap();
        assert_eq!((c.value(), c.len()), (u128::from(restart), 1));
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_keys_are_refused() {
    let net = MemoryNetwork::new(1, Faults::default());
    let store = Arc::new(MapStore::default());
    let (r, _c) = start(
        &net,
        &ReplicaId::new("a"),
        1,
        &[],
        &store,
        Duration::from_secs(1),
    )
    .await;
    let key: Key<GCounter> = Key::new("__dd/pruning/x");
    let me = r.self_id();
    let err = r
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ReplicatorError::ReservedKey { .. }), "{err}");
    let err = r.get(&key, ReadConsistency::Local).await.unwrap_err();
    assert!(matches!(err, ReplicatorError::ReservedKey { .. }), "{err}");
    assert!(r.keys().await.unwrap().is_empty());
    r.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_of_leader_and_peer_in_a_cluster_keep_counters_exact_and_small() {
    let net = MemoryNetwork::new(5, Faults::default());
    let store = Arc::new(MapStore::default());
    let names = ["r0", "r1", "r2"].map(ReplicaId::new);
    let peers_of = |i: usize| -> Vec<&ReplicaId> {
        names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n)
            .collect()
    };
    let pruning = Duration::from_millis(50);
    let mut rs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        rs.push(start(&net, name, 1, &peers_of(i), &store, pruning).await.0);
    }
    let key: Key<GCounter> = Key::new("hits");
    let all = WriteConsistency::All {
        timeout: Duration::from_secs(30),
    };
    let mut expected = 0u128;
    for restart in 0..16u64 {
        // Alternate between the pruning leader (r0) and a peer (r1).
        let i = (restart % 2) as usize;
        rs[i].shutdown().await.unwrap();
        rs[i] = start(&net, &names[i], restart + 2, &peers_of(i), &store, pruning)
            .await
            .0;
        // Loaded from its store: the value is exact at once.
        assert_eq!(counter(&rs[i], &key).await, expected, "restart {restart}");
        let me = rs[i].self_id();
        let v = rs[i]
            .update(&key, GCounter::new(), all, move |c| c.increment(&me, 1))
            .await
            .unwrap();
        expected += 1;
        assert_eq!(v.value(), expected, "restart {restart}");
        for (j, r) in rs.iter().enumerate() {
            assert_eq!(
                counter(r, &key).await,
                expected,
                "r{j} after restart {restart}"
            );
        }
    }
    eventually(
        "earlier incarnations pruned on every replica",
        LONG,
        || async {
            for r in &rs {
                match r.get(&key, ReadConsistency::Local).await {
                    Ok(c) if c.len() <= 3 && c.value() == expected => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    for r in &rs {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_leader_still_prunes_a_replica_that_left_before() {
    let net = MemoryNetwork::new(3, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn] = ["a", "b"].map(ReplicaId::new);
    // No pruning tick gets to prune while the first incarnation of `a` runs.
    let never = Duration::from_secs(3600);
    let (a, ca) = start(&net, &an, 1, &[&bn], &store, never).await;
    let (b, _cb) = start(&net, &bn, 1, &[&an], &store, never).await;
    let key: Key<GCounter> = Key::new("hits");
    for r in [&a, &b] {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 4)
        })
        .await
        .unwrap();
    }
    converge_counter(&[a.clone(), b.clone()], &key, 8).await;
    b.shutdown().await.unwrap();
    ca.remove_member(&bn);
    eventually("a knows b#1 is removed", LONG, || async {
        a.status()
            .await
            .unwrap()
            .removed
            .contains(&UniqueReplicaId::new(bn.clone(), 1))
    })
    .await;
    a.shutdown().await.unwrap();
    drop(ca);
    // a#2 never heard of b: only its stored removed set tells it to prune b#1 (and a#1).
    let (a, _ca) = start(&net, &an, 2, &[], &store, Duration::from_millis(20)).await;
    let me = a.self_id();
    eventually("a#2 pruned b#1 and a#1", LONG, || async {
        let c = a.get(&key, ReadConsistency::Local).await.unwrap();
        c.value() == 8 && c.modified_by_nodes() == BTreeSet::from([me.clone()])
    })
    .await;
    a.shutdown().await.unwrap();
}

/// Issue 17, item 5: a replica that comes back alone (a static member list without its peers,
/// or a gossip membership that has not converged yet) leads pruning and is the only member, so
/// "every member has seen the marker" holds at once. Its store still holds entries of its
/// earlier incarnation, which the cluster pruned while it was away: finishing that pruning alone
/// counted them twice once it met the cluster again. It now waits while its data holds entries of
/// replicas that are neither members nor known removed, and learns the cluster's pruning instead.
#[tokio::test(start_paused = true)]
async fn replica_restarted_alone_does_not_prune_again_what_the_cluster_pruned() {
    let net = MemoryNetwork::new(17, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn] = ["a", "b"].map(ReplicaId::new);
    let pruning = Duration::from_millis(100);
    let (a, _ca) = start(&net, &an, 1, &[&bn], &store, pruning).await;
    let (b, cb) = start(&net, &bn, 1, &[&an], &store, pruning).await;
    let key: Key<GCounter> = Key::new("hits");
    for (r, n) in [(&a, 5), (&b, 3)] {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, n)
        })
        .await
        .unwrap();
    }
    converge_counter(&[a.clone(), b.clone()], &key, 8).await;

    // a is away; the cluster (b) removes it and prunes a#1 into b#1.
    a.shutdown().await.unwrap();
    cb.remove_member(&an);
    let b_id = b.self_id();
    eventually("b pruned a#1", LONG, || async {
        let c = b.get(&key, ReadConsistency::Local).await.unwrap();
        c.modified_by_nodes() == BTreeSet::from([b_id.clone()])
    })
    .await;
    assert_eq!(counter(&b, &key).await, 8);

    // a comes back alone from its store, which predates that pruning, and runs a while alone.
    let (a, ca) = start(&net, &an, 2, &[], &store, pruning).await;
    assert_eq!(counter(&a, &key).await, 8);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(counter(&a, &key).await, 8);

    // Then it meets the cluster again: the value stays 8 on both, for good.
    ca.add_member(bn.clone(), None);
    cb.add_member(an.clone(), None);
    converge_counter(&[a.clone(), b.clone()], &key, 8).await;
    for round in 0..100 {
        for (name, r) in [("a", &a), ("b", &b)] {
            assert_eq!(counter(r, &key).await, 8, "{name} in round {round}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Issue 17, item 6: a live replica that its peers removed (taken out of a static member list
/// and added back, or a membership grace period that expired while it ran) gets a "pruning
/// performed" marker for its own current incarnation. Every merge then drops its entries, so it
/// used to acknowledge writes that were lost. It now refuses writes with a clear error (restart
/// with a new incarnation) and keeps serving the cluster's value.
#[tokio::test(start_paused = true)]
async fn live_replica_whose_incarnation_was_pruned_refuses_writes() {
    let net = MemoryNetwork::new(19, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn] = ["a", "b"].map(ReplicaId::new);
    let pruning = Duration::from_millis(100);
    let (a, _ca) = start(&net, &an, 1, &[&bn], &store, pruning).await;
    let (b, cb) = start(&net, &bn, 1, &[&an], &store, pruning).await;
    let key: Key<GCounter> = Key::new("hits");
    for (r, n) in [(&a, 5), (&b, 3)] {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, n)
        })
        .await
        .unwrap();
    }
    converge_counter(&[a.clone(), b.clone()], &key, 8).await;

    // b's member list drops a while a keeps running, then takes it back.
    cb.remove_member(&an);
    let b_id = b.self_id();
    eventually("b pruned a#1", LONG, || async {
        let c = b.get(&key, ReadConsistency::Local).await.unwrap();
        c.modified_by_nodes() == BTreeSet::from([b_id.clone()])
    })
    .await;
    cb.add_member(an.clone(), None);
    eventually("a learned that a#1 was pruned", LONG, || async {
        let c = a.get(&key, ReadConsistency::Local).await.unwrap();
        c.modified_by_nodes() == BTreeSet::from([b_id.clone()])
    })
    .await;

    // A write on a would be dropped by the next merge: it is refused instead.
    let me = a.self_id();
    let err = a
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReplicatorError::IncarnationPruned { incarnation, .. }
            if *incarnation == a.self_id().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("restart"), "{err}");
    let err = a.delete(&key, WriteConsistency::Local).await.unwrap_err();
    assert!(
        matches!(err, ReplicatorError::IncarnationPruned { .. }),
        "{err}"
    );
    // Reads and gossip go on: b's writes still reach a, and nothing a acknowledged is lost.
    let me = b.self_id();
    b.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 2)
    })
    .await
    .unwrap();
    converge_counter(&[a.clone(), b.clone()], &key, 10).await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Whether every one of `keys` reads `expected` on `r`.
async fn all_read(r: &Replicator, keys: &[Key<GCounter>], expected: u128) -> bool {
    for k in keys {
        if counter(r, k).await != expected {
            return false;
        }
    }
    true
}

/// Issue 17, item 7: after a restart, a replica refuses deltas for every key its store loaded
/// (not yet confirmed by a peer, holding entries of its earlier incarnation, pruning under way)
/// until a full state of that key arrives. That used to wait for chunked anti-entropy to reach
/// the key: one chunk of `max_gossip_entries` keys per gossip round, here 100 rounds (with the
/// defaults, 100,000 keys are 500 rounds of 2 s: minutes without peers' updates). A refused delta
/// now makes the replica exchange the key's full state with the sender at once. Simulated time.
#[tokio::test(start_paused = true)]
async fn restarted_replica_takes_peers_updates_without_waiting_for_anti_entropy() {
    const KEYS: usize = 1000;
    let net = MemoryNetwork::new(23, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn] = ["a", "b"].map(ReplicaId::new);
    let settings = || {
        Settings::builder()
            .gossip_interval(Duration::from_secs(1))
            .delta_propagation_interval(Duration::from_millis(100))
            .notify_interval(Duration::from_millis(100))
            .pruning_interval(Duration::from_secs(1))
            .max_gossip_entries(10)
            .build()
            .unwrap()
            .durable_store(store.clone())
    };
    let start_one = |name: &ReplicaId, incarnation: u64, peer: &ReplicaId| {
        let id = UniqueReplicaId::new(name.clone(), incarnation);
        let cluster = StaticCluster::new(id.clone(), [peer.clone()]);
        DistributedData::start(cluster, net.join(id), settings())
    };
    let a = start_one(&an, 1, &bn).await.unwrap();
    let b = start_one(&bn, 1, &an).await.unwrap();
    let keys: Vec<Key<GCounter>> = (0..KEYS).map(|i| Key::new(format!("k{i:04}"))).collect();
    let bump = |r: Replicator, keys: Vec<Key<GCounter>>| async move {
        for k in &keys {
            let me = r.self_id();
            r.update(k, GCounter::new(), WriteConsistency::Local, move |c| {
                c.increment(&me, 1)
            })
            .await
            .unwrap();
        }
    };
    // Every key holds an entry of a#1, and b has them all.
    bump(a.clone(), keys.clone()).await;
    eventually("b holds every key of a#1", LONG, || all_read(&b, &keys, 1)).await;
    a.shutdown().await.unwrap();
    let a = start_one(&an, 2, &bn).await.unwrap();
    assert!(all_read(&a, &keys, 1).await);

    // b updates every key: a takes them within a few gossip rounds, not a round per chunk.
    let bound = Duration::from_secs(10);
    bump(b.clone(), keys.clone()).await;
    eventually("a#2 holds b's first updates", bound, || {
        all_read(&a, &keys, 2)
    })
    .await;
    // Again while a#2 prunes a#1 (markers under way, entries of a removed incarnation).
    tokio::time::sleep(Duration::from_secs(3)).await;
    bump(b.clone(), keys.clone()).await;
    eventually("a#2 holds b's second updates", bound, || {
        all_read(&a, &keys, 3)
    })
    .await;
    assert!(all_read(&b, &keys, 3).await);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Issue 17 (dd-sim seed 2092, no store fault): a restarted replica led the pruning of its own
/// earlier incarnation, every member had seen its marker, and it collapsed the entries into its
/// current incarnation and stored that, but stopped before any peer got the collapsed value. The
/// cluster removed it, dropped its "pruning initialized" marker as orphaned and pruned the
/// earlier incarnation again, into another replica. When the replica returned from its store,
/// both collapsed copies met and the counter counted twice (10, not 5). The cluster now prunes
/// the orphaned marker's owner on the key too, so the returning copy is dropped.
#[tokio::test(start_paused = true)]
async fn pruning_redone_after_its_owner_left_never_counts_twice() {
    let net = MemoryNetwork::new(29, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn, cn] = ["a", "b", "c"].map(ReplicaId::new);
    let fast = Duration::from_millis(100);
    let (a, _ca) = start(&net, &an, 1, &[&bn, &cn], &store, fast).await;
    let (b, cb) = start(&net, &bn, 1, &[&an, &cn], &store, fast).await;
    let (c, cc) = start(&net, &cn, 1, &[&an, &bn], &store, fast).await;
    let key: Key<GCounter> = Key::new("hits");
    let me = a.self_id();
    a.update(&key, GCounter::new(), WriteConsistency::Local, move |g| {
        g.increment(&me, 5)
    })
    .await
    .unwrap();
    converge_counter(&[a.clone(), b.clone(), c.clone()], &key, 5).await;
    a.shutdown().await.unwrap();

    // a#2 leads (lowest name) the pruning of a#1. Its pruning ticks are 2 s apart: the first
    // starts it, b and c see the marker, and a#2 is cut off before its second tick performs it.
    let (a, _ca) = start(&net, &an, 2, &[&bn, &cn], &store, Duration::from_secs(2)).await;
    let a1 = UniqueReplicaId::new(an.clone(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    net.partition(std::slice::from_ref(&an), &[bn.clone(), cn.clone()]);
    let a2 = a.self_id();
    eventually("a#2 collapsed a#1 into itself", LONG, || async {
        let g = a.get(&key, ReadConsistency::Local).await.unwrap();
        g.modified_by_nodes() == BTreeSet::from([a2.clone()])
    })
    .await;
    for r in [&b, &c] {
        let g = r.get(&key, ReadConsistency::Local).await.unwrap();
        assert_eq!(g.modified_by_nodes(), BTreeSet::from([a1.clone()]));
    }
    // a#2 stops with the collapsed value in its store; the cluster removes a and prunes again.
    a.shutdown().await.unwrap();
    net.heal();
    cb.remove_member(&an);
    cc.remove_member(&an);
    let b1 = b.self_id();
    eventually("b pruned a#1 again", LONG, || async {
        let g = b.get(&key, ReadConsistency::Local).await.unwrap();
        g.modified_by_nodes() == BTreeSet::from([b1.clone()])
    })
    .await;
    eventually("a#2 pruned on b and c", LONG, || async {
        for r in [&b, &c] {
            if r.status().await.unwrap().removed.contains(&a2) {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(counter(&b, &key).await, 5);

    // a returns from its store (a#2's collapsed value): the value stays 5 everywhere, for good.
    let (a, _ca) = start(&net, &an, 3, &[&bn, &cn], &store, fast).await;
    cb.add_member(an.clone(), None);
    cc.add_member(an.clone(), None);
    let all = [a.clone(), b.clone(), c.clone()];
    converge_counter(&all, &key, 5).await;
    for round in 0..50 {
        for r in &all {
            assert_eq!(
                counter(r, &key).await,
                5,
                "{} in round {round}",
                r.self_id()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in all {
        r.shutdown().await.unwrap();
    }
}

/// Issue 17 item 5, the case its first fix missed (dd-sim seed 33): b saw a restart, so its store
/// recorded a#1 as removed. a#2 then led the pruning of its own earlier incarnation a#1 and
/// performed it (into a#2) while b was down. b came back alone (no member but itself, cut off
/// from the others): a#1 was known removed, so nothing held it back and it pruned a#1 a second
/// time (into b#2); once it met the cluster the counter read 8, not 4. A removed incarnation
/// whose replica restarted (rather than left) now holds pruning back while its replica is not a
/// member, as its live incarnation may be pruning it at the same time.
#[tokio::test(start_paused = true)]
async fn replica_restarted_alone_does_not_prune_a_peers_earlier_incarnation_again() {
    let net = MemoryNetwork::new(31, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn, cn] = ["a", "b", "c"].map(ReplicaId::new);
    let fast = Duration::from_millis(100);
    let never = Duration::from_secs(3600);
    let (a, _ca) = start(&net, &an, 1, &[&bn, &cn], &store, fast).await;
    let (b, _cb) = start(&net, &bn, 1, &[&an, &cn], &store, never).await;
    let (c, _cc) = start(&net, &cn, 1, &[&an, &bn], &store, fast).await;
    let key: Key<GCounter> = Key::new("hits");
    let me = a.self_id();
    a.update(&key, GCounter::new(), WriteConsistency::Local, move |g| {
        g.increment(&me, 4)
    })
    .await
    .unwrap();
    converge_counter(&[a.clone(), b.clone(), c.clone()], &key, 4).await;
    a.shutdown().await.unwrap();

    // a#2 leads the pruning of a#1 (pruning ticks 2 s apart): b and c see it restart and see the
    // marker, b stops, and a#2 performs the pruning at its second tick.
    let (a, _ca) = start(&net, &an, 2, &[&bn, &cn], &store, Duration::from_secs(2)).await;
    let a1 = UniqueReplicaId::new(an.clone(), 1);
    eventually("b knows a#1 is removed", LONG, || async {
        b.status().await.unwrap().removed.contains(&a1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.shutdown().await.unwrap();
    let a2 = a.self_id();
    eventually("a#2 collapsed a#1 into itself", LONG, || async {
        let g = a.get(&key, ReadConsistency::Local).await.unwrap();
        g.modified_by_nodes() == BTreeSet::from([a2.clone()])
    })
    .await;

    // b comes back alone, cut off from the others, and runs a while.
    net.partition(std::slice::from_ref(&bn), &[an.clone(), cn.clone()]);
    let (b, cb) = start(&net, &bn, 2, &[], &store, fast).await;
    assert_eq!(counter(&b, &key).await, 4);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(counter(&b, &key).await, 4);

    // Then it meets the cluster: the value stays 4 everywhere, for good.
    net.heal();
    cb.add_member(an.clone(), None);
    cb.add_member(cn.clone(), None);
    let all = [a.clone(), b.clone(), c.clone()];
    converge_counter(&all, &key, 4).await;
    for round in 0..50 {
        for r in &all {
            assert_eq!(
                counter(r, &key).await,
                4,
                "{} in round {round}",
                r.self_id()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in all {
        r.shutdown().await.unwrap();
    }
}

const ALL: WriteConsistency = WriteConsistency::All {
    timeout: Duration::from_secs(5),
};

/// Three replicas `a`, `b`, `c` for the N1 cases (a change made concurrently with the pruning
/// of a restarted replica's earlier incarnation).
struct Trio {
    net: MemoryNetwork,
    store: Arc<MapStore>,
    names: [ReplicaId; 3],
    a: Replicator,
    b: Replicator,
    c: Replicator,
}

impl Trio {
    async fn start(seed: u64) -> Self {
        let net = MemoryNetwork::new(seed, Faults::default());
        let store = Arc::new(MapStore::default());
        let names = ["a", "b", "c"].map(ReplicaId::new);
        let [an, bn, cn] = names.clone();
        let fast = Duration::from_millis(100);
        let (a, _) = start(&net, &an, 1, &[&bn, &cn], &store, fast).await;
        let (b, _) = start(&net, &bn, 1, &[&an, &cn], &store, fast).await;
        let (c, _) = start(&net, &cn, 1, &[&an, &bn], &store, fast).await;
        Self {
            net,
            store,
            names,
            a,
            b,
            c,
        }
    }

    /// `a` restarts as a#2, which leads the pruning of a#1 with pruning ticks 2 s apart: its
    /// first tick starts it and every member sees the marker; then `c` is cut off, so that
    /// what it does next is concurrent with a#2 performing the pruning at its second tick.
    async fn restart_a_and_cut_off_c(&mut self) {
        let [an, bn, cn] = self.names.clone();
        self.a.shutdown().await.unwrap();
        let (a, _) = start(
            &self.net,
            &an,
            2,
            &[&bn, &cn],
            &self.store,
            Duration::from_secs(2),
        )
        .await;
        self.a = a;
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.net.partition(std::slice::from_ref(&cn), &[an, bn]);
    }

    /// Lets a#2's second pruning tick pass, then heals the network.
    async fn heal_after_the_pruning(&self) {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        self.net.heal();
    }

    fn all(&self) -> [Replicator; 3] {
        [self.a.clone(), self.b.clone(), self.c.clone()]
    }

    /// Waits until `check` holds on every replica, then checks that it keeps holding.
    async fn settles(&self, what: &str, check: impl AsyncFn(&Replicator) -> bool) {
        let all = self.all();
        eventually(what, LONG, || async {
            for r in &all {
                if !check(r).await {
                    return false;
                }
            }
            true
        })
        .await;
        for round in 0..40 {
            for r in &all {
                assert!(check(r).await, "{what}: {} in round {round}", r.self_id());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shutdown(self) {
        for r in self.all() {
            r.shutdown().await.unwrap();
        }
    }
}

/// N1 (dd-sim seeds 44, 167, 11): an element added by a#1, removed at c (which had seen a#1's
/// dot) while a#2 pruned a#1. The pruning used to re-tag the element with a new dot of a#2,
/// which c's remove had not seen: the acknowledged remove was undone on every replica.
#[tokio::test(start_paused = true)]
async fn orset_remove_concurrent_with_pruning_stays_removed() {
    let mut t = Trio::start(41).await;
    let key: Key<ORSet<String>> = Key::new("set");
    let me = t.a.self_id();
    t.a.update(&key, ORSet::new(), ALL, move |s| {
        s.add(&me, "x".to_string());
        Ok::<(), Infallible>(())
    })
    .await
    .unwrap();
    t.restart_a_and_cut_off_c().await;
    let me = t.c.self_id();
    t.c.update(&key, ORSet::new(), WriteConsistency::Local, move |s| {
        s.remove(&me, &"x".to_string());
        Ok::<(), Infallible>(())
    })
    .await
    .unwrap();
    t.heal_after_the_pruning().await;
    t.settles("x removed everywhere", async |r: &Replicator| {
        r.get(&key, ReadConsistency::Local)
            .await
            .is_ok_and(|s| s.is_empty())
    })
    .await;
    t.shutdown().await;
}

/// N1 for maps: a key written by a#1, removed at c concurrently with the pruning of a#1. The
/// pruning used to rewrite the key under a new dot of a#2, so the key came back (with a#1's
/// count, which c's removed state no longer covered once a#1 was cleaned from it).
#[tokio::test(start_paused = true)]
async fn ormap_remove_concurrent_with_pruning_stays_removed() {
    let mut t = Trio::start(43).await;
    let key: Key<PNCounterMap<String>> = Key::new("map");
    let me = t.a.self_id();
    t.a.update(&key, PNCounterMap::new(), ALL, move |m| {
        m.increment(&me, "k".to_string(), 5)
    })
    .await
    .unwrap();
    t.restart_a_and_cut_off_c().await;
    let me = t.c.self_id();
    t.c.update(
        &key,
        PNCounterMap::new(),
        WriteConsistency::Local,
        move |m| {
            m.remove(&me, &"k".to_string());
            Ok::<(), Infallible>(())
        },
    )
    .await
    .unwrap();
    t.heal_after_the_pruning().await;
    t.settles("k removed everywhere", async |r: &Replicator| {
        r.get(&key, ReadConsistency::Local)
            .await
            .is_ok_and(|m| m.is_empty())
    })
    .await;
    t.shutdown().await;
}

/// An update of a map entry at c, concurrent with the pruning of a#1, supersedes the dot whose
/// value holds a#1's increments and carries them on: the count stays exact (5 + 3 + 2), neither
/// losing a#1's 5 (a collapse in place under the superseded dot, whose stale slot receivers
/// drop, would) nor counting it twice.
#[tokio::test(start_paused = true)]
async fn ormap_update_concurrent_with_pruning_counts_once() {
    let mut t = Trio::start(47).await;
    let key: Key<PNCounterMap<String>> = Key::new("map");
    for (r, n) in [(t.a.clone(), 5), (t.b.clone(), 3)] {
        let me = r.self_id();
        r.update(&key, PNCounterMap::new(), ALL, move |m| {
            m.increment(&me, "k".to_string(), n)
        })
        .await
        .unwrap();
    }
    t.restart_a_and_cut_off_c().await;
    let me = t.c.self_id();
    t.c.update(
        &key,
        PNCounterMap::new(),
        WriteConsistency::Local,
        move |m| m.increment(&me, "k".to_string(), 2),
    )
    .await
    .unwrap();
    t.heal_after_the_pruning().await;
    t.settles("k = 10 everywhere", async |r: &Replicator| {
        r.get(&key, ReadConsistency::Local)
            .await
            .is_ok_and(|m| m.get(&"k".to_string()) == Some(10))
    })
    .await;
    t.shutdown().await;
}

/// N1 for registers: a value written by a#1 and overwritten at c concurrently with the pruning
/// of a#1. The pruning used to re-tag a#1's value with a new dot of a#2, which c's write had
/// not seen: both values survived instead of c's alone.
#[tokio::test(start_paused = true)]
async fn mvregister_overwrite_concurrent_with_pruning_replaces_the_value() {
    let mut t = Trio::start(53).await;
    let key: Key<MVRegister<String>> = Key::new("reg");
    let me = t.a.self_id();
    t.a.update(&key, MVRegister::new(), ALL, move |v| {
        v.set(&me, "old".to_string());
        Ok::<(), Infallible>(())
    })
    .await
    .unwrap();
    t.restart_a_and_cut_off_c().await;
    let me = t.c.self_id();
    t.c.update(&key, MVRegister::new(), WriteConsistency::Local, move |v| {
        v.set(&me, "new".to_string());
        Ok::<(), Infallible>(())
    })
    .await
    .unwrap();
    t.heal_after_the_pruning().await;
    t.settles("only the overwrite everywhere", async |r: &Replicator| {
        r.get(&key, ReadConsistency::Local)
            .await
            .is_ok_and(|v| v.values() == BTreeSet::from(["new".to_string()]))
    })
    .await;
    t.shutdown().await;
}

/// Live removals (dd-sim seed 23): a replica taken out of the others' member lists while it
/// runs kept coordinating Majority writes, and the others acknowledged them, although the
/// pruning of its incarnation then dropped what they had merged: an acknowledged Majority
/// write was lost. The others no longer acknowledge writes of an incarnation they know removed,
/// so such a write fails (times out) instead of being acknowledged.
#[tokio::test(start_paused = true)]
async fn majority_write_of_a_removed_live_replica_is_not_acknowledged() {
    let net = MemoryNetwork::new(59, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn, cn] = ["a", "b", "c"].map(ReplicaId::new);
    // No pruning gets to run: the write comes before a learns that its incarnation was pruned
    // (after which it refuses writes itself).
    let never = Duration::from_secs(3600);
    let (a, _ca) = start(&net, &an, 1, &[&bn, &cn], &store, never).await;
    let (b, cb) = start(&net, &bn, 1, &[&an, &cn], &store, never).await;
    let (c, cc) = start(&net, &cn, 1, &[&an, &bn], &store, never).await;
    let key: Key<GCounter> = Key::new("hits");
    let me = a.self_id();
    a.update(&key, GCounter::new(), ALL, move |g| g.increment(&me, 1))
        .await
        .unwrap();
    cb.remove_member(&an);
    cc.remove_member(&an);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let me = a.self_id();
    let majority = WriteConsistency::Majority {
        timeout: Duration::from_secs(2),
        min_capacity: 0,
    };
    let res = a
        .update(&key, GCounter::new(), majority, move |g| {
            g.increment(&me, 1)
        })
        .await;
    assert!(
        res.is_err(),
        "a Majority write of a removed incarnation was acknowledged: {res:?}"
    );
    for r in [a, b, c] {
        r.shutdown().await.unwrap();
    }
}

/// Live removals (dd-sim seeds 132, 483, 653, 751, 1694, 1937): b and c take a out of their
/// member lists while it runs; b, the leader, starts the pruning of a#1, and a, which still has
/// b and c in its member list, gets that "pruning initialized" marker. b restarts before it
/// performs the pruning (c, cut off from b, has not seen the marker), so a finds the marker of
/// an owner that ended and takes the pruning over. It took over the pruning of its own current
/// incarnation too: it collapsed a#1 into a#1 and marked it performed, which drops a#1's slot
/// everywhere, and a's +5 was lost (the counter read 0). A replica never takes over the pruning
/// of itself; the others do.
#[tokio::test(start_paused = true)]
async fn replica_removed_while_it_runs_never_takes_over_the_pruning_of_itself() {
    let net = MemoryNetwork::new(61, Faults::default());
    let store = Arc::new(MapStore::default());
    let [an, bn, cn] = ["a", "b", "c"].map(ReplicaId::new);
    let pruning = Duration::from_millis(100);
    let (a, _ca) = start(&net, &an, 1, &[&bn, &cn], &store, pruning).await;
    let (b, cb) = start(&net, &bn, 1, &[&an, &cn], &store, pruning).await;
    let (c, cc) = start(&net, &cn, 1, &[&an, &bn], &store, pruning).await;
    let key: Key<GCounter> = Key::new("hits");
    let me = a.self_id();
    a.update(&key, GCounter::new(), WriteConsistency::Local, move |g| {
        g.increment(&me, 5)
    })
    .await
    .unwrap();
    converge_counter(&[a.clone(), b.clone(), c.clone()], &key, 5).await;

    // b cannot finish the pruning of a#1: c, a member of its view, never sees the marker.
    net.partition(std::slice::from_ref(&bn), std::slice::from_ref(&cn));
    cb.remove_member(&an);
    cc.remove_member(&an);
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.shutdown().await.unwrap();
    let (b2, _cb2) = start(&net, &bn, 2, &[&cn], &store, pruning).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.heal();
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (name, r) in [("a", &a), ("b#2", &b2), ("c", &c)] {
        assert_eq!(counter(r, &key).await, 5, "{name} lost a's acknowledged +5");
    }
    for r in [a, b2, c] {
        r.shutdown().await.unwrap();
    }
}
