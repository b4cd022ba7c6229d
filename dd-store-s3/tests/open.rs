//! Opening: a missing bucket is a clear configuration error (or is created on request), and the
//! `s3://` URL form opens the same store as the builder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestEndpoint;
use dd_store::{DurableStateStore, Revision, StoreError, WriteOutcome};
use dd_store_s3::open_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_config_error_unless_created() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let bucket = format!("dd-missing-{:08x}", rand::random::<u32>());
    let mut options = server.options("missing").create_bucket(false).build();
    options.bucket = bucket.clone();
    let err = dd_store_s3::open(options.clone())
        .await
        .expect_err("the bucket does not exist");
    let StoreError::Config { message, .. } = &err else {
        panic!("expected Config, got {err:?}");
    };
    assert!(
        message.contains(&bucket) && message.contains("does not exist"),
        "{message}"
    );
    options.create_bucket = true;
    let store = dd_store_s3::open(options)
        .await
        .expect("create_bucket creates it");
    assert_eq!(
        store.put("r", "k", None, "v".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_form_opens_the_same_store() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let prefix = common::unique_prefix("url");
    let store = dd_store_s3::open(server.options_at(&server.endpoint, &prefix).build())
        .await
        .expect("open");
    store.put("r/1", "k é", None, "v".into()).await.unwrap();
    let mut url = format!(
        "s3://{}/{prefix}?endpoint={}&region={}&path_style=true&max_object_name_len={}",
        server.bucket, server.endpoint, server.region, server.max_object_name_len
    );
    if !server.access_key.is_empty() {
        url.push_str(&format!(
            "&access_key={}&secret_key={}",
            server.access_key, server.secret_key
        ));
    }
    let by_url = open_url(&url).await.expect("open by URL");
    assert_eq!(by_url.describe(), store.describe());
    let record = by_url.get("r/1", "k é").await.unwrap().expect("same data");
    assert_eq!(&record.value[..], b"v");
    assert_eq!(by_url.replicas().await.unwrap(), vec!["r/1".to_owned()]);
}
