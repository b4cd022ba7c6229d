//! Building the AWS SDK client from [`S3Options`].

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::options::S3Options;

/// The region used when neither the options nor the AWS chain name one.
const FALLBACK_REGION: &str = "us-east-1";

/// An S3 client configured from `options`: endpoint, path style, region, credentials, timeouts and
/// retries (standard mode: exponential backoff with jitter on throttling, 5xx and transport
/// errors).
pub(crate) async fn build_client(options: &S3Options) -> aws_sdk_s3::Client {
    // rustls with the ring provider: no native TLS library and no C build of aws-lc.
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(options.connect_timeout)
        .operation_attempt_timeout(options.attempt_timeout)
        .operation_timeout(options.operation_timeout)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(options.max_attempts)
        .with_initial_backoff(options.initial_backoff)
        .with_max_backoff(options.max_backoff);

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client.clone())
        .timeout_config(timeouts.clone())
        .retry_config(retries.clone());
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if options.anonymous {
        loader = loader.no_credentials();
    } else if let Some(creds) = &options.credentials {
        loader = loader.credentials_provider(Credentials::new(
            creds.access_key.clone(),
            creds.secret_key.clone(),
            creds.session_token.clone(),
            None,
            "dd-store-s3-options",
        ));
    }
    let shared = loader.load().await;

    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .http_client(http_client)
        .timeout_config(timeouts)
        .retry_config(retries)
        .force_path_style(options.path_style)
        // Plain requests with Content-Length (no aws-chunked trailers) work with every
        // S3-compatible server; records carry their own checksums one layer up (dd-durable).
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if shared.region().is_none() {
        tracing::info!(
            region = FALLBACK_REGION,
            "no S3 region configured, using the fallback"
        );
        config = config.region(Region::new(FALLBACK_REGION));
    }
    if let Some(endpoint) = &options.endpoint {
        config = config.endpoint_url(endpoint.clone());
    }
    aws_sdk_s3::Client::from_conf(config.build())
}
