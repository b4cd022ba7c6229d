//! `dd-store-sqlite`: a [`DurableStateStore`] in one SQLite database file (WAL mode).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use dd_store::{DurableStateStore, Revision, WriteOutcome};
//! use dd_store_sqlite::{SqliteOptions, SqliteStore};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("dd.db");
//! let store = SqliteStore::open(&path, SqliteOptions::default()).await.unwrap();
//! let written = store.put("replica-a", "counter/1", None, "v1".into()).await.unwrap();
//! assert_eq!(written, WriteOutcome::Written(Revision::FIRST));
//! let url = format!("sqlite://{}?synchronous=normal", path.display());
//! let again = dd_store_sqlite::open_url(&url).await.unwrap();
//! assert_eq!(again.get("replica-a", "counter/1").await.unwrap().unwrap().value, "v1");
//! # });
//! ```
//!
//! Each handle owns one connection behind a mutex; every operation runs on tokio's blocking pool
//! (`spawn_blocking`). Batches are one `BEGIN IMMEDIATE` transaction, so conditional writes are
//! atomic against other handles and processes on the same file, which wait up to the busy
//! timeout. See the crate README for the schema and durability.

mod db;
mod error;
mod options;
mod store;

use std::sync::Arc;

pub use db::{APPLICATION_ID, SCHEMA_VERSION};
pub use error::SqliteError;
pub use options::{SqliteOptions, Synchronous, parse_url};
pub use store::{SqliteStore, open_url};

/// Registers the `sqlite:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "sqlite",
        backend: "dd-store-sqlite",
        open: |url, _access| Box::pin(async move { Ok(Arc::new(open_url(&url).await?) as _) }),
        local_path: Some(|url| parse_url(url).ok().map(|(path, _)| path)),
    });
}
