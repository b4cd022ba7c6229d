//! The replicator: every replica holds all keys in memory and shares them with its peers.
//!
//! [`DistributedData::start`] loads the durable store (if configured), spawns the replica task
//! and returns a cloneable [`Replicator`] handle. Updates apply locally at once and reach other
//! replicas by delta propagation (every `delta_propagation_interval`), periodic anti-entropy
//! (every `gossip_interval`, see below) and, for stronger [`WriteConsistency`] levels,
//! direct writes that wait for acknowledgements. Reads can consult several replicas
//! ([`ReadConsistency`]) and merge their answers.
//!
//! ```
//! use std::time::Duration;
//! use dd_core::cluster::StaticCluster;
//! use dd_core::crdt::GCounter;
//! use dd_core::replicator::{DistributedData, ReadConsistency, Settings, WriteConsistency};
//! use dd_core::transport::memory::{Faults, MemoryNetwork};
//! use dd_core::{Key, ReplicaId, UniqueReplicaId};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let net = MemoryNetwork::new(1, Faults::default());
//! let id = UniqueReplicaId::new_incarnation(ReplicaId::new("a"));
//! let cluster = StaticCluster::new(id.clone(), []);
//! let replicator = DistributedData::start(cluster, net.join(id), Settings::default())
//!     .await
//!     .unwrap();
//! let hits: Key<GCounter> = Key::new("hits");
//! let me = replicator.self_id();
//! replicator
//!     .update(&hits, GCounter::new(), WriteConsistency::Local, move |c| c.increment(&me, 2))
//!     .await
//!     .unwrap();
//! let c = replicator.get(&hits, ReadConsistency::Local).await.unwrap();
//! assert_eq!(c.value(), 2);
//! replicator.shutdown().await.unwrap();
//! # });
//! ```
//!
//! ## A cluster of three replicas over TCP
//!
//! Bind every transport first (port 0 picks a free port), then give each replica a
//! [`StaticCluster`](crate::cluster::StaticCluster) with every member's address. `start` makes
//! the transport dial the members.
//!
//! ```
//! use std::time::Duration;
//! use dd_core::cluster::StaticCluster;
//! use dd_core::crdt::GCounter;
//! use dd_core::replicator::{DistributedData, ReadConsistency, Settings, WriteConsistency};
//! use dd_core::transport::tcp::{TcpConfig, TcpTransport};
//! use dd_core::{Key, ReplicaId, UniqueReplicaId};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let names = ["a", "b", "c"].map(ReplicaId::new);
//! let mut transports = Vec::new();
//! for name in &names {
//!     let id = UniqueReplicaId::new_incarnation(name.clone());
//!     let t = TcpTransport::bind(id.clone(), "127.0.0.1:0".parse().unwrap(), TcpConfig::new("demo"))
//!         .await
//!         .unwrap();
//!     transports.push((id, t));
//! }
//! let addresses: Vec<_> = transports
//!     .iter()
//!     .map(|(id, t)| (id.replica().clone(), Some(t.local_addr())))
//!     .collect();
//! let mut replicas = Vec::new();
//! for (id, t) in transports {
//!     let peers = addresses.iter().filter(|(n, _)| n != id.replica()).cloned();
//!     let cluster = StaticCluster::with_addresses(id.clone(), Some(t.local_addr()), peers);
//!     let settings = Settings::builder()
//!         .gossip_interval(Duration::from_millis(200))
//!         .build()
//!         .unwrap();
//!     replicas.push(DistributedData::start(cluster, t, settings).await.unwrap());
//! }
//! let hits: Key<GCounter> = Key::new("hits");
//! let all = WriteConsistency::All { timeout: Duration::from_secs(30) };
//! let me = replicas[0].self_id();
//! replicas[0].update(&hits, GCounter::new(), all, move |c| c.increment(&me, 5)).await.unwrap();
//! // A write to All is at every replica when it returns.
//! let seen = replicas[2].get(&hits, ReadConsistency::Local).await.unwrap();
//! assert_eq!(seen.value(), 5);
//! for r in &replicas {
//!     r.shutdown().await.unwrap();
//! }
//! # });
//! ```
//!
//! ## Pruning, and replicas that come back after any downtime
//!
//! When a replica incarnation leaves (its replica leaves the membership, or restarts with a new
//! incarnation), its counter slots (and version vector entries) are collapsed into a live
//! incarnation, as in Akka: the pruning leader (the lowest-named member heard from recently)
//! marks the key "pruning initialized", and once every member has seen the marker the owner
//! collapses the entries and marks the key "pruning performed". With
//! [`Settings::pruning_quorum`] on (Akka assumes a removed member is down, and so does the
//! default; `dd-node` turns it on), the replicas that saw the marker must also be a quorum of the replicas
//! the owner knows: its members, the replicas that left its member list, and those of removed
//! incarnations not yet pruned (more than half, or exactly half with the lowest-named among
//! them). A replica removed from the others' member lists while it runs may prune in a view of
//! its own; two such views cannot both hold a quorum, so they never collapse the same
//! incarnation twice or each other's (a split membership prunes nothing until it heals, or
//! until an operator confirms the removed replicas stopped:
//! [`StaticCluster::remove_stopped`](crate::cluster::StaticCluster::remove_stopped)).
//! A performed marker makes every
//! replica drop entries of that incarnation that still arrive (from a stale replica), because
//! their contribution was already collapsed.
//!
//! Unlike Akka, the dot-based values (`ORSet`, `MVRegister`, the maps) are never pruned: a
//! removed incarnation makes no new dots, so merging states that mention it is exact, while
//! re-tagging its entries with new dots of the owner undid a remove or overwrite made
//! concurrently by a replica that saw the old dot. Each of their keys keeps a causal-context
//! entry per incarnation that ever wrote it (see
//! [`RemovedNodePruning`](crate::RemovedNodePruning)). "Pruning performed" markers that an
//! earlier version left on such keys still drop the incarnation's dots from stale states, as
//! that version's pruning had re-tagged them.
//!
//! The performed markers are stored durably next to each key (under
//! `__dd/pruning/<key>`, see [`RESERVED_PREFIX`]), in the same batch as and before the value,
//! and they never expire. A replica that starts from its durable store therefore applies every
//! marker it had stored before it loads a value into gossip, and learns markers it missed with
//! the first full state of each key from a peer (markers are merged before values). Until then
//! a loaded key takes no deltas (they carry no markers): a refused delta makes the replica
//! exchange the key's full state with the sender at once (at most once per key per gossip
//! interval) instead of waiting for anti-entropy to reach the key. The owner completes a pruning
//! only on a view that heard from the cluster (`Cluster::view_settled`)
//! and holds every replica whose entries are in its data (or knows them removed; removed because
//! they restarted, `__dd/restarted`, only while their replica is a member, as its live
//! incarnation prunes them too), and, when its store recorded peers in its last member list
//! (`__dd/peers`), only once its member list held a peer again, so a replica that restarts
//! alone does not prune what the cluster pruned while it was away, nor what a peer pruned with
//! the acknowledgement of its earlier incarnation. A replica that
//! learns that its own current incarnation was pruned (it was removed while it ran) refuses
//! writes with [`ReplicatorError::IncarnationPruned`]: restart it to rejoin. A replica
//! that restarts also prunes its own earlier incarnations (found in its stored values), so
//! restarts do not make counters or version vectors grow; the removed incarnations still to be
//! pruned are stored as well (`__dd/removed`), so a restarted leader carries on. A pruning
//! marker dropped because its owner ended is redone, and the owner is pruned on that key too:
//! it may have performed the pruning and stored the result before anyone else got it.
//!
//! ## Anti-entropy
//!
//! Every replica keeps a Merkle tree of its key digests (TicTac style: 16^`anti_entropy_depth`
//! leaves chosen by a hash of the key name, each the XOR of its keys' hashed digests, each node
//! the XOR of its 16 children), updated in O(depth) per changed key. Every `gossip_interval` it
//! sends its root hash to one random peer ([`protocol::Message::Tree`]); the two replicas then
//! descend level by level into the nodes whose hashes differ, exchange the digests of the keys
//! of the differing leaves ([`protocol::Message::LeafDigests`]) and finally the states of the
//! keys that differ (asked for with [`protocol::Message::Gossip`], both ways). States go as a
//! stream with flow control: at most `stream_window` batches
//! ([`protocol::Message::StreamBatch`]) unacknowledged per peer, a batch unacknowledged for two
//! gossip intervals (or twice the stream's slowest recent acknowledgement, if longer) sent again
//! and the stream resumed where it stopped. Replicas in sync send
//! one root hash per round; a difference is found in `depth + 1` round trips whatever the key
//! count. A state larger than `max_gossip_bytes` goes in pieces ([`protocol::Message::EntryChunk`]) up
//! to `max_value_bytes`. Every replica of a cluster needs the same `anti_entropy_depth`; a tree
//! of another depth is ignored and logged. The TCP handshake refuses replicas of another
//! [`PROTOCOL_VERSION`](crate::transport::tcp::PROTOCOL_VERSION) (version 3 introduced the
//! tree, version 5 the streams, version 6 streams identified by the sender's incarnation and a
//! stream number, so that an acknowledgement of another stream is ignored).
//!
//! ## Dependencies
//!
//! `tokio-util` (length-delimited framing of TCP messages), `postcard` (the compact wire format
//! of messages and values), `xxhash-rust` (a fast digest that is stable across builds and
//! platforms, so replicas of different builds still agree on equal states), `toml` (settings
//! files), `chitchat` (a maintained gossip membership protocol with a phi-accrual failure
//! detector, so we do not write our own).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::{Cluster, Members};
use crate::crdt::Crdt;
use crate::data::{ErasedData, TypeRegistry};
use crate::key::Key;
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::transport::Transport;

