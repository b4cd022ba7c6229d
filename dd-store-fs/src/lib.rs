//! `dd-store-fs`: a [`DurableStateStore`] keeping one crash-safe file per `(replica, key)`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use dd_store::{DurableStateStore, Revision, WriteOutcome};
//! use dd_store_fs::FsStore;
//! let dir = tempfile::tempdir().unwrap();
//! let store = FsStore::open(dir.path()).await.unwrap();
//! let written = store.put("replica-a", "counter/1", None, "v1".into()).await.unwrap();
//! assert_eq!(written, WriteOutcome::Written(Revision::FIRST));
//! // Another handle on the same directory (or another process) sees the record.
//! let again = dd_store_fs::open_url(&format!("fs://{}", dir.path().display())).await.unwrap();
//! let record = again.get("replica-a", "counter/1").await.unwrap().unwrap();
//! assert_eq!(record.value, "v1");
//! # });
//! ```
//!
//! Layout: `<dir>/.dd-store-fs` (marker with the layout version), `<dir>/<replica>/<key>`, names
//! escaped by [`name`]; record files as described in [`record`]. Writes go to a temporary file
//! that is synced and renamed over the record, then the directory is synced: a record is always
//! either its old or its new version, and an acknowledged write survives a crash or power loss.
//! Writers of one replica exclude each other with an advisory `flock` on `<replica>/.lock` (held
//! for one batch; it works across handles and processes on a local file system) and, within one
//! process, a striped async mutex. Readers take no lock: they see whole records thanks to
//! the atomic rename. See the crate README.

mod error;
mod files;
mod lock;
pub mod name;
mod options;
pub mod record;
mod scan;
mod store;

use std::sync::Arc;

pub use error::FsError;
pub use options::parse_url;
pub use store::{FsStore, open_url};

/// Registers the `fs:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "fs",
        backend: "dd-store-fs",
        open: |url, _access| Box::pin(async move { Ok(Arc::new(open_url(&url).await?) as _) }),
        local_path: Some(|url| parse_url(url).ok()),
    });
}
