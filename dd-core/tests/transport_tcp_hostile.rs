//! The TCP transport against hostile or confused peers: peer authentication with a cluster
//! secret (wrong, missing, replayed), flooding, stalled frames, connection and rate limits and
//! the bounded outbound queue. Assertions are on the transport's counters, never on timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicator_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dd_core::cluster::{Members, StaticCluster};
use dd_core::crdt::GCounter;
use dd_core::replicator::{DistributedData, Replicator, WriteConsistency};
use dd_core::transport::tcp::handshake::{Role, Transcript, proof, verify};
use dd_core::transport::tcp::{Handshake, PROTOCOL_VERSION, Secret, TcpConfig, TcpTransport};
use dd_core::transport::{Incoming, IncomingStream, Message, Transport};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use futures::{SinkExt, StreamExt};
use replicator_support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

const CLUSTER: &str = "hostile-test";

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn secret() -> Secret {
    Secret::new("the right secret").unwrap()
}

fn config() -> TcpConfig {
    TcpConfig {
        cluster_secret: Some(secret()),
        max_frame_bytes: 64 * 1024,
        reconnect_max: Duration::from_millis(300),
        ..TcpConfig::new(CLUSTER)
    }
}

async fn bind(name: &str, config: TcpConfig) -> (TcpTransport, UniqueReplicaId) {
    let id = UniqueReplicaId::new_incarnation(ReplicaId::new(name));
    (
        TcpTransport::bind(id.clone(), local(), config)
            .await
            .unwrap(),
        id,
    )
}

async fn send(conn: &mut Conn, frame: &Handshake) {
    conn.send(Bytes::from(frame.encode().unwrap()))
        .await
        .unwrap();
}

async fn receive(conn: &mut Conn) -> Handshake {
    let frame = tokio::time::timeout(LONG, conn.next())
        .await
        .expect("a handshake reply in time")
        .expect("a frame, not end of stream")
        .expect("a well-formed frame");
    Handshake::decode(&frame).unwrap()
}

fn message(request: u64) -> Message {
    Message::WriteAck { request }
}

async fn send_message(conn: &mut Conn, m: &Message) -> std::io::Result<()> {
    conn.send(Bytes::from(m.encode().unwrap())).await
}

