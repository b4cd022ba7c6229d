//! `dd-store-cassandra`: a [`DurableStateStore`](dd_store::DurableStateStore) on Apache
//! Cassandra (or ScyllaDB), through the `scylla` driver.
//!
//! * Records live in `<keyspace>.<table>` (default `dd_state`), partitioned by
//!   `(replica, bucket)` where the bucket is a CRC-32 of the key modulo [`BUCKETS`], clustered
//!   by key ([`schema`] has the CQL and why).
//! * Conditional writes are lightweight transactions (`INSERT ... IF NOT EXISTS`,
//!   `UPDATE ... IF revision = ?`, `DELETE ... IF revision = ?`) at the configured serial
//!   consistency (`LOCAL_SERIAL` by default); reads and the commit phase use `LOCAL_QUORUM`.
//! * A scan page reads every bucket after the cursor and merges them in key order ([`scan`]).
//! * `replicas()` reads the small `<table>_replicas` table, written before a replica's first
//!   write through a handle.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dd_store::StoreError> {
//! use dd_store::DurableStateStore;
//! let store = dd_store_cassandra::open_url(
//!     "cassandra://10.0.0.1:9042,10.0.0.2:9042/durable_dd?replication=network:dc1=3",
//! )
//! .await?;
//! store.put("node-a", "counter", None, "1".into()).await?;
//! # Ok(()) }
//! ```

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
pub use store::{CassandraStore, open_url};

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
