//! The replicator's API on one and several replicas over the in-memory transport.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::time::Duration;

use dd_core::crdt::{GCounter, ORSet};
use dd_core::replicator::{
    ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, ReplicaId};
use dd_core::{RemovedNodePruning, ReplicatedData};
use futures::StreamExt;
use replicator_support::*;

#[tokio::test]
async fn local_update_get_delete_and_errors() {
    let net = MemoryNetwork::new(1, Faults::default());
    let rs = start_memory_cluster(&net, 1).await;
    let r = &rs[0];
    let key: Key<GCounter> = Key::new("hits");
    assert!(matches!(
        r.get(&key, ReadConsistency::Local).await,
        Err(ReplicatorError::NotFound { .. })
    ));
    let me = r.self_id();
    let v = r
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 3)
        })
        .await
        .unwrap();
    assert_eq!(v.value(), 3);
    assert_eq!(
        r.get(&key, ReadConsistency::Local).await.unwrap().value(),
        3
    );
    assert_eq!(
        r.keys().await.unwrap().into_iter().collect::<Vec<_>>(),
        vec!["hits"]
    );

    // A failed modify leaves the value unchanged.
    let failed = r
        .update(&key, GCounter::new(), WriteConsistency::Local, |c| {
            c.increment(&dd_core::UniqueReplicaId::new("x", 1), 1)
                .map_err(|e| e.to_string())?;
            Err::<(), String>("refused".into())
        })
        .await;
    assert!(
        matches!(failed, Err(ReplicatorError::ModifyFailed { .. })),
        "{failed:?}"
    );
    assert_eq!(
        r.get(&key, ReadConsistency::Local).await.unwrap().value(),
        3
    );

    // Another type under the same key is refused.
    let wrong: Key<Wrapped> = Key::new("hits");
    assert!(matches!(
        r.get(&wrong, ReadConsistency::Local).await,
        Err(ReplicatorError::WrongType { .. })
    ));
    assert!(matches!(
        r.update(
            &wrong,
            Wrapped::default(),
            WriteConsistency::Local,
            |_| Ok::<(), ReplicatorError>(())
        )
        .await,
        Err(ReplicatorError::WrongType { .. })
    ));

    r.delete(&key, WriteConsistency::Local).await.unwrap();
    assert!(matches!(
        r.get(&key, ReadConsistency::Local).await,
        Err(ReplicatorError::Deleted { .. })
    ));
    let me = r.self_id();
    assert!(matches!(
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| c
            .increment(&me, 1))
            .await,
        Err(ReplicatorError::Deleted { .. })
    ));
    assert!(matches!(
        r.delete(&key, WriteConsistency::Local).await,
        Err(ReplicatorError::Deleted { .. })
    ));
    assert!(r.keys().await.unwrap().is_empty());

    r.shutdown().await.unwrap();
    assert!(matches!(r.keys().await, Err(ReplicatorError::Shutdown)));
}

/// A second CRDT type for the wrong-type checks: a GCounter under another type name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Wrapped(GCounter);

impl dd_core::TypeName for Wrapped {
    fn type_name() -> String {
        "test.Wrapped".into()
    }
}

impl dd_core::ReplicatedData for Wrapped {
    fn merge(&mut self, other: &Self) {
        ReplicatedData::merge(&mut self.0, &other.0)
    }
}

impl dd_core::DeltaReplicatedData for Wrapped {
    type Delta = Wrapped;
    fn delta(&self) -> Option<Self> {
        None
    }
    fn reset_delta(&mut self) {}
    fn merge_delta(&mut self, delta: &Self) {
        dd_core::ReplicatedData::merge(&mut self.0, &delta.0)
    }
    fn zero() -> Option<Self> {
        Some(Self::default())
    }
}

