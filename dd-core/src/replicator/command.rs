//! Commands from [`Replicator`](super::Replicator) handles and internal tasks to the replica task.

use std::collections::BTreeSet;

use tokio::sync::{oneshot, watch};

use super::consistency::{ReadConsistency, WriteConsistency};
use super::durable_writer::Stored;
use super::envelope::{Envelope, Value};
use super::error::ReplicatorError;
use crate::data::ErasedData;
use crate::durable::DurableValue;

/// Computes the new value from the current one (`None`: the key has no value yet).
pub(crate) type ModifyFn =
    Box<dyn FnOnce(Option<&dyn ErasedData>) -> Result<Box<dyn ErasedData>, ReplicatorError> + Send>;

/// The answer to a read or update: the value at the local replica afterwards.
pub(crate) type ValueReply = oneshot::Sender<Result<Box<dyn ErasedData>, ReplicatorError>>;

pub(crate) enum Command {
    Get {
        key: String,
        type_name: String,
        consistency: ReadConsistency,
        reply: ValueReply,
    },
    Update {
        key: String,
        type_name: String,
        consistency: WriteConsistency,
        modify: ModifyFn,
        reply: ValueReply,
    },
    Delete {
        key: String,
        type_name: String,
        consistency: WriteConsistency,
        reply: oneshot::Sender<Result<(), ReplicatorError>>,
    },
    Subscribe {
        key: String,
        type_name: String,
        reply: oneshot::Sender<Result<watch::Receiver<Option<Value>>, ReplicatorError>>,
    },
    Keys {
        reply: oneshot::Sender<BTreeSet<String>>,
    },
    Status {
        reply: oneshot::Sender<super::ReplicatorStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), ReplicatorError>>,
    },
}

/// Conflicting values the store merged (or found deleted), to be adopted by the replica.
pub(crate) type Conflicts = Vec<(String, DurableValue)>;

/// Messages from the replica's own helper tasks.
pub(crate) enum Internal {
    /// A coordinated read collected its replies: merge them and answer from the local state.
    ReadRepair {
        key: String,
        type_name: String,
        merged: Option<Envelope>,
        reply: ValueReply,
    },
    /// The durable store answered a batch: adopt the values it merged with a concurrent
    /// writer's and the keys it found deleted (it holds them already), then answer the batch's
    /// writes.
    Stored(Stored),
}
