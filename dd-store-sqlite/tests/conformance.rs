//! The shared conformance suite on [`SqliteStore`], every handle opened on one database file.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use dd_store::conformance;
use dd_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dd.db");
    conformance::run_all(|| {
        let path = path.clone();
        async move { Ok(SqliteStore::open(path, SqliteOptions::default()).await?) }
    })
    .await;
}
