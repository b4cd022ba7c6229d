//! `dd-node migrate` from SQLite to fs and back, compared with `dd-node inspect`; refusing to
//! overwrite different data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

use node_common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_fs_and_back_keeps_every_record() {
    // Two replicas keep durable data in their SQLite stores, then stop.
    let mut tc = TestCluster::start(&["a", "b"]).await;
    let writes = [
        ("pncounter", "visits", r#"{"op":"increment","by":7}"#),
        (
            "orset",
            "tags",
            r#"[{"op":"add","element":"x"},{"op":"add","element":"y"}]"#,
        ),
        (
            "lwwmap",
            "settings",
            r#"{"op":"put","key":"color","value":"blue"}"#,
        ),
        ("lwwregister", "motd", r#"{"op":"set","value":"hi"}"#),
        (
            "ormultimap",
            "groups",
            r#"{"op":"add","key":"admins","value":"ann"}"#,
        ),
    ];
    // All on replica a, so that a's store has them whenever gossip reaches b.
    for (t, key, body) in writes {
        let (status, answer) = tc.post(0, &format!("/keys/{t}/{key}"), body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, _) = tc.post(0, "/keys/flag/gone", r#"{"op":"enable"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = tc.delete(0, "/keys/flag/gone").await;
    assert_eq!(status, StatusCode::OK);
    tc.cluster.stop().await.unwrap();

    let a_db = tc.store(0);
    let dir = tc.dir.path();
    let before = inspect(&a_db).await;
    let tags = &before[0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "tags")
        .unwrap()["value"];
    assert_eq!(tags, &json!(["x", "y"]), "{before}");
    let gone = before[0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "gone")
        .unwrap();
    assert_eq!(gone["type"], json!("deleted"), "{before}");

    // Replica a's store to fs.
    let fs = url("fs", &dir.join("fs-store"));
    let out = run_cli(&["migrate", "--from", &a_db, "--to", &fs]).await;
    assert!(out.success, "{}", out.stderr);
    let records = before[0]["keys"].as_array().unwrap().len();
    assert!(
        out.stdout
            .contains(&format!("1 replica(s), {records} record(s), all verified")),
        "{}",
        out.stdout
    );
    assert_eq!(inspect(&fs).await, before);

    // And back into a new SQLite store (named a.db so that replica a can run on it below).
    let back_dir = tempfile::tempdir().unwrap();
    let back = url("sqlite", &back_dir.path().join("a.db"));
    let out = run_cli(&["migrate", "--from", &fs, "--to", &back]).await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(inspect(&back).await, before);

    // Migrating again finds everything identical.
    let out = run_cli(&["migrate", "--from", &fs, "--to", &back]).await;
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("{records} record(s)")),
        "{}",
        out.stdout
    );

    // Replica a runs on the copy and changes a value: the copy now differs from fs.
    let mut solo = TestCluster::start_in(back_dir, &["a"]).await;
    let (status, body) = solo.get(0, "/keys/pncounter/visits").await;
    assert_eq!(
        (status, body["value"].clone()),
        (StatusCode::OK, json!(7)),
        "loaded from the copy"
    );
    let (status, _) = solo
        .post(0, "/keys/pncounter/visits", r#"{"op":"increment","by":1}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    solo.cluster.stop().await.unwrap();
    let changed = inspect(&back).await;
    assert_ne!(changed, before);

    // Refused without --force, and nothing written.
    let out = run_cli(&["migrate", "--from", &fs, "--to", &back]).await;
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("already holds different data for 1 record(s), e.g. a/visits"),
        "{}",
        out.stderr
    );
    assert_eq!(inspect(&back).await, changed);

    // With --force the copy holds the source's data again (the restarted node's own pruning
    // bookkeeping stays: migrate never deletes from the target).
    let out = run_cli(&["migrate", "--from", &fs, "--to", &back, "--force"]).await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(user_data(inspect(&back).await), user_data(before.clone()));
    // The source was never written.
    assert_eq!(inspect(&fs).await, before);

    // Unknown replicas and same stores are errors.
    let out = run_cli(&["inspect", "--store", &back, "--replica", "nobody"]).await;
    assert!(!out.success);
    assert!(
        out.stderr.contains("replica 'nobody' has no records"),
        "{}",
        out.stderr
    );
    let missing = dir.join("missing.db");
    let out = run_cli(&["inspect", "--store", &url("sqlite", &missing)]).await;
    assert!(!out.success);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!missing.exists(), "inspect must not create a store");
    let out = run_cli(&["migrate", "--from", &fs, "--to", &fs]).await;
    assert!(!out.success);
    assert!(out.stderr.contains("same store"), "{}", out.stderr);
}
