//! A **test double** for Apache Cassandra, for CI: a CQL server speaking the real native protocol
//! v4 over TCP, so the real `scylla` driver connects to it as to a one-node Cassandra cluster.
//!
//! It is *not* a database: data lives in memory only (no persistence, no replication, no
//! consistency levels), and it understands only the statement shapes listed in
//! [`parser`](crate::parser) — what `dd-store-cassandra` and the driver's connect and metadata
//! queries use. Anything else gets a clear CQL error, never a hang.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cql_test_double::{CqlTestDouble, Database};
//! let double = CqlTestDouble::start().await.unwrap();
//! let addr = double.addr(); // 127.0.0.1:<free port>: point a driver at it
//! assert!(addr.ip().is_loopback());
//! let data: Database = double.database().clone();
//! double.shutdown().await; // connections closed, port free, data kept
//! let again = CqlTestDouble::start_with(data, addr).await.unwrap();
//! assert_eq!(again.addr(), addr);
//! # });
//! ```

pub mod engine;
pub mod error;
pub mod parser;
pub mod protocol;
pub mod schema;
pub mod server;
pub mod system;
pub mod types;

pub use error::{CqlError, CqlErrorKind};
pub use server::{CqlTestDouble, Database, ObservedConsistency, StartError, WriteTimeout};
