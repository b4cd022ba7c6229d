//! The shared conformance suite on [`SqliteStore`], one test per check, every handle of a test
//! opened on one database file.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use dd_store::conformance::Capabilities;
use dd_store_sqlite::SqliteOptions;

dd_store::conformance_tests! {
    capabilities: Capabilities::ALL,
    open: {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        move || {
            let (dir, path) = (Arc::clone(&dir), dir.path().join("dd.db"));
            async move {
                let _keep = dir;
                dd_store_sqlite::open(SqliteOptions::new(path)).await
            }
        }
    },
}
