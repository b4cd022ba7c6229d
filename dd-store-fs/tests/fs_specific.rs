//! Behaviour specific to the file-system store: damaged files, leftover temporary files,
//! concurrent writers and foreign directories.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use dd_store::{DurableStateStore, Revision, StoreError, StoredRecord, WriteOp, WriteOutcome};
use dd_store_fs::name::{FileName, escape};
use dd_store_fs::{FsOptions, open_url};
use futures::{StreamExt, TryStreamExt};

/// Every record of `replica` via `scan_page`, or the first error.
async fn collect_scan<S: DurableStateStore>(
    store: &S,
    replica: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let page = store.scan_page(replica, after.as_deref(), 100).await?;
        out.extend(page.records);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
    panic!("scan did not end");
}

/// Every record of `replica` via the `scan` stream (one listing per scan), or the first error.
async fn collect_stream<S: DurableStateStore>(
    store: &S,
    replica: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    store.scan(replica, 3).try_collect().await
}

fn record_path(dir: &Path, replica: &str, key: &str) -> PathBuf {
    dir.join(FileName::for_name(replica).as_str())
        .join(FileName::for_name(key).as_str())
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, StoreError>, replica: &str, key: &str) {
    match result {
        Err(StoreError::Corrupt {
            replica: r, key: k, ..
        }) => {
            assert_eq!(r, replica, "the error must name the replica");
            assert_eq!(k, key, "the error must name the key");
        }
        other => panic!("expected Corrupt for {replica}/{key}, got {other:?}"),
    }
}

/// Damages a record in three ways; each time reads, scans and writes fail with `Corrupt`
/// naming the replica and key, and the damaged file is left exactly as it was.
#[tokio::test]
async fn damaged_records_are_corrupt_and_left_intact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    let long_key = "L".repeat(300);
    for key in ["plain", long_key.as_str()] {
        for damage in ["truncated", "foreign", "checksum"] {
            let replica = format!("damage-{damage}");
            let _ = store.put(&replica, "healthy", None, "ok".into()).await;
            let written = store
                .put(&replica, key, None, Bytes::from_static(b"some value"))
                .await
                .expect("put");
            assert_eq!(written, WriteOutcome::Written(Revision::FIRST));
            let path = record_path(store.dir(), &replica, key);
            let original = fs::read(&path).expect("read record file");
            let damaged = match damage {
                "truncated" => original[..original.len() - 3].to_vec(),
                "foreign" => b"this is somebody else's file\n".to_vec(),
                _ => {
                    let mut bytes = original.clone();
                    let at = bytes.len() - 6;
                    bytes[at] ^= 0x01;
                    bytes
                }
            };
            fs::write(&path, &damaged).expect("damage");

            assert_corrupt(store.get(&replica, key).await, &replica, key);
            let err = store.get(&replica, key).await.expect_err("corrupt");
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "the error names the file: {err}"
            );
            assert_corrupt(
                store
                    .put(&replica, key, Some(Revision::FIRST), "new".into())
                    .await,
                &replica,
                key,
            );
            assert_corrupt(
                store.put(&replica, key, None, "new".into()).await,
                &replica,
                key,
            );
            assert_corrupt(
                store.delete(&replica, key, Revision::FIRST).await,
                &replica,
                key,
            );
            // A batch touching the corrupt record writes nothing at all.
            let batch = store
                .write_batch(
                    &replica,
                    vec![
                        WriteOp::Put {
                            key: "other".into(),
                            expected: None,
                            value: "x".into(),
                        },
                        WriteOp::Put {
                            key: key.to_owned(),
                            expected: None,
                            value: "x".into(),
                        },
                    ],
                )
                .await;
            assert_corrupt(batch, &replica, key);
            assert_eq!(store.get(&replica, "other").await.expect("get"), None);
            // Scans do not silently skip it. A foreign file under a hashed long name holds no
            // readable key, so the scan names the file instead.
            let scan_names = match (FileName::for_name(key), damage) {
                (FileName::Hashed(file_name), "foreign") => file_name,
                _ => key.to_owned(),
            };
            assert_corrupt(collect_scan(&store, &replica).await, &replica, &scan_names);
            assert_corrupt(
                collect_stream(&store, &replica).await,
                &replica,
                &scan_names,
            );
            assert_eq!(
                fs::read(&path).expect("read"),
                damaged,
                "the file is left intact"
            );
            // Repair by hand: the record is usable again.
            fs::write(&path, &original).expect("restore");
            let record = store
                .get(&replica, key)
                .await
                .expect("get")
                .expect("record");
            assert_eq!(record.value, "some value");
        }
    }
}

