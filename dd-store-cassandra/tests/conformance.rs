//! The shared store conformance suite on the Cassandra backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use dd_store::conformance;
use dd_store_cassandra::CassandraStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let target = common::target("conformance_suite").await;
    let options = target.options.clone();
    conformance::run_all(|| CassandraStore::open(options.clone())).await;
    if let Some(double) = &target.double {
        // The records really went through the double's table, spread over many partitions.
        let partitions = double
            .database()
            .partition_count(&options.keyspace, &options.table)
            .expect("the store created its table");
        assert!(partitions > 1, "records spread over buckets: {partitions}");
    }
}
