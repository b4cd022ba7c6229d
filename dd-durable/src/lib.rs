//! # dd-durable
//!
//! Durable Distributed Data over any [`DurableStateStore`](dd_core::store::DurableStateStore):
//! [`DurableDistributedDataStore`] implements the replicator's
//! [`CrdtValueStore`](dd_core::durable::CrdtValueStore) with
//!
//! - a versioned, checksummed [`record`] format for every stored value, so damage and records of newer
//!   builds are recognised, never misread;
//! - revision tracking and conditional writes, merging (never overwriting) a record that another
//!   process wrote under the same replica name, and never overwriting a record it cannot read;
//! - two [`WriteMode`]s: synchronous, or write-behind with per-key coalescing;
//! - streamed loading on start;
//! - [`open::open_store`]: a backend from a URL (`sqlite:`, `fs:`, `s3:`, `cassandra:`).

use std::sync::{Mutex, MutexGuard, PoisonError};

mod alarm;
mod core;
mod data_store;
mod health;
mod known;
mod merged;
pub mod open;
mod options;
mod pending;
pub mod record;
mod stats;

pub use data_store::DurableDistributedDataStore;
pub use open::{OpenError, open_store};
pub use options::{DurableOptions, WriteMode};
pub use stats::DurableStats;

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a single map operation).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
