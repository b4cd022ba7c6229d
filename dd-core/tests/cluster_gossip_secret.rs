//! Membership gossip authenticated by the cluster secret (issue 21): nodes that share the secret
//! form a cluster; a node without it, or with another one, is refused by them (as the TCP
//! transport refuses it at the handshake) and changes nobody's view. All on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dd_core::cluster::{ChitchatCluster, ChitchatClusterConfig, Cluster};
use dd_core::transport::tcp::Secret;
use dd_core::{ReplicaId, UniqueReplicaId};

fn free_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

async fn node(
    name: &str,
    secret: Option<&str>,
    seeds: &[SocketAddr],
) -> (ChitchatCluster, SocketAddr) {
    let gossip = free_udp_port();
    let mut config = ChitchatClusterConfig::new("secret-test", gossip);
    config.seeds = seeds.iter().map(ToString::to_string).collect();
    config.gossip_interval = Duration::from_millis(100);
    config.refresh_interval = Duration::from_millis(50);
    config.secret = secret.map(|s| Secret::new(s).unwrap());
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new(name));
    (ChitchatCluster::start(id, config).await.unwrap(), gossip)
}

fn names(c: &ChitchatCluster) -> BTreeSet<String> {
    c.members()
        .borrow()
        .keys()
        .map(ToString::to_string)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_the_cluster_secret_join_the_membership_gossip() {
    let (a, a_gossip) = node("a", Some("s3cret"), &[]).await;
    let (b, _) = node("b", Some("s3cret"), &[a_gossip]).await;
    // Without the secret, and with another one: both try to join through a.
    let (c, _) = node("c", None, &[a_gossip]).await;
    let (d, _) = node("d", Some("other"), &[a_gossip]).await;
    until("a and b see each other", || {
        names(&a) == set(&["a", "b"]) && names(&b) == set(&["a", "b"])
    })
    .await;
    // Many gossip rounds (100 ms each) later, c and d are still outside, and see nobody.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(names(&a), set(&["a", "b"]));
    assert_eq!(names(&b), set(&["a", "b"]));
    assert_eq!(names(&c), set(&["c"]));
    assert_eq!(names(&d), set(&["d"]));
    // The member details agree: a's gossip knows no node without the secret.
    let known: BTreeSet<String> = a
        .gossip_members()
        .await
        .into_iter()
        .map(|m| m.replica.to_string())
        .collect();
    assert_eq!(known, set(&["a", "b"]));
    for n in [a, b, c, d] {
        n.shutdown().await.unwrap();
    }
}