mod actor;
mod command;
mod consistency;
mod coordinator;
mod delta_versions;
mod durable_writer;
mod envelope;
mod error;
mod load;
mod merkle;
mod settings;

// The wire protocol lives below the transports, in `crate::protocol`; re-exported here.
pub use crate::protocol;
// The durable part of pruning lives below the replicator and the durable store trait.
pub(crate) use crate::pruning_record;
pub use consistency::{ReadConsistency, WriteConsistency};
pub use error::{BoxError, ReplicatorError};
pub use pruning_record::RESERVED_PREFIX;
pub use settings::{Settings, SettingsBuilder};

use actor::{Inputs, Replica};
use command::{Command, ModifyFn};
use envelope::Value;
use pruning_record::{PrunedIncarnations, RemovedIncarnations};

/// Registers the types of the replicator's own durable records (pruning markers and removed
/// incarnations, stored under keys starting with [`RESERVED_PREFIX`]) in `registry`, so that a
/// tool reading a durable store directly (an inspector, a migration) can decode them.
/// [`DistributedData::start`] does this itself.
///
/// ```
/// use dd_core::data::TypeRegistry;
/// let registry = TypeRegistry::with_builtin_types();
/// dd_core::replicator::register_record_types(&registry);
/// assert!(registry.contains("dd.PrunedIncarnations"));
/// assert!(registry.contains("dd.RemovedIncarnations"));
/// ```
pub fn register_record_types(registry: &TypeRegistry) {
    registry.register::<PrunedIncarnations>();
    registry.register::<RemovedIncarnations>();
}

