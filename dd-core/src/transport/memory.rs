//! An in-process network for tests and simulations.
//!
//! Every [`MemoryTransport`] is attached to a [`MemoryNetwork`], which decides with one seeded
//! RNG whether a message is dropped, duplicated or delayed (random delays reorder messages),
//! and which replicas are partitioned from each other. Messages are encoded and decoded with
//! postcard on the way, as over a real network.
//!
//! ```
//! use std::time::Duration;
//! use dd_core::transport::memory::{Faults, MemoryNetwork};
//! use dd_core::{ReplicaId, UniqueReplicaId};
//! let net = MemoryNetwork::new(42, Faults { drop_probability: 0.1, ..Faults::default() });
//! let a = net.join(UniqueReplicaId::new("a", 1));
//! let b = net.join(UniqueReplicaId::new("b", 1));
//! net.partition(&[ReplicaId::new("a")], &[ReplicaId::new("b")]);
//! net.heal();
//! # drop((a, b));
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use super::{Incoming, IncomingStream, Message, Transport, TransportError};
use crate::replica::{ReplicaId, UniqueReplicaId};

/// Fault injection of a [`MemoryNetwork`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability that a message is lost.
    pub drop_probability: f64,
    /// Probability that a message is delivered twice.
    pub duplicate_probability: f64,
    /// Each delivery is delayed by a random duration up to this (0: immediate, in order).
    pub max_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop_probability: 0.0,
            duplicate_probability: 0.0,
            max_delay: Duration::ZERO,
        }
    }
}

struct Node {
    id: UniqueReplicaId,
    tx: mpsc::UnboundedSender<Incoming>,
}

struct NetState {
    rng: StdRng,
    faults: Faults,
    nodes: HashMap<ReplicaId, Node>,
    blocked: HashSet<(ReplicaId, ReplicaId)>,
}

/// A simulated network shared by [`MemoryTransport`]s. Cheap to clone.
#[derive(Clone)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

impl MemoryNetwork {
    /// A network whose random decisions are drawn from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            state: Arc::new(Mutex::new(NetState {
                rng: StdRng::seed_from_u64(seed),
                faults,
                nodes: HashMap::new(),
                blocked: HashSet::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Attaches a replica incarnation. A new incarnation of a name replaces the old one, whose
    /// incoming stream ends.
    pub fn join(&self, id: UniqueReplicaId) -> MemoryTransport {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock()
            .nodes
            .insert(id.replica().clone(), Node { id: id.clone(), tx });
        MemoryTransport {
            network: self.clone(),
            id,
            incoming: Arc::new(Mutex::new(Some(rx))),
        }
    }

    /// Detaches a replica (as if its process stopped): messages to it are lost.
    pub fn leave(&self, replica: &ReplicaId) {
        self.lock().nodes.remove(replica);
    }

    /// Changes the fault injection.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Blocks all messages between the two groups, both ways.
    pub fn partition(&self, a: &[ReplicaId], b: &[ReplicaId]) {
        let mut s = self.lock();
        for x in a {
            for y in b {
                s.blocked.insert((x.clone(), y.clone()));
                s.blocked.insert((y.clone(), x.clone()));
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().blocked.clear();
    }

    fn deliver(&self, from: &UniqueReplicaId, to: &ReplicaId, message: &Message) {
        let bytes = match message.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%from, %to, error = %e, "cannot encode message");
                return;
            }
        };
        let (tx, delays) = {
            let mut s = self.lock();
            if s.blocked.contains(&(from.replica().clone(), to.clone())) {
                return;
            }
            let Some(node) = s.nodes.get(to) else {
                tracing::debug!(%from, %to, "memory transport: no such replica");
                return;
            };
            let tx = node.tx.clone();
            let faults = s.faults;
            if faults.drop_probability > 0.0 && s.rng.random_bool(faults.drop_probability) {
                return;
            }
            let copies = if faults.duplicate_probability > 0.0
                && s.rng.random_bool(faults.duplicate_probability)
            {
                2
            } else {
                1
            };
            let max = u64::try_from(faults.max_delay.as_micros()).unwrap_or(u64::MAX);
            let delays: Vec<u64> = (0..copies)
                .map(|_| {
                    if max == 0 {
                        0
                    } else {
                        s.rng.random_range(0..=max)
                    }
                })
                .collect();
            (tx, delays)
        };
        for delay in delays {
            let decoded = match Message::decode(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(%from, %to, error = %e, "cannot decode message");
                    return;
                }
            };
            let incoming = Incoming {
                from: from.clone(),
                message: decoded,
            };
            if delay == 0 {
                let _ = tx.send(incoming);
            } else {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_micros(delay)).await;
                    let _ = tx.send(incoming);
                });
            }
        }
    }
}

/// One replica's attachment to a [`MemoryNetwork`]. Cheap to clone.
#[derive(Clone)]
pub struct MemoryTransport {
    network: MemoryNetwork,
    id: UniqueReplicaId,
    incoming: Arc<Mutex<Option<mpsc::UnboundedReceiver<Incoming>>>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transport for MemoryTransport {
    fn send(&self, to: &ReplicaId, message: Message) {
        self.network.deliver(&self.id, to, &message);
    }

    fn incoming(&self) -> Result<IncomingStream, TransportError> {
        let rx = match self.incoming.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        let rx = rx.ok_or_else(|| TransportError::IncomingTaken(self.id.to_string()))?;
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        })))
    }

    fn shutdown(&self) {
        let mut s = self.network.lock();
        if s.nodes
            .get(self.id.replica())
            .is_some_and(|n| n.id == self.id)
        {
            s.nodes.remove(self.id.replica());
        }
    }
}
