//! Full-disk and read-only stores, with real errors: the `disk_fault_child` binary runs in its own
//! user and mount namespace with the store on a small tmpfs that it fills (`ENOSPC`) or on a
//! bind mount it remounts read-only (`EROFS`); where namespaces are not allowed it lowers its
//! `RLIMIT_FSIZE` instead (`EFBIG`; the read-only tests are then skipped with the reason). See
//! `integration_tests::disk_fault`.
//!
//! Asserted for the fs and SQLite backends: a write that hits the full disk fails with a transient
//! `StoreError::Unavailable` naming the store, the replica and the key and saying the disk is
//! full; every record written before loads byte for byte; no temporary file is left; once space
//! returns, the same open store writes again and a fresh open sees everything. At the dd-durable
//! level a `Sync` store fails with that error and `WriteBehind` keeps the entries queued until
//! `flush` succeeds. On a read-only file system the fs store opens for reading and its writes
//! fail with a read-only error; the SQLite store refuses to open with one; both write again once
//! the file system is read-write.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use integration_tests::disk_fault::{
    Answer, ErrorReply, FaultChild, FaultMode, OpSpec, OutcomeReply, RecordReply, Reply, Request,
    start_with_small_disk,
};

const CHILD: &str = env!("CARGO_BIN_EXE_disk_fault_child");
const REPLICA: &str = "r";
/// The tmpfs: big enough for the records written before it is filled.
const DISK_BYTES: u64 = 2 * 1024 * 1024;
/// How long the write-behind test waits for the background task to fail once.
const WRITE_BEHIND_BOUND: Duration = Duration::from_secs(60);

/// The child with its small disk at `mnt`.
struct Disk {
    child: FaultChild,
    mnt: PathBuf,
    _root: tempfile::TempDir,
}

impl Disk {
    async fn start(size_bytes: u64) -> Disk {
        let root = tempfile::tempdir().expect("tempdir");
        let mnt = root.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        let child = start_with_small_disk(Path::new(CHILD), &mnt, size_bytes)
            .await
            .expect("start the disk-fault child");
        Disk {
            child,
            mnt,
            _root: root,
        }
    }

    fn mode(&self) -> FaultMode {
        self.child.mode()
    }

    async fn call(&mut self, request: Request) -> Reply {
        self.child
            .call(&request)
            .await
            .unwrap_or_else(|e| panic!("{request:?}: {e}"))
    }

    async fn ok(&mut self, request: Request) -> Answer {
        let shown = format!("{request:?}");
        self.call(request)
            .await
            .unwrap_or_else(|e| panic!("{shown} failed: {e:?}"))
    }

    async fn fails(&mut self, request: Request) -> ErrorReply {
        let shown = format!("{request:?}");
        match self.call(request).await {
            Err(e) => e,
            Ok(answer) => panic!("{shown} succeeded ({answer:?}), but must fail"),
        }
    }

    async fn open(&mut self, url: &str) {
        self.ok(Request::Open {
            url: url.to_owned(),
        })
        .await;
    }

    async fn write(&mut self, ops: Vec<OpSpec>) -> Reply {
        self.call(Request::Write {
            replica: REPLICA.to_owned(),
            ops,
        })
        .await
    }

    async fn put(&mut self, key: &str, expected: Option<u64>, value: Vec<u8>) -> Reply {
        self.write(vec![put(key, expected, value)]).await
    }

    async fn scan(&mut self) -> BTreeMap<String, (u64, Vec<u8>)> {
        let Answer::Records(records) = self
            .ok(Request::Scan {
                replica: REPLICA.to_owned(),
            })
            .await
        else {
            panic!("a scan returns records");
        };
        records
            .into_iter()
            .map(
                |RecordReply {
                     key,
                     revision,
                     value,
                 }| (key, (revision, value)),
            )
            .collect()
    }

    async fn files(&mut self) -> Vec<String> {
        let dir = self.mnt.clone();
        let Answer::Files(files) = self.ok(Request::Files { dir }).await else {
            panic!("a listing returns files");
        };
        files
    }

    async fn fill(&mut self) {
        let dir = self.mnt.clone();
        let filled = self.ok(Request::Fill { dir }).await;
        eprintln!("filled the disk: {filled:?}");
    }

