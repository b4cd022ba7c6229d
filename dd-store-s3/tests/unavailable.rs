//! An unreachable endpoint gives a clear, bounded `Unavailable` error, and nothing is lost while
//! the endpoint is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestEndpoint;
use common::proxy::{Mode, Proxy};
use dd_store::{DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome};
use dd_store_s3::S3Options;

/// A generous bound on how long a failing call may take (connect timeout × attempts + backoff).
const BOUND: Duration = Duration::from_secs(120);

fn assert_unavailable(err: &StoreError, endpoint: &str) {
    assert!(err.is_transient(), "expected Unavailable, got {err:?}");
    let text = format!("{err}");
    assert!(
        text.contains(endpoint),
        "the error must name {endpoint}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unavailable_after_bounded_retries() {
    // Needs no server; runs everywhere.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("address").port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let options = S3Options::builder("dd-test")
        .endpoint(endpoint.clone())
        .region("us-east-1")
        .path_style(true)
        .access_key("a", "b")
        .connect_timeout(Duration::from_secs(2))
        .max_attempts(3)
        .build();
    let result = tokio::time::timeout(BOUND, dd_store_s3::open(options))
        .await
        .expect("open must give up within the bound");
    let err = result.expect_err("nothing listens there");
    assert_unavailable(&err, &endpoint);
    assert!(format!("{err}").contains("unreachable"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_while_the_endpoint_is_away_and_nothing_is_lost() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let mut proxy = Proxy::start(&server.endpoint, Mode::Forward).await;
    let prefix = common::unique_prefix("outage");
    let options = server
        .options_at(&proxy.endpoint(), &prefix)
        .connect_timeout(Duration::from_secs(2))
        .max_attempts(2)
        .build();
    let store = dd_store_s3::open(options)
        .await
        .expect("open through the proxy");

    let before: Vec<WriteOp> = (0..20)
        .map(|i| WriteOp::Put {
            key: format!("before-{i:02}"),
            expected: None,
            value: format!("value {i}").into(),
        })
        .collect();
    let outcomes = store.write_batch("r", before).await.expect("write before");
    assert!(
        outcomes
            .iter()
            .all(|o| *o == WriteOutcome::Written(Revision(1)))
    );

    proxy.stop().await;
    let failed = tokio::time::timeout(BOUND, store.put("r", "during", None, "lost?".into()))
        .await
        .expect("a write must give up within the bound");
    assert_unavailable(
        &failed.expect_err("the endpoint is away"),
        &proxy.endpoint(),
    );
    let failed_update = tokio::time::timeout(
        BOUND,
        store.put("r", "before-00", Some(Revision(1)), "changed".into()),
    )
    .await
    .expect("bounded");
    assert_unavailable(&failed_update.expect_err("still away"), &proxy.endpoint());
    let failed_read = tokio::time::timeout(BOUND, store.get("r", "before-01"))
        .await
        .expect("bounded");
    assert_unavailable(&failed_read.expect_err("still away"), &proxy.endpoint());

    proxy.restart().await;
    // The same handle recovers (bounded polling while connections are re-established).
    let mut recovered = None;
    for _ in 0..60 {
        match store.get("r", "before-00").await {
            Ok(record) => {
                recovered = Some(record);
                break;
            }
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => panic!("unexpected error after restart: {e}"),
        }
    }
    let record = recovered
        .expect("the store must work again once the endpoint is back")
        .expect("before-00 is still there");
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(1), &b"value 0"[..])
    );

    let all: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.scan("r", 7))
        .await
        .expect("scan after the outage");
    let keys: Vec<&str> = all.iter().map(|r| r.key.as_str()).collect();
    let expected: Vec<String> = (0..20).map(|i| format!("before-{i:02}")).collect();
    assert_eq!(
        keys, expected,
        "every record from before the outage, and nothing else"
    );
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record.value, format!("value {i}").as_bytes());
        assert_eq!(record.revision, Revision(1));
    }
    assert_eq!(
        store.put("r", "during", None, "now".into()).await.unwrap(),
        WriteOutcome::Written(Revision(1))
    );
    assert_eq!(
        store
            .put("r", "before-00", Some(Revision(1)), "changed".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(2))
    );
}
