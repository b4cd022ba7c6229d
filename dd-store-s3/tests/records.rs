//! Records that are not ours are reported as corrupt, naming the object; odd and long names,
//! large values and batch ordering round-trip (beyond the conformance suite).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{TestEndpoint, raw_body, raw_client};
use dd_store::{DurableStateStore, Revision, StoreError, WriteOp, WriteOutcome};
use dd_store_s3::layout::escape;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_is_corrupt_and_left_alone() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let prefix = common::unique_prefix("foreign");
    let store = dd_store_s3::open(server.options_at(&server.endpoint, &prefix).build())
        .await
        .expect("open");
    let object = format!("{prefix}/{}/{}", escape("r"), escape("k"));
    raw_client(&server)
        .put_object()
        .bucket(&server.bucket)
        .key(&object)
        .metadata("dd-revision", "1")
        .body(ByteStream::from_static(
            b"not a dd-store-s3 body, long enough for a header",
        ))
        .send()
        .await
        .expect("raw put");
    let err = store.get("r", "k").await.expect_err("foreign body");
    let StoreError::Corrupt {
        replica,
        key,
        reason,
        ..
    } = &err
    else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert_eq!((replica.as_str(), key.as_str()), ("r", "k"));
    assert!(
        reason.contains(&object) && reason.contains("magic"),
        "{reason}"
    );
    // A scan reports it too instead of skipping it.
    let scan = futures::TryStreamExt::try_collect::<Vec<_>>(store.scan("r", 10)).await;
    assert!(matches!(scan, Err(StoreError::Corrupt { .. })), "{scan:?}");
    // Left untouched: writes to it are refused as corrupt, not applied.
    let put = store.put("r", "k", Some(Revision(1)), "x".into()).await;
    assert!(matches!(put, Err(StoreError::Corrupt { .. })), "{put:?}");
    let delete = store.delete("r", "k", Revision(1)).await;
    assert!(
        matches!(delete, Err(StoreError::Corrupt { .. })),
        "{delete:?}"
    );
    let body = raw_body(&server, &object).await;
    assert_eq!(
        &body[..],
        b"not a dd-store-s3 body, long enough for a header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_concurrently_but_keeps_per_key_order_and_op_order() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let store = dd_store_s3::open(server.options("batch").concurrency(4).build())
        .await
        .expect("open");
    let mut ops = Vec::new();
    for i in 0..30 {
        ops.push(WriteOp::Put {
            key: format!("k{i}"),
            expected: None,
            value: "1".into(),
        });
    }
    // Then every key again, relying on the first write of the same batch.
    for i in 0..30 {
        ops.push(WriteOp::Put {
            key: format!("k{i}"),
            expected: Some(Revision(1)),
            value: "2".into(),
        });
    }
    ops.push(WriteOp::Delete {
        key: "k0".to_owned(),
        expected: Revision(2),
    });
    ops.push(WriteOp::Put {
        key: "k1".to_owned(),
        expected: Some(Revision(1)),
        value: "stale".into(),
    });
    let outcomes = store.write_batch("r", ops).await.expect("batch");
    assert_eq!(outcomes.len(), 62);
    assert!(
        outcomes[..30]
            .iter()
            .all(|o| *o == WriteOutcome::Written(Revision(1)))
    );
    assert!(
        outcomes[30..60]
            .iter()
            .all(|o| *o == WriteOutcome::Written(Revision(2)))
    );
    assert_eq!(outcomes[60], WriteOutcome::Written(Revision(2)));
    assert_eq!(
        outcomes[61],
        WriteOutcome::Conflict {
            actual: Some(Revision(2))
        }
    );
    assert_eq!(store.get("r", "k0").await.unwrap(), None);
    assert_eq!(
        store.get("r", "k1").await.unwrap().map(|r| r.value),
        Some("2".into())
    );
}
