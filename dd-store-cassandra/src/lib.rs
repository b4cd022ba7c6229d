#![doc = include_str!("../README.md")]

pub mod error;
mod merge;
pub mod options;
pub mod scan;
pub mod schema;
mod store;

/// The `scylla` driver this backend is built on, for callers that talk to the same cluster
/// directly (dd-bench's raw-driver baseline).
pub use scylla;

pub use error::CassandraError;
pub use options::{CassandraOptions, Consistency, Replication, SerialConsistency};
pub use schema::BUCKETS;
pub use store::{CassandraStore, open, open_url};

/// Registers the `cassandra:` scheme with its opener ([`open_url`]) in a store-scheme registry.
pub fn register(registry: &mut dd_store::registry::Registry) {
    registry.register(dd_store::registry::Scheme {
        name: "cassandra",
        backend: "dd-store-cassandra",
        open: |url, _access| {
            Box::pin(async move { Ok(std::sync::Arc::new(open_url(&url).await?) as _) })
        },
        local_path: None,
    });
}
