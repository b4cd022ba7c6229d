//! The shared store conformance suite on the Cassandra backend, one test per check, each on its
//! own table (on the cluster of `DD_TEST_CASSANDRA_CONTACT_POINTS`, else on a CQL test double).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use dd_store::conformance::{self, Capabilities};

dd_store::conformance_tests! {
    capabilities: Capabilities::ALL,
    open: {
        let target = std::sync::Arc::new(common::target("conformance").await);
        move || {
            // The test double (if any) lives as long as the opener.
            let target = std::sync::Arc::clone(&target);
            async move { dd_store_cassandra::open(target.options.clone()).await }
        }
    },
}

/// The records of the suite's largest check really go through the double's table, spread over
/// many partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_spread_over_partitions() {
    let target = common::target("records_spread_over_partitions").await;
    let options = target.options.clone();
    conformance::scan_many_keys(&|| dd_store_cassandra::open(options.clone())).await;
    if let Some(double) = &target.double {
        let partitions = double
            .database()
            .partition_count(&options.keyspace, &options.table)
            .expect("the store created its table");
        assert!(partitions > 1, "records spread over buckets: {partitions}");
    }
}
