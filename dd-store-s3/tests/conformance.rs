//! The shared `DurableStateStore` conformance suite against a real S3 server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestEndpoint;
use dd_core::store::conformance;
use dd_store_s3::S3Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_conformance_suite() {
    let Some(endpoint) = TestEndpoint::from_env() else {
        return;
    };
    // Every handle opens the same bucket and prefix: "the same store opened again".
    let options = endpoint.options("conformance").build();
    conformance::run_all(|| S3Store::open(options.clone())).await;
}
