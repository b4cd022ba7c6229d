//! Behaviour specific to the SQLite store: foreign and damaged files, schema versions, options,
//! corrupt rows and a locked database.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use dd_store::{DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_sqlite::{SCHEMA_VERSION, SqliteOptions, open_url};
use rusqlite::Connection;

fn url(path: &std::path::Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.db");
    let content = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &content).expect("write");
    let err = open_url(&url(&path)).await.expect_err("must be refused");
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("notes.db") && text.contains("not an SQLite database"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), content);
}

#[tokio::test]
async fn foreign_and_newer_databases_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("other-app.db");
    {
        let conn = Connection::open(&foreign).expect("open");
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .expect("create");
    }
    let err = open_url(&url(&foreign)).await.expect_err("foreign schema");
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a durable-dd database"),
        "{err}"
    );

    let newer = dir.path().join("newer.db");
    let store = open_url(&url(&newer)).await.expect("create");
    store.put("r", "k", None, "v".into()).await.expect("put");
    drop(store);
    {
        let conn = Connection::open(&newer).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump version");
    }
    let err = open_url(&url(&newer)).await.expect_err("newer schema");
    let text = err.to_string();
    assert!(
        text.contains("newer") && text.contains("newer.db"),
        "{text}"
    );
    // The data is still there for a newer build.
    let conn = Connection::open(&newer).expect("open");
    let count: i64 = conn
        .query_row("SELECT count(*) FROM dd_state", [], |row| row.get(0))
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn reopen_keeps_data_and_options_are_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dd.db");
    let store = open_url(&format!("{}?synchronous=normal", url(&path)))
        .await
        .expect("open");
    store.put("r", "k", None, "v1".into()).await.expect("put");
    store
        .put("r", "k", Some(Revision::FIRST), "v2".into())
        .await
        .expect("put");
    drop(store);
    let store = dd_store_sqlite::open(SqliteOptions::new(&path))
        .await
        .expect("reopen");
    assert_eq!(
        store.synchronous().await.expect("pragma"),
        2,
        "FULL by default"
    );
    let record = store.get("r", "k").await.expect("get").expect("record");
    assert_eq!(
        (record.revision, record.value.as_ref()),
        (Revision(2), &b"v2"[..])
    );
    let normal = open_url(&format!("{}?synchronous=normal", url(&path)))
        .await
        .expect("open");
    assert_eq!(normal.synchronous().await.expect("pragma"), 1, "NORMAL");
    let conn = Connection::open(&path).expect("open");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_lowercase(), "wal");
}

#[tokio::test]
async fn corrupt_rows_are_reported_and_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dd.db");
    let store = dd_store_sqlite::open(SqliteOptions::new(&path))
        .await
        .expect("open");
    store.put("r", "fine", None, "v".into()).await.expect("put");
    {
        let conn = Connection::open(&path).expect("open");
        conn.execute(
            "INSERT INTO dd_state (replica, key, revision, value) VALUES ('r', 'bad', 1, 'text')",
            [],
        )
        .expect("insert a TEXT value");
    }
    let assert_corrupt = |result: Result<_, StoreError>| match result {
        Err(StoreError::Corrupt { replica, key, .. }) => {
            assert_eq!((replica.as_str(), key.as_str()), ("r", "bad"));
        }
        other => panic!("expected Corrupt for r/bad, got {other:?}"),
    };
    assert_corrupt(store.get("r", "bad").await.map(|_| ()));
    assert_corrupt(store.scan_page("r", None, 10).await.map(|_| ()));
    assert_corrupt(
        store
            .put("r", "bad", Some(Revision::FIRST), "new".into())
            .await
            .map(|_| ()),
    );
    let conn = Connection::open(&path).expect("open");
    let kind: String = conn
        .query_row(
            "SELECT typeof(value) FROM dd_state WHERE replica = 'r' AND key = 'bad'",
            [],
            |row| row.get(0),
        )
        .expect("query");
    assert_eq!(kind, "text", "the corrupt row is left as it was");
}

#[tokio::test]
async fn a_locked_database_is_unavailable_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dd.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(100),
        ..SqliteOptions::new(&path)
    };
    let store = dd_store_sqlite::open(options).await.expect("open");
    store.put("r", "k", None, "v1".into()).await.expect("put");
    let mut holder = Connection::open(&path).expect("open");
    let tx = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("hold the write lock");
    let err = store
        .put("r", "k", Some(Revision::FIRST), "v2".into())
        .await
        .expect_err("the write lock is held");
    assert!(err.is_transient(), "busy must be Unavailable: {err:?}");
    assert!(err.to_string().contains("dd.db"), "{err}");
    tx.rollback().expect("release");
    let outcome = store
        .put("r", "k", Some(Revision::FIRST), "v2".into())
        .await
        .expect("put after release");
    assert_eq!(outcome, WriteOutcome::Written(Revision(2)));
}
