//! A record the backend itself cannot read (a flipped bit under the fs record checksum, a SQLite
//! value that is no BLOB, an S3 object without a dd-store-s3 header) in the middle of a batch
//! fails that key only: the other keys of the batch are written, the key keeps failing with an
//! error naming backend, replica and key, and its record is never overwritten.
//!
//! S3 runs against the endpoint of `scripts/services/s3.sh` (s3s-fs, `DD_TEST_S3_*`); skipped
//! without one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use dd_core::crdt::GCounter;
use dd_core::data::TypeRegistry;
use dd_core::durable::{CrdtValueStore, DurableError, DurableValue};
use dd_core::store::DurableStateStore;
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use integration_tests::{BackendKind, Needs, StoreLocation, run_on_backend};

const REPLICA: &str = "solo";
const KEYS: [&str; 3] = ["a-before", "bad", "z-after"];

fn counter(n: u64) -> DurableValue {
    let mut c = GCounter::new();
    c.increment(&UniqueReplicaId::new(REPLICA, 1), n).unwrap();
    DurableValue::Data(Box::new(c))
}

fn batch(n: u64) -> Vec<(String, DurableValue)> {
    KEYS.iter().map(|k| ((*k).to_owned(), counter(n))).collect()
}

/// The counter stored under `key`, read back through a new dd-durable instance.
async fn stored_counter(store: &Arc<dyn DurableStateStore>, key: &str) -> u128 {
    let record = store.get(REPLICA, key).await.unwrap().unwrap();
    let registry = TypeRegistry::with_builtin_types();
    let (record, _) = dd_durable::record::decode_with_pruning(&record.value).unwrap();
    let dd_durable::record::Record::Data { type_name, payload } = record else {
        panic!("{key} is a tombstone");
    };
    let value = registry.decode(type_name, payload).unwrap();
    value.downcast_ref::<GCounter>().unwrap().value()
}

/// Where a backend keeps the record of `bad`, below the store API.
enum Raw {
    File(PathBuf),
    Sqlite(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        object: String,
    },
}