impl dd_core::RemovedNodePruning for Wrapped {
    fn modified_by_nodes(&self) -> std::collections::BTreeSet<dd_core::UniqueReplicaId> {
        self.0.modified_by_nodes()
    }
    fn needs_pruning_from(&self, removed: &dd_core::UniqueReplicaId) -> bool {
        self.0.needs_pruning_from(removed)
    }
    fn prune(&mut self, removed: &dd_core::UniqueReplicaId, into: &dd_core::UniqueReplicaId) {
        self.0.prune(removed, into)
    }
    fn prune_cleanup(&mut self, removed: &dd_core::UniqueReplicaId) {
        self.0.prune_cleanup(removed)
    }
}

#[tokio::test]
async fn subscribers_see_current_value_then_changes() {
    let net = MemoryNetwork::new(2, Faults::default());
    let rs = start_memory_cluster(&net, 2).await;
    let key: Key<GCounter> = Key::new("sub");
    let me = rs[0].self_id();
    rs[0]
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap();
    let mut s0 = Box::pin(rs[0].subscribe(&key).await.unwrap());
    let first = tokio::time::timeout(LONG, s0.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.value(), 1);
    // A change on the other replica reaches the subscriber by gossip.
    let other = rs[1].self_id();
    rs[1]
        .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&other, 5)
        })
        .await
        .unwrap();
    let mut seen = 1;
    while seen != 6 {
        seen = tokio::time::timeout(LONG, s0.next())
            .await
            .unwrap()
            .unwrap()
            .value();
        assert!(seen <= 6);
    }
    // Deleting ends the stream everywhere.
    rs[1].delete(&key, WriteConsistency::Local).await.unwrap();
    let end = tokio::time::timeout(LONG, async { while s0.next().await.is_some() {} }).await;
    assert!(end.is_ok());
}

