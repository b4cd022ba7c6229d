#![doc = include_str!("../README.md")]

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
pub use options::FsOptions;
pub use store::{FsStore, open, open_url};

/// Registers the `fs:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "fs",
        backend: "dd-store-fs",
        open: |url, _access| Box::pin(async move { Ok(Arc::new(open_url(&url).await?) as _) }),
        local_path: Some(|url| FsOptions::from_url(url).ok().map(|o| o.dir)),
    });
}
