#![doc = include_str!("../README.md")]

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
pub use store::{S3Store, open, open_url};

/// Registers the `s3:` scheme in a store-scheme registry: [`open_url`], with
/// [`S3Options::read_only`] set for [`Access::ReadOnly`](dd_store::registry::Access::ReadOnly).
pub fn register(registry: &mut dd_store::registry::Registry) {
    use dd_store::registry::{Access, Scheme};
    registry.register(Scheme {
        name: "s3",
        backend: "dd-store-s3",
        open: |url, access| {
            Box::pin(async move {
                let mut options = S3Options::from_url(&url)?;
                options.read_only |= access == Access::ReadOnly;
                Ok(std::sync::Arc::new(open(options).await?) as _)
            })
        },
        local_path: None,
    });
}
