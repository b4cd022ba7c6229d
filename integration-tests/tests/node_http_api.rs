//! The HTTP API of one `dd-node serve` process: health, errors that say what is wrong, refused
//! operations that change nothing, deletes, subscriptions and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use std::time::Duration;

use node_common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_errors_and_refused_operations() {
    let tc = TestCluster::start(&["solo"]).await;

    let (status, health) = tc.get(0, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(health["replica"], json!("solo"));
    assert!(health["members"].get("solo").is_some(), "{health}");
    assert!(
        health["store"].as_str().unwrap().starts_with("sqlite://"),
        "{health}"
    );

    // unknown type
    let (status, body) = tc.get(0, "/keys/hyperloglog/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown type 'hyperloglog'"),
        "{body}"
    );
    assert!(
        body["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("orset"))
    );

    // a set with one element
    let (status, _) = tc
        .post(0, "/keys/orset/s", r#"{"op":"add","element":"x"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);

    // an operation of another type on the set's type: refused before anything happens
    let (status, body) = tc
        .post(0, "/keys/orset/s", r#"{"op":"increment","by":1}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("orset supports add, remove, clear"),
        "{body}"
    );

    // the key holds a set: a counter operation on it is a conflict, nothing applied
    let (status, body) = tc
        .post(0, "/keys/gcounter/s", r#"{"op":"increment","by":1}"#)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["found"], json!("orset"));
    assert_eq!(body["expected"], json!("gcounter"));
    let (status, body) = tc.get(0, "/keys/gcounter/s").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // a list whose second operation is bad: nothing applied
    let (status, body) = tc
        .post(
            0,
            "/keys/orset/s",
            r#"[{"op":"add","element":"y"},{"op":"add"}]"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("needs the field 'element'"),
        "{body}"
    );
    let (_, body) = tc.get(0, "/keys/orset/s").await;
    assert_eq!(body["value"], json!(["x"]), "nothing may have been applied");

    // bad JSON, bad consistency, bad timeout, unknown query parameter
    let (status, body) = tc.post(0, "/keys/orset/s", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("bad JSON body"),
        "{body}"
    );
    let (status, body) = tc.get(0, "/keys/orset/s?consistency=quorum").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bad consistency 'quorum'"),
        "{body}"
    );
    let (status, body) = tc
        .post(0, "/keys/orset/s?consistency=from:0", r#"{"op":"clear"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = tc
        .get(0, "/keys/orset/s?consistency=all&timeout_ms=soon")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("bad timeout_ms 'soon'"),
        "{body}"
    );
    let (status, body) = tc.get(0, "/keys/orset/s?consistncy=all").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("consistncy"),
        "{body}"
    );
    let (_, body) = tc.get(0, "/keys/orset/s").await;
    assert_eq!(body["value"], json!(["x"]));

    // consistency levels that a one-replica cluster satisfies
    let (status, body) = tc
        .post(
            0,
            "/keys/pncounter/c?consistency=all&timeout_ms=2000",
            r#"{"op":"decrement","by":2}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["value"], json!(-2));
    let (status, body) = tc.get(0, "/keys/pncounter/c?consistency=majority").await;
    assert_eq!((status, body["value"].clone()), (StatusCode::OK, json!(-2)));

    // not found, list, delete, gone
    let (status, body) = tc.get(0, "/keys/flag/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["key"], json!("nothing"));
    let (_, body) = tc.get(0, "/keys").await;
    assert_eq!(body["keys"], json!(["c", "s"]));
    let (status, body) = tc.delete(0, "/keys/pncounter/c").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = tc.get(0, "/keys/pncounter/c").await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = tc
        .post(0, "/keys/pncounter/c", r#"{"op":"increment"}"#)
        .await;
    assert_eq!(status, StatusCode::GONE);

    // unknown endpoint
    let (status, body) = tc.get(0, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());

    let (status, body) = send(tc.client.put(format!("{}/keys/orset/s", tc.url(0)))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("GET, POST and DELETE"),
        "{body}"
    );

    // metrics
    let text = tc
        .client
        .get(format!("{}/metrics", tc.url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("dd_node_updates_total{data_type=\"orset\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("dd_node_http_errors_total{status=\"409\"}"),
        "{text}"
    );
    assert!(text.contains("dd_durable_records_written_total"), "{text}");

    // a key id with a slash, percent-encoded
    let (status, body) = tc
        .post(0, "/keys/gset/user%2F42", r#"{"op":"add","element":"e"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], json!("user/42"));
    let (_, body) = tc.get(0, "/keys").await;
    assert!(
        body["keys"].as_array().unwrap().contains(&json!("user/42")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_sends_the_current_value_then_changes() {
    let tc = TestCluster::start(&["solo"]).await;
    tc.post(0, "/keys/gcounter/hits", r#"{"op":"increment","by":2}"#)
        .await;
    let mut response = tc
        .client
        .get(format!("{}/keys/gcounter/hits/subscribe", tc.url(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut seen = String::new();
    let mut incremented = false;
    let deadline = tokio::time::Instant::now() + BOUND;
    while !seen.contains("data: 5") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("no event in time")
            .unwrap()
            .expect("stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if !incremented && seen.contains("event: value\ndata: 2") {
            incremented = true;
            let (status, _) = tc
                .post(0, "/keys/gcounter/hits", r#"{"op":"increment","by":3}"#)
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!(incremented, "the current value came first: {seen}");
    let (status, body) = tc.get(0, "/keys/orset/hits/subscribe").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
