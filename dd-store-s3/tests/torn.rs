//! Torn objects: a server that does not write objects atomically (s3s-fs, when the writing
//! client is killed mid-request) can leave a body whose header revision differs from the
//! `x-amz-meta-dd-revision` metadata, or a body with no metadata at all. The body header is the
//! authority: reads, scans, conditional writes and deletes all see the record at its body
//! revision, and the next write at that revision replaces the torn object.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_s3::primitives::ByteStream;
use bytes::{BufMut, Bytes, BytesMut};
use common::{TestEndpoint, raw_body, raw_client};
use dd_store::{DurableStateStore, Revision, StoreError, StoredRecord, WriteOutcome};
use dd_store_s3::S3Store;
use dd_store_s3::layout::escape;

/// A dd-store-s3 body (format 1, as documented in the crate README), built independently of
/// the crate so that the test pins the format down.
fn body(revision: u64, replica: &str, key: &str, value: &[u8]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_slice(b"DDS3");
    body.put_u8(1);
    body.put_u64(revision);
    body.put_u128(rand::random::<u128>());
    body.put_u32(u32::try_from(replica.len()).unwrap());
    body.put_slice(replica.as_bytes());
    body.put_u32(u32::try_from(key.len()).unwrap());
    body.put_slice(key.as_bytes());
    body.put_slice(value);
    body.freeze()
}

/// Stores, through the S3 API, an object for `(replica, key)` whose body says `body_revision`
/// and whose metadata says `metadata_revision` (no metadata at all if `None`).
async fn put_torn(
    server: &TestEndpoint,
    object: &str,
    (replica, key): (&str, &str),
    body_revision: u64,
    metadata_revision: Option<u64>,
    value: &[u8],
) {
    let mut request = raw_client(server)
        .put_object()
        .bucket(&server.bucket)
        .key(object)
        .body(ByteStream::from(body(body_revision, replica, key, value)));
    if let Some(revision) = metadata_revision {
        request = request
            .metadata("dd-revision", revision.to_string())
            .metadata("dd-format", "dds3-1");
    }
    request.send().await.expect("raw put");
}

async fn scan_all(store: &S3Store, replica: &str) -> Vec<StoredRecord> {
    futures::TryStreamExt::try_collect::<Vec<_>>(store.scan(replica, 10))
        .await
        .expect("scan")
}

