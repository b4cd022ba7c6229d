//! # dd-node
//!
//! A durable-dd replica as a process, and tools for its stores:
//!
//! - `dd-node serve` ([`serve`], [`config`]): one replica with an HTTP/JSON API ([`api`]) on
//!   typed keys ([`types`], [`ops`], [`render`]), a TCP cluster transport, a durable store
//!   and Prometheus metrics ([`metrics`]); its OpenAPI document ([`openapi`], `/openapi.json`);
//! - `dd-node inspect` ([`inspect`]): the keys, types and values in a store;
//! - `dd-node migrate` ([`migrate`]): copy durable records between backends, verified;
//! - `dd-node members` and `dd-node remove` ([`members`], [`membership`]): a running replica's
//!   view of the cluster, and removing a replica gone for good;
//! - `dd-node demo` ([`demo`]): a 3-replica cluster that survives a full restart.
//!
//! The binary is a thin wrapper around [`cli::main`].

pub mod api;
pub mod apply;
pub mod cli;
pub mod config;
pub mod consistency;
pub mod demo;
pub mod http_errors;
pub mod inspect;
pub mod local_cluster;
pub mod members;
pub mod membership;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod ops;
pub mod render;
pub mod serve;
pub mod store_url;
pub mod types;