/// Starts replicators.
#[derive(Debug, Clone, Copy)]
pub struct DistributedData;

impl DistributedData {
    /// Starts the replica of `cluster.self_id()`: loads every durable entry (when
    /// [`Settings::durable_store`] is set) before serving anything, then spawns the replica task.
    ///
    /// Must be called within a tokio runtime. A load error fails the start
    /// ([`ReplicatorError::LoadFailure`]); the replica never starts empty instead.
    pub async fn start<C: Cluster, T: Transport>(
        cluster: C,
        transport: T,
        settings: Settings,
    ) -> Result<Replicator, ReplicatorError> {
        settings.validate()?;
        let self_id = cluster.self_id();
        let transport: Arc<dyn Transport> = Arc::new(transport);
        let incoming = transport
            .incoming()
            .map_err(|e| ReplicatorError::Transport(e.to_string()))?;
        let registry = settings.registry.clone();
        register_record_types(&registry);
        let recovered = match &settings.durable_store {
            Some(store) => match load::load_durable(store.as_ref(), &self_id, &registry).await {
                Ok(r) => r,
                Err(e) => {
                    transport.shutdown();
                    return Err(e);
                }
            },
            None => load::Recovered::default(),
        };
        let members_rx = cluster.members();
        let members = members_rx.borrow().clone();
        transport.follow_members(cluster.members());
        let (tx, commands) = mpsc::channel(settings.command_buffer);
        let (replica, internal_rx) =
            Replica::new(self_id.clone(), settings, transport, recovered, members);
        let type_conflicts = replica.type_conflicts();
        let inputs = Inputs {
            commands,
            incoming,
            members: members_rx,
            settled: cluster.view_settled(),
            stopped: cluster.stopped(),
        };
        tokio::spawn(async move {
            // Keep the cluster (and whatever it owns) alive as long as the replica runs.
            let _cluster = cluster;
            replica.run(inputs, internal_rx).await;
        });
        Ok(Replicator {
            tx,
            self_id,
            registry,
            type_conflicts,
        })
    }
}