async fn open(server: &TestEndpoint, name: &str) -> (S3Store, String) {
    let prefix = common::unique_prefix(name);
    let store = dd_store_s3::open(server.options_at(&server.endpoint, &prefix).build())
        .await
        .expect("open");
    (store, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_ahead_of_its_metadata_is_the_record_at_the_body_revision() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let (store, prefix) = open(&server, "torn-ahead").await;
    let object = format!("{prefix}/{}/{}", escape("r"), escape("k"));
    for i in 1..=56u64 {
        let expected = (i > 1).then(|| Revision(i - 1));
        assert_eq!(
            store
                .put("r", "k", expected, format!("v{i}").into())
                .await
                .unwrap(),
            WriteOutcome::Written(Revision(i))
        );
    }
    // What a writer killed between the body and the metadata of write 57 leaves behind.
    put_torn(&server, &object, ("r", "k"), 57, Some(56), b"v57").await;

    let record = store.get("r", "k").await.unwrap().expect("the torn record");
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(57), &b"v57"[..])
    );
    let scanned = scan_all(&store, "r").await;
    assert_eq!(scanned, vec![record.clone()]);

    // A write based on the metadata revision is a conflict reporting the body revision...
    assert_eq!(
        store
            .put("r", "k", Some(Revision(56)), "stale".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(57))
        }
    );
    // ...and a write based on what a read returned replaces the torn object.
    assert_eq!(
        store
            .put("r", "k", Some(Revision(57)), "v58".into())
            .await
            .unwrap(),
        WriteOutcome::Written(Revision(58))
    );
    let record = store.get("r", "k").await.unwrap().expect("the record");
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(58), &b"v58"[..])
    );
    assert_eq!(scan_all(&store, "r").await, vec![record]);
    // The object is whole again: its metadata agrees with its body.
    let head = raw_client(&server)
        .head_object()
        .bucket(&server.bucket)
        .key(&object)
        .send()
        .await
        .expect("raw head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("dd-revision"))
            .map(String::as_str),
        Some("58")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_behind_its_metadata_is_the_record_at_the_body_revision() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let (store, prefix) = open(&server, "torn-behind").await;
    let object = format!("{prefix}/{}/{}", escape("r"), escape("k"));
    put_torn(&server, &object, ("r", "k"), 3, Some(9), b"three").await;

    let record = store.get("r", "k").await.unwrap().expect("the torn record");
    assert_eq!(
        (record.revision, &record.value[..]),
        (Revision(3), &b"three"[..])
    );
    assert_eq!(scan_all(&store, "r").await, vec![record]);
    assert_eq!(
        store
            .put("r", "k", Some(Revision(9)), "x".into())
            .await
            .unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(3))
        }
    );
    assert_eq!(
        store.delete("r", "k", Revision(9)).await.unwrap(),
        WriteOutcome::Conflict {
            actual: Some(Revision(3))
        }
    );
    // A delete at the body revision applies.
    assert_eq!(
        store.delete("r", "k", Revision(3)).await.unwrap(),
        WriteOutcome::Written(Revision(3))
    );
    assert_eq!(store.get("r", "k").await.unwrap(), None);
    assert!(scan_all(&store, "r").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_write_without_metadata_is_readable_and_replaceable() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let (store, prefix) = open(&server, "torn-first").await;
    // A long key too, whose object name is hashed: its key comes from the body.
    let long_key = "k".repeat(400);
    let names = store_object_names(&store, &prefix, &long_key).await;
    put_torn(&server, &names.0, ("r", "k"), 1, None, b"one").await;
    put_torn(&server, &names.1, ("r", &long_key), 1, None, b"long").await;

    let scanned = scan_all(&store, "r").await;
    let keys: Vec<(&str, Revision, &[u8])> = scanned
        .iter()
        .map(|r| (r.key.as_str(), r.revision, &r.value[..]))
        .collect();
    assert_eq!(
        keys,
        vec![
            ("k", Revision(1), &b"one"[..]),
            (long_key.as_str(), Revision(1), &b"long"[..])
        ]
    );
    // Creating it again is a conflict at the body revision; replacing it works.
    for key in ["k", long_key.as_str()] {
        assert_eq!(
            store.put("r", key, None, "again".into()).await.unwrap(),
            WriteOutcome::Conflict {
                actual: Some(Revision(1))
            },
            "{key}"
        );
        assert_eq!(
            store
                .put("r", key, Some(Revision(1)), "two".into())
                .await
                .unwrap(),
            WriteOutcome::Written(Revision(2)),
            "{key}"
        );
        let record = store.get("r", key).await.unwrap().expect("record");
        assert_eq!(
            (record.revision, &record.value[..]),
            (Revision(2), &b"two"[..])
        );
    }
}

/// The object names of `("r", "k")` and `("r", long_key)`, learnt by writing and deleting the
/// long key through the store (its hashed name is the store's business).
async fn store_object_names(store: &S3Store, prefix: &str, long_key: &str) -> (String, String) {
    store
        .put("r", long_key, None, "probe".into())
        .await
        .unwrap();
    let replica_prefix = format!("{prefix}/{}/", escape("r"));
    let server = TestEndpoint::from_env().expect("endpoint");
    let listed = raw_client(&server)
        .list_objects_v2()
        .bucket(&server.bucket)
        .prefix(&replica_prefix)
        .send()
        .await
        .expect("list");
    let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let [long] = names[..] else {
        panic!("expected the long key's object alone, got {names:?}");
    };
    assert_ne!(long, format!("{replica_prefix}{}", escape(long_key)));
    let long = long.to_owned();
    store.delete("r", long_key, Revision(1)).await.unwrap();
    (format!("{replica_prefix}{}", escape("k")), long)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_object_of_another_record_is_still_corrupt_and_left_alone() {
    let Some(server) = TestEndpoint::from_env() else {
        return;
    };
    let (store, prefix) = open(&server, "torn-foreign").await;
    let object = format!("{prefix}/{}/{}", escape("r"), escape("k"));
    // A body naming another key under this key's object name.
    put_torn(&server, &object, ("r", "other"), 4, None, b"x").await;
    let get = store.get("r", "k").await;
    assert!(matches!(get, Err(StoreError::Corrupt { .. })), "{get:?}");
    let put = store.put("r", "k", Some(Revision(4)), "y".into()).await;
    assert!(matches!(put, Err(StoreError::Corrupt { .. })), "{put:?}");
    let delete = store.delete("r", "k", Revision(4)).await;
    assert!(
        matches!(delete, Err(StoreError::Corrupt { .. })),
        "{delete:?}"
    );
    // An empty object is not ours either.
    raw_client(&server)
        .put_object()
        .bucket(&server.bucket)
        .key(&object)
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .expect("raw put");
    let put = store.put("r", "k", Some(Revision(4)), "y".into()).await;
    assert!(matches!(put, Err(StoreError::Corrupt { .. })), "{put:?}");
    let body = raw_body(&server, &object).await;
    assert!(body.is_empty());
}
