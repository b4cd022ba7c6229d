//! # integration-tests
//!
//! A small harness, generic over the storage backend, for the tests that prove durable
//! Distributed Data works end to end: values of every CRDT type survive restarts of one replica
//! and of a whole cluster, write-behind loses at most its documented window, `durable_keys` is
//! honoured, a corrupt record stops the start without being touched, and a process killed with
//! SIGKILL keeps every acknowledged update.
//!
//! - [`BackendKind`] / [`StoreLocation`]: a fresh location of a backend, opened and re-opened;
//! - [`ReplicaConfig`], [`start_alone`], [`start_cluster`], [`stop_all`]: replicas with durable
//!   data over a store, alone or as a cluster (in-memory or TCP transport);
//! - [`EveryTypeKeys`] / [`EveryType`]: every CRDT type under one key each;
//! - [`eventually`]: bounded polling;
//! - [`backend_tests!`]: one `#[tokio::test]` per backend for a test written once;
//! - [`crash`]: the protocol of the `crash_child` binary used by the crash tests;
//! - [`disk_fault`]: the protocol and driver of the `disk_fault_child` binary used by the
//!   full-disk and read-only tests.
//!
//! See the README for which tests run on which backend and the environment variables.

mod backend;
pub mod child;
pub mod crash;
pub mod disk_fault;
mod error;
mod poll;
mod replicas;
mod runner;
mod values;

pub use backend::{
    BackendKind, CASSANDRA_CONTACT_POINTS_VAR, Needs, S3_ENDPOINT_VAR, StoreLocation,
};
pub use error::HarnessError;
pub use poll::{CONVERGENCE_BOUND, POLL_EVERY, eventually};
pub use replicas::{
    ReplicaConfig, TransportKind, start_alone, start_cluster, stop_all, tcp_config, test_settings,
};
pub use runner::{Outcome, TEST_BOUND, run_on_backend};
pub use values::{EveryType, EveryTypeKeys, TYPE_COUNT};

/// The Rust examples of the repository's README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