/// A snapshot of a replica's view of the cluster, for status pages and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatorStatus {
    /// This replica's identity.
    pub self_id: UniqueReplicaId,
    /// The current members (including this replica), with addresses where known.
    pub members: Members,
    /// The incarnation of each peer this replica has heard from.
    pub peer_incarnations: BTreeMap<ReplicaId, UniqueReplicaId>,
    /// How long ago each peer this replica has heard from last sent it a message.
    pub peer_last_heard: BTreeMap<ReplicaId, std::time::Duration>,
    /// Incarnations considered removed (left the cluster or restarted); their entries are pruned.
    pub removed: BTreeSet<UniqueReplicaId>,
    /// Keys with a value.
    pub keys: usize,
    /// Keys whose value still holds entries of a removed incarnation (their pruning has not
    /// completed here yet); 0 once every removed replica's entries are pruned.
    pub awaiting_pruning: usize,
    /// Every incarnation that has entries in some local value (a removed one disappears from
    /// here once its pruning is complete).
    pub incarnations_in_data: BTreeSet<UniqueReplicaId>,
    /// Deleted keys (tombstones).
    pub tombstones: usize,
    /// The durable store, if any.
    pub durable_store: Option<String>,
    /// Whether the durable store keeps up with the writes, if there is one. While it is
    /// unhealthy the replica serves from memory and the store retries the failed writes.
    pub durable_health: Option<crate::durable::DurableHealth>,
    /// The streams of states this replica sent, by receiver (kept after a stream ends, until
    /// the receiver leaves): what they buffer and how many batches went (see `stream_window`).
    pub streams: BTreeMap<ReplicaId, StreamStatus>,
}

/// The stream of states from a replica to one peer, as [`ReplicatorStatus::streams`] reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStatus {
    /// Bytes the sender holds for the stream now: the states of its unacknowledged batches and
    /// the encoded state waiting to open the next batch (entries as batches count them: state
    /// plus key name). The key names still queued are not counted.
    pub buffered_bytes: u64,
    /// The most `buffered_bytes` ever were (since the receiver became a member).
    pub peak_buffered_bytes: u64,
    /// Key names queued, not yet in a batch.
    pub queued_keys: u64,
    /// Batches sent, first sendings and resends.
    pub batches_sent: u64,
    /// Batches whose keys were queued again because they stayed unacknowledged past the
    /// timeout (each such key goes in a later batch, counted in `batches_sent` again).
    pub batches_resent: u64,
    /// The largest batch sent, in the bytes batches count (see `buffered_bytes`).
    pub largest_batch_bytes: u64,
    /// Acknowledgements ignored because they named another stream or sender incarnation.
    pub stale_acks: u64,
}

/// Keys that two or more replicas created with different CRDT types, as one replica saw them:
/// each key with every type name seen. Every replica keeps the value of the type whose name
/// (its [`TypeName`](crate::TypeName), e.g. `GCounter`, `ORSet<String>`) sorts first and drops
/// the others, so the replicas converge on one value. Held in memory: a restarted replica keeps
/// the converged value but no longer lists the conflict.
pub type TypeConflicts = BTreeMap<String, BTreeSet<String>>;

/// A handle to a running replica. Cheap to clone; all clones talk to the same replica task.
#[derive(Clone, Debug)]
pub struct Replicator {
    tx: mpsc::Sender<Command>,
    self_id: UniqueReplicaId,
    registry: TypeRegistry,
    type_conflicts: watch::Receiver<TypeConflicts>,
}

fn downcast<T: Crdt>(key: &str, value: Box<dyn ErasedData>) -> Result<T, ReplicatorError> {
    let found = value.data_type_name();
    value
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| ReplicatorError::WrongType {
            key: key.to_owned(),
            expected: T::type_name(),
            found,
        })
}

impl Replicator {
    /// This replica's identity (use it as the node in CRDT operations).
    pub fn self_id(&self) -> UniqueReplicaId {
        self.self_id.clone()
    }

    /// The keys this replica saw created with different types on different replicas (see
    /// [`TypeConflicts`]).
    pub fn type_conflicts(&self) -> TypeConflicts {
        self.type_conflicts.borrow().clone()
    }

    /// The type names seen for `key` if it is in a type conflict (see [`TypeConflicts`]).
    pub fn type_conflict(&self, key: &str) -> Option<BTreeSet<String>> {
        self.type_conflicts.borrow().get(key).cloned()
    }

