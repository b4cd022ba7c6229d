//! The shared `DurableStateStore` conformance suite against a real S3 server, one test per check
//! (each under its own prefix; every handle of a test opens the same bucket and prefix).
//!
//! The racing writers (`concurrent_conditional_writers`) run through a proxy that serializes
//! requests unless `DD_TEST_S3_ATOMIC_CONDITIONAL_WRITES=1`. Why: s3s-fs, the test server, checks
//! `If-Match`/`If-None-Match` and then writes the file, its metadata and its ETag in separate
//! steps, so two concurrent conditional writes of one key can both pass (measured: 72 after 80
//! successful increments). S3, MinIO and Ceph apply a conditional write atomically; with one
//! request at a time s3s-fs does too, and the check then tests this backend's read /
//! conditional-write / re-read logic under contention.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestEndpoint;
use common::proxy::{Mode, Proxy};
use dd_store::conformance::Capabilities;

dd_store::conformance_tests! {
    capabilities: Capabilities::ALL,
    open: {
        let Some(endpoint) = TestEndpoint::from_env() else {
            return;
        };
        let options = endpoint.options("conformance").build();
        move || dd_store_s3::open(options.clone())
    },
    open_racing: {
        let Some(endpoint) = TestEndpoint::from_env() else {
            return;
        };
        let atomic =
            std::env::var("DD_TEST_S3_ATOMIC_CONDITIONAL_WRITES").is_ok_and(|v| v == "1");
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
        move || {
            // The proxy lives as long as the opener.
            let _proxy = &proxy;
            dd_store_s3::open(race_options.clone())
        }
    },
}