/// A file in a replica directory whose name is not an escaped key fails scans with `Corrupt`
/// naming the file, and is not removed.
#[tokio::test]
async fn foreign_file_names_are_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    store.put("r", "k", None, "v".into()).await.expect("put");
    let foreign = store.dir().join("r").join("README.txt");
    fs::write(&foreign, "notes").expect("write");
    assert_corrupt(collect_scan(&store, "r").await, "r", "README.txt");
    assert_corrupt(collect_stream(&store, "r").await, "r", "README.txt");
    assert!(foreign.exists());
    // A record stored under a name that belongs to another key is detected too.
    let k_path = record_path(store.dir(), "r", "k");
    fs::copy(&k_path, record_path(store.dir(), "r", "j")).expect("copy");
    assert_corrupt(store.get("r", "j").await, "r", "j");
}

/// `scan` lists the replica directory once, when it starts, and reads each page's records when
/// the page is reached: a record deleted meanwhile is left out, one replaced meanwhile is read at
/// its new revision, and a key created after the listing is not part of that scan (the next scan
/// has it). Plain and hashed (long) keys come in ascending byte order, as with `scan_page`.
#[tokio::test]
async fn a_scan_lists_once_and_reads_each_page_when_it_comes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    let mut keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    keys.push(format!("k5{}", "x".repeat(300)));
    for key in &keys {
        store.put("r", key, None, "v1".into()).await.expect("put");
    }
    keys.sort();
    let paged = collect_scan(&store, "r").await.expect("scan_page");
    let streamed = collect_stream(&store, "r").await.expect("scan");
    assert_eq!(streamed, paged);
    let scanned: Vec<&String> = streamed.iter().map(|r| &r.key).collect();
    assert_eq!(scanned, keys.iter().collect::<Vec<_>>());

    let mut scan = store.scan("r", 3);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(scan.next().await.expect("a record").expect("readable"));
    }
    store
        .delete("r", "k6", Revision::FIRST)
        .await
        .expect("delete");
    store
        .put("r", "k8", Some(Revision::FIRST), "v2".into())
        .await
        .expect("replace");
    store
        .put("r", "k99", None, "new".into())
        .await
        .expect("put");
    let rest: Vec<StoredRecord> = scan.try_collect().await.expect("rest of the scan");
    seen.extend(rest);
    let scanned: Vec<&str> = seen.iter().map(|r| r.key.as_str()).collect();
    let expected: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| *k != "k6")
        .collect();
    assert_eq!(scanned, expected);
    let k8 = seen.iter().find(|r| r.key == "k8").expect("k8");
    assert_eq!(
        (k8.revision, k8.value.clone()),
        (Revision(2), Bytes::from("v2"))
    );
    let again = collect_stream(&store, "r").await.expect("scan");
    assert!(again.iter().any(|r| r.key == "k99"));
    assert_eq!(again, collect_scan(&store, "r").await.expect("scan_page"));
}

/// Temporary files left by a crash are ignored by reads and scans and removed at the next open.
#[tokio::test]
async fn leftover_temporary_files_are_ignored_and_cleaned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    store.put("r", "k", None, "v".into()).await.expect("put");
    let replica_dir = store.dir().join(escape("r"));
    let leftovers = [
        replica_dir.join(".tmp-0123456789abcdef"),
        store.dir().join(".tmp-deadbeefdeadbeef"),
    ];
    for leftover in &leftovers {
        fs::write(leftover, b"half a reco").expect("write leftover");
    }
    let records = collect_scan(&store, "r").await.expect("scan");
    assert_eq!(records.len(), 1);
    assert_eq!(
        store.replicas().await.expect("replicas"),
        vec!["r".to_owned()]
    );
    drop(store);
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("reopen");
    for leftover in &leftovers {
        assert!(!leftover.exists(), "{} must be removed", leftover.display());
    }
    let record = store.get("r", "k").await.expect("get").expect("record");
    assert_eq!(
        (record.revision, record.value),
        (Revision::FIRST, Bytes::from("v"))
    );
}