/// Reads until the peer closes the connection (bounded).
async fn closed(conn: &mut Conn) -> bool {
    tokio::time::timeout(LONG, async {
        loop {
            match conn.next().await {
                None | Some(Err(_)) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// What a raw client did during its handshake (to replay it).
struct Recorded {
    hello: Handshake,
    proof: Handshake,
    listener_nonce: [u8; 32],
}

/// Connects and runs the dialler side of the handshake by hand, proving `with`.
async fn authenticate(
    addr: SocketAddr,
    me: &UniqueReplicaId,
    with: &Secret,
) -> (Conn, Handshake, Recorded) {
    let mut conn = Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        LengthDelimitedCodec::new(),
    );
    let dialler_nonce: [u8; 32] = rand::random();
    let hello = Handshake::Hello {
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER.into(),
        from: me.clone(),
        nonce: Some(dialler_nonce),
    };
    send(&mut conn, &hello).await;
    let Handshake::Challenge { from, nonce, .. } = receive(&mut conn).await else {
        panic!("expected a challenge");
    };
    let transcript = Transcript {
        role: Role::Dialler,
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER,
        dialler_nonce: &dialler_nonce,
        listener_nonce: &nonce,
        dialler: me,
        listener: &from,
    };
    let answer = Handshake::Proof {
        proof: proof(with, &transcript),
    };
    send(&mut conn, &answer).await;
    let reply = receive(&mut conn).await;
    (
        conn,
        reply,
        Recorded {
            hello,
            proof: answer,
            listener_nonce: nonce,
        },
    )
}

/// The next delivered message (bounded wait).
async fn next_incoming(stream: &mut IncomingStream) -> Incoming {
    tokio::time::timeout(LONG, stream.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
}

#[tokio::test]
async fn wrong_missing_or_replayed_secrets_are_refused_and_nothing_is_delivered() {
    let (transport, listener_id) = bind("listener", config()).await;
    let addr = transport.local_addr();
    let mut incoming = transport.incoming().unwrap();

    // No secret at all.
    let mut conn = Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        LengthDelimitedCodec::new(),
    );
    let hello = Handshake::Hello {
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER.into(),
        from: UniqueReplicaId::new("anonymous", 1),
        nonce: None,
    };
    send(&mut conn, &hello).await;
    let reply = receive(&mut conn).await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason } if reason.contains("no cluster secret")),
        "{reply:?}"
    );
    let _ = send_message(&mut conn, &message(1)).await;
    assert!(closed(&mut conn).await);

    // A wrong secret: the listener's proof does not verify with it either.
    let intruder = UniqueReplicaId::new("intruder", 1);
    let wrong = Secret::new("a wrong secret").unwrap();
    let (mut conn, reply, recorded) = authenticate(addr, &intruder, &wrong).await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason } if reason.contains("failed to prove")),
        "{reply:?}"
    );
    let _ = send_message(&mut conn, &message(2)).await;
    assert!(closed(&mut conn).await);
    let Handshake::Hello {
        nonce: Some(dialler_nonce),
        ..
    } = &recorded.hello
    else {
        panic!("hello has a nonce");
    };
    let listener_transcript = Transcript {
        role: Role::Listener,
        protocol: PROTOCOL_VERSION,
        cluster: CLUSTER,
        dialler_nonce,
        listener_nonce: &recorded.listener_nonce,
        dialler: &intruder,
        listener: &listener_id,
    };
    let right_proof = proof(&secret(), &listener_transcript);
    assert!(verify(&secret(), &listener_transcript, &right_proof));
    assert!(!verify(&wrong, &listener_transcript, &right_proof));

    // Frames sent instead of the proof are not delivered.
    let mut conn = Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        LengthDelimitedCodec::new(),
    );
    send(
        &mut conn,
        &Handshake::Hello {
            protocol: PROTOCOL_VERSION,
            cluster: CLUSTER.into(),
            from: intruder.clone(),
            nonce: Some(rand::random()),
        },
    )
    .await;
    assert!(matches!(
        receive(&mut conn).await,
        Handshake::Challenge { .. }
    ));
    let _ = send_message(&mut conn, &message(3)).await;
    assert!(closed(&mut conn).await);

    // An honest handshake, recorded...
    let honest = UniqueReplicaId::new("honest", 1);
    let (mut good, reply, recorded) = authenticate(addr, &honest, &secret()).await;
    assert!(
        matches!(reply, Handshake::Welcome { ref from } if *from == listener_id),
        "{reply:?}"
    );

    // ...and replayed on a new connection: the listener's nonce is fresh, the old proof fails.
    let mut replay = Framed::new(
        TcpStream::connect(addr).await.unwrap(),
        LengthDelimitedCodec::new(),
    );
    send(&mut replay, &recorded.hello).await;
    let Handshake::Challenge { nonce, .. } = receive(&mut replay).await else {
        panic!("expected a challenge");
    };
    assert_ne!(nonce, recorded.listener_nonce, "listener nonces are fresh");
    send(&mut replay, &recorded.proof).await;
    let reply = receive(&mut replay).await;
    assert!(
        matches!(&reply, Handshake::Rejected { reason } if reason.contains("replayed")),
        "{reply:?}"
    );
    let _ = send_message(&mut replay, &message(4)).await;
    assert!(closed(&mut replay).await);

    // The first message delivered is the honest peer's: nothing of the others got through.
    send_message(&mut good, &message(42)).await.unwrap();
    let first = next_incoming(&mut incoming).await;
    assert_eq!(first.from, honest);
    assert_eq!(first.message, message(42));
    let stats = transport.stats();
    assert_eq!(stats.frames_received, 1, "{stats:?}");
    assert!(stats.handshakes_refused >= 3, "{stats:?}");
    transport.shutdown();
}

