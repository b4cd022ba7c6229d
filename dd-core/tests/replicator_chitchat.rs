//! Replicas whose membership comes from chitchat gossip (UDP) and whose data flows over TCP,
//! all on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dd_core::cluster::{ChitchatCluster, ChitchatClusterConfig, Cluster};
use dd_core::crdt::GCounter;
use dd_core::replicator::{DistributedData, ReadConsistency, Replicator, WriteConsistency};
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_core::{Key, RemovedNodePruning, ReplicaId, UniqueReplicaId};
use replicator_support::*;

fn free_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

async fn start_node(name: &str, seeds: Vec<String>) -> (Replicator, ChitchatCluster, SocketAddr) {
    start_node_with(name, seeds, Duration::from_secs(3600)).await
}

async fn start_node_with(
    name: &str,
    seeds: Vec<String>,
    dead_node_grace_period: Duration,
) -> (Replicator, ChitchatCluster, SocketAddr) {
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new(name));
    let transport = TcpTransport::bind(
        id.clone(),
        "127.0.0.1:0".parse().unwrap(),
        TcpConfig::new("chitchat-test"),
    )
    .await
    .unwrap();
    let gossip = free_udp_port();
    let mut config = ChitchatClusterConfig::new("chitchat-test", gossip);
    config.seeds = seeds;
    config.replicator_address = Some(transport.local_addr());
    config.gossip_interval = Duration::from_millis(100);
    config.refresh_interval = Duration::from_millis(50);
    config.dead_node_grace_period = dead_node_grace_period;
    let cluster = ChitchatCluster::start(id, config).await.unwrap();
    let r = DistributedData::start(cluster.clone(), transport, fast_settings())
        .await
        .unwrap();
    (r, cluster, gossip)
}

async fn wait_members(clusters: &[&ChitchatCluster], n: usize) {
    eventually(
        &format!("every node sees {n} members with addresses"),
        LONG,
        || async {
            clusters.iter().all(|c| {
                let m = c.members().borrow().clone();
                m.len() == n && m.values().all(|a| a.is_some())
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chitchat_membership_and_tcp_data_converge_and_a_late_node_catches_up() {
    let (r0, c0, seed) = start_node("n0", Vec::new()).await;
    let seeds = vec![seed.to_string()];
    let (r1, c1, _) = start_node("n1", seeds.clone()).await;
    let (r2, c2, _) = start_node("n2", seeds.clone()).await;
    wait_members(&[&c0, &c1, &c2], 3).await;
    let rs = vec![r0, r1, r2];
    let key: Key<GCounter> = Key::new("cc");
    for r in &rs {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 2)
        })
        .await
        .unwrap();
    }
    converge_counter(&rs, &key, 6).await;

    let (late, c3, _) = start_node("n3", seeds).await;
    wait_members(&[&c0, &c1, &c2, &c3], 4).await;
    converge_counter(std::slice::from_ref(&late), &key, 6).await;
    for r in rs.iter().chain([&late]) {
        r.shutdown().await.unwrap();
    }
    for c in [c0, c1, c2, c3] {
        c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stays_dead_is_removed_and_pruned() {
    let grace = Duration::from_secs(2);
    let (r0, c0, seed) = start_node_with("m0", Vec::new(), grace).await;
    let seeds = vec![seed.to_string()];
    let (r1, c1, _) = start_node_with("m1", seeds.clone(), grace).await;
    let (r2, c2, _) = start_node_with("m2", seeds, grace).await;
    wait_members(&[&c0, &c1, &c2], 3).await;
    let rs = vec![r0, r1, r2];
    let key: Key<GCounter> = Key::new("dead");
    for r in &rs {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 3)
        })
        .await
        .unwrap();
    }
    converge_counter(&rs, &key, 9).await;
    let gone = rs[2].self_id();
    rs[2].shutdown().await.unwrap();
    c2.shutdown().await.unwrap();
    eventually(
        "m2 removed from membership and pruned everywhere",
        LONG,
        || async {
            for (r, c) in rs[..2].iter().zip([&c0, &c1]) {
                if c.members().borrow().len() != 2 {
                    return false;
                }
                match r.get(&key, dd_core::ReadConsistency::Local).await {
                    Ok(v) if v.value() == 9 && !v.modified_by_nodes().contains(&gone) => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    for r in &rs[..2] {
        r.shutdown().await.unwrap();
    }
    c0.shutdown().await.unwrap();
    c1.shutdown().await.unwrap();
}

/// A node of incarnation `incarnation` gossiping on `gossip`, with a durable `store`.
async fn start_durable_node(
    name: &str,
    incarnation: u64,
    gossip: SocketAddr,
    seeds: Vec<String>,
    store: &Arc<MapStore>,
) -> (Replicator, ChitchatCluster) {
    let id = UniqueReplicaId::new(ReplicaId::new(name), incarnation);
    let transport = TcpTransport::bind(
        id.clone(),
        "127.0.0.1:0".parse().unwrap(),
        TcpConfig::new("chitchat-test"),
    )
    .await
    .unwrap();
    let mut config = ChitchatClusterConfig::new("chitchat-test", gossip);
    config.seeds = seeds;
    config.replicator_address = Some(transport.local_addr());
    config.gossip_interval = Duration::from_millis(100);
    config.refresh_interval = Duration::from_millis(50);
    let cluster = ChitchatCluster::start(id, config).await.unwrap();
    let settings = fast_settings().durable_store(store.clone());
    let r = DistributedData::start(cluster.clone(), transport, settings)
        .await
        .unwrap();
    (r, cluster)
}

/// Issue 17, item 5 (gossip membership): a node that restarts while its seeds are unreachable
/// sees only itself. On that view it led pruning and every member (itself) had seen the marker,
/// so it collapsed its earlier incarnation alone, which counts twice if the cluster had pruned
/// it meanwhile. It now completes no pruning before its view heard from another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_while_its_seeds_are_unreachable_does_not_prune_alone() {
    let store = Arc::new(MapStore::default());
    let (ga, gb) = (free_udp_port(), free_udp_port());
    let key: Key<GCounter> = Key::new("hits");
    let (a, ca) = start_durable_node("a", 1, ga, vec![gb.to_string()], &store).await;
    let me = a.self_id();
    a.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
        c.increment(&me, 5)
    })
    .await
    .unwrap();
    a.shutdown().await.unwrap();
    ca.shutdown().await.unwrap();

    // a comes back while its seed (b) is down, and runs for 15 pruning intervals.
    let (a, ca) = start_durable_node("a", 2, ga, vec![gb.to_string()], &store).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = a.get(&key, ReadConsistency::Local).await.unwrap();
    assert_eq!(c.value(), 5);
    assert!(
        c.modified_by_nodes()
            .contains(&UniqueReplicaId::new(ReplicaId::new("a"), 1)),
        "a#2 pruned a#1 on a view of itself alone: {:?}",
        c.modified_by_nodes()
    );

    // Once the view heard from the cluster, a prunes its earlier incarnation as usual.
    let (b, cb) = start_durable_node("b", 1, gb, vec![ga.to_string()], &store).await;
    wait_members(&[&ca, &cb], 2).await;
    let a_id = a.self_id();
    eventually("a#1 pruned into a#2 on both", LONG, || async {
        for r in [&a, &b] {
            match r.get(&key, ReadConsistency::Local).await {
                Ok(c)
                    if c.value() == 5
                        && c.modified_by_nodes() == BTreeSet::from([a_id.clone()]) => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    for r in [&a, &b] {
        r.shutdown().await.unwrap();
    }
    ca.shutdown().await.unwrap();
    cb.shutdown().await.unwrap();
}
