//! Three `dd-node serve` processes with SQLite stores: every type written through the HTTP API
//! converges, survives SIGKILL of the whole cluster and reads back the same on every node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use node_common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// (type, key, writer replica, body, expected value)
fn writes() -> Vec<(&'static str, &'static str, usize, Value, Value)> {
    vec![
        (
            "gcounter",
            "g",
            0,
            json!({"op": "increment", "by": 4}),
            json!(4),
        ),
        (
            "pncounter",
            "p",
            1,
            json!([{"op": "increment", "by": 2}, {"op": "decrement", "by": 5}]),
            json!(-3),
        ),
        (
            "gset",
            "gs",
            2,
            json!({"op": "add", "element": "x"}),
            json!(["x"]),
        ),
        (
            "orset",
            "os",
            0,
            json!([{"op": "add", "element": "b"}, {"op": "add", "element": "a"}, {"op": "remove", "element": "b"}]),
            json!(["a"]),
        ),
        ("flag", "f", 1, json!({"op": "enable"}), json!(true)),
        (
            "lwwregister",
            "r",
            2,
            json!({"op": "set", "value": "v1"}),
            json!("v1"),
        ),
        (
            "mvregister",
            "mv",
            0,
            json!({"op": "set", "value": "m"}),
            json!(["m"]),
        ),
        (
            "lwwmap",
            "lm",
            1,
            json!({"op": "put", "key": "k", "value": "v"}),
            json!({"k": "v"}),
        ),
        (
            "pncountermap",
            "pm",
            2,
            json!({"op": "increment", "key": "k", "by": 9}),
            json!({"k": 9}),
        ),
        (
            "ormultimap",
            "mm",
            0,
            json!({"op": "put", "key": "k", "values": ["2", "1"]}),
            json!({"k": ["1", "2"]}),
        ),
    ]
}

async fn wait_everywhere(tc: &TestCluster, what: &str) {
    for (t, key, _, _, expected) in writes() {
        for i in 0..3 {
            let path = format!("/keys/{t}/{key}");
            poll_until(&format!("{what}: {t} {key} on node {i}"), || {
                let path = path.clone();
                let expected = expected.clone();
                async move {
                    let (status, body) = tc.get(i, &path).await;
                    if status == StatusCode::OK && body["value"] == expected {
                        Ok(())
                    } else {
                        Err(format!("{status} {body}"))
                    }
                }
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_converges_and_survives_sigkill_of_the_cluster() {
    let mut tc = TestCluster::start(&["a", "b", "c"]).await;
    for (t, key, writer, body, expected) in writes() {
        let (status, answer) = tc
            .post(writer, &format!("/keys/{t}/{key}"), &body.to_string())
            .await;
        assert_eq!(status, StatusCode::OK, "{t}: {answer}");
        assert_eq!(answer["value"], expected, "{t}");
        assert_eq!(answer["type"], json!(t));
    }
    wait_everywhere(&tc, "before the crash").await;
    let (_, keys) = tc.get(1, "/keys").await;
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        writes().len(),
        "{keys}"
    );

    // A write that every replica acknowledges, and a read that asks every replica. Adding an
    // element is idempotent, so a timed-out attempt (connections still being set up) is retried.
    poll_until("a write with consistency=all", || async {
        let (status, body) = tc
            .post(
                0,
                "/keys/gset/everywhere?consistency=all&timeout_ms=3000",
                r#"{"op":"add","element":"q"}"#,
            )
            .await;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
    let (status, body) = tc
        .get(2, "/keys/gset/everywhere?consistency=all&timeout_ms=10000")
        .await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(["q"])),
        "{body}"
    );

    tc.cluster.kill().await.unwrap();
    tc.cluster.start().unwrap();
    tc.healthy().await;
    wait_everywhere(&tc, "after SIGKILL and restart").await;
    for i in 0..3 {
        let (status, body) = tc.get(i, "/keys/gset/everywhere").await;
        assert_eq!(
            (status, body["value"].clone()),
            (StatusCode::OK, json!(["q"])),
            "node {i}: {body}"
        );
    }

    // A graceful stop after the restart succeeds too.
    tc.cluster.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_write_behind_data() {
    // An interval far beyond the test: only the flush on SIGTERM can write the data.
    let dir = tempfile::tempdir().unwrap();
    let mut options = dd_node::local_cluster::ClusterOptions::new(exe(), dir.path().to_owned());
    options.names = vec!["solo".into()];
    options.write_mode = "write-behind=3600000".into();
    options.health_timeout = BOUND;
    options.stop_timeout = BOUND;
    let mut cluster = dd_node::local_cluster::LocalCluster::new(options).unwrap();
    let client = reqwest::Client::new();
    cluster.start().unwrap();
    cluster.wait_healthy(&client).await.unwrap();
    let base = cluster.nodes()[0].url();
    let (status, _) = send(
        client
            .post(format!("{base}/keys/orset/queued"))
            .body(r#"{"op":"add","element":"kept"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, health) = send(client.get(format!("{base}/health"))).await;
    assert_eq!(health["write_mode"], json!("write-behind=3600000"));
    let store = cluster.nodes()[0].store.clone();
    let nothing_yet = inspect(&store).await;
    assert_eq!(
        nothing_yet,
        json!([]),
        "nothing may be written before the flush"
    );

    cluster.stop().await.unwrap();
    let stored = inspect(&store).await;
    assert_eq!(stored[0]["keys"][0]["value"], json!(["kept"]), "{stored}");

    cluster.start().unwrap();
    cluster.wait_healthy(&client).await.unwrap();
    let (status, body) = send(client.get(format!("{base}/keys/orset/queued"))).await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(["kept"]))
    );
    cluster.stop().await.unwrap();
}
