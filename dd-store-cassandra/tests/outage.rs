//! A down cluster gives a clear, transient error without hanging, and nothing is lost. On the
//! real cluster of `DD_TEST_CASSANDRA_CONTACT_POINTS` the outage is a TCP proxy in front of the
//! node that is stopped (every connection cut, new ones refused) and started again on the same
//! port; without it, the test double's listener is stopped while its data is kept, then
//! restarted on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::proxy::TcpProxy;
use cql_test_double::{CqlTestDouble, Database};
use futures::TryStreamExt;

use dd_store::{DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_cassandra::CassandraOptions;

/// A generous bound against hangs (not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(90);

fn assert_unavailable(err: &StoreError, contact: &str) {
    println!("error: {err}");
    assert!(err.is_transient(), "not transient: {err}");
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "not Unavailable: {err:?}"
    );
    assert!(
        err.to_string().contains(contact),
        "does not name {contact}: {err}"
    );
}

#[tokio::test]
async fn open_on_a_closed_port_is_unavailable() {
    // A port that was free a moment ago and has no listener now.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let contact = format!("127.0.0.1:{port}");
    println!("open_on_a_closed_port_is_unavailable: nothing listens on {contact}");
    let mut options = CassandraOptions::new([contact.clone()], "dd_test");
    options.connect_timeout = Duration::from_secs(2);
    let result = tokio::time::timeout(HANG_GUARD, dd_store_cassandra::open(options))
        .await
        .expect("open must not hang on a closed port");
    let err = result.expect_err("nothing listens there");
    assert_unavailable(&err, &contact);
}

/// The node the store talks to, which the test stops and starts again on the same address.
enum Node {
    /// A TCP proxy in front of the real cluster's first contact point.
    Proxied(SocketAddr, Option<TcpProxy>),
    /// The CQL test double; its data outlives a stop.
    Double(Database, Option<CqlTestDouble>),
}

impl Node {
    async fn start() -> (Node, SocketAddr, String) {
        if let Some((points, keyspace)) = common::real_cluster() {
            let first = points.split(',').next().unwrap_or_default();
            let upstream = tokio::net::lookup_host(first)
                .await
                .unwrap()
                .next()
                .expect("the contact point resolves");
            let proxy = TcpProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
                .await
                .unwrap();
            let addr = proxy.addr();
            println!(
                "stopped_cluster_fails_clearly_and_loses_nothing: a TCP proxy on {addr} in front of \
                 the Cassandra node at {upstream} is stopped and restarted"
            );
            return (Node::Proxied(upstream, Some(proxy)), addr, keyspace);
        }
        println!(
            "stopped_cluster_fails_clearly_and_loses_nothing: the in-process CQL test double is \
             stopped and restarted (set DD_TEST_CASSANDRA_CONTACT_POINTS for a real cluster)"
        );
        let database = Database::new();
        let double = CqlTestDouble::start_with(database.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = double.addr();
        (
            Node::Double(database, Some(double)),
            addr,
            "dd_test".to_owned(),
        )
    }

    async fn stop(&mut self) {
        match self {
            Node::Proxied(_, proxy) => proxy.take().expect("running").stop().await,
            Node::Double(_, double) => double.take().expect("running").shutdown().await,
        }
    }

    async fn restart(&mut self, addr: SocketAddr) {
        match self {
            Node::Proxied(upstream, proxy) => {
                *proxy = Some(TcpProxy::start(addr, *upstream).await.unwrap());
            }
            Node::Double(database, double) => {
                *double = Some(
                    CqlTestDouble::start_with(database.clone(), addr)
                        .await
                        .unwrap(),
                );
            }
        }
    }
}

#[tokio::test]
async fn stopped_cluster_fails_clearly_and_loses_nothing() {
    let (mut node, addr, keyspace) = Node::start().await;
    let contact = addr.to_string();
    let mut options = CassandraOptions::new([contact.clone()], keyspace);
    options.table = common::unique_table("outage");
    options.request_timeout = Duration::from_secs(3);
    let store = dd_store_cassandra::open(options.clone()).await.unwrap();
    let first = store.put("r", "k", None, "v1".into()).await.unwrap();
    assert_eq!(first, WriteOutcome::Written(Revision::FIRST));

    node.stop().await;
    let err = tokio::time::timeout(
        HANG_GUARD,
        store.put("r", "k", Some(Revision(1)), "v2".into()),
    )
    .await
    .expect("a write to a stopped cluster must not hang")
    .expect_err("the cluster is down");
    assert_unavailable(&err, &contact);
    let err = tokio::time::timeout(HANG_GUARD, store.get("r", "k"))
        .await
        .expect("a read from a stopped cluster must not hang")
        .expect_err("the cluster is down");
    assert_unavailable(&err, &contact);
    let err = tokio::time::timeout(HANG_GUARD, store.scan_page("r", None, 10))
        .await
        .expect("a scan of a stopped cluster must not hang")
        .expect_err("the cluster is down");
    assert_unavailable(&err, &contact);
    let err = tokio::time::timeout(HANG_GUARD, store.scan("r", 100).try_collect::<Vec<_>>())
        .await
        .expect("a scan stream of a stopped cluster must not hang")
        .expect_err("the cluster is down");
    assert_unavailable(&err, &contact);

    // Same data, same address: the node comes back.
    node.restart(addr).await;
    let back = common::poll_until(300, Duration::from_millis(100), || async {
        store.get("r", "k").await.ok()
    })
    .await
    .expect("the store reconnects to the restarted cluster");
    let record = back.expect("the record survived the outage");
    assert_eq!(record.revision, Revision(1));
    assert_eq!(&record.value[..], b"v1");
    // The failed write was not applied, and writes work again (a restarted double has forgotten
    // the prepared statements; the driver prepares them again).
    let outcome = store
        .put("r", "k", Some(Revision(1)), "v2".into())
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written(Revision(2)));
    let reopened = dd_store_cassandra::open(options).await.unwrap();
    let record = reopened.get("r", "k").await.unwrap().unwrap();
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(2), &b"v2"[..])
    );
}
