//! `dd-store-s3`: the S3 backend of durable-dd's [`DurableStateStore`].
//!
//! One object per `(replica, key)` under a key prefix of a bucket; revisions in the object
//! metadata and body header; optimistic concurrency through S3 conditional writes
//! (`If-None-Match: *` to create, `If-Match: <etag>` to replace). Open a store with
//! [`S3Store::open`] and [`S3Options`], or with [`open_url`] and an `s3://` URL. See the crate
//! README for the layout, the open-time probe and single-writer mode.
//!
//! [`DurableStateStore`]: dd_store::DurableStateStore

mod body;
mod client;
mod error;
pub mod layout;
mod listing;
mod objects;
mod options;
mod probe;
mod store;

pub use error::{S3Error, S3ErrorKind};
pub use options::{S3Options, S3OptionsBuilder, StaticCredentials};
pub use probe::ServerFeatures;
pub use store::{S3Store, open_url, open_url_read_only};

/// Registers the `s3:` scheme in a store-scheme registry: [`open_url`], or
/// [`open_url_read_only`] for [`Access::ReadOnly`](dd_store::registry::Access::ReadOnly).
pub fn register(registry: &mut dd_store::registry::Registry) {
    use dd_store::registry::{Access, Scheme};
    registry.register(Scheme {
        name: "s3",
        backend: "dd-store-s3",
        open: |url, access| {
            Box::pin(async move {
                let store = match access {
                    Access::ReadOnly => open_url_read_only(&url).await?,
                    Access::ReadWrite => open_url(&url).await?,
                };
                Ok(std::sync::Arc::new(store) as _)
            })
        },
        local_path: None,
    });
}
