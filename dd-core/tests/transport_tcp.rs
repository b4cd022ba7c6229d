//! The TCP transport on 127.0.0.1: convergence, handshake refusal, malformed and oversized
//! frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use dd_core::cluster::StaticCluster;
use dd_core::crdt::GCounter;
use dd_core::replicator::{DistributedData, Replicator, WriteConsistency};
use dd_core::transport::Transport;
use dd_core::transport::tcp::{Handshake, PROTOCOL_VERSION, TcpConfig, TcpTransport};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use futures::{SinkExt, StreamExt};
use replicator_support::*;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config() -> TcpConfig {
    TcpConfig {
        max_frame_bytes: 64 * 1024,
        reconnect_max: Duration::from_millis(500),
        ..TcpConfig::new("test-cluster")
    }
}

/// Binds `n` transports on port 0, then starts a replica on each with every address known.
async fn start_tcp_cluster(n: usize) -> (Vec<Replicator>, Vec<TcpTransport>) {
    let all = names(n);
    let mut transports = Vec::new();
    let mut ids = Vec::new();
    for name in &all {
        let id = UniqueReplicaId::new_incarnation(name.clone());
        transports.push(
            TcpTransport::bind(id.clone(), local(), config())
                .await
                .unwrap(),
        );
        ids.push(id);
    }
    let addresses: Vec<(ReplicaId, Option<SocketAddr>)> = all
        .iter()
        .cloned()
        .zip(transports.iter().map(|t| Some(t.local_addr())))
        .collect();
    let mut rs = Vec::new();
    for (i, t) in transports.iter().enumerate() {
        let peers = addresses.iter().filter(|(r, _)| *r != all[i]).cloned();
        let cluster = StaticCluster::with_addresses(ids[i].clone(), Some(t.local_addr()), peers);
        rs.push(
            DistributedData::start(cluster, t.clone(), fast_settings())
                .await
                .unwrap(),
        );
    }
    (rs, transports)
}

async fn increment_everywhere(rs: &[Replicator], key: &Key<GCounter>, times: usize) {
    let mut tasks = Vec::new();
    for r in rs {
        let r = r.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..times {
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
}

#[tokio::test]
async fn three_replicas_converge_over_tcp() {
    let (rs, _transports) = start_tcp_cluster(3).await;
    let key: Key<GCounter> = Key::new("tcp");
    increment_everywhere(&rs, &key, 10).await;
    converge_counter(&rs, &key, 30).await;
    // A majority write works over TCP too.
    let me = rs[0].self_id();
    rs[0]
        .update(
            &key,
            GCounter::new(),
            WriteConsistency::All { timeout: LONG },
            move |c| c.increment(&me, 1),
        )
        .await
        .unwrap();
    for r in &rs {
        assert_eq!(counter(r, &key).await, 31);
    }
    for r in &rs {
        r.shutdown().await.unwrap();
    }
}

async fn handshake(
    addr: SocketAddr,
    cluster: &str,
) -> (Framed<TcpStream, LengthDelimitedCodec>, Handshake) {
    handshake_with(addr, cluster, PROTOCOL_VERSION).await
}

async fn handshake_with(
    addr: SocketAddr,
    cluster: &str,
    protocol: u32,
) -> (Framed<TcpStream, LengthDelimitedCodec>, Handshake) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let hello = Handshake::Hello {
        protocol,
        cluster: cluster.into(),
        from: UniqueReplicaId::new("intruder", 1),
        nonce: None,
    };
    framed
        .send(Bytes::from(postcard::to_stdvec(&hello).unwrap()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(LONG, framed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (framed, postcard::from_bytes(&reply).unwrap())
}

/// Reads until the peer closes the connection (bounded).
async fn closed(framed: &mut Framed<TcpStream, LengthDelimitedCodec>) -> bool {
    tokio::time::timeout(LONG, async {
        loop {
            match framed.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test]
async fn wrong_cluster_name_or_protocol_version_is_refused() {
    let (rs, transports) = start_tcp_cluster(1).await;
    let (mut framed, reply) = handshake(transports[0].local_addr(), "other-cluster").await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason } if reason.contains("other-cluster")),
        "{reply:?}"
    );
    assert!(closed(&mut framed).await);
    let (mut framed, reply) = handshake_with(
        transports[0].local_addr(),
        "test-cluster",
        PROTOCOL_VERSION + 1,
    )
    .await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason } if reason.contains("protocol version")),
        "{reply:?}"
    );
    assert!(closed(&mut framed).await);
    rs[0].keys().await.unwrap();
}

#[tokio::test]
async fn a_replica_of_the_previous_protocol_version_is_refused_naming_both_versions() {
    // Version 6 identifies each stream by its sender's incarnation and a stream number
    // (version 5 sent many states as acknowledged streams without them): a version 5 replica
    // would not decode the stream messages, so the handshake refuses it.
    assert_eq!(PROTOCOL_VERSION, 6);
    let (rs, transports) = start_tcp_cluster(1).await;
    let (mut framed, reply) = handshake_with(transports[0].local_addr(), "test-cluster", 5).await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason }
            if reason.contains("protocol version 5 is not supported") && reason.contains("speaks 6")),
        "{reply:?}"
    );
    assert!(closed(&mut framed).await);
    rs[0].keys().await.unwrap();
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_the_connection_only() {
    let (rs, transports) = start_tcp_cluster(2).await;
    let addr = transports[0].local_addr();

    // A frame that is not a postcard Message.
    let (mut framed, reply) = handshake(addr, "test-cluster").await;
    assert!(matches!(reply, Handshake::Welcome { .. }), "{reply:?}");
    framed
        .send(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]))
        .await
        .unwrap();
    assert!(
        closed(&mut framed).await,
        "malformed frame closes the connection"
    );

    // A frame over the limit (64 KiB here).
    let (mut framed, _) = handshake(addr, "test-cluster").await;
    let big = vec![0u8; 200 * 1024];
    let _ = framed.send(Bytes::from(big)).await;
    assert!(
        closed(&mut framed).await,
        "oversized frame closes the connection"
    );

    // A garbage handshake.
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut raw = Framed::new(stream, LengthDelimitedCodec::new());
    raw.send(Bytes::from_static(b"GET / HTTP/1.1"))
        .await
        .unwrap();
    assert!(closed(&mut raw).await);

    // The replicas still work and still talk to each other.
    let key: Key<GCounter> = Key::new("after");
    increment_everywhere(&rs, &key, 3).await;
    converge_counter(&rs, &key, 6).await;
    for t in &transports {
        t.shutdown();
    }
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let (rs, transports) = start_tcp_cluster(2).await;
    let key: Key<GCounter> = Key::new("re");
    increment_everywhere(&rs, &key, 2).await;
    converge_counter(&rs, &key, 4).await;
    // Stop r1 and start a new incarnation on the same address.
    let addr = transports[1].local_addr();
    rs[1].shutdown().await.unwrap();
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new("r1"));
    let t = loop {
        // The old listener may take a moment to release the port.
        match TcpTransport::bind(id.clone(), addr, config()).await {
            Ok(t) => break t,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let cluster = StaticCluster::with_addresses(
        id,
        Some(addr),
        [(ReplicaId::new("r0"), Some(transports[0].local_addr()))],
    );
    let r1 = DistributedData::start(cluster, t, fast_settings())
        .await
        .unwrap();
    let both = vec![rs[0].clone(), r1];
    // The new incarnation gets everything by gossip; its own update reaches r0.
    converge_counter(&both, &key, 4).await;
    increment_everywhere(&both[1..], &key, 1).await;
    converge_counter(&both, &key, 5).await;
}