/// Writers are serialised by the replica's lock file: while another process (here: another
/// open file description) holds it, a write waits, and it completes once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_replica_lock_serialises_writers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    store.put("r", "k", None, "v1".into()).await.expect("put");
    let lock_path = store.dir().join(escape("r")).join(".lock");
    let held = File::open(&lock_path).expect("open lock file");
    held.lock().expect("lock");
    let writer = tokio::spawn({
        let store = dd_store_fs::open(FsOptions::new(tmp.path()))
            .await
            .expect("second handle");
        async move {
            store
                .put("r", "k", Some(Revision::FIRST), "v2".into())
                .await
        }
    });
    // Whatever the timing, the writer cannot have finished while the lock is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!writer.is_finished(), "a write went through a held lock");
    assert_eq!(
        store.get("r", "k").await.expect("get").map(|r| r.value),
        Some(Bytes::from("v1"))
    );
    held.unlock().expect("unlock");
    let outcome = tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writer finishes once the lock is released")
        .expect("join")
        .expect("put");
    assert_eq!(outcome, WriteOutcome::Written(Revision(2)));
}

/// A non-empty directory that is not a store, and a store of an unknown layout version, are
/// refused with a configuration error naming the directory; nothing in them is touched.
#[tokio::test]
async fn foreign_directories_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let foreign = tmp.path().join("home");
    fs::create_dir(&foreign).expect("mkdir");
    fs::write(foreign.join("notes.txt"), "mine").expect("write");
    let err = open_url(&format!("fs://{}", foreign.display()))
        .await
        .expect_err("a foreign directory must be refused");
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("home"), "{err}");
    assert_eq!(fs::read(foreign.join("notes.txt")).expect("read"), b"mine");

    let store_dir = tmp.path().join("store");
    drop(
        dd_store_fs::open(FsOptions::new(&store_dir))
            .await
            .expect("open"),
    );
    fs::write(store_dir.join(".dd-store-fs"), "dd-store-fs layout 99\n").expect("write");
    let err = dd_store_fs::open(FsOptions::new(&store_dir))
        .await
        .expect_err("unknown layout");
    assert!(err.to_string().contains("layout 99"), "{err}");

    let err = open_url("s3://bucket/x").await.expect_err("wrong scheme");
    assert!(matches!(err, StoreError::Config { .. }), "{err:?}");
}

/// `fs:relative/dir` URLs open relative to the working directory; reopening keeps the data.
#[tokio::test]
async fn url_forms_open_the_same_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("with space");
    let url = format!("fs://{}", dir.display()).replace(' ', "%20");
    let store = open_url(&url).await.expect("open");
    store.put("r", "k", None, "v".into()).await.expect("put");
    let again = open_url(&format!("fs:{}", dir.display()))
        .await
        .expect("reopen");
    assert_eq!(again.dir(), store.dir());
    assert!(again.get("r", "k").await.expect("get").is_some());
}

/// Empty names are refused with a clear error; a stray file among the replica directories is
/// reported by `replicas()`.
#[tokio::test]
async fn empty_names_and_stray_files_are_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dd_store_fs::open(FsOptions::new(tmp.path()))
        .await
        .expect("open");
    let err = store
        .put("r", "", None, "v".into())
        .await
        .expect_err("empty key");
    assert!(err.to_string().contains("key name is empty"), "{err}");
    let err = store.get("", "k").await.expect_err("empty replica");
    assert!(err.to_string().contains("replica name is empty"), "{err}");
    store.put("r", "k", None, "v".into()).await.expect("put");
    fs::write(store.dir().join("stray.txt"), "x").expect("write");
    let err = store.replicas().await.expect_err("stray file");
    assert!(err.to_string().contains("stray.txt"), "{err}");
    // Reads and writes of replicas are unaffected, and reopening still works.
    assert!(store.get("r", "k").await.expect("get").is_some());
    drop(
        dd_store_fs::open(FsOptions::new(tmp.path()))
            .await
            .expect("reopen"),
    );
}