/// Serves fake listener handshakes: the first connection answers with a proof made with the
/// wrong secret, the second welcomes without any proof. Returns what the dialler sent after.
async fn fake_listener(listener: TcpListener) -> Vec<Option<Handshake>> {
    let mut after = Vec::new();
    for round in 0..2 {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Framed::new(stream, LengthDelimitedCodec::new());
        let Handshake::Hello {
            from,
            nonce: Some(dialler_nonce),
            ..
        } = receive(&mut conn).await
        else {
            panic!("an authenticating dialler sends a nonce");
        };
        let me = UniqueReplicaId::new("impostor", 1);
        if round == 0 {
            let listener_nonce: [u8; 32] = rand::random();
            let transcript = Transcript {
                role: Role::Listener,
                protocol: PROTOCOL_VERSION,
                cluster: CLUSTER,
                dialler_nonce: &dialler_nonce,
                listener_nonce: &listener_nonce,
                dialler: &from,
                listener: &me,
            };
            let bad = proof(&Secret::new("not the secret").unwrap(), &transcript);
            send(
                &mut conn,
                &Handshake::Challenge {
                    from: me,
                    nonce: listener_nonce,
                    proof: bad,
                },
            )
            .await;
        } else {
            send(&mut conn, &Handshake::Welcome { from: me }).await;
        }
        let next = tokio::time::timeout(LONG, conn.next()).await.unwrap();
        after.push(match next {
            Some(Ok(frame)) => Some(Handshake::decode(&frame).unwrap()),
            _ => None,
        });
    }
    after
}

#[tokio::test]
async fn a_dialler_refuses_a_listener_that_cannot_prove_the_secret() {
    let listener = TcpListener::bind(local()).await.unwrap();
    let impostor_addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(fake_listener(listener));
    let (transport, _) = bind("dialler", config()).await;
    let members: Members = [(ReplicaId::new("impostor"), Some(impostor_addr))].into();
    let (_members_tx, members_rx) = watch::channel(members);
    transport.follow_members(members_rx);
    transport.send(&ReplicaId::new("impostor"), message(7));
    let after = tokio::time::timeout(LONG, fake).await.unwrap().unwrap();
    for (round, frame) in after.iter().enumerate() {
        assert!(
            matches!(frame, Some(Handshake::Rejected { reason })
                if reason.contains("failed to prove") || reason.contains("without proving")),
            "round {round}: the dialler must refuse, not send a proof or a message: {frame:?}"
        );
    }
    assert!(
        transport.stats().handshakes_refused >= 2,
        "{:?}",
        transport.stats()
    );
    transport.shutdown();
}