    async fn free(&mut self) {
        let dir = self.mnt.clone();
        self.ok(Request::Free { dir }).await;
    }

    async fn durable_stats(&mut self) -> (usize, u64) {
        let Answer::Stats(stats) = self.ok(Request::DurableStats).await else {
            panic!("stats");
        };
        (stats.pending, stats.write_errors)
    }
}

fn put(key: &str, expected: Option<u64>, value: Vec<u8>) -> OpSpec {
    OpSpec {
        key: key.to_owned(),
        expected,
        value: Some(value),
    }
}

/// Distinct bytes of `len` for `seed`.
fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Larger than everything written before the disk filled up, so that no backend can place it
/// in space it allocated earlier (such as SQLite's write-ahead log).
const BIG: usize = 256 * 1024;

fn written(reply: Reply) -> u64 {
    match reply {
        Ok(Answer::Outcomes(outcomes)) => match outcomes.as_slice() {
            [OutcomeReply::Written(rev)] => *rev,
            other => panic!("expected one written outcome, got {other:?}"),
        },
        other => panic!("expected a successful write, got {other:?}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Fs,
    Sqlite,
}

impl Backend {
    fn url(self, mnt: &Path) -> String {
        match self {
            Backend::Fs => format!("fs://{}/store", mnt.display()),
            Backend::Sqlite => format!("sqlite://{}/dd.db", mnt.display()),
        }
    }

    fn location(self, mnt: &Path) -> String {
        match self {
            Backend::Fs => format!("fs:{}/store", mnt.display()),
            Backend::Sqlite => format!("sqlite:{}/dd.db", mnt.display()),
        }
    }

    /// What the error of a write on a full disk must say in `mode`.
    fn full_disk_words(self, mode: FaultMode) -> &'static [&'static str] {
        match (self, mode) {
            (Backend::Fs, FaultMode::Namespace) => &["disk is full (ENOSPC)", "Free space"],
            (Backend::Fs, FaultMode::FileSizeLimit) => &["file-size limit (EFBIG", "Raise"],
            (Backend::Sqlite, FaultMode::Namespace) => {
                &["database or disk is full", "SQLITE_FULL", "Free space"]
            }
            // SQLite reports a write refused with EFBIG as an I/O error.
            (Backend::Sqlite, FaultMode::FileSizeLimit) => &["disk I/O error"],
        }
    }
}

/// Asserts that `e` is the transient full-disk error of a write in `backend` that names the
/// replica and one of `keys` (`key 'k'` or `keys 'a', 'b'`: fs names the key whose file could
/// not be written, SQLite the keys of the failed transaction).
fn assert_full_disk(e: &ErrorReply, backend: Backend, mode: FaultMode, mnt: &Path, keys: &[&str]) {
    assert_eq!(e.kind, "Unavailable", "{e:?}");
    assert!(e.transient, "{e:?}");
    let location = backend.location(mnt);
    for part in
        std::iter::once(location.as_str()).chain(backend.full_disk_words(mode).iter().copied())
    {
        assert!(
            e.message.contains(part),
            "{part:?} missing in: {}",
            e.message
        );
    }
    assert!(
        keys.iter()
            .any(|k| e.message.contains(&format!("replica '{REPLICA}' {k}:"))),
        "none of {keys:?} named in: {}",
        e.message
    );
}

fn assert_no_temp_files(files: &[String]) {
    assert!(
        !files.iter().any(|f| f.contains("/.tmp-")),
        "temporary files are left: {files:?}"
    );
}

/// The store-level scenario of a full disk for `backend`.
async fn full_disk_fails_clearly_keeps_records_and_recovers(backend: Backend) {
    let mut disk = Disk::start(DISK_BYTES).await;
    let mode = disk.mode();
    let url = backend.url(&disk.mnt);
    disk.open(&url).await;
    let mut expected = BTreeMap::new();
    for i in 0..6u64 {
        let key = format!("k{i}");
        let v = value(i, 3000 + i as usize * 100);
        assert_eq!(written(disk.put(&key, None, v.clone()).await), 1);
        expected.insert(key, (1, v));
    }
    let v = value(100, 2500);
    assert_eq!(written(disk.put("k0", Some(1), v.clone()).await), 2);
    expected.insert("k0".to_owned(), (2, v));

    disk.fill().await;
    // A new record, an overwrite and a batch: each fails, transient, saying why and where.
    let e = disk.put("new", None, value(200, BIG)).await.unwrap_err();
    assert_full_disk(&e, backend, mode, &disk.mnt, &["key 'new'"]);
    let e = disk.put("k1", Some(1), value(201, BIG)).await.unwrap_err();
    assert_full_disk(&e, backend, mode, &disk.mnt, &["key 'k1'"]);
    let batch = vec![
        put("tiny", None, b"t".to_vec()),
        put("k2", Some(1), value(202, BIG)),
    ];
    let e = disk.write(batch).await.unwrap_err();
    assert_full_disk(
        &e,
        backend,
        mode,
        &disk.mnt,
        &["keys 'tiny', 'k2'", "key 'tiny'", "key 'k2'"],
    );
    // Nothing of the failed writes is there; everything before is, byte for byte.
    assert_eq!(
        disk.scan().await,
        expected,
        "records after the failed writes"
    );
    assert_no_temp_files(&disk.files().await);

    disk.free().await;
    // The same open store writes again.
    let v = value(300, BIG);
    assert_eq!(written(disk.put("new", None, v.clone()).await), 1);
    expected.insert("new".to_owned(), (1, v));
    let v = value(301, 4000);
    assert_eq!(written(disk.put("k1", Some(1), v.clone()).await), 2);
    expected.insert("k1".to_owned(), (2, v));
    assert_eq!(disk.scan().await, expected);
    // A fresh open sees everything.
    disk.ok(Request::Close).await;
    disk.open(&url).await;
    assert_eq!(disk.scan().await, expected, "records after a fresh open");
    assert_no_temp_files(&disk.files().await);
    disk.child.finish().await.expect("the child exits cleanly");
}

/// Waits (bounded) until the durable layer counts a failed write and has `pending` entries
/// queued: the background task tried, failed, and kept them.
async fn wait_until_failed_and_queued(disk: &mut Disk, pending: usize) {
    let waited = tokio::time::timeout(WRITE_BEHIND_BOUND, async {
        loop {
            let stats = disk.durable_stats().await;
            if stats.1 > 0 && stats.0 == pending {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "no failed write with {pending} entries queued within {WRITE_BEHIND_BOUND:?}: {:?}",
        disk.durable_stats().await
    );
}

/// The dd-durable scenario of a full disk for `backend`: a `Sync` store fails with the full-disk
/// error and keeps the entry for a retry; `WriteBehind` keeps the entries queued; `flush` writes
/// them once there is room.
async fn durable_writes_wait_for_space(backend: Backend) {
    let mut disk = Disk::start(DISK_BYTES).await;
    let mode = disk.mode();
    let url = backend.url(&disk.mnt);
    disk.open(&url).await;
    let store = |key: &str, count: u64| Request::DurableStore {
        replica: REPLICA.to_owned(),
        key: key.to_owned(),
        count,
    };
    disk.ok(Request::Durable {
        write_behind_ms: None,
    })
    .await;
    disk.ok(store("before", 1)).await;

    disk.fill().await;
    let e = disk.fails(store("sync", 2)).await;
    assert_full_disk(&e, backend, mode, &disk.mnt, &["key 'sync'"]);
    wait_until_failed_and_queued(&mut disk, 1).await;
    let e = disk.fails(Request::DurableFlush).await;
    assert_full_disk(&e, backend, mode, &disk.mnt, &["key 'sync'"]);
    disk.free().await;
    disk.ok(Request::DurableFlush).await;
    assert_eq!(disk.durable_stats().await.0, 0, "written by the flush");

    // Write-behind over the same store: the entry stays queued while the disk is full.
    disk.ok(Request::Durable {
        write_behind_ms: Some(20),
    })
    .await;
    disk.fill().await;
    disk.ok(store("queued", 3)).await;
    wait_until_failed_and_queued(&mut disk, 1).await;
    let e = disk.fails(Request::DurableFlush).await;
    assert_full_disk(&e, backend, mode, &disk.mnt, &["key 'queued'"]);
    assert_eq!(
        disk.durable_stats().await.0,
        1,
        "still queued after a failed flush"
    );
    disk.free().await;
    disk.ok(Request::DurableFlush).await;
    assert_eq!(disk.durable_stats().await.0, 0, "written by the flush");

    // A fresh open loads every value, each once written after the disk had room again.
    disk.open(&url).await;
    disk.ok(Request::Durable {
        write_behind_ms: None,
    })
    .await;
    let Answer::Counters(loaded) = disk
        .ok(Request::DurableLoad {
            replica: REPLICA.to_owned(),
        })
        .await
    else {
        panic!("counters");
    };
    let loaded: BTreeMap<String, u64> = loaded.into_iter().collect();
    assert_eq!(
        loaded,
        BTreeMap::from([
            ("before".to_owned(), 1),
            ("queued".to_owned(), 3),
            ("sync".to_owned(), 2),
        ])
    );
    disk.child.finish().await.expect("the child exits cleanly");
}

/// A disk for the read-only tests: the tmpfs, bind-mounted onto itself so that it can be
/// remounted read-only. `None` (with the reason printed) without a mount namespace.
async fn remountable_disk(test: &str) -> Option<Disk> {
    let mut disk = Disk::start(DISK_BYTES).await;
    if disk.mode() != FaultMode::Namespace {
        eprintln!("skipped {test}: read-only mounts need a mount namespace, not available here");
        return None;
    }
    let dir = disk.mnt.clone();
    disk.ok(Request::BindSelf { dir }).await;
    Some(disk)
}

async fn remount(disk: &mut Disk, read_only: bool) {
    let dir = disk.mnt.clone();
    disk.ok(Request::Remount { dir, read_only }).await;
}

fn assert_read_only(e: &ErrorReply, what: &[&str]) {
    assert_eq!(e.kind, "Unavailable", "{e:?}");
    assert!(e.transient, "{e:?}");
    for part in what {
        assert!(
            e.message.contains(part),
            "{part:?} missing in: {}",
            e.message
        );
    }
}

#[tokio::test]
async fn fs_full_disk_fails_clearly_keeps_records_and_recovers() {
    full_disk_fails_clearly_keeps_records_and_recovers(Backend::Fs).await;
}

#[tokio::test]
async fn sqlite_full_disk_fails_clearly_keeps_records_and_recovers() {
    full_disk_fails_clearly_keeps_records_and_recovers(Backend::Sqlite).await;
}

#[tokio::test]
async fn fs_durable_writes_wait_for_space() {
    durable_writes_wait_for_space(Backend::Fs).await;
}

#[tokio::test]
async fn sqlite_durable_writes_wait_for_space() {
    durable_writes_wait_for_space(Backend::Sqlite).await;
}

/// fs on a read-only file system: writes of an open store fail with a read-only error, reads
/// work, a store opens for reading (a new one cannot be created), nothing is damaged, and once
/// remounted read-write the same handles write again.
#[tokio::test]
async fn fs_read_only_store_reads_refuses_writes_and_recovers() {
    let Some(mut disk) =
        remountable_disk("fs_read_only_store_reads_refuses_writes_and_recovers").await
    else {
        return;
    };
    let url = Backend::Fs.url(&disk.mnt);
    let location = Backend::Fs.location(&disk.mnt);
    disk.open(&url).await;
    let mut expected = BTreeMap::new();
    for i in 0..4u64 {
        let key = format!("k{i}");
        let v = value(i, 2000);
        assert_eq!(written(disk.put(&key, None, v.clone()).await), 1);
        expected.insert(key, (1, v));
    }
    let files_before = disk.files().await;

    remount(&mut disk, true).await;
    let e = disk.put("new", None, value(9, 100)).await.unwrap_err();
    assert_read_only(
        &e,
        &[&location, "replica 'r' key 'new'", "read-only (EROFS)"],
    );
    let e = disk.put("k1", Some(1), value(9, 100)).await.unwrap_err();
    assert_read_only(
        &e,
        &[&location, "replica 'r' key 'k1'", "read-only (EROFS)"],
    );
    assert_eq!(
        disk.scan().await,
        expected,
        "reads work on the read-only store"
    );
    // A fresh open of the store works for reading; a new store cannot be created.
    disk.open(&url).await;
    assert_eq!(disk.scan().await, expected);
    let e = disk.put("new", None, value(9, 100)).await.unwrap_err();
    assert_read_only(&e, &[&location, "key 'new'", "read-only"]);
    let other = format!("fs://{}/other", disk.mnt.display());
    let e = disk.fails(Request::Open { url: other }).await;
    assert_read_only(
        &e,
        &["/other", "Read-only file system", "read-only (EROFS)"],
    );
    assert_eq!(disk.files().await, files_before, "nothing changed on disk");

    // Read-write again: the handle opened while read-only writes.
    remount(&mut disk, false).await;
    let v = value(10, 100);
    assert_eq!(written(disk.put("new", None, v.clone()).await), 1);
    expected.insert("new".to_owned(), (1, v));
    disk.open(&url).await;
    assert_eq!(disk.scan().await, expected);
    disk.child.finish().await.expect("the child exits cleanly");
}

/// SQLite on a read-only file system: opening fails with a clear transient read-only error
/// naming the database, both after a clean close (SQLite could not even read without creating
/// its -shm file) and with the -wal and -shm files left behind (where SQLite could open it
/// read-only, but every write would fail); nothing is damaged, and once remounted read-write the
/// store opens and writes again.
#[tokio::test]
async fn sqlite_read_only_store_refuses_to_open_and_recovers() {
    let Some(mut disk) =
        remountable_disk("sqlite_read_only_store_refuses_to_open_and_recovers").await
    else {
        return;
    };
    let url = Backend::Sqlite.url(&disk.mnt);
    let location = Backend::Sqlite.location(&disk.mnt);
    let read_only_words = [location.as_str(), "read-only (EROFS)", "Remount"];
    disk.open(&url).await;
    let mut expected = BTreeMap::new();
    for i in 0..4u64 {
        let key = format!("k{i}");
        let v = value(i, 2000);
        assert_eq!(written(disk.put(&key, None, v.clone()).await), 1);
        expected.insert(key, (1, v));
    }
    // An open database holds its files open for writing; a file system cannot become
    // read-only under it (EBUSY), so the store is closed first.
    disk.ok(Request::Close).await;
    let files_before = disk.files().await;

    remount(&mut disk, true).await;
    let e = disk.fails(Request::Open { url: url.clone() }).await;
    assert_read_only(&e, &read_only_words);
    assert_eq!(disk.files().await, files_before, "nothing changed on disk");
    remount(&mut disk, false).await;

    // Closed while the disk is full: the final checkpoint, which must grow the database file
    // for the pages of "grow" (still only in the -wal file), fails, and the -wal and -shm files
    // stay.
    disk.open(&url).await;
    let v = value(11, 64 * 1024);
    assert_eq!(written(disk.put("grow", None, v.clone()).await), 1);
    expected.insert("grow".to_owned(), (1, v));
    disk.fill().await;
    let e = disk.put("lost", None, value(20, BIG)).await.unwrap_err();
    assert!(e.transient, "{e:?}");
    disk.ok(Request::Close).await;
    let files = disk.files().await;
    assert!(
        files.iter().any(|f| f == "dd.db-wal") && files.iter().any(|f| f == "dd.db-shm"),
        "the write-ahead log stays after a close on a full disk: {files:?}"
    );
    disk.free().await;
    remount(&mut disk, true).await;
    let e = disk.fails(Request::Open { url: url.clone() }).await;
    assert_read_only(&e, &read_only_words);

    remount(&mut disk, false).await;
    disk.open(&url).await;
    assert_eq!(disk.scan().await, expected, "every record, byte for byte");
    let v = value(10, 100);
    assert_eq!(written(disk.put("new", None, v.clone()).await), 1);
    expected.insert("new".to_owned(), (1, v));
    assert_eq!(disk.scan().await, expected);
    disk.child.finish().await.expect("the child exits cleanly");
}
