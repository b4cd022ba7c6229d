//! Where the tests run: a real cluster when `DD_TEST_CASSANDRA_CONTACT_POINTS` is set (comma
//! separated `host:port`, keyspace from `DD_TEST_CASSANDRA_KEYSPACE`, default `dd_test`),
//! otherwise the CQL test double started in-process on 127.0.0.1.

#![allow(dead_code)]

pub mod proxy;

use std::time::Duration;

use cql_test_double::CqlTestDouble;
use dd_store_cassandra::CassandraOptions;

/// The cluster a test talks to; keeps the double alive for the test's duration.
pub struct Target {
    /// The options of a store on it (a table unique to this test).
    pub options: CassandraOptions,
    /// The double, when no real cluster is configured.
    pub double: Option<CqlTestDouble>,
}

/// A table name unique to this run.
pub fn unique_table(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() >> 16)
}

/// The contact points and keyspace of the real cluster named by
/// `DD_TEST_CASSANDRA_CONTACT_POINTS`, if set.
pub fn real_cluster() -> Option<(String, String)> {
    let points = std::env::var("DD_TEST_CASSANDRA_CONTACT_POINTS")
        .ok()
        .filter(|p| !p.is_empty())?;
    let keyspace =
        std::env::var("DD_TEST_CASSANDRA_KEYSPACE").unwrap_or_else(|_| "dd_test".to_owned());
    Some((points, keyspace))
}

/// Options for a store on the real cluster or on a fresh test double.
pub async fn target(test: &str) -> Target {
    let table = unique_table("dd");
    if let Some((points, keyspace)) = real_cluster() {
        println!("{test}: using the Cassandra cluster at {points}, keyspace {keyspace}");
        let mut options = CassandraOptions::new(points.split(','), keyspace);
        options.table = table;
        return Target {
            options,
            double: None,
        };
    }
    let double = CqlTestDouble::start()
        .await
        .expect("start the CQL test double");
    println!(
        "{test}: using the in-process CQL test double at {} (set DD_TEST_CASSANDRA_CONTACT_POINTS for a real cluster)",
        double.addr()
    );
    let mut options = CassandraOptions::new([double.addr().to_string()], "dd_test");
    options.table = table;
    Target {
        options,
        double: Some(double),
    }
}

/// Polls `f` until it returns `Some`, at most `attempts` times, `pause` apart.
pub async fn poll_until<T, F, Fut>(attempts: usize, pause: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..attempts {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(pause).await;
    }
    None
}