/// Sends `Status` frames of about 1 KiB as fast as it can until `stop` (or a bound).
fn flood(
    mut conn: Conn,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let frame = Message::LeafDigests {
        depth: 4,
        whole: false,
        leaves: vec![0],
        digests: (0..64).map(|i| (format!("flood-key-{i:04}"), i)).collect(),
    };
    let bytes = Bytes::from(frame.encode().unwrap());
    tokio::spawn(async move {
        for _ in 0..1_000_000u32 {
            if stop.load(Ordering::Relaxed) || conn.send(bytes.clone()).await.is_err() {
                return;
            }
            written.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[tokio::test]
async fn a_flooding_peer_is_backpressured_and_an_honest_peer_still_gets_through() {
    let cfg = TcpConfig {
        inbound_queue: 8,
        ..config()
    };
    let (transport, _) = bind("victim", cfg).await;
    let addr = transport.local_addr();
    let (conn, reply, _) = authenticate(addr, &UniqueReplicaId::new("flooder", 1), &secret()).await;
    assert!(matches!(reply, Handshake::Welcome { .. }));
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(conn, written.clone(), stop);

    // Nobody reads the incoming stream yet: the queue fills and the reader stops reading.
    eventually("the inbound queue is full", LONG, || async {
        transport.stats().inbound_queued == 8
    })
    .await;
    let received = transport.stats().frames_received;
    eventually(
        "the flooder wrote well past what was read",
        LONG,
        || async { written.load(Ordering::Relaxed) >= received + 200 },
    )
    .await;
    let stats = transport.stats();
    assert!(
        stats.frames_received <= 9,
        "the reader must wait for room (8 queued + 1 in hand), not buffer: {stats:?}"
    );

    // An honest peer's message gets through while the flood goes on.
    let honest = UniqueReplicaId::new("honest", 1);
    let (mut good, reply, _) = authenticate(addr, &honest, &secret()).await;
    assert!(matches!(reply, Handshake::Welcome { .. }));
    send_message(&mut good, &message(99)).await.unwrap();
    let mut incoming = transport.incoming().unwrap();
    let mut seen = 0u64;
    loop {
        let m = next_incoming(&mut incoming).await;
        seen += 1;
        if m.from == honest {
            assert_eq!(m.message, message(99));
            break;
        }
        assert!(
            seen < 2_000_000,
            "bounded: the flooder sends at most 1M frames"
        );
    }
    // Nobody reads any more, so the flooder may be blocked in a write: abort it.
    flooder.abort();
    let _ = flooder.await;
    let stats = transport.stats();
    assert!(stats.inbound_queued_high_water <= 8, "{stats:?}");
    assert!(stats.frames_received > 8, "{stats:?}");
    transport.shutdown();
}

#[tokio::test]
async fn replicas_keep_converging_while_one_is_flooded() {
    let all = names(2);
    let mut transports = Vec::new();
    let mut ids = Vec::new();
    for name in &all {
        let (t, id) = bind(
            name.as_str(),
            TcpConfig {
                inbound_queue: 16,
                ..config()
            },
        )
        .await;
        transports.push(t);
        ids.push(id);
    }
    let mut rs: Vec<Replicator> = Vec::new();
    for (i, t) in transports.iter().enumerate() {
        let j = 1 - i;
        let cluster = StaticCluster::with_addresses(
            ids[i].clone(),
            Some(t.local_addr()),
            [(all[j].clone(), Some(transports[j].local_addr()))],
        );
        rs.push(
            DistributedData::start(cluster, t.clone(), fast_settings())
                .await
                .unwrap(),
        );
    }
    let (conn, reply, _) = authenticate(
        transports[0].local_addr(),
        &UniqueReplicaId::new("flooder", 1),
        &secret(),
    )
    .await;
    assert!(matches!(reply, Handshake::Welcome { .. }));
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(conn, written.clone(), stop.clone());
    eventually("the flood is under way", LONG, || async {
        written.load(Ordering::Relaxed) >= 1000
    })
    .await;

    let key: Key<GCounter> = Key::new("flooded");
    for r in &rs {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap();
    }
    converge_counter(&rs, &key, 2).await;
    stop.store(true, Ordering::Relaxed);
    flooder.await.unwrap();
    let stats = transports[0].stats();
    assert!(stats.inbound_queued_high_water <= 16, "{stats:?}");
    assert!(
        stats.frames_received >= 1000,
        "the flood reached the replica: {stats:?}"
    );
    for r in &rs {
        r.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_stalled_partial_frame_drops_the_connection() {
    let cfg = TcpConfig {
        frame_timeout: Duration::from_millis(200),
        handshake_timeout: Duration::from_millis(500),
        ..config()
    };
    let (transport, _) = bind("patient", cfg).await;
    let addr = transport.local_addr();

    // During the handshake: a length prefix of 100 bytes, then 10 bytes, then nothing.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&100u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[0u8; 10]).await.unwrap();
    let mut conn = Framed::new(raw, LengthDelimitedCodec::new());
    assert!(
        closed(&mut conn).await,
        "dropped after the handshake timeout"
    );

    // After the handshake.
    let (conn, reply, _) = authenticate(addr, &UniqueReplicaId::new("staller", 1), &secret()).await;
    assert!(matches!(reply, Handshake::Welcome { .. }));
    let mut raw = conn.into_inner();
    raw.write_all(&1000u32.to_be_bytes()).await.unwrap();
    raw.write_all(&[0u8; 10]).await.unwrap();
    let mut conn = Framed::new(raw, LengthDelimitedCodec::new());
    assert!(closed(&mut conn).await, "dropped after the frame timeout");
    eventually("the stall is counted", LONG, || async {
        transport.stats().stalled_connections == 1
    })
    .await;
    assert_eq!(transport.stats().frames_received, 0);
    transport.shutdown();
}

#[tokio::test]
async fn connection_and_frame_rate_limits_apply() {
    let cfg = TcpConfig {
        max_inbound_connections: 2,
        max_frames_per_second: Some(5),
        ..config()
    };
    let (transport, _) = bind("limited", cfg).await;
    let addr = transport.local_addr();
    let mut incoming = transport.incoming().unwrap();

    let (mut first, reply, _) =
        authenticate(addr, &UniqueReplicaId::new("one", 1), &secret()).await;
    assert!(matches!(reply, Handshake::Welcome { .. }));
    let _second = TcpStream::connect(addr).await.unwrap();
    eventually("two connections are served", LONG, || async {
        // A third one is refused as soon as the two permits are taken.
        let mut third = Framed::new(
            TcpStream::connect(addr).await.unwrap(),
            LengthDelimitedCodec::new(),
        );
        closed(&mut third).await && transport.stats().connections_over_limit >= 1
    })
    .await;

    for i in 0..12 {
        send_message(&mut first, &message(i)).await.unwrap();
    }
    for i in 0..12 {
        assert_eq!(next_incoming(&mut incoming).await.message, message(i));
    }
    let stats = transport.stats();
    assert!(
        stats.rate_limited >= 1,
        "12 frames at 5 per second: {stats:?}"
    );
    transport.shutdown();
}

#[tokio::test]
async fn the_outbound_queue_is_bounded_and_drops_are_counted() {
    // An address where nothing listens: the dialler never connects, messages queue.
    let nothing = TcpListener::bind(local()).await.unwrap();
    let dead = nothing.local_addr().unwrap();
    drop(nothing);
    let (transport, _) = bind(
        "sender",
        TcpConfig {
            outbound_queue: 4,
            ..config()
        },
    )
    .await;
    let members: Members = [(ReplicaId::new("ghost"), Some(dead))].into();
    let (_members_tx, members_rx) = watch::channel(members);
    transport.follow_members(members_rx);
    for i in 0..10 {
        transport.send(&ReplicaId::new("ghost"), message(i));
    }
    assert_eq!(transport.stats().outbound_dropped, 6);
    transport.shutdown();
}

#[test]
fn secrets_are_never_printed() {
    let config = TcpConfig {
        cluster_secret: Some(Secret::new("hunter2-do-not-print").unwrap()),
        ..TcpConfig::new("c")
    };
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("Secret(<redacted>)"), "{printed}");
    assert!(Secret::new("").is_err());
    assert_eq!(Secret::new("x").unwrap(), Secret::new("x").unwrap());
    assert_ne!(Secret::new("x").unwrap(), Secret::new("y").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cret\n").unwrap();
    assert_eq!(
        Secret::from_file(&path).unwrap(),
        Secret::new("s3cret").unwrap()
    );
    std::fs::write(&path, " \n").unwrap();
    assert!(Secret::from_file(&path).is_err());
    assert!(Secret::from_file(dir.path().join("missing")).is_err());
}

#[tokio::test]
async fn an_authenticated_cluster_converges_and_mismatched_secrets_do_not_connect() {
    let (a, a_id) = bind("a", config()).await;
    let (b, b_id) = bind("b", config()).await;
    let (c, c_id) = bind(
        "c",
        TcpConfig {
            cluster_secret: Some(Secret::new("another secret").unwrap()),
            ..config()
        },
    )
    .await;
    let addrs = [
        (ReplicaId::new("a"), Some(a.local_addr())),
        (ReplicaId::new("b"), Some(b.local_addr())),
        (ReplicaId::new("c"), Some(c.local_addr())),
    ];
    let mut rs = Vec::new();
    for (t, id) in [(&a, &a_id), (&b, &b_id), (&c, &c_id)] {
        let peers = addrs.iter().filter(|(r, _)| r != id.replica()).cloned();
        let cluster = StaticCluster::with_addresses(id.clone(), Some(t.local_addr()), peers);
        rs.push(
            DistributedData::start(cluster, t.clone(), fast_settings())
                .await
                .unwrap(),
        );
    }
    let key: Key<GCounter> = Key::new("auth");
    for r in &rs {
        let me = r.self_id();
        r.update(&key, GCounter::new(), WriteConsistency::Local, move |c| {
            c.increment(&me, 1)
        })
        .await
        .unwrap();
    }
    converge_counter(&rs[..2], &key, 2).await;
    eventually("c's handshakes are refused", LONG, || async {
        c.stats().handshakes_refused >= 1 && a.stats().handshakes_refused >= 1
    })
    .await;
    assert_eq!(counter(&rs[2], &key).await, 1, "c never hears from a or b");
    assert_eq!(counter(&rs[0], &key).await, 2, "a never hears from c");
    for r in &rs {
        r.shutdown().await.unwrap();
    }
}
