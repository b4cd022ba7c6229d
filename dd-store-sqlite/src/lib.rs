#![doc = include_str!("../README.md")]

mod db;
mod error;
mod options;
mod store;

use std::sync::Arc;

pub use db::{APPLICATION_ID, SCHEMA_VERSION};
pub use error::SqliteError;
pub use options::{SqliteOptions, Synchronous};
pub use store::{SqliteStore, open, open_url};

/// Registers the `sqlite:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "sqlite",
        backend: "dd-store-sqlite",
        open: |url, _access| Box::pin(async move { Ok(Arc::new(open_url(&url).await?) as _) }),
        local_path: Some(|url| SqliteOptions::from_url(url).ok().map(|o| o.path)),
    });
}
