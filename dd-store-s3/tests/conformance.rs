//! The shared `DurableStateStore` conformance suite against a real S3 server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestEndpoint;
use common::proxy::{Mode, Proxy};
use dd_store::conformance;
use dd_store_s3::S3Store;

/// Every check of the suite (as `conformance::run_all` runs them), with the racing writers run
/// through a proxy that serializes requests unless `DD_TEST_S3_ATOMIC_CONDITIONAL_WRITES=1`.
///
/// Why: s3s-fs, the test server, checks `If-Match`/`If-None-Match` and then writes the file,
/// its metadata and its ETag in separate steps, so two concurrent conditional writes of one key
/// can both pass (measured: 72 after 80 successful increments). S3, MinIO and Ceph apply a
/// conditional write atomically; with one request at a time s3s-fs does too, and the check then
/// tests this backend's read / conditional-write / re-read logic under contention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_conformance_suite() {
    let Some(endpoint) = TestEndpoint::from_env() else {
        return;
    };
    // Every handle opens the same bucket and prefix: "the same store opened again".
    let options = endpoint.options("conformance").build();
    let open = || S3Store::open(options.clone());
    conformance::get_missing(&open).await;
    conformance::put_create_and_replace(&open).await;
    conformance::put_conflicts(&open).await;
    conformance::conditional_delete(&open).await;
    conformance::batch_mixed_outcomes(&open).await;
    conformance::batch_same_key_twice(&open).await;
    conformance::empty_batch(&open).await;
    conformance::scan_empty_replica(&open).await;
    conformance::scan_many_keys(&open).await;
    conformance::scan_small_replica_page_one(&open).await;
    conformance::replicas_isolated(&open).await;
    conformance::replicas_listed(&open).await;
    conformance::odd_keys_round_trip(&open).await;
    conformance::odd_replica_names_round_trip(&open).await;
    conformance::large_and_empty_values(&open).await;
    conformance::survives_reopen(&open).await;

    let atomic = std::env::var("DD_TEST_S3_ATOMIC_CONDITIONAL_WRITES").is_ok_and(|v| v == "1");
    let proxy = if atomic {
        None
    } else {
        Some(Proxy::start(&endpoint.endpoint, Mode::Serialize).await)
    };
    let race_endpoint = proxy
        .as_ref()
        .map_or(endpoint.endpoint.clone(), Proxy::endpoint);
    let race_options = endpoint
        .options_at(&race_endpoint, &common::unique_prefix("race"))
        .build();
    conformance::concurrent_conditional_writers(&|| S3Store::open(race_options.clone())).await;
}