    async fn call<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> Command,
    ) -> Result<R, ReplicatorError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ReplicatorError::Shutdown)?;
        rx.await.map_err(|_| ReplicatorError::Shutdown)
    }

    /// Reads `key` with the given consistency. Errors: `NotFound`, `Deleted`, `WrongType`,
    /// `Timeout { applied_locally: false }` when not enough replicas answered.
    pub async fn get<T: Crdt>(
        &self,
        key: &Key<T>,
        consistency: ReadConsistency,
    ) -> Result<T, ReplicatorError> {
        self.registry.register::<T>();
        let value = self
            .call(|reply| Command::Get {
                key: key.id().to_owned(),
                type_name: T::type_name(),
                consistency,
                reply,
            })
            .await??;
        downcast(key.id(), value)
    }

    /// Updates `key`: `modify` is applied to the current value (or to `initial` when the key
    /// has none) and the result replaces it. A failed `modify` leaves the value unchanged
    /// ([`ReplicatorError::ModifyFailed`]). Resolves once the durable store (for durable keys)
    /// and the replicas the consistency level asks for have the new value; returns it.
    ///
    /// A `Timeout { applied_locally: true }` means the update is applied here and will spread
    /// by gossip. A deleted key cannot be updated (`Deleted`).
    pub async fn update<T, E, F>(
        &self,
        key: &Key<T>,
        initial: T,
        consistency: WriteConsistency,
        modify: F,
    ) -> Result<T, ReplicatorError>
    where
        T: Crdt,
        E: Into<BoxError>,
        F: FnOnce(&mut T) -> Result<(), E> + Send + 'static,
    {
        self.registry.register::<T>();
        let id = key.id().to_owned();
        let modify: ModifyFn = Box::new(move |existing| {
            let mut value =
                match existing {
                    None => initial,
                    Some(e) => e.downcast_ref::<T>().cloned().ok_or_else(|| {
                        ReplicatorError::WrongType {
                            key: id.clone(),
                            expected: T::type_name(),
                            found: e.data_type_name(),
                        }
                    })?,
                };
            modify(&mut value).map_err(|e| ReplicatorError::ModifyFailed {
                key: id,
                source: e.into(),
            })?;
            Ok(Box::new(value) as Box<dyn ErasedData>)
        });
        let value = self
            .call(|reply| Command::Update {
                key: key.id().to_owned(),
                type_name: T::type_name(),
                consistency,
                modify,
                reply,
            })
            .await??;
        downcast(key.id(), value)
    }

    /// Deletes `key` for good: the tombstone spreads to every replica and wins over any value.
    /// Deleting an already deleted key gives `Deleted`.
    pub async fn delete<T: Crdt>(
        &self,
        key: &Key<T>,
        consistency: WriteConsistency,
    ) -> Result<(), ReplicatorError> {
        self.call(|reply| Command::Delete {
            key: key.id().to_owned(),
            type_name: T::type_name(),
            consistency,
            reply,
        })
        .await?
    }

    /// Subscribes to `key`: the stream yields the current value first (when there is one),
    /// then the value after changes (coalesced per `notify_interval`). It ends when the key is
    /// deleted or the replicator shuts down. `WrongType` if the key holds another type.
    pub async fn subscribe<T: Crdt>(
        &self,
        key: &Key<T>,
    ) -> Result<impl Stream<Item = T> + Send + 'static + use<T>, ReplicatorError> {
        self.registry.register::<T>();
        let rx = self
            .call(|reply| Command::Subscribe {
                key: key.id().to_owned(),
                type_name: T::type_name(),
                reply,
            })
            .await??;
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let value = rx.borrow_and_update().clone();
                match value {
                    None => continue,
                    Some(Value::Deleted) => return None,
                    Some(Value::Data(d)) => {
                        if let Some(t) = d.downcast_ref::<T>() {
                            return Some((t.clone(), rx));
                        }
                        return None;
                    }
                }
            }
        }))
    }

    /// The ids of every key that has a value (deleted keys excluded).
    pub async fn keys(&self) -> Result<BTreeSet<String>, ReplicatorError> {
        self.call(|reply| Command::Keys { reply }).await
    }

    /// This replica's view of the cluster (members, peer incarnations, key counts).
    pub async fn status(&self) -> Result<ReplicatorStatus, ReplicatorError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// Stops the replica: no more gossip, durable storage flushed, task ended. Later calls on
    /// any handle give `Shutdown`.
    pub async fn shutdown(&self) -> Result<(), ReplicatorError> {
        self.call(|reply| Command::Shutdown { reply }).await?
    }
}
