//! The shared conformance suite on [`FsStore`], one test per check, every handle of a test
//! opened on one temporary directory.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use dd_store::conformance::Capabilities;
use dd_store_fs::FsOptions;

dd_store::conformance_tests! {
    capabilities: Capabilities::ALL,
    open: {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        move || {
            let (dir, path) = (Arc::clone(&dir), dir.path().to_path_buf());
            async move {
                let _keep = dir;
                dd_store_fs::open(FsOptions::new(path)).await
            }
        }
    },
}