impl Raw {
    async fn locate(location: &StoreLocation) -> Raw {
        let url = location.url().unwrap();
        match location.kind() {
            BackendKind::Fs => Raw::File(fs_file(url, "bad")),
            BackendKind::Sqlite => {
                Raw::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap()))
            }
            BackendKind::S3 => {
                // s3://bucket/prefix?...
                let path = url
                    .strip_prefix("s3://")
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap();
                let prefix = path.split_once('/').unwrap().1.to_owned();
                let (client, bucket) = s3_client();
                let listing = client
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .send()
                    .await
                    .unwrap();
                let names: Vec<String> = listing
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned))
                    .filter(|name| name.ends_with("/bad"))
                    .collect();
                assert_eq!(names.len(), 1, "the object of 'bad': {names:?}");
                Raw::S3 {
                    client,
                    bucket,
                    object: names[0].clone(),
                }
            }
            other => panic!("no raw access to {other}"),
        }
    }

    /// Damages the record so that the backend itself cannot read it.
    async fn damage(&self) {
        match self {
            Raw::File(path) => {
                // One flipped bit in the middle: the fs record checksum no longer matches.
                let mut bytes = std::fs::read(path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x10;
                std::fs::write(path, &bytes).unwrap();
            }
            Raw::Sqlite(path) => {
                // A TEXT value where a BLOB belongs.
                let db = rusqlite::Connection::open(path).unwrap();
                let changed = db
                    .execute(
                        "UPDATE dd_state SET value = 'not a record' WHERE replica = ?1 AND key = ?2",
                        rusqlite::params![REPLICA, "bad"],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            }
            Raw::S3 {
                client,
                bucket,
                object,
            } => {
                // A body without the dd-store-s3 header.
                client
                    .put_object()
                    .bucket(bucket)
                    .key(object)
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(
                        b"not a dd-store-s3 object",
                    ))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// The record's bytes as the backend holds them.
    async fn read(&self) -> Vec<u8> {
        match self {
            Raw::File(path) => std::fs::read(path).unwrap(),
            Raw::Sqlite(path) => {
                let db = rusqlite::Connection::open(path).unwrap();
                db.query_row(
                    "SELECT CAST(value AS BLOB) FROM dd_state WHERE replica = ?1 AND key = ?2",
                    rusqlite::params![REPLICA, "bad"],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .unwrap()
            }
            Raw::S3 {
                client,
                bucket,
                object,
            } => {
                let got = client
                    .get_object()
                    .bucket(bucket)
                    .key(object)
                    .send()
                    .await
                    .unwrap();
                got.body.collect().await.unwrap().to_vec()
            }
        }
    }
}

/// Writes the three keys, damages `bad` below the store API, writes them all again in one batch,
/// twice, and checks that only `bad` failed each time and was left as damaged.
async fn corrupt_record_mid_batch(kind: BackendKind) {
    let location = kind.fresh_location("corrupt-batch").await.unwrap();
    let store = location.open().await.unwrap();
    let durable = DurableDistributedDataStore::from_arc(store.clone(), DurableOptions::default());
    let replica = ReplicaId::new(REPLICA);
    let first = durable.store_each(&replica, batch(1)).await;
    assert!(first.unwrap().failed.is_empty());
    let raw = Raw::locate(&location).await;
    raw.damage().await;
    let damaged = raw.read().await;

    for round in [2, 3] {
        let report = durable
            .store_each(&replica, batch(round))
            .await
            .unwrap_or_else(|e| panic!("round {round} on {kind}: the whole batch failed: {e}"));
        let failed: Vec<&str> = report.failed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(failed, ["bad"], "round {round} on {kind}");
        let e: &DurableError = &report.failed[0].1;
        let message = e.to_string();
        for part in [durable.describe().as_str(), REPLICA, "bad"] {
            assert!(message.contains(part), "'{message}' does not name '{part}'");
        }
        for key in ["a-before", "z-after"] {
            assert_eq!(
                stored_counter(&store, key).await,
                u128::from(round),
                "{key} on {kind}"
            );
        }
        assert_eq!(
            raw.read().await,
            damaged,
            "the damaged record was overwritten on {kind}"
        );
    }
    assert!(!durable.health().healthy, "the bad key still waits");
}

/// The file of `key` in the fs store at `url`.
fn fs_file(url: &str, key: &str) -> PathBuf {
    let root = Path::new(url.strip_prefix("fs://").unwrap());
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            if path.file_name().and_then(|n| n.to_str()) == Some(key) {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "the file of {key}: {found:?}");
    found.remove(0)
}

/// A plain client of the `DD_TEST_S3_*` server, and the bucket.
fn s3_client() -> (aws_sdk_s3::Client, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(var("DD_TEST_S3_REGION", "us-east-1")))
        .endpoint_url(var("DD_TEST_S3_ENDPOINT", ""))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .credentials_provider(Credentials::new(
            var("DD_TEST_S3_ACCESS_KEY", ""),
            var("DD_TEST_S3_SECRET_KEY", ""),
            None,
            None,
            "test",
        ))
        .build();
    (
        aws_sdk_s3::Client::from_conf(config),
        var("DD_TEST_S3_BUCKET", "dd-test"),
    )
}

async fn run(kind: BackendKind) {
    let test = format!("corrupt_record_mid_batch on {kind}");
    if let Err(message) = run_on_backend(kind, Needs::Store, &test, corrupt_record_mid_batch).await
    {
        panic!("{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_corrupt_record_mid_batch_fails_only_its_key() {
    run(BackendKind::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corrupt_record_mid_batch_fails_only_its_key() {
    run(BackendKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_corrupt_record_mid_batch_fails_only_its_key() {
    run(BackendKind::S3).await;
}
