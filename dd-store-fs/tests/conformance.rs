//! The shared conformance suite on [`FsStore`], every handle opened on one temporary directory.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use dd_store::conformance;
use dd_store_fs::FsStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    conformance::run_all(|| {
        let path = path.clone();
        async move { Ok(FsStore::open(path).await?) }
    })
    .await;
}
