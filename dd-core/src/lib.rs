//! # dd-core
//!
//! The core of durable-dd, Distributed Data for Rust:
//!
//! - [`crdt`]: state-based CRDTs (counters, sets, maps, registers, flags) with delta support and
//!   removed-replica pruning, all serde-serialisable;
//! - [`replica`]: replica identity (a stable name plus a fresh incarnation per start);
//! - [`key`]: typed keys, so that a key for a `GCounter` cannot be read as an `ORSet`;
//! - [`data`]: type-erased CRDT values and the registry that decodes them by type name;
//! - [`protocol`]: the messages replicas exchange, below both the transports and the replicator;
//! - [`store`]: the [`store::DurableStateStore`] trait every storage backend implements;
//! - [`durable`]: what the replicator needs from durable storage (implemented by `dd-durable`);
//! - [`replicator`]: the replicator ([`DistributedData::start`], [`Replicator`]);
//! - [`cluster`]: membership ([`cluster::StaticCluster`], [`cluster::ChitchatCluster`]);
//! - [`transport`]: in-memory and TCP transports.

pub mod cluster;
pub mod crdt;
pub mod data;
pub mod durable;
pub mod key;
pub mod protocol;
pub(crate) mod pruning_record;
pub mod replica;
pub mod replicator;
pub mod secret;
pub mod store;
pub mod transport;

pub use crdt::{DeltaReplicatedData, RemovedNodePruning, ReplicatedData, TypeName};
pub use key::Key;
pub use replica::{ReplicaId, UniqueReplicaId};
pub use replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, ReplicatorStatus, Settings,
    WriteConsistency,
};
