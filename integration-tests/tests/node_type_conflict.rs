//! Two `dd-node serve` processes create one key at the same moment, as an `orset` on one and a
//! `gcounter` on the other (issue 21 item 2): both converge on the value of the type whose
//! dd-core name sorts first (`GCounter`), a read of the key answers 409 naming both types, the
//! `dd_type_conflicts` metric counts it, each node warns once, and a restart keeps the outcome.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use std::time::Duration;

use node_common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_with_two_types_converges_on_one_and_says_so() {
    let mut tc = TestCluster::start(&["a", "b"]).await;

    // Both requests at once, before either replica gossips; a key that one replica learnt
    // before the other wrote is refused there (409), so the next key is tried.
    let mut split = None;
    for i in 0..20 {
        let key = format!("split{i}");
        let (set_path, counter_path) = (
            format!("/keys/orset/{key}"),
            format!("/keys/gcounter/{key}"),
        );
        let set = tc.post(0, &set_path, r#"{"op":"add","element":"x"}"#);
        let counter = tc.post(1, &counter_path, r#"{"op":"increment","by":3}"#);
        let ((s1, b1), (s2, b2)) = tokio::join!(set, counter);
        if s1 == StatusCode::OK && s2 == StatusCode::OK {
            split = Some(key);
            break;
        }
        assert!(
            s1 == StatusCode::CONFLICT || s2 == StatusCode::CONFLICT,
            "{s1} {b1} / {s2} {b2}"
        );
    }
    let key = split.expect("no key was created with two types at once in 20 tries");

    for node in 0..2 {
        for t in ["gcounter", "orset"] {
            let path = format!("/keys/{t}/{key}");
            poll_until(
                &format!("node {node}: GET {path} answers the conflict"),
                || {
                    let path = path.clone();
                    let tc = &tc;
                    async move {
                        let (status, body) = tc.get(node, &path).await;
                        if status == StatusCode::CONFLICT
                            && body["types"] == json!(["gcounter", "orset"])
                            && body["kept"] == json!("gcounter")
                            && body["value"] == json!(3)
                            && body["error"]
                                .as_str()
                                .is_some_and(|e| e.contains("type conflict"))
                        {
                            Ok(())
                        } else {
                            Err(format!("{status} {body}"))
                        }
                    }
                },
            )
            .await;
        }
        let metrics = tc
            .client
            .get(format!("{}/metrics", tc.url(node)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.lines().any(|l| l == "dd_type_conflicts 1"),
            "node {node}: {metrics}"
        );
    }

    // Several gossip rounds later, still one warning per node for the key.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in 0..2 {
        let log = std::fs::read_to_string(tc.cluster.log_path(node)).unwrap();
        let warnings = log.lines().filter(|l| l.contains("type conflict")).count();
        assert_eq!(warnings, 1, "node {node}:\n{log}");
        assert!(!log.contains("state not merged"), "node {node}:\n{log}");
    }

    // A restart keeps the kept value (the record of the conflict is in memory only).
    tc.cluster.stop().await.unwrap();
    tc.cluster.start().unwrap();
    tc.healthy().await;
    for node in 0..2 {
        let path = format!("/keys/gcounter/{key}");
        poll_until(&format!("node {node} after the restart"), || {
            let path = path.clone();
            let tc = &tc;
            async move {
                let (status, body) = tc.get(node, &path).await;
                if status == StatusCode::OK && body["value"] == json!(3) {
                    Ok(())
                } else {
                    Err(format!("{status} {body}"))
                }
            }
        })
        .await;
        let (status, body) = tc.get(node, &format!("/keys/orset/{key}")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["found"], json!("gcounter"), "{body}");
    }
    tc.cluster.stop().await.unwrap();
}
