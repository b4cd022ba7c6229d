//! Shared test helpers: the S3 endpoint from the environment, and a loopback TCP proxy.
#![allow(dead_code, clippy::expect_used)]

pub mod proxy;

use std::time::Duration;

use dd_store_s3::{S3Options, S3OptionsBuilder};

/// The test endpoint, as exported by `scripts/services/s3.sh`.
#[derive(Debug, Clone)]
pub struct TestEndpoint {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub max_object_name_len: usize,
}

impl TestEndpoint {
    /// The endpoint from the environment, or `None` (after printing why) when there is none.
    pub fn from_env() -> Option<TestEndpoint> {
        let Ok(endpoint) = std::env::var("DD_TEST_S3_ENDPOINT") else {
            eprintln!(
                "skipped: no S3 endpoint (set DD_TEST_S3_ENDPOINT, DD_TEST_S3_BUCKET, \
                 DD_TEST_S3_REGION, DD_TEST_S3_ACCESS_KEY and DD_TEST_S3_SECRET_KEY, or run \
                 scripts/test.sh, which starts s3s-fs)"
            );
            return None;
        };
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
        Some(TestEndpoint {
            endpoint,
            bucket: var("DD_TEST_S3_BUCKET", "dd-test"),
            region: var("DD_TEST_S3_REGION", "us-east-1"),
            access_key: var("DD_TEST_S3_ACCESS_KEY", ""),
            secret_key: var("DD_TEST_S3_SECRET_KEY", ""),
            max_object_name_len: var("DD_TEST_S3_MAX_OBJECT_NAME_LEN", "1024")
                .parse()
                .expect("DD_TEST_S3_MAX_OBJECT_NAME_LEN must be a number"),
        })
    }

    /// Options for this endpoint under a fresh random prefix (`name-<random>`), so that tests
    /// never see each other's data. The bucket is created when missing.
    pub fn options(&self, name: &str) -> S3OptionsBuilder {
        self.options_at(&self.endpoint, &unique_prefix(name))
    }

    /// Options for `endpoint` (e.g. a proxy in front of the test endpoint) under `prefix`.
    pub fn options_at(&self, endpoint: &str, prefix: &str) -> S3OptionsBuilder {
        let mut builder = S3Options::builder(self.bucket.clone())
            .prefix(prefix)
            .endpoint(endpoint)
            .region(self.region.clone())
            .path_style(true)
            .create_bucket(true)
            .max_object_name_len(self.max_object_name_len)
            // Generous for a loaded 2-core machine, but bounded.
            .connect_timeout(Duration::from_secs(5))
            .attempt_timeout(Duration::from_secs(60))
            .operation_timeout(Duration::from_secs(180));
        if !self.access_key.is_empty() {
            builder = builder.access_key(self.access_key.clone(), self.secret_key.clone());
        }
        builder
    }
}

/// `name-<random hex>`.
pub fn unique_prefix(name: &str) -> String {
    format!("{name}-{:016x}", rand::random::<u64>())
}

/// A plain aws-sdk-s3 client on the test endpoint (path-style, plain HTTP), for tests that put
/// objects the store itself would never write.
pub fn raw_client(server: &TestEndpoint) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(server.region.clone()))
        .endpoint_url(server.endpoint.clone())
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .credentials_provider(Credentials::new(
            server.access_key.clone(),
            server.secret_key.clone(),
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The bytes of `object`, read with [`raw_client`] (bypassing the store).
pub async fn raw_body(server: &TestEndpoint, object: &str) -> bytes::Bytes {
    raw_client(server)
        .get_object()
        .bucket(&server.bucket)
        .key(object)
        .send()
        .await
        .expect("raw get")
        .body
        .collect()
        .await
        .expect("raw body")
        .into_bytes()
}
