//! `dd-node inspect` (and `migrate --from`) on an S3 store write nothing to the server: the
//! bucket is byte for byte the same afterwards, and no request other than GET or HEAD reaches it.
//!
//! Runs against the S3 endpoint of `scripts/services/s3.sh` (s3s-fs, `DD_TEST_S3_*`); skipped
//! without one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_common;

// The recording proxy of dd-store-s3's tests: every request line it forwards is kept.
#[allow(dead_code)]
#[path = "../../dd-store-s3/tests/common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use dd_core::UniqueReplicaId;
use dd_core::crdt::GCounter;
use dd_durable::record::{self, Record};
use node_common::*;
use proxy::{Mode, Proxy};

/// The `DD_TEST_S3_*` variables.
struct Endpoint {
    endpoint: String,
    bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    max_object_name_len: String,
}

impl Endpoint {
    fn from_env() -> Option<Endpoint> {
        let Ok(endpoint) = std::env::var("DD_TEST_S3_ENDPOINT") else {
            eprintln!("skipped: no S3 endpoint (run scripts/test.sh, which starts s3s-fs)");
            return None;
        };
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
        Some(Endpoint {
            endpoint,
            bucket: var("DD_TEST_S3_BUCKET", "dd-test"),
            region: var("DD_TEST_S3_REGION", "us-east-1"),
            access_key: var("DD_TEST_S3_ACCESS_KEY", ""),
            secret_key: var("DD_TEST_S3_SECRET_KEY", ""),
            max_object_name_len: var("DD_TEST_S3_MAX_OBJECT_NAME_LEN", "1024"),
        })
    }

    /// The store URL of `prefix`, reaching the server at `endpoint`.
    fn url(&self, endpoint: &str, prefix: &str) -> String {
        let mut url = format!(
            "s3://{}/{prefix}?endpoint={endpoint}&region={}&path_style=true\
             &max_object_name_len={}",
            self.bucket, self.region, self.max_object_name_len
        );
        if !self.access_key.is_empty() {
            url.push_str(&format!(
                "&access_key={}&secret_key={}",
                self.access_key, self.secret_key
            ));
        }
        url
    }

    /// A plain client of the server (bypassing every store and proxy).
    fn raw_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(self.endpoint.clone())
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .credentials_provider(Credentials::new(
                self.access_key.clone(),
                self.secret_key.clone(),
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Every object under `prefix`: name → (ETag, metadata, bytes).
    async fn snapshot(&self, prefix: &str) -> BTreeMap<String, (String, String, Vec<u8>)> {
        let client = self.raw_client();
        let mut names = Vec::new();
        let mut continuation: Option<String> = None;
        // Bounded: a few objects, pages of 1000.
        for _ in 0..100 {
            let page = client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .expect("list");
            names.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(token) if page.is_truncated().unwrap_or(false) => {
                    continuation = Some(token.to_owned())
                }
                _ => break,
            }
        }
        let mut objects = BTreeMap::new();
        for name in names {
            let object = client
                .get_object()
                .bucket(&self.bucket)
                .key(&name)
                .send()
                .await
                .expect("get");
            let etag = object.e_tag().unwrap_or_default().to_owned();
            let metadata = format!(
                "{:?}",
                object
                    .metadata()
                    .map(|m| { m.iter().collect::<BTreeMap<_, _>>() })
            );
            let bytes = object.body.collect().await.expect("body").to_vec();
            objects.insert(name, (etag, metadata, bytes));
        }
        objects
    }
}

/// A stored GCounter record of `value`, as dd-durable writes it.
fn counter_record(replica: &str, value: u64) -> bytes::Bytes {
    let mut counter = GCounter::new();
    counter
        .increment(&UniqueReplicaId::new(replica, 1), value)
        .unwrap();
    let payload = dd_core::data::ErasedData::encode(&counter).unwrap();
    record::encode(&Record::Data {
        type_name: "GCounter",
        payload: &payload,
    })
    .unwrap()
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_and_migrate_from_leave_an_s3_bucket_unchanged() {
    let Some(server) = Endpoint::from_env() else {
        return;
    };
    let prefix = format!("inspect-{:016x}", rand::random::<u64>());
    let store = dd_durable::open_store(&format!(
        "{}&create_bucket=true",
        server.url(&server.endpoint, &prefix)
    ))
    .await
    .expect("open the S3 store");
    store
        .put("a", "hits", None, counter_record("a", 7))
        .await
        .unwrap();
    store
        .put("b", "hits", None, counter_record("b", 2))
        .await
        .unwrap();
    drop(store);
    let before = server.snapshot(&prefix).await;
    assert_eq!(before.len(), 2, "{:?}", before.keys());

    // Every request of the tools goes through a proxy that records it.
    let proxy = Proxy::start(&server.endpoint, Mode::Serialize).await;
    let s3 = server.url(&proxy.endpoint(), &prefix);
    let out = run_cli(&["inspect", "--store", &s3, "--json"]).await;
    assert!(out.success, "inspect failed: {}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let values: Vec<_> = report["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["replica"].clone(), r["keys"][0]["value"].clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            (serde_json::json!("a"), serde_json::json!(7)),
            (serde_json::json!("b"), serde_json::json!(2))
        ],
        "{report}"
    );

    let target = tempfile::tempdir().unwrap();
    let fs = url("fs", &target.path().join("copy"));
    let out = run_cli(&["migrate", "--from", &s3, "--to", &fs]).await;
    assert!(out.success, "migrate failed: {}", out.stderr);

    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("GET ")),
        "the tools did not go through the proxy: {requests:?}"
    );
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| !(r.starts_with("GET ") || r.starts_with("HEAD ")))
        .collect();
    assert!(writes.is_empty(), "the read-only tools wrote: {writes:?}");
    let after = server.snapshot(&prefix).await;
    assert!(
        before == after,
        "the bucket changed: {:?} -> {:?}",
        before.keys(),
        after.keys()
    );
}
