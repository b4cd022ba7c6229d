//! Waiting for the replies of a coordinated write or read, off the replica task.

use std::collections::BTreeSet;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::envelope::Envelope;
use super::error::ReplicatorError;
use super::protocol::Message;
use crate::data::TypeRegistry;
use crate::durable::DurableError;
use crate::replica::ReplicaId;
use crate::transport::Incoming;

/// Replies routed to one coordinator, and how many distinct remote replicas must answer.
pub(crate) struct Replies {
    pub(crate) rx: mpsc::UnboundedReceiver<Incoming>,
    pub(crate) needed: usize,
}

/// Waits for the local store (if any) and `needed` remote acknowledgements until `deadline`.
pub(crate) async fn await_write(
    key: String,
    store: oneshot::Receiver<Result<(), DurableError>>,
    replies: Option<Replies>,
    deadline: Instant,
) -> Result<(), ReplicatorError> {
    let mut acked = BTreeSet::<ReplicaId>::new();
    let mut needed = 0;
    if let Some(mut replies) = replies {
        needed = replies.needed;
        let wait = async {
            while acked.len() < needed {
                match replies.rx.recv().await {
                    Some(Incoming {
                        from,
                        message: Message::WriteAck { .. },
                    }) => {
                        acked.insert(from.replica().clone());
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, wait).await;
    }
    match store.await {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(super::durable_writer::store_error(key, source)),
        Err(_) => return Err(ReplicatorError::Shutdown),
    }
    if acked.len() < needed {
        return Err(ReplicatorError::Timeout {
            key,
            required: needed + 1,
            received: acked.len() + 1,
            applied_locally: true,
        });
    }
    Ok(())
}

/// Collects `needed` remote read results until `deadline` and merges them.
pub(crate) async fn collect_reads(
    key: &str,
    mut replies: Replies,
    deadline: Instant,
    registry: &TypeRegistry,
) -> Result<Option<Envelope>, ReplicatorError> {
    let mut answered = BTreeSet::<ReplicaId>::new();
    let mut merged: Option<Envelope> = None;
    let needed = replies.needed;
    let wait = async {
        while answered.len() < needed {
            let Some(Incoming { from, message }) = replies.rx.recv().await else {
                break;
            };
            let Message::ReadResult { entry, .. } = message else {
                continue;
            };
            if !answered.insert(from.replica().clone()) {
                continue;
            }
            let Some(entry) = entry else { continue };
            match Envelope::from_wire(entry, registry) {
                Ok((_, env)) => match &mut merged {
                    None => merged = Some(env),
                    Some(m) => {
                        if let Err(e) = m.merge(env) {
                            tracing::warn!(key, %from, error = %e, "read reply not merged");
                        }
                    }
                },
                Err(e) => tracing::warn!(key, %from, error = %e, "undecodable read reply"),
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline, wait).await;
    if answered.len() < needed {
        return Err(ReplicatorError::Timeout {
            key: key.to_owned(),
            required: needed + 1,
            received: answered.len() + 1,
            applied_locally: false,
        });
    }
    Ok(merged)
}
