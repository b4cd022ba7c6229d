//! The real `scylla` driver against the double: connect, schema, LWT, paging, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cql_test_double::CqlTestDouble;
use futures::TryStreamExt;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlValue, Row};

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

async fn connect(double: &CqlTestDouble) -> Session {
    SessionBuilder::new()
        .known_node_addr(double.addr())
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("driver connects to the double")
}

async fn schema(session: &Session) {
    session
        .query_unpaged(
            "CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
            &[],
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            "CREATE TABLE IF NOT EXISTS ks.t (p text, b int, k text, rev bigint, v blob, PRIMARY KEY ((p, b), k))",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn driver_connects_creates_schema_and_reads_metadata() {
    init_logs();
    let double = CqlTestDouble::start().await.unwrap();
    let session = connect(&double).await;
    schema(&session).await;
    session.refresh_metadata().await.unwrap();
    let state = session.get_cluster_state();
    let ks = state
        .get_keyspace("ks")
        .expect("keyspace in driver metadata");
    let table = ks.tables.get("t").expect("table in driver metadata");
    assert_eq!(table.partition_key, vec!["p", "b"]);
    assert_eq!(table.clustering_key, vec!["k"]);
    assert_eq!(double.database().keyspaces(), vec!["ks".to_owned()]);
}

#[tokio::test]
async fn lwt_applied_and_conflict_columns() {
    init_logs();
    let double = CqlTestDouble::start().await.unwrap();
    let session = connect(&double).await;
    schema(&session).await;
    let insert = session
        .prepare("INSERT INTO ks.t (p, b, k, rev, v) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS")
        .await
        .unwrap();
    let values = ("r", 1_i32, "key", 1_i64, vec![1_u8, 2]);
    let first = session
        .execute_unpaged(&insert, values.clone())
        .await
        .unwrap();
    let rows = first.into_rows_result().unwrap();
    assert_eq!(rows.single_row::<(bool,)>().unwrap(), (true,));
    let second = session.execute_unpaged(&insert, values).await.unwrap();
    let rows = second.into_rows_result().unwrap();
    let names: Vec<&str> = rows.column_specs().iter().map(|c| c.name()).collect();
    assert_eq!(names, vec!["[applied]", "p", "b", "k", "rev", "v"]);
    let row: Row = rows.single_row().unwrap();
    assert_eq!(row.columns[0], Some(CqlValue::Boolean(false)));
    assert_eq!(row.columns[4], Some(CqlValue::BigInt(1)));

    let update = session
        .prepare("UPDATE ks.t SET v = ?, rev = ? WHERE p = ? AND b = ? AND k = ? IF rev = ?")
        .await
        .unwrap();
    let stale = session
        .execute_unpaged(&update, (vec![3_u8], 3_i64, "r", 1_i32, "key", 2_i64))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(bool, Option<i64>)>()
        .unwrap();
    assert_eq!(stale, (false, Some(1)));
    let ok = session
        .execute_unpaged(&update, (vec![3_u8], 2_i64, "r", 1_i32, "key", 1_i64))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(bool,)>()
        .unwrap();
    assert_eq!(ok, (true,));
    // A missing row answers only [applied] = false, as Cassandra does.
    let missing = session
        .execute_unpaged(&update, (vec![3_u8], 2_i64, "r", 1_i32, "nope", 1_i64))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(missing.column_specs().len(), 1);
    let delete = session
        .prepare("DELETE FROM ks.t WHERE p = ? AND b = ? AND k = ? IF rev = ?")
        .await
        .unwrap();
    let deleted = session
        .execute_unpaged(&delete, ("r", 1_i32, "key", 2_i64))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row::<(bool,)>()
        .unwrap();
    assert_eq!(deleted, (true,));
    assert_eq!(double.database().row_count("ks", "t"), Some(0));
}

#[tokio::test]
async fn paging_and_range_limit() {
    init_logs();
    let double = CqlTestDouble::start().await.unwrap();
    let session = connect(&double).await;
    schema(&session).await;
    let insert = session
        .prepare("INSERT INTO ks.t (p, b, k, rev, v) VALUES (?, ?, ?, ?, ?)")
        .await
        .unwrap();
    for i in 0..25_i64 {
        let key = format!("k{i:03}");
        session
            .execute_unpaged(&insert, ("r", 0_i32, key, i, vec![0_u8]))
            .await
            .unwrap();
    }
    let mut select = session
        .prepare("SELECT k, rev FROM ks.t WHERE p = ? AND b = ?")
        .await
        .unwrap();
    select.set_page_size(7);
    let keys: Vec<(String, i64)> = session
        .execute_iter(select, ("r", 0_i32))
        .await
        .unwrap()
        .rows_stream::<(String, i64)>()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys.len(), 25);
    assert!(keys.windows(2).all(|w| w[0].0 < w[1].0));
    let range = session
        .prepare("SELECT k FROM ks.t WHERE p = ? AND b = ? AND k > ? LIMIT ?")
        .await
        .unwrap();
    let after: Vec<(String,)> = session
        .execute_unpaged(&range, ("r", 0_i32, "k010", 3_i32))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        after,
        vec![
            ("k011".to_owned(),),
            ("k012".to_owned(),),
            ("k013".to_owned(),)
        ]
    );
}

#[tokio::test]
async fn unsupported_statements_get_clear_errors() {
    init_logs();
    let double = CqlTestDouble::start().await.unwrap();
    let session = connect(&double).await;
    let err = session
        .query_unpaged("ALTER TABLE ks.t ADD c int", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("test double"), "{err}");
    let err = session
        .query_unpaged("SELECT * FROM ks.missing", &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn injected_cas_write_timeouts_reach_the_driver_applied_or_not() {
    use cql_test_double::WriteTimeout;
    use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
    init_logs();
    let double = CqlTestDouble::start().await.unwrap();
    let session = connect(&double).await;
    schema(&session).await;
    let insert = "INSERT INTO ks.t (p, b, k, rev, v) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS";
    let is_cas_timeout = |e: &ExecutionError| {
        matches!(
            e,
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::WriteTimeout {
                    write_type: WriteType::Cas,
                    ..
                },
                _
            ))
        )
    };
    double
        .database()
        .time_out_next(insert, WriteTimeout::NotApplied);
    double
        .database()
        .time_out_next(insert, WriteTimeout::Applied);
    let values = |k: &'static str| ("timeouts", 0_i32, k, 1_i64, vec![1_u8]);
    let err = session
        .query_unpaged(insert, values("a"))
        .await
        .unwrap_err();
    assert!(is_cas_timeout(&err), "{err:?}");
    assert_eq!(rows_with_key(&session, "a").await, 0, "not applied");
    let err = session
        .query_unpaged(insert, values("b"))
        .await
        .unwrap_err();
    assert!(is_cas_timeout(&err), "{err:?}");
    assert_eq!(rows_with_key(&session, "b").await, 1, "applied");
    // The queue is empty again: the next execution answers normally.
    session.query_unpaged(insert, values("c")).await.unwrap();
    assert_eq!(rows_with_key(&session, "c").await, 1);
}

async fn rows_with_key(session: &Session, k: &str) -> usize {
    session
        .query_unpaged(
            "SELECT k FROM ks.t WHERE p = 'timeouts' AND b = 0 AND k = ?",
            (k,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows_num()
}