async fn concurrent_increments_converge(n: usize, seed: u64) {
    let net = MemoryNetwork::new(
        seed,
        Faults {
            max_delay: Duration::from_millis(5),
            ..Faults::default()
        },
    );
    let rs = start_memory_cluster(&net, n).await;
    let key: Key<GCounter> = Key::new("c");
    let mut tasks = Vec::new();
    for r in &rs {
        let r = r.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let me = r.self_id();
                r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
                    c.increment(&me, 1)
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    converge_counter(&rs, &key, 20 * n as u128).await;
    // Concurrent adds to an ORSet (a causal-delivery delta type) converge too.
    let set: Key<ORSet<String>> = Key::new("s");
    let mut expected = std::collections::BTreeSet::new();
    for round in 0..5 {
        for r in &rs {
            let me = r.self_id();
            let element = format!("{}-{round}", me.replica());
            expected.insert(element.clone());
            r.update(&set, ORSet::new(), WriteConsistency::Local, move |s| {
                s.add(&me, element);
                Ok::<(), ReplicatorError>(())
            })
            .await
            .unwrap();
        }
    }
    eventually("all replicas hold every element", LONG, || async {
        for r in &rs {
            match r.get(&set, ReadConsistency::Local).await {
                Ok(s) if s.elements() == expected => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    for r in &rs {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn three_replicas_converge() {
    concurrent_increments_converge(3, 3).await;
}

#[tokio::test]
async fn five_replicas_converge() {
    concurrent_increments_converge(5, 5).await;
}

#[tokio::test]
async fn partition_heals() {
    let net = MemoryNetwork::new(7, Faults::default());
    let rs = start_memory_cluster(&net, 3).await;
    let all = names(3);
    net.partition(&all[..1], &all[1..]);
    let key: Key<GCounter> = Key::new("p");
    for (i, r) in rs.iter().enumerate() {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, i as u64 + 1)
        })
        .await
        .unwrap();
    }
    // r1 and r2 converge among themselves; r0 stays alone.
    converge_counter(&rs[1..], &key, 5).await;
    assert_eq!(counter(&rs[0], &key).await, 1);
    net.heal();
    converge_counter(&rs, &key, 6).await;
}

/// Creates key `k` on `r` as an `ORSet<String>` holding "x" (a `Local` write), the other type of
/// the type-conflict tests.
async fn create_set_k(r: &Replicator) {
    let me = r.self_id();
    r.update(
        &Key::<ORSet<String>>::new("k"),
        ORSet::new(),
        WriteConsistency::Local,
        move |s| {
            s.add(&me, "x".to_owned());
            Ok::<(), ReplicatorError>(())
        },
    )
    .await
    .unwrap();
}

/// Two replicas create one key with two types while apart: once they meet, both keep the value
/// of the type whose name sorts first (`GCounter` < `ORSet<String>`) and list the conflict.
#[tokio::test]
async fn key_created_with_two_types_converges_on_the_first_type_name() {
    let net = MemoryNetwork::new(9, Faults::default());
    let rs = start_memory_cluster(&net, 3).await;
    let all = names(3);
    net.partition(&all[..1], &all[1..]);
    let counter_key: Key<GCounter> = Key::new("k");
    let set_key: Key<ORSet<String>> = Key::new("k");
    create_set_k(&rs[0]).await;
    let me = rs[1].self_id();
    rs[1]
        .update(
            &counter_key,
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&me, 4),
        )
        .await
        .unwrap();
    converge_counter(&rs[1..], &counter_key, 4).await;
    net.heal();
    converge_counter(&rs, &counter_key, 4).await;
    let expected: std::collections::BTreeSet<String> =
        ["GCounter".to_owned(), "ORSet<String>".to_owned()].into();
    // r0 met the counter (it holds the other type); which of r1 and r2 met r0's set depends on
    // which of them anti-entropy paired r0 with first (once r0 dropped its set nobody else can
    // meet it), so at least one of them lists the conflict too.
    eventually(
        "the replicas that met both types list the conflict",
        Duration::from_secs(30),
        || async {
            rs[0].type_conflict("k") == Some(expected.clone())
                && rs[1..]
                    .iter()
                    .any(|r| r.type_conflict("k") == Some(expected.clone()))
        },
    )
    .await;
    for r in &rs {
        let listed = r.type_conflict("k");
        assert!(
            listed.is_none() || listed == Some(expected.clone()),
            "{listed:?}"
        );
    }
    assert!(matches!(
        rs[0].get(&set_key, ReadConsistency::Local).await,
        Err(ReplicatorError::WrongType { .. })
    ));
}

/// A replica that drops its own value in a type conflict sends it back to the peer whose value
/// won, so both list the conflict: here r1's `All` write of a counter reaches r0, which held a
/// set of that key that r1 never received (its delta was lost in a partition); r0 keeps the
/// counter, and without the state sent back r1 would never meet the set (both replicas then
/// hold the same counter, so anti-entropy finds nothing to exchange).
#[tokio::test]
async fn the_replica_whose_type_won_lists_the_conflict_too() {
    let net = MemoryNetwork::new(10, Faults::default());
    let all = names(2);
    // Gossip rarely, so that nothing but the write crosses the healed network first.
    let settings = Settings::builder()
        .gossip_interval(Duration::from_secs(2))
        .delta_propagation_interval(Duration::from_millis(30))
        .notify_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let mut rs = Vec::new();
    for (i, name) in all.iter().enumerate() {
        rs.push(
            start_memory(&net, name, i as u64 + 1, &all, settings.clone())
                .await
                .0,
        );
    }
    net.partition(&all[..1], &all[1..]);
    let counter_key: Key<GCounter> = Key::new("k");
    create_set_k(&rs[0]).await;
    // The set's delta goes out (and is lost) while the replicas are apart.
    tokio::time::sleep(Duration::from_millis(200)).await;
    net.heal();
    let me = rs[1].self_id();
    rs[1]
        .update(
            &counter_key,
            GCounter::new(),
            WriteConsistency::All {
                timeout: Duration::from_secs(5),
            },
            move |c| c.increment(&me, 4),
        )
        .await
        .unwrap();
    converge_counter(&rs, &counter_key, 4).await;
    let expected: std::collections::BTreeSet<String> =
        ["GCounter".to_owned(), "ORSet<String>".to_owned()].into();
    eventually(
        "both replicas list the conflict",
        Duration::from_secs(20),
        || async {
            rs.iter()
                .all(|r| r.type_conflict("k") == Some(expected.clone()))
        },
    )
    .await;
}

#[tokio::test]
async fn late_joiner_gets_everything_by_gossip() {
    let net = MemoryNetwork::new(8, Faults::default());
    let all = names(3);
    let mut rs = Vec::new();
    for (i, name) in all.iter().take(2).enumerate() {
        rs.push(
            start_memory(&net, name, i as u64 + 1, &all, fast_settings())
                .await
                .0,
        );
    }
    for i in 0..30 {
        let key: Key<GCounter> = Key::new(format!("k{i}"));
        let me = rs[i % 2].self_id();
        rs[i % 2]
            .update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
                c.increment(&me, 2)
            })
            .await
            .unwrap();
    }
    // A small gossip chunk size forces several status rounds.
    let settings = dd_core::Settings {
        max_gossip_entries: 4,
        ..fast_settings()
    };
    let (late, _) = start_memory(&net, &all[2], 3, &all, settings).await;
    eventually("late joiner has all 30 keys", LONG, || async {
        late.keys().await.unwrap().len() == 30
    })
    .await;
    for i in 0..30 {
        let key: Key<GCounter> = Key::new(format!("k{i}"));
        assert_eq!(counter(&late, &key).await, 2);
    }
}

#[tokio::test]
async fn majority_and_all_succeed_with_enough_replicas_and_time_out_without() {
    let net = MemoryNetwork::new(9, Faults::default());
    let rs = start_memory_cluster(&net, 3).await;
    let all = names(3);
    let key: Key<GCounter> = Key::new("m");
    let t = Duration::from_secs(20);
    let majority = WriteConsistency::Majority {
        timeout: t,
        min_capacity: 0,
    };
    let me = rs[0].self_id();
    rs[0]
        .update(
            &key,
            GCounter::new(),
            WriteConsistency::All { timeout: t },
            move |c| c.increment(&me, 1),
        )
        .await
        .unwrap();
    // A write to All was applied at every replica when it returned.
    for r in &rs {
        assert_eq!(counter(r, &key).await, 1);
    }
    let me = rs[1].self_id();
    rs[1]
        .update(&key, GCounter::new(), majority, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap();
    let read = rs[2]
        .get(
            &key,
            ReadConsistency::Majority {
                timeout: t,
                min_capacity: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(read.value(), 2, "a majority read overlaps a majority write");

    // Cut r0 off: majority and all time out honestly, the write stays applied locally.
    net.partition(&all[..1], &all[1..]);
    let short = Duration::from_millis(500);
    let me = rs[0].self_id();
    let res = rs[0]
        .update(
            &key,
            GCounter::new(),
            WriteConsistency::Majority {
                timeout: short,
                min_capacity: 0,
            },
            move |c| c.increment(&me, 10),
        )
        .await;
    assert!(
        matches!(
            res,
            Err(ReplicatorError::Timeout {
                applied_locally: true,
                ..
            })
        ),
        "{res:?}"
    );
    assert_eq!(counter(&rs[0], &key).await, 12);
    let res = rs[0]
        .get(&key, ReadConsistency::All { timeout: short })
        .await;
    assert!(
        matches!(
            res,
            Err(ReplicatorError::Timeout {
                applied_locally: false,
                ..
            })
        ),
        "{res:?}"
    );
    // r1 and r2 still form a majority.
    let me = rs[1].self_id();
    rs[1]
        .update(&key, GCounter::new(), majority, move |c| {
            c.increment(&me, 100)
        })
        .await
        .unwrap();
    net.heal();
    converge_counter(&rs, &key, 112).await;
    let _ = ReplicaId::new("unused");
}

#[tokio::test]
async fn removed_member_is_pruned_without_changing_values() {
    let net = MemoryNetwork::new(11, Faults::default());
    let all = names(3);
    let mut rs = Vec::new();
    let mut clusters = Vec::new();
    for (i, name) in all.iter().enumerate() {
        let (r, c) = start_memory(&net, name, i as u64 + 1, &all, fast_settings()).await;
        rs.push(r);
        clusters.push(c);
    }
    let key: Key<GCounter> = Key::new("pruned");
    for (i, r) in rs.iter().enumerate() {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, i as u64 + 1)
        })
        .await
        .unwrap();
    }
    converge_counter(&rs, &key, 6).await;
    let gone = rs[2].self_id();
    rs[2].shutdown().await.unwrap();
    for c in &clusters[..2] {
        c.remove_member(&all[2]);
    }
    eventually(
        "r2's slot is collapsed into the leader on both replicas",
        LONG,
        || async {
            for r in &rs[..2] {
                let c = r.get(&key, ReadConsistency::Local).await.unwrap();
                if c.modified_by_nodes().contains(&gone) || c.value() != 6 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let c = rs[1].get(&key, ReadConsistency::Local).await.unwrap();
    assert_eq!(
        c.slot(&rs[0].self_id()),
        1 + 3,
        "collapsed into r0, the lowest member"
    );
    let status = rs[0].status().await.unwrap();
    assert!(status.removed.contains(&gone));
    assert_eq!(status.members.len(), 2);
    assert_eq!(status.keys, 1);
    assert_eq!(
        status.peer_incarnations.get(&all[1]),
        Some(&rs[1].self_id())
    );
}

/// A transport that records the largest gossip message it was asked to send.
#[derive(Clone)]
struct Measuring {
    inner: dd_core::transport::memory::MemoryTransport,
    largest: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl dd_core::transport::Transport for Measuring {
    fn send(&self, to: &ReplicaId, message: dd_core::transport::Message) {
        if let dd_core::transport::Message::Gossip { entries, .. } = &message {
            assert!(entries.len() <= 5, "at most max_gossip_entries per message");
            let size = message.encode().unwrap().len();
            self.largest
                .fetch_max(size, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.send(to, message)
    }
    fn incoming(
        &self,
    ) -> Result<dd_core::transport::IncomingStream, dd_core::transport::TransportError> {
        self.inner.incoming()
    }
}

#[tokio::test]
async fn large_state_is_gossiped_in_bounded_chunks() {
    let net = MemoryNetwork::new(12, Faults::default());
    let all = names(2);
    let settings = || dd_core::Settings {
        max_gossip_entries: 5,
        max_gossip_bytes: 2_000,
        ..fast_settings()
    };
    let largest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut rs = Vec::new();
    for (i, name) in all.iter().enumerate() {
        let id = dd_core::UniqueReplicaId::new(name.clone(), i as u64 + 1);
        let cluster = dd_core::cluster::StaticCluster::new(
            id.clone(),
            all.iter().filter(|p| *p != name).cloned(),
        );
        let transport = Measuring {
            inner: net.join(id),
            largest: largest.clone(),
        };
        rs.push(
            dd_core::DistributedData::start(cluster, transport, settings())
                .await
                .unwrap(),
        );
    }
    // r1 is cut off while r0 writes 120 keys of ~1 KB each (one counter with many slots).
    net.partition(&all[..1], &all[1..]);
    let fat = |i: u64| {
        let mut c = GCounter::new();
        for s in 0..40 {
            c.increment(&dd_core::UniqueReplicaId::new("s", s), i + 1)
                .unwrap();
        }
        c
    };
    for i in 0..120u64 {
        let key: Key<GCounter> = Key::new(format!("fat{i}"));
        let value = fat(i);
        rs[0]
            .update(&key, value, WriteConsistency::Local, |_| {
                Ok::<(), ReplicatorError>(())
            })
            .await
            .unwrap();
    }
    net.heal();
    eventually("r1 has all 120 keys", LONG, || async {
        rs[1].keys().await.unwrap().len() == 120
    })
    .await;
    let key: Key<GCounter> = Key::new("fat7");
    assert_eq!(counter(&rs[1], &key).await, 40 * 8);
    let largest = largest.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        largest < 2 * 2_000,
        "gossip messages stay near max_gossip_bytes, largest was {largest}"
    );
}
