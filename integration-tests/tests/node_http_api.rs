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

/// Sends `head` (and then `body`) as raw bytes on a new connection and reads the whole answer
/// until the server closes it: the status and the JSON body (`Null` if the body is not JSON).
/// Writing goes on in its own task, so that a server that answers and closes before it has read
/// everything still has its answer read.
async fn raw_request(addr: &str, head: Vec<u8>, body: Vec<u8>) -> (u16, serde_json::Value, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&head).await;
        let _ = write.write_all(&body).await;
        // Keep the write half open until the answer is read (dropping it would half-close).
        write
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 8192];
        loop {
            match read.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                // A reset after the answer (unread request bytes on the server side) ends it too.
                Err(_) => break,
            }
        }
    };
    tokio::time::timeout(BOUND, read_all)
        .await
        .expect("the server did not answer and close within the bound");
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        text,
    )
}

/// The `error` of a JSON error body (panics, naming the answer, when there is none).
fn error_of(body: &serde_json::Value, answer: &str) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error body: {answer:.300}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_naming_what_was_wrong() {
    let tc = TestCluster::start(&["solo"]).await;
    let base = tc.url(0);
    let addr = base.trim_start_matches("http://").to_owned();

    // A percent-encoded key that is not UTF-8: the router's path decoding.
    for path in ["/keys/gcounter/%FF", "/keys/gcounter/%C3/subscribe"] {
        let (status, body) = tc.get(0, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("UTF-8") && error.contains("key"),
            "{path}: {body}"
        );
    }
    let (status, body) = tc
        .post(0, "/keys/gcounter/%FF", r#"{"op":"increment"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("UTF-8"),
        "{body}"
    );

    // Raw bytes a URL cannot hold: refused by hyper before the router, with a JSON body.
    let (status, body, answer) = raw_request(
        &addr,
        b"GET /keys/gcounter/\xff\xfe HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
        Vec::new(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        error_of(&body, &answer).contains("percent-encode"),
        "{answer}"
    );
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );

    // A 100 kB key: longer than hyper's URI limit (414).
    let long = format!(
        "GET /keys/gcounter/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "k".repeat(100_000)
    );
    let (status, body, answer) = raw_request(&addr, long.into_bytes(), Vec::new()).await;
    assert_eq!(status, 414, "{answer:.300}");
    assert!(
        error_of(&body, &answer).contains("URI too long"),
        "{answer}"
    );

    // A 1 MB key: more than hyper reads for a request head (431).
    let huge = format!(
        "GET /keys/gcounter/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "k".repeat(1_000_000)
    );
    let (status, body, answer) = raw_request(&addr, huge.into_bytes(), Vec::new()).await;
    assert_eq!(status, 431, "{answer:.300}");
    assert!(
        error_of(&body, &answer).contains("request head too large"),
        "{answer}"
    );

    // Too many headers (431 too).
    let mut many = String::from("GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, body, answer) = raw_request(&addr, many.into_bytes(), Vec::new()).await;
    assert_eq!(status, 431, "{answer:.300}");
    assert!(error_of(&body, &answer).contains("headers"), "{answer}");

    // A body over the limit (413).
    let big = format!(
        r#"{{"op":"add","element":"{}"}}"#,
        "e".repeat(dd_node::api::MAX_BODY_BYTES)
    );
    let (status, body) = tc.post(0, "/keys/gset/big", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("request body too large")
            && error.contains(&dd_node::api::MAX_BODY_BYTES.to_string()),
        "{body}"
    );

    // Method not allowed, unknown route.
    let (status, body) = send(tc.client.put(format!("{base}/keys/orset/s"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("method not allowed"),
        "{body}"
    );
    let (status, body) = send(tc.client.post(format!("{base}/health"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = tc.get(0, "/keys/gcounter").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no such endpoint"),
        "{body}"
    );

    // JSON bodies: not JSON, a wrong type, numbers out of range.
    let (status, body) = tc.post(0, "/keys/pncounter/c", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("bad JSON body"),
        "{body}"
    );
    let (status, body) = tc
        .post(0, "/keys/pncounter/c", r#"{"op":"increment","by":"2"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid type: string"),
        "{body}"
    );
    for by in ["18446744073709551616", "-1", "1e40"] {
        let (status, body) = tc
            .post(
                0,
                "/keys/pncounter/c",
                &format!(r#"{{"op":"increment","by":{by}}}"#),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{by}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("out of range"),
            "{by}: {body}"
        );
    }
    let (status, body) = tc.get(0, "/keys/pncounter/c").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was applied: {body}");

    // from:N beyond the cluster is capped at its members (documented in dd-node's README).
    let (status, body) = tc
        .post(
            0,
            "/keys/gcounter/capped?consistency=from:99",
            r#"{"op":"increment"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = tc.get(0, "/keys/gcounter/capped?consistency=from:99").await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(1)),
        "{body}"
    );

    // The node still serves after all of it.
    let (status, _) = tc.get(0, "/health").await;
    assert_eq!(status, StatusCode::OK);
}
