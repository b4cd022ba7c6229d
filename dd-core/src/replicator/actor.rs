//! The replica task: owns the data of one replica and serves commands, gossip, deltas,
//! coordinated writes and reads, subscriptions, pruning and durable storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::task::Poll;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::command::{Command, Conflicts, Internal, ModifyFn, ValueReply};
use super::consistency::{ReadConsistency, WriteConsistency};
use super::coordinator::{Replies, await_write, collect_reads};
use super::durable_writer::{DurableWriter, QueueLimits};
use super::envelope::{Envelope, Pruning, Value, is_durable_key};
use super::error::ReplicatorError;
use super::load::Recovered;
use super::merkle::MerkleTree;
use super::protocol::{Message, WireDelta, WireEntry};
use super::pruning_record::{
    PEERS_KEY, REMOVED_KEY, RESTARTED_KEY, RemovedIncarnations, is_reserved, markers_key,
};
use super::settings::Settings;
use crate::cluster::Members;
use crate::data::{ErasedData, TypeRegistry};
use crate::replica::{ReplicaId, UniqueReplicaId};
use crate::transport::{Incoming, IncomingStream, Transport};

mod anti_entropy;
mod chunks;
mod stream;

/// One key's envelope plus its cached digest.
///
/// Kept small (one 104-byte allocation per key, see the `entry_stays_small` test): the
/// rarely used pruning bookkeeping is out of line ([`RareSet`]), the tree digest is a plain
/// `u64` with its presence in [`Entry::flags`], and the stored markers are a flag.
struct Entry {
    env: Envelope,
    digest: Option<u64>,
    /// The digest this key contributes to the anti-entropy tree when [`IN_TREE`] is set in
    /// `flags` (see [`Entry::in_tree`]).
    tree_digest: u64,
    /// Removed incarnations whose pruning must be started on this key even when the value holds
    /// no entries of theirs: owners of "pruning initialized" markers dropped because the owner
    /// was gone (see [`Replica::drop_orphaned_markers`]), and the incarnations those markers were
    /// for. An owner may have performed its pruning, stored the collapsed value and stopped
    /// before any peer learned it; the "pruning performed" marker for the owner makes every
    /// replica drop that collapsed copy if it comes back from the owner's store.
    prune_anyway: RareSet,
    /// [`IN_TREE`], [`UNCONFIRMED`] and [`MARKERS_STORED`].
    flags: u8,
}

/// [`Entry::flags`]: the key contributes [`Entry::tree_digest`] to the anti-entropy tree.
const IN_TREE: u8 = 1;
/// [`Entry::flags`]: a value loaded from the durable store, not yet confirmed by a peer's full
/// state (see [`Entry::confirmed`]).
const UNCONFIRMED: u8 = 2;
/// [`Entry::flags`]: the durable store holds "pruning performed" markers for this key (the
/// last ones handed to it were not empty).
const MARKERS_STORED: u8 = 4;

impl Entry {
    fn new(env: Envelope) -> Box<Self> {
        Box::new(Self {
            env,
            digest: None,
            tree_digest: 0,
            prune_anyway: RareSet::default(),
            flags: 0,
        })
    }

    fn loaded(env: Envelope) -> Box<Self> {
        let stored = !env.performed_markers().is_empty();
        Box::new(Self {
            env,
            digest: None,
            tree_digest: 0,
            prune_anyway: RareSet::default(),
            flags: UNCONFIRMED | if stored { MARKERS_STORED } else { 0 },
        })
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// The digest this key contributes to the anti-entropy tree (`None`: not in it yet).
    fn in_tree(&self) -> Option<u64> {
        self.flag(IN_TREE).then_some(self.tree_digest)
    }

    /// Sets what this key contributes to the tree; returns what it contributed before.
    fn replace_in_tree(&mut self, new: Option<u64>) -> Option<u64> {
        let old = self.in_tree();
        self.tree_digest = new.unwrap_or(0);
        self.set_flag(IN_TREE, new.is_some());
        old
    }

    /// False for a value loaded from the durable store until a peer's full state of the key was
    /// merged (or found equal): until then it may predate pruning this replica has not seen, so
    /// deltas (which carry no pruning markers) are not applied to it.
    fn confirmed(&self) -> bool {
        !self.flag(UNCONFIRMED)
    }

    fn set_confirmed(&mut self) {
        self.set_flag(UNCONFIRMED, false);
    }

    /// Whether the "pruning performed" markers last handed to the durable store for this key
    /// were not empty.
    fn markers_stored(&self) -> bool {
        self.flag(MARKERS_STORED)
    }

    fn set_markers_stored(&mut self, stored: bool) {
        self.set_flag(MARKERS_STORED, stored);
    }
}

/// `key`'s entry in `data`, with the key name `data` holds (to share it).
fn entry_mut<'a>(
    data: &'a mut BTreeMap<Arc<str>, Box<Entry>>,
    key: &str,
) -> Option<(&'a Arc<str>, &'a mut Entry)> {
    data.range_mut::<str, _>((Bound::Included(key), Bound::Included(key)))
        .next()
        .map(|(k, e)| (k, &mut **e))
}

/// A set of incarnations that is empty for almost every key: one pointer, and an allocation
/// only while it holds something. The methods are those of the `BTreeSet` it stands for.
/// The box is the point: an empty `BTreeSet` is 24 bytes in every entry, the box 8.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
struct RareSet(Option<Box<BTreeSet<UniqueReplicaId>>>);

impl RareSet {
    fn insert(&mut self, x: UniqueReplicaId) -> bool {
        self.0.get_or_insert_with(Box::default).insert(x)
    }

    fn contains(&self, x: &UniqueReplicaId) -> bool {
        self.0.as_ref().is_some_and(|s| s.contains(x))
    }

    fn clear(&mut self) {
        self.0 = None;
    }

    fn retain(&mut self, keep: impl FnMut(&UniqueReplicaId) -> bool) {
        if let Some(s) = &mut self.0 {
            s.retain(keep);
            if s.is_empty() {
                self.0 = None;
            }
        }
    }
}

/// Everything the replica task owns.
pub(crate) struct Replica {
    self_id: UniqueReplicaId,
    settings: Settings,
    registry: TypeRegistry,
    transport: Arc<dyn Transport>,
    /// Every key's state, boxed: a B-tree node then holds 24 bytes per key instead of the whole
    /// entry, which matters because nodes filled in key order stay about half full. The key
    /// name is shared (one allocation) with [`Replica::tree_dirty`] and the tree's leaf lists.
    data: BTreeMap<Arc<str>, Box<Entry>>,
    members: Members,
    incarnations: HashMap<ReplicaId, UniqueReplicaId>,
    removed: BTreeSet<UniqueReplicaId>,
    /// The removed set last handed to the durable store.
    stored_removed: BTreeSet<UniqueReplicaId>,
    /// The removed incarnations whose replica restarted rather than left (a subset of
    /// `removed`): while such a replica is not a member of this replica's view, its live
    /// incarnation may be pruning them at the same time, so this replica does not (see
    /// [`Replica::unaccounted_replicas`]). Stored under `__dd/restarted`.
    restarted: BTreeSet<UniqueReplicaId>,
    /// The restarted set last handed to the durable store.
    stored_restarted: BTreeSet<UniqueReplicaId>,
    /// Replicas that left the membership since this replica started: every incarnation of
    /// theirs found in the data is removed, also ones never heard from directly.
    departed: BTreeSet<ReplicaId>,
    /// When each peer was last heard from (for choosing a reachable pruning leader).
    last_heard: HashMap<ReplicaId, Instant>,
    pending: HashMap<u64, mpsc::UnboundedSender<Incoming>>,
    next_request: u64,
    watchers: HashMap<String, watch::Sender<Option<Value>>>,
    to_notify: BTreeSet<String>,
    deltas_pending: BTreeSet<String>,
    durable: Option<DurableWriter>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    rng: StdRng,
    /// The Merkle tree of key digests compared by anti-entropy (see [`anti_entropy`]).
    tree: MerkleTree,
    /// Keys changed since they were last folded into `tree` (see [`Replica::tree_changed`]).
    tree_dirty: BTreeSet<Arc<str>>,
    /// Whether some value loaded from the durable store may still be unconfirmed (see
    /// [`Entry::confirmed`]); cleared when a peer's tree root is found equal.
    maybe_unconfirmed: bool,
    /// Full states too large for one message being received in pieces (see [`chunks`]).
    reassembly: chunks::Reassembly,
    /// The id of the next chunked transfer this replica sends.
    next_transfer: u64,
    /// Streams of many states to peers, with flow control (see [`stream`]).
    streams: stream::Streams,
    /// Set once a "pruning performed" marker for this replica's own current incarnation
    /// arrived: the cluster collapsed its entries, so it takes no more writes.
    own_incarnation_pruned: bool,
    /// When the full state of each key was last exchanged with a peer because a delta for it
    /// had to be refused (at most one exchange per key per gossip interval).
    full_state_asked: HashMap<String, Instant>,
    /// Keys whose delta was refused while their exchange was rate-limited, per sender: they are
    /// exchanged at the next gossip tick after the interval.
    full_state_wanted: BTreeMap<ReplicaId, BTreeSet<String>>,
    /// Replicas that last held pruning back (see [`Replica::unaccounted_replicas`]), for the log.
    pruning_blocked_by: BTreeSet<ReplicaId>,
    /// Whether the membership view has heard from the cluster; no pruning is completed before.
    view_settled: bool,
    /// Replicas an operator confirmed stopped for good: out of the pruning universe while they
    /// are not members (see [`Replica::pruning_universe`]).
    stopped: BTreeSet<ReplicaId>,
    /// Whether the member list has held another replica since this incarnation started.
    had_peer: bool,
    /// The peers last handed to the durable store (`__dd/peers`); until the member list holds a
    /// peer, the ones the store this replica started from recorded (see
    /// [`Replica::waits_for_a_remembered_peer`]).
    stored_peers: BTreeSet<ReplicaId>,
    /// Keys created with different types on different replicas, with every type name seen
    /// (see [`Replica::resolve_type_conflict`]); read by [`super::Replicator::type_conflicts`].
    type_conflicts: watch::Sender<super::TypeConflicts>,
}

/// Why a delta was not applied.
enum DeltaRefused {
    /// The delta cannot be applied before a full state of the key was merged.
    NeedsFullState(String),
    /// The delta is not applicable at all (reserved key, wrong type, undecodable).
    Skipped(String),
}

impl From<String> for DeltaRefused {
    fn from(reason: String) -> Self {
        Self::Skipped(reason)
    }
}

/// The channels the task listens on.
pub(crate) struct Inputs {
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) incoming: IncomingStream,
    pub(crate) members: watch::Receiver<Members>,
    /// Whether the membership view has heard from the cluster
    /// ([`crate::cluster::Cluster::view_settled`]).
    pub(crate) settled: watch::Receiver<bool>,
    /// The replicas confirmed stopped for good ([`crate::cluster::Cluster::stopped`]).
    pub(crate) stopped: watch::Receiver<BTreeSet<ReplicaId>>,
}

/// The next command or message, whichever is ready; when both are, the command if
/// `commands_first` (the actor alternates it, so that neither starves the other, in an order that
/// replays exactly).
enum NextInput {
    Command(Option<Command>),
    Message(Option<Incoming>),
}

async fn next_input(
    commands: &mut mpsc::Receiver<Command>,
    incoming: &mut IncomingStream,
    commands_first: bool,
    incoming_open: bool,
) -> NextInput {
    std::future::poll_fn(|cx| {
        if commands_first && let Poll::Ready(c) = commands.poll_recv(cx) {
            return Poll::Ready(NextInput::Command(c));
        }
        if incoming_open && let Poll::Ready(m) = incoming.poll_next_unpin(cx) {
            return Poll::Ready(NextInput::Message(m));
        }
        if !commands_first && let Poll::Ready(c) = commands.poll_recv(cx) {
            return Poll::Ready(NextInput::Command(c));
        }
        Poll::Pending
    })
    .await
}

/// Waits for `notify`, or forever without one.
async fn wait_for(notify: Option<&tokio::sync::Notify>) {
    match notify {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// Answers a command on a reserved key with [`ReplicatorError::ReservedKey`]; passes others on.
fn refuse_reserved(cmd: Command) -> Result<Command, ()> {
    let reserved = |key: &str| ReplicatorError::ReservedKey {
        key: key.to_owned(),
    };
    match cmd {
        Command::Get { key, reply, .. } if is_reserved(&key) => {
            let _ = reply.send(Err(reserved(&key)));
            Err(())
        }
        Command::Update { key, reply, .. } if is_reserved(&key) => {
            let _ = reply.send(Err(reserved(&key)));
            Err(())
        }
        Command::Delete { key, reply, .. } if is_reserved(&key) => {
            let _ = reply.send(Err(reserved(&key)));
            Err(())
        }
        Command::Subscribe { key, reply, .. } if is_reserved(&key) => {
            let _ = reply.send(Err(reserved(&key)));
            Err(())
        }
        other => Ok(other),
    }
}

impl Replica {
    /// Builds the replica over recovered `data` (from the durable store).
    pub(crate) fn new(
        self_id: UniqueReplicaId,
        settings: Settings,
        transport: Arc<dyn Transport>,
        recovered: Recovered,
        members: Members,
    ) -> (Self, mpsc::UnboundedReceiver<Internal>) {
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let registry = settings.registry.clone();
        let durable = settings.durable_store.clone().map(|store| {
            DurableWriter::spawn(
                store,
                self_id.replica().clone(),
                QueueLimits {
                    max_entries: settings.durable_queue_max_entries,
                    max_bytes: settings.durable_queue_max_bytes,
                },
                internal_tx.clone(),
            )
        });
        let seed = self_id.incarnation();
        let data: BTreeMap<Arc<str>, Box<Entry>> = recovered
            .data
            .into_iter()
            .map(|(k, env)| (Arc::from(k), Entry::loaded(env)))
            .collect();
        let tree_dirty: BTreeSet<Arc<str>> = data.keys().cloned().collect();
        let stored_peers = recovered.peers.clone();
        let had_peer = members.keys().any(|m| m != self_id.replica());
        let replica = Self {
            self_id,
            registry,
            transport,
            data,
            members,
            incarnations: HashMap::new(),
            removed: recovered.removed,
            stored_removed: recovered.stored_removed,
            stored_restarted: recovered.restarted.clone(),
            restarted: recovered.restarted,
            departed: BTreeSet::new(),
            last_heard: HashMap::new(),
            pending: HashMap::new(),
            next_request: 1,
            watchers: HashMap::new(),
            to_notify: BTreeSet::new(),
            deltas_pending: BTreeSet::new(),
            durable,
            internal_tx,
            rng: StdRng::seed_from_u64(seed),
            tree: MerkleTree::new(settings.anti_entropy_depth),
            maybe_unconfirmed: !tree_dirty.is_empty(),
            tree_dirty,
            reassembly: chunks::Reassembly::default(),
            next_transfer: 0,
            streams: stream::Streams::default(),
            own_incarnation_pruned: false,
            full_state_asked: HashMap::new(),
            full_state_wanted: BTreeMap::new(),
            pruning_blocked_by: BTreeSet::new(),
            view_settled: true,
            stopped: BTreeSet::new(),
            had_peer,
            stored_peers,
            type_conflicts: watch::channel(super::TypeConflicts::new()).0,
            settings,
        };
        (replica, internal_rx)
    }

    /// A view of the type conflicts this replica saw, for its handles.
    pub(crate) fn type_conflicts(&self) -> watch::Receiver<super::TypeConflicts> {
        self.type_conflicts.subscribe()
    }

    /// Runs until shutdown or until every handle is dropped.
    pub(crate) async fn run(
        mut self,
        mut inputs: Inputs,
        mut internal_rx: mpsc::UnboundedReceiver<Internal>,
    ) {
        let mut gossip = tokio::time::interval(self.settings.gossip_interval);
        let mut deltas = tokio::time::interval(self.settings.delta_propagation_interval);
        let mut notify = tokio::time::interval(self.settings.notify_interval);
        let mut pruning = tokio::time::interval(self.settings.pruning_interval);
        for t in [&mut gossip, &mut deltas, &mut notify, &mut pruning] {
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        let mut members_open = true;
        let mut incoming_open = true;
        let mut settled_open = true;
        // A cluster without confirmations (the default, its sender gone) takes no turn of the
        // loop: the order of the others stays as it was (dd-sim replays).
        let mut stopped_open = inputs.stopped.has_changed().is_ok();
        self.view_settled = *inputs.settled.borrow_and_update();
        self.stopped = inputs.stopped.borrow_and_update().clone();
        let room = self.durable.as_ref().map(DurableWriter::room);
        // `biased`: the branches are polled in this order, not in tokio's random one, so that a
        // run replays exactly under a paused clock (dd-sim's seeds). Timers, internal results
        // and membership come first (each bounded by its own rate); commands and messages take
        // turns being first, so that neither a stream of messages nor one of commands starves
        // the other.
        let mut commands_first = true;
        loop {
            // Backpressure: while the durable writer's queue is full, no new commands or messages
            // are taken (they wait in their channels); everything else goes on.
            let full = self.durable.as_ref().is_some_and(DurableWriter::is_full);
            commands_first = !commands_first;
            tokio::select! {
                biased;
                () = wait_for(room.as_deref()), if full => {}
                Some(internal) = internal_rx.recv() => self.on_internal(internal),
                changed = inputs.members.changed(), if members_open => match changed {
                    Ok(()) => {
                        let m = inputs.members.borrow_and_update().clone();
                        self.on_members(m);
                    }
                    Err(_) => members_open = false,
                },
                changed = inputs.settled.changed(), if settled_open => match changed {
                    Ok(()) => self.view_settled = *inputs.settled.borrow_and_update(),
                    Err(_) => settled_open = false,
                },
                changed = inputs.stopped.changed(), if stopped_open => match changed {
                    Ok(()) => self.stopped = inputs.stopped.borrow_and_update().clone(),
                    Err(_) => stopped_open = false,
                },
                _ = gossip.tick() => self.gossip_tick(),
                _ = deltas.tick() => self.delta_tick(),
                _ = notify.tick() => self.notify_tick(),
                _ = pruning.tick() => self.pruning_tick(),
                input = next_input(
                    &mut inputs.commands,
                    &mut inputs.incoming,
                    commands_first,
                    incoming_open,
                ), if !full => {
                    match input {
                        NextInput::Command(cmd) => {
                            if self.on_command_or_stop(cmd).await {
                                // The answers of the batches written before the final flush
                                // are waiting: give them to their writes.
                                while let Ok(internal) = internal_rx.try_recv() {
                                    self.on_internal(internal);
                                }
                                return;
                            }
                        }
                        NextInput::Message(Some(m)) => self.on_message(m),
                        NextInput::Message(None) => incoming_open = false,
                    }
                }
            }
        }
    }

    /// Handles one command, or stops on `Shutdown` or when every handle is gone: true if the
    /// actor stops.
    async fn on_command_or_stop(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            Some(Command::Shutdown { reply }) => {
                let _ = reply.send(self.shutdown().await);
                true
            }
            Some(cmd) => {
                self.on_command(cmd);
                false
            }
            None => {
                let _ = self.shutdown().await;
                true
            }
        }
    }

    async fn shutdown(&mut self) -> Result<(), ReplicatorError> {
        self.transport.shutdown();
        self.notify_tick();
        self.watchers.clear();
        if let Some(durable) = &self.durable {
            let store = self
                .settings
                .durable_store
                .as_ref()
                .map(|s| s.describe())
                .unwrap_or_default();
            match durable.flush().await {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(ReplicatorError::StoreFailure {
                        key: format!("<flush of {store}>"),
                        source: Box::new(source),
                    });
                }
                Err(_) => return Err(ReplicatorError::Shutdown),
            }
        }
        Ok(())
    }

    // ----- membership -------------------------------------------------------------------

    fn peers(&self) -> Vec<ReplicaId> {
        self.members
            .keys()
            .filter(|r| *r != self.self_id.replica())
            .cloned()
            .collect()
    }

    fn member_count(&self) -> usize {
        let n = self.members.len();
        if self.members.contains_key(self.self_id.replica()) {
            n
        } else {
            n + 1
        }
    }

    fn on_members(&mut self, members: Members) {
        for gone in self.members.keys() {
            if !members.contains_key(gone) && gone != self.self_id.replica() {
                self.departed.insert(gone.clone());
            }
        }
        for back in members.keys() {
            self.departed.remove(back);
        }
        for gone in self.members.keys() {
            if !members.contains_key(gone) {
                // It left: its incarnations are no longer ones a live incarnation may prune.
                self.restarted.retain(|x| x.replica() != gone);
            }
            if !members.contains_key(gone)
                && let Some(inc) = self.incarnations.remove(gone)
            {
                tracing::info!(replica = %self.self_id, removed = %inc, "member removed");
                self.removed.insert(inc);
            }
        }
        self.had_peer |= members.keys().any(|m| m != self.self_id.replica());
        self.members = members;
        self.persist_removed();
        self.persist_peers();
    }

    /// Whether the durable store this replica started from recorded peers in its member list
    /// (`__dd/peers`) and the member list has held none since: a peer may have performed a
    /// pruning that an earlier incarnation of this replica acknowledged and whose marker never
    /// reached its store (only "performed" markers are stored), so this replica performs no
    /// pruning before a peer is a member (dd-sim seed 10804). Until then [`Self::persist_peers`]
    /// writes nothing, so `stored_peers` still holds what the store recorded.
    fn waits_for_a_remembered_peer(&self) -> bool {
        !self.had_peer && !self.stored_peers.is_empty()
    }

    /// Stores the member list's peers if they changed since they were last stored; not while
    /// this replica started alone from a store that recorded peers and has had none since
    /// (another restart alone must remember them too).
    fn persist_peers(&mut self) {
        if self.waits_for_a_remembered_peer() {
            return;
        }
        let peers: BTreeSet<ReplicaId> = self.peers().into_iter().collect();
        if peers == self.stored_peers {
            return;
        }
        if let Some(d) = &self.durable {
            let removed = peers
                .iter()
                .map(|p| UniqueReplicaId::new(p.clone(), 0))
                .collect();
            d.submit(
                vec![(
                    PEERS_KEY.to_owned(),
                    crate::durable::DurableValue::Data(Box::new(RemovedIncarnations { removed })),
                )],
                None,
            );
            self.stored_peers = peers;
        }
    }

    /// Learns the current incarnation of a peer; an older one is then removed.
    fn note_incarnation(&mut self, from: &UniqueReplicaId) {
        if self.removed.contains(from) || from == &self.self_id {
            return;
        }
        self.last_heard
            .insert(from.replica().clone(), Instant::now());
        match self.incarnations.get(from.replica()) {
            Some(current) if current == from => {}
            Some(current) => {
                tracing::info!(replica = %self.self_id, old = %current, new = %from, "peer restarted");
                self.removed.insert(current.clone());
                self.restarted.insert(current.clone());
                self.incarnations
                    .insert(from.replica().clone(), from.clone());
                self.persist_removed();
            }
            None => {
                self.incarnations
                    .insert(from.replica().clone(), from.clone());
            }
        }
    }

    // ----- local state helpers ---------------------------------------------------------------

    fn is_durable(&self, key: &str) -> bool {
        self.durable.is_some() && is_durable_key(&self.settings.durable_keys, key)
    }

    /// Records that `key` changed: digest, subscribers and pruning acknowledgement.
    fn touched(&mut self, key: &str) {
        let me = self.self_id.replica().clone();
        self.tree_changed(key);
        // With a pruning quorum, an acknowledgement is a promise to one owner at a time (see
        // `Pruning::promises_kept`): the markers whose displaced owners may still perform with
        // this replica's acknowledgement wait. A displaced owner that ended releases it and is
        // pruned on the key too (it may have performed and stored its collapse).
        let mut waiting = BTreeSet::new();
        let mut released = BTreeSet::new();
        if self.settings.pruning_quorum
            && let Some(e) = self.data.get(key)
        {
            for (removed, p) in &e.env.pruning {
                if !p.promises_kept(&self.self_id, |_| false).is_empty() {
                    let open = p.promises_kept(&self.self_id, |o| self.has_ended(o));
                    if open.is_empty() {
                        released.extend(p.promises_kept(&self.self_id, |_| false));
                    } else {
                        tracing::debug!(replica = %self.self_id, key, %removed, owners = ?open,
                            "pruning not acknowledged yet: this replica acknowledged another \
                             owner's marker for it, which may still perform");
                        waiting.insert(removed.clone());
                    }
                }
            }
        }
        if !released.is_empty() {
            self.prune_displaced_owners(key, released);
        }
        if let Some(e) = self.data.get_mut(key) {
            e.digest = None;
            let performed: BTreeSet<UniqueReplicaId> = e
                .env
                .pruning
                .iter()
                .filter(|(_, p)| p.is_performed())
                .map(|(x, _)| x.clone())
                .collect();
            for (removed, p) in e.env.pruning.iter_mut() {
                // Not acknowledged: a pruning whose owner was itself pruned on the key (a live
                // incarnation removed and added back); its collapse would go into a slot every
                // merge drops (dd-sim seed 14).
                if let Pruning::Initialized { owner, seen, .. } = p
                    && !performed.contains(owner)
                    && !waiting.contains(removed)
                {
                    seen.insert(me.clone());
                }
            }
        }
        if self.watchers.contains_key(key) {
            self.to_notify.insert(key.to_owned());
        }
    }

    /// Durable entries for the given keys' current states. A key with "pruning performed"
    /// markers gets its markers entry first, in the same batch, every time: the store keeps them
    /// inside the value's record (one atomic write), so a value from which pruned entries were
    /// removed is never stored without them.
    fn durable_entries<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Vec<(String, crate::durable::DurableValue)> {
        let mut out = Vec::new();
        for k in keys {
            if !self.is_durable(k) {
                continue;
            }
            let Some(e) = self.data.get_mut(k.as_str()) else {
                continue;
            };
            let markers = e.env.performed_markers();
            if matches!(e.env.value, Value::Deleted) {
                if e.markers_stored() {
                    // The tombstone makes the stored markers useless: remove them.
                    out.push((markers_key(k), crate::durable::DurableValue::Deleted));
                    e.set_markers_stored(false);
                }
            } else if !markers.is_empty() {
                out.push((
                    markers_key(k),
                    crate::durable::DurableValue::Data(Box::new(markers)),
                ));
                e.set_markers_stored(true);
            }
            out.push((k.clone(), e.env.to_durable()));
        }
        out
    }

    /// Stores the removed set if it changed since it was last stored.
    fn persist_removed(&mut self) {
        let removed = &self.removed;
        self.restarted.retain(|x| removed.contains(x));
        if self.removed == self.stored_removed && self.restarted == self.stored_restarted {
            return;
        }
        if let Some(d) = &self.durable {
            let record = |removed: &BTreeSet<UniqueReplicaId>| {
                crate::durable::DurableValue::Data(Box::new(RemovedIncarnations {
                    removed: removed.clone(),
                }))
            };
            // The restarted set first: a crash between the two leaves a restarted incarnation
            // of the removed set marked as such, never one unmarked.
            d.submit(
                vec![
                    (RESTARTED_KEY.to_owned(), record(&self.restarted)),
                    (REMOVED_KEY.to_owned(), record(&self.removed)),
                ],
                None,
            );
            self.stored_removed = self.removed.clone();
            self.stored_restarted = self.restarted.clone();
        }
    }

    /// Merges a received envelope. Returns whether the stored value changed.
    ///
    /// `peer` is the replica the envelope came from, when it is one: if this replica drops its
    /// own value for the peer's in a type conflict, it sends the dropped state back so that the
    /// peer sees the conflict too (it would not otherwise: this replica now holds its value).
    fn merge_envelope(
        &mut self,
        key: String,
        env: Envelope,
        from: &str,
        peer: Option<&UniqueReplicaId>,
    ) -> bool {
        if env
            .pruning
            .get(&self.self_id)
            .is_some_and(Pruning::is_performed)
        {
            self.note_own_incarnation_pruned(&key, from);
        }
        if let Some(Entry {
            env:
                Envelope {
                    value: Value::Data(mine),
                    pruning,
                    ..
                },
            ..
        }) = self.data.get(key.as_str()).map(AsRef::as_ref)
        {
            for (removed, p) in &env.pruning {
                if p.is_performed()
                    && removed.replica() == self.self_id.replica()
                    && removed != &self.self_id
                    && !pruning.get(removed).is_some_and(Pruning::is_performed)
                    && mine.mentions(removed)
                {
                    tracing::warn!(replica = %self.self_id, key, from, earlier = %removed,
                        "entries of an earlier incarnation of this replica were pruned while it \
                         was away; its stored entries are dropped in favour of the collapsed \
                         ones (updates it made that reached no other replica before it was \
                         removed are not in them)");
                }
            }
        }
        if let (Some(mine), Some(theirs)) = (
            self.data.get(key.as_str()).and_then(|e| e.env.type_name()),
            env.type_name(),
        ) && mine != theirs
        {
            return self.resolve_type_conflict(key, &mine, &theirs, env, from, peer);
        }
        match self.data.get_mut(key.as_str()) {
            None => {
                let value_changed = true;
                self.data.insert(Arc::from(key.as_str()), Entry::new(env));
                self.touched(&key);
                value_changed
            }
            Some(e) => {
                let before = e.env.value.clone();
                let displaced = e.env.displaced_owners(&env);
                match e.env.merge(env) {
                    Ok(true) => {
                        let value_changed = e.env.value_differs(&before);
                        self.prune_displaced_owners(&key, displaced);
                        self.touched(&key);
                        value_changed
                    }
                    Ok(false) => false,
                    Err(err) => {
                        tracing::warn!(replica = %self.self_id, key, from, error = %err,
                            "state not merged");
                        false
                    }
                }
            }
        }
    }

    /// `key` holds a value of type `mine` and a peer sent one of type `theirs` (two replicas
    /// created it with different types). Every replica keeps the value whose type name sorts
    /// first and drops the other, so all converge on one value whatever the order of merges;
    /// the conflict is recorded (warned once per key and type) and stays visible through
    /// [`super::Replicator::type_conflicts`]. Returns whether the value changed.
    fn resolve_type_conflict(
        &mut self,
        key: String,
        mine: &str,
        theirs: &str,
        env: Envelope,
        from: &str,
        peer: Option<&UniqueReplicaId>,
    ) -> bool {
        let mut types = BTreeSet::new();
        let added = self.type_conflicts.send_if_modified(|conflicts| {
            let seen = conflicts.entry(key.clone()).or_default();
            let added = seen.insert(mine.to_owned()) | seen.insert(theirs.to_owned());
            types = seen.clone();
            added
        });
        if added {
            tracing::warn!(replica = %self.self_id, key, from, ?types,
                kept = types.first().map(String::as_str).unwrap_or_default(),
                "type conflict: the key was created with different types on different replicas; \
                 every replica keeps the value of the type whose name sorts first and drops the \
                 others");
        }
        if theirs > mine {
            return false;
        }
        if let (Some(peer), Some(dropped)) = (peer, self.wire(&key)) {
            self.transport.send(
                peer.replica(),
                Message::Gossip {
                    entries: vec![dropped],
                    request: Vec::new(),
                },
            );
        }
        let Some(e) = self.data.get_mut(key.as_str()) else {
            return false;
        };
        e.env = env;
        self.touched(&key);
        true
    }

    /// A peer collapsed this replica's own current incarnation (it was removed from the
    /// membership while it lived): every entry it writes from now on would be dropped by the
    /// next merge anywhere, and its counters and dots would start over. It stops taking writes.
    fn note_own_incarnation_pruned(&mut self, key: &str, from: &str) {
        if self.own_incarnation_pruned {
            return;
        }
        self.own_incarnation_pruned = true;
        tracing::error!(replica = %self.self_id, key, from,
            "this replica's current incarnation was removed from the cluster and its entries \
             pruned by the other replicas; it refuses every write from now on (they would be \
             dropped): restart it to rejoin with a new incarnation");
    }

    /// The error for a write refused because this incarnation was pruned, if it was.
    fn refuse_write(&self, key: &str) -> Option<ReplicatorError> {
        self.own_incarnation_pruned
            .then(|| ReplicatorError::IncarnationPruned {
                key: key.to_owned(),
                incarnation: self.self_id.to_string(),
            })
    }

    /// Marks a loaded value as confirmed by a peer's full state (see [`Entry::confirmed`]).
    fn confirm(&mut self, key: &str) {
        if let Some(e) = self.data.get_mut(key) {
            e.set_confirmed();
        }
    }

    fn check_type(&self, key: &str, type_name: &str) -> Result<Option<&Envelope>, ReplicatorError> {
        match self.data.get(key) {
            None => Ok(None),
            Some(e) => match &e.env.value {
                Value::Deleted => Ok(Some(&e.env)),
                Value::Data(d) => {
                    let found = d.data_type_name();
                    if found == type_name {
                        Ok(Some(&e.env))
                    } else {
                        Err(ReplicatorError::WrongType {
                            key: key.to_owned(),
                            expected: type_name.to_owned(),
                            found,
                        })
                    }
                }
            },
        }
    }

    fn local_value(
        &self,
        key: &str,
        type_name: &str,
    ) -> Result<Box<dyn ErasedData>, ReplicatorError> {
        match self.check_type(key, type_name)? {
            None => Err(ReplicatorError::NotFound {
                key: key.to_owned(),
            }),
            Some(env) => match &env.value {
                Value::Deleted => Err(ReplicatorError::Deleted {
                    key: key.to_owned(),
                }),
                Value::Data(d) => Ok(d.clone()),
            },
        }
    }

    fn new_request(&mut self) -> (u64, mpsc::UnboundedReceiver<Incoming>) {
        let id = self.next_request;
        self.next_request += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.insert(id, tx);
        (id, rx)
    }

    fn wire(&self, key: &str) -> Option<WireEntry> {
        let e = self.data.get(key)?;
        match e.env.to_wire(key) {
            Ok(w) => Some(w),
            Err(err) => {
                tracing::error!(replica = %self.self_id, key, error = %err, "cannot encode state");
                None
            }
        }
    }

    // ----- commands ---------------------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        let cmd = match refuse_reserved(cmd) {
            Ok(cmd) => cmd,
            Err(()) => return,
        };
        match cmd {
            Command::Get {
                key,
                type_name,
                consistency,
                reply,
            } => self.get(key, type_name, consistency, reply),
            Command::Update {
                key,
                type_name,
                consistency,
                modify,
                reply,
            } => self.update(key, type_name, consistency, modify, reply),
            Command::Delete {
                key,
                type_name,
                consistency,
                reply,
            } => self.delete(key, type_name, consistency, reply),
            Command::Subscribe {
                key,
                type_name,
                reply,
            } => {
                let checked = self
                    .check_type(&key, &type_name)
                    .map(|env| env.map(|e| e.value.clone()));
                let result = checked.map(|current| {
                    let has_value = current.is_some();
                    let sender = self
                        .watchers
                        .entry(key.clone())
                        .or_insert_with(|| watch::channel(None).0);
                    sender.send_replace(current);
                    let mut rx = sender.subscribe();
                    if has_value {
                        rx.mark_changed();
                    }
                    rx
                });
                let _ = reply.send(result);
            }
            Command::Keys { reply } => {
                let keys = self
                    .data
                    .iter()
                    .filter(|(_, e)| matches!(e.env.value, Value::Data(_)))
                    .map(|(k, _)| k.to_string())
                    .collect();
                let _ = reply.send(keys);
            }
            Command::Status { reply } => {
                let _ = reply.send(super::ReplicatorStatus {
                    streams: self.stream_status(),
                    self_id: self.self_id.clone(),
                    members: self.members.clone(),
                    peer_incarnations: self
                        .incarnations
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    peer_last_heard: self
                        .last_heard
                        .iter()
                        .map(|(k, at)| (k.clone(), at.elapsed()))
                        .collect(),
                    removed: self.removed.clone(),
                    keys: self
                        .data
                        .values()
                        .filter(|e| matches!(e.env.value, Value::Data(_)))
                        .count(),
                    awaiting_pruning: self
                        .data
                        .values()
                        .filter(|e| {
                            matches!(&e.env.value, Value::Data(d)
                                if self.removed.iter().any(|x| d.needs_pruning_from(x)))
                        })
                        .count(),
                    incarnations_in_data: self
                        .data
                        .values()
                        .flat_map(|e| match &e.env.value {
                            Value::Data(d) => d.modified_by_nodes(),
                            _ => Default::default(),
                        })
                        .collect(),
                    tombstones: self
                        .data
                        .values()
                        .filter(|e| matches!(e.env.value, Value::Deleted))
                        .count(),
                    durable_store: self.settings.durable_store.as_ref().map(|s| s.describe()),
                    durable_health: self.settings.durable_store.as_ref().map(|s| s.health()),
                });
            }
            Command::Shutdown { .. } => {}
        }
    }

    fn get(
        &mut self,
        key: String,
        type_name: String,
        consistency: ReadConsistency,
        reply: ValueReply,
    ) {
        if let Err(e) = self.check_type(&key, &type_name) {
            let _ = reply.send(Err(e));
            return;
        }
        let required = consistency.required(self.member_count());
        let Some(timeout) = consistency.timeout().filter(|_| required > 1) else {
            let _ = reply.send(self.local_value(&key, &type_name));
            return;
        };
        let (request, rx) = self.new_request();
        for peer in self.peers() {
            self.transport.send(
                &peer,
                Message::Read {
                    request,
                    key: key.clone(),
                },
            );
        }
        let replies = Replies {
            rx,
            needed: required - 1,
        };
        let deadline = Instant::now() + timeout;
        let registry = self.registry.clone();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            match collect_reads(&key, replies, deadline, &registry).await {
                Ok(merged) => {
                    let _ = internal.send(Internal::ReadRepair {
                        key,
                        type_name,
                        merged,
                        reply,
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        });
    }

    fn update(
        &mut self,
        key: String,
        type_name: String,
        consistency: WriteConsistency,
        modify: ModifyFn,
        reply: ValueReply,
    ) {
        if let Some(e) = self.refuse_write(&key) {
            let _ = reply.send(Err(e));
            return;
        }
        let existing = match self.check_type(&key, &type_name) {
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
            Ok(Some(env)) => match &env.value {
                Value::Deleted => {
                    let _ = reply.send(Err(ReplicatorError::Deleted { key }));
                    return;
                }
                Value::Data(d) => Some(d.as_ref()),
            },
            Ok(None) => None,
        };
        let new_value = match modify(existing) {
            Ok(v) => v,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let result = new_value.clone();
        match self.data.get_mut(key.as_str()) {
            Some(e) => e.env.value = Value::Data(new_value),
            None => {
                self.data.insert(
                    Arc::from(key.as_str()),
                    Entry::new(Envelope::data(new_value)),
                );
            }
        }
        self.touched(&key);
        self.deltas_pending.insert(key.clone());
        self.write_out_then(key, consistency, result, reply);
    }

    fn delete(
        &mut self,
        key: String,
        type_name: String,
        consistency: WriteConsistency,
        reply: oneshot::Sender<Result<(), ReplicatorError>>,
    ) {
        if let Some(e) = self.refuse_write(&key) {
            let _ = reply.send(Err(e));
            return;
        }
        match self.check_type(&key, &type_name) {
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
            Ok(Some(env)) if matches!(env.value, Value::Deleted) => {
                let _ = reply.send(Err(ReplicatorError::Deleted { key }));
                return;
            }
            Ok(_) => {}
        }
        match self.data.get_mut(key.as_str()) {
            Some(e) => {
                e.env = Envelope::deleted();
                e.digest = None;
            }
            None => {
                self.data
                    .insert(Arc::from(key.as_str()), Entry::new(Envelope::deleted()));
            }
        }
        self.deltas_pending.remove(&key);
        self.touched(&key);
        self.write_out_then(key, consistency, (), reply);
    }

    /// Stores `key` (if durable) and sends it to the peers the consistency level needs, then
    /// answers `value` on `reply`. A write that needs no peer is answered at once, or by the
    /// durable writer once stored: no task per write on the hot path.
    fn write_out_then<T: Send + 'static>(
        &mut self,
        key: String,
        consistency: WriteConsistency,
        value: T,
        reply: oneshot::Sender<Result<T, ReplicatorError>>,
    ) {
        if consistency.required(self.member_count()) <= 1 {
            let keys = [key.clone()];
            self.persist(
                &keys,
                Some(Box::new(move |stored| {
                    let answer = stored
                        .map(|()| value)
                        .map_err(|source| super::durable_writer::store_error(key, source));
                    let _ = reply.send(answer);
                })),
            );
            return;
        }
        let done = self.write_out(key, consistency);
        tokio::spawn(async move {
            let _ = reply.send(done.await.map(|()| value));
        });
    }

    /// Stores `key` (if durable) and sends it to the peers the consistency level needs;
    /// the future resolves when both are done (or the timeout passed).
    fn write_out(
        &mut self,
        key: String,
        consistency: WriteConsistency,
    ) -> impl Future<Output = Result<(), ReplicatorError>> + Send + 'static {
        let (stored, store) = oneshot::channel();
        self.persist(
            [&key],
            Some(Box::new(move |result| {
                let _ = stored.send(result);
            })),
        );
        let required = consistency.required(self.member_count());
        let timeout = consistency.timeout().unwrap_or_default();
        let mut replies = None;
        if required > 1
            && let Some(entry) = self.wire(&key)
        {
            let (request, rx) = self.new_request();
            for peer in self.peers() {
                self.transport.send(
                    &peer,
                    Message::Write {
                        request,
                        entry: entry.clone(),
                    },
                );
            }
            replies = Some(Replies {
                rx,
                needed: required - 1,
            });
        }
        let deadline = Instant::now() + timeout;
        await_write(key, store, replies, deadline)
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Stored(mut stored) => {
                // Adopted in this same step: every state handed over after it holds the merges.
                if let Some(d) = &self.durable {
                    d.adopted(&stored);
                }
                self.on_conflicts(std::mem::take(&mut stored.conflicts));
                stored.answer();
            }
            Internal::ReadRepair {
                key,
                type_name,
                merged,
                reply,
            } => {
                if let Some(env) = merged {
                    if let Value::Data(d) = &env.value
                        && d.data_type_name() != type_name
                    {
                        let _ = reply.send(Err(ReplicatorError::WrongType {
                            key,
                            expected: type_name,
                            found: d.data_type_name(),
                        }));
                        return;
                    }
                    if self.merge_envelope(key.clone(), env, "read", None) {
                        self.persist_detached([key.clone()]);
                    }
                    self.confirm(&key);
                }
                let _ = reply.send(self.local_value(&key, &type_name));
            }
        }
    }

    /// Adopts values the store merged with a concurrent writer's, and tombstones it found (the
    /// store already holds them).
    fn on_conflicts(&mut self, conflicts: Conflicts) {
        for (key, value) in conflicts {
            if is_reserved(&key) {
                // The store merged our pruning record with the one it held; it keeps the union.
                continue;
            }
            let deleted = matches!(value, crate::durable::DurableValue::Deleted);
            let env = Envelope::from_durable(value);
            if self.merge_envelope(key.clone(), env, "durable store", None) && deleted {
                tracing::warn!(replica = %self.self_id, key,
                    "key deleted in the durable store by another process: deleted here too");
                self.deltas_pending.remove(&key);
            }
        }
    }

    /// Stores the current state of `keys` without waiting for it (errors are logged).
    fn persist_detached(&mut self, keys: impl IntoIterator<Item = String>) {
        let keys: Vec<String> = keys.into_iter().collect();
        self.persist(&keys, None);
    }

    /// The one way the replica writes to its durable store: hands the current state of the
    /// durable ones of `keys` (with their pruning markers) to the durable writer, which writes
    /// them in its next batch, and calls `done` with the outcome once the store answered; at once
    /// with `Ok` when there is nothing durable to write. Merges the store found come back with
    /// the batch's answer and are adopted before `done` is called (see
    /// [`on_conflicts`](Self::on_conflicts)).
    fn persist<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a String>,
        done: Option<super::durable_writer::StoreDone>,
    ) {
        let entries = self.durable_entries(keys);
        match &self.durable {
            Some(d) if !entries.is_empty() => d.submit(entries, done),
            _ => {
                if let Some(done) = done {
                    done(Ok(()));
                }
            }
        }
    }

    // ----- messages from peers -------------------------------------------------------------

    fn on_message(&mut self, incoming: Incoming) {
        let Incoming { from, message } = incoming;
        self.note_incarnation(&from);
        match message {
            Message::Tree {
                depth,
                level,
                nodes,
            } => self.on_tree(&from, depth, level, nodes),
            Message::LeafDigests {
                depth,
                leaves,
                whole,
                digests,
            } => self.on_leaf_digests(&from, depth, leaves, whole, digests),
            Message::Gossip { entries, request } => {
                // The requested states go back as they were before this message's entries are
                // merged (push-pull): the join is the same either way, and a peer whose key has
                // another type gets to see this replica's type, so both sides of a type conflict
                // record it (`key_created_with_two_types_converges_on_the_first_type_name`).
                if !request.is_empty() {
                    self.send_entries(from.replica(), request.iter(), Vec::new());
                }
                self.merge_wire_entries(&from, entries);
            }
            Message::EntryChunk {
                transfer,
                key,
                index,
                count,
                total_bytes,
                bytes,
            } => self.on_entry_chunk(&from, transfer, key, index, count, total_bytes, bytes),
            Message::StreamBatch {
                stream,
                seq,
                entries,
            } => self.on_stream_batch(&from, stream, seq, entries),
            Message::StreamAck {
                incarnation,
                stream,
                seq,
            } => self.on_stream_ack(&from, incarnation, stream, seq),
            Message::Deltas { deltas } => self.on_deltas(&from, deltas),
            Message::Write { request, entry } => {
                let key = entry.key.clone();
                if is_reserved(&key) {
                    tracing::warn!(replica = %self.self_id, %from, key, "reserved key in write ignored");
                    return;
                }
                if self.refuses_writes_of(&from, &key) {
                    // Acknowledging would count the write towards its coordinator's quorum
                    // although the pruning of its incarnation drops what it wrote: no answer,
                    // so a Majority or All write of a removed incarnation fails (times out).
                    tracing::warn!(replica = %self.self_id, %from, key,
                        "write of a removed incarnation (or one being pruned on this key) not \
                         acknowledged");
                    return;
                }
                let ok = match Envelope::from_wire(entry, &self.registry) {
                    Ok((key, env)) => {
                        if self.merge_envelope(key.clone(), env, &from.to_string(), Some(&from)) {
                            self.touched(&key);
                        }
                        self.confirm(&key);
                        true
                    }
                    Err(e) => {
                        tracing::warn!(replica = %self.self_id, %from, key, error = %e,
                            "undecodable write");
                        false
                    }
                };
                if !ok {
                    return;
                }
                let transport = self.transport.clone();
                let to = from.replica().clone();
                // Acknowledged once this replica's store has it (in the writer's batches).
                self.persist(
                    [&key],
                    Some(Box::new(move |stored| {
                        if stored.is_ok() {
                            transport.send(&to, Message::WriteAck { request });
                        }
                    })),
                );
            }
            Message::Read { request, key } => {
                let entry = self.wire(&key);
                self.transport
                    .send(from.replica(), Message::ReadResult { request, entry });
            }
            m @ (Message::WriteAck { request } | Message::ReadResult { request, .. }) => {
                if let Some(tx) = self.pending.get(&request)
                    && tx.send(Incoming { from, message: m }).is_err()
                {
                    self.pending.remove(&request);
                }
            }
        }
    }

    /// Whether a write coordinated by `from` of `key` must not be acknowledged: `from` is known
    /// removed (it left, restarted, or was taken out of the membership while it runs), or its
    /// pruning is under way or performed on `key`, so what it wrote would be dropped.
    fn refuses_writes_of(&self, from: &UniqueReplicaId, key: &str) -> bool {
        self.removed.contains(from)
            || self.departed.contains(from.replica())
            || self
                .data
                .get(key)
                .is_some_and(|e| e.env.pruning.contains_key(from))
    }

    fn merge_wire_entries(&mut self, from: &UniqueReplicaId, entries: Vec<WireEntry>) {
        let mut changed = Vec::new();
        for entry in entries {
            let key = entry.key.clone();
            if is_reserved(&key) {
                tracing::warn!(replica = %self.self_id, %from, key, "reserved key in gossip ignored");
                continue;
            }
            match Envelope::from_wire(entry, &self.registry) {
                Ok((key, env)) => {
                    if self.merge_envelope(key.clone(), env, &from.to_string(), Some(from)) {
                        changed.push(key.clone());
                    }
                    self.confirm(&key);
                }
                Err(e) => tracing::warn!(replica = %self.self_id, %from, key, error = %e,
                    "undecodable gossip entry"),
            }
        }
        self.persist_detached(changed);
    }

    fn digest(&mut self, key: &str) -> Option<u64> {
        let e = self.data.get_mut(key)?;
        if e.digest.is_none() {
            match e.env.digest(key) {
                Ok(d) => e.digest = Some(d),
                Err(err) => {
                    tracing::error!(key, error = %err, "cannot digest state");
                    return None;
                }
            }
        }
        e.digest
    }

    /// Asks `to` for the states of `request` and sends it the states of `keys`, as a stream with
    /// flow control (see [`stream`]): batches bounded by entries and bytes, a window of them in
    /// flight; a state larger than `max_gossip_bytes` goes alone, in pieces (see [`chunks`]).
    fn send_entries<'a>(
        &mut self,
        to: &ReplicaId,
        keys: impl Iterator<Item = &'a String>,
        request: Vec<String>,
    ) {
        // The request goes first, so `to` answers it with its states as they were before it
        // merges this replica's.
        if !request.is_empty() {
            self.transport.send(
                to,
                Message::Gossip {
                    entries: Vec::new(),
                    request,
                },
            );
        }
        let keys: Vec<String> = keys.cloned().collect();
        if !keys.is_empty() {
            self.stream_keys(to, keys);
        }
    }

    fn on_deltas(&mut self, from: &UniqueReplicaId, deltas: Vec<WireDelta>) {
        let mut changed = Vec::new();
        let mut exchange = BTreeSet::new();
        for d in deltas {
            match self.apply_delta(from, &d) {
                Ok(true) => changed.push(d.key.clone()),
                Ok(false) => {}
                Err(DeltaRefused::NeedsFullState(reason)) => {
                    tracing::debug!(replica = %self.self_id, %from, key = d.key, seq = d.seq,
                        reason, "delta refused; exchanging the full state with its sender");
                    exchange.insert(d.key.clone());
                }
                Err(DeltaRefused::Skipped(reason)) => {
                    tracing::debug!(replica = %self.self_id, %from, key = d.key, seq = d.seq,
                        reason, "delta skipped");
                }
            }
        }
        self.persist_detached(changed);
        self.exchange_full_state(from.replica(), exchange);
    }

    /// Sends the sender of refused deltas this replica's full state of their keys and asks for
    /// its own (which carries the pruning markers deltas lack), instead of waiting for chunked
    /// anti-entropy to reach those keys: that can take a full round over every key (minutes at
    /// 100,000 keys), during which this replica would take no update of them from peers. At most
    /// one exchange per key per gossip interval; keys refused again sooner are exchanged at the
    /// next gossip tick after it.
    fn exchange_full_state(&mut self, to: &ReplicaId, keys: BTreeSet<String>) {
        if keys.is_empty() {
            return;
        }
        let now = Instant::now();
        let window = self.settings.gossip_interval;
        let (due, later): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| {
            self.full_state_asked
                .get(k)
                .is_none_or(|t| now.saturating_duration_since(*t) >= window)
        });
        if !later.is_empty() {
            self.full_state_wanted
                .entry(to.clone())
                .or_default()
                .extend(later);
        }
        if due.is_empty() {
            return;
        }
        for k in &due {
            self.full_state_asked.insert(k.clone(), now);
        }
        self.send_entries(to, due.iter(), due.clone());
    }

    /// Exchanges the keys whose exchange was rate-limited, once their interval passed, and
    /// forgets exchange times older than the interval.
    fn exchange_wanted_full_states(&mut self) {
        let now = Instant::now();
        let window = self.settings.gossip_interval;
        self.full_state_asked
            .retain(|_, t| now.saturating_duration_since(*t) < window);
        for (to, keys) in std::mem::take(&mut self.full_state_wanted) {
            if self.members.contains_key(&to) {
                self.exchange_full_state(&to, keys);
            }
        }
    }

    /// Applies one delta if it is the next from `from` (for causal types) and new.
    fn apply_delta(&mut self, from: &UniqueReplicaId, d: &WireDelta) -> Result<bool, DeltaRefused> {
        let wait = |reason: &str| DeltaRefused::NeedsFullState(reason.to_owned());
        if is_reserved(&d.key) {
            return Err(DeltaRefused::Skipped("reserved key".into()));
        }
        let entry = match self.data.get_mut(d.key.as_str()) {
            Some(e) => e,
            None => {
                let zero = self
                    .registry
                    .zero(&d.type_name)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| wait("type has no zero value; waiting for full state"))?;
                if zero.requires_causal_delivery() && d.seq != 1 {
                    return Err(wait("gap before first delta; waiting for full state"));
                }
                self.data
                    .insert(Arc::from(d.key.as_str()), Entry::new(Envelope::data(zero)));
                self.tree_changed(&d.key);
                self.data
                    .get_mut(d.key.as_str())
                    .ok_or_else(|| DeltaRefused::Skipped("entry vanished".into()))?
            }
        };
        if !entry.confirmed() {
            return Err(wait(
                "value loaded from the durable store is not yet confirmed by a peer's \
                full state (it may predate pruning); waiting for full state",
            ));
        }
        if entry.env.pruning.values().any(|p| !p.is_performed()) {
            return Err(wait("pruning under way; waiting for full state"));
        }
        let Value::Data(value) = &mut entry.env.value else {
            return Ok(false);
        };
        if self.removed.iter().any(|x| value.needs_pruning_from(x)) {
            return Err(wait(
                "value holds entries of removed incarnations; waiting for full state",
            ));
        }
        if value.data_type_name() != d.type_name {
            // Created with another type elsewhere: the full states settle which value is kept.
            return Err(wait(&format!(
                "type conflict: have {}, delta of {}; waiting for full state",
                value.data_type_name(),
                d.type_name
            )));
        }
        let current = entry.env.delta_versions.get(from).copied().unwrap_or(0);
        if d.seq <= current {
            return Ok(false);
        }
        if value.requires_causal_delivery() && d.seq != current + 1 {
            return Err(DeltaRefused::NeedsFullState(format!(
                "gap after {current}; waiting for full state"
            )));
        }
        let before = value.clone();
        value
            .merge_delta_bytes(&d.bytes)
            .map_err(|e| e.to_string())?;
        entry.env.delta_versions.insert(from.clone(), d.seq);
        entry.env.clean_after_delta();
        let changed = entry.env.value_differs(&Value::Data(before));
        self.touched(&d.key);
        Ok(changed)
    }

    // ----- periodic work ---------------------------------------------------------------

    fn gossip_tick(&mut self) {
        self.pending.retain(|_, tx| !tx.is_closed());
        self.drop_stale_transfers();
        self.resume_streams();
        self.exchange_wanted_full_states();
        let peers = self.peers();
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.rng.random_range(0..peers.len())].clone();
        if self.defers_anti_entropy(&peer) {
            tracing::debug!(replica = %self.self_id, %peer,
                "anti-entropy round deferred: a stream is running");
            return;
        }
        self.send_tree_root(&peer);
    }

    fn delta_tick(&mut self) {
        if self.deltas_pending.is_empty() {
            return;
        }
        let mut deltas = Vec::new();
        for key in std::mem::take(&mut self.deltas_pending) {
            let Some((shared, entry)) = entry_mut(&mut self.data, &key) else {
                continue;
            };
            let Value::Data(value) = &mut entry.env.value else {
                continue;
            };
            let encoded = value.encode_delta();
            value.reset_delta();
            let bytes = match encoded {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(key, error = %e, "cannot encode delta; full state gossip will carry it");
                    Vec::new()
                }
            };
            let seq = entry
                .env
                .delta_versions
                .get(&self.self_id)
                .copied()
                .unwrap_or(0)
                + 1;
            entry.env.delta_versions.insert(self.self_id.clone(), seq);
            entry.digest = None;
            self.tree_dirty.insert(Arc::clone(shared));
            // Too large (or unencodable): the sequence number still advances, so peers see a
            // gap and wait for the full state.
            if !bytes.is_empty() && bytes.len() <= self.settings.max_gossip_bytes {
                deltas.push(WireDelta {
                    type_name: value.data_type_name(),
                    key,
                    seq,
                    bytes,
                });
            }
        }
        let peers = self.peers();
        for chunk in deltas.chunks(self.settings.max_delta_elements.max(1)) {
            for peer in &peers {
                self.transport.send(
                    peer,
                    Message::Deltas {
                        deltas: chunk.to_vec(),
                    },
                );
            }
        }
    }

    fn notify_tick(&mut self) {
        for key in std::mem::take(&mut self.to_notify) {
            let Some(sender) = self.watchers.get(&key) else {
                continue;
            };
            if sender.receiver_count() == 0 {
                self.watchers.remove(&key);
                continue;
            }
            if let Some(e) = self.data.get(key.as_str()) {
                sender.send_replace(Some(e.env.value.clone()));
            }
        }
    }

    /// Whether this replica leads pruning: no lower-named member was heard from recently (an
    /// unreachable member does not hold pruning up; two replicas that both think they lead are
    /// safe, as the lower owner's marker wins and only the owner collapses).
    fn is_pruning_leader(&self) -> bool {
        let window = self.settings.gossip_interval.saturating_mul(20);
        let me = self.self_id.replica();
        let now = Instant::now();
        !self.members.keys().any(|m| {
            m < me
                && self
                    .last_heard
                    .get(m)
                    .is_some_and(|t| now.saturating_duration_since(*t) <= window)
        })
    }

    /// Whether `owner` can no longer finish a pruning it started: it was removed, is an earlier
    /// incarnation of this replica or of a peer, or its replica is no longer a member.
    fn is_gone(&self, owner: &UniqueReplicaId) -> bool {
        self.removed.contains(owner)
            || (owner.replica() == self.self_id.replica() && *owner != self.self_id)
            || (owner.replica() != self.self_id.replica()
                && !self.members.contains_key(owner.replica()))
            || self
                .incarnations
                .get(owner.replica())
                .is_some_and(|current| current != owner)
    }

    /// Whether `owner` surely ended: removed, of a replica that left, or an earlier incarnation
    /// of this replica. One only missing from this replica's member list (it started alone, or
    /// its view has not converged) or whose replica this replica knows by another incarnation
    /// (the owner may be a newer one not heard from yet: incarnation numbers are not ordered)
    /// may still be running.
    fn has_ended(&self, owner: &UniqueReplicaId) -> bool {
        self.removed.contains(owner)
            || self.departed.contains(owner.replica())
            || (owner.replica() == self.self_id.replica() && owner != &self.self_id)
    }

    /// Starts the pruning of `key` on the owners a merge displaced (see
    /// [`Envelope::displaced_owners`]) that ended, owned by this replica, as markers that travel
    /// with the value: one may have performed its pruning and stored the collapse, which the
    /// "performed" marker for it then drops wherever it comes back.
    fn prune_displaced_owners(&mut self, key: &str, displaced: BTreeSet<UniqueReplicaId>) {
        if self.own_incarnation_pruned {
            // It performs no pruning (see `pruning_tick`); the others prune the owner.
            return;
        }
        let ended: Vec<UniqueReplicaId> = displaced
            .into_iter()
            .filter(|o| self.has_ended(o))
            .collect();
        let Some(e) = self.data.get_mut(key) else {
            return;
        };
        if !matches!(&e.env.value, Value::Data(d) if d.prunes_by_collapsing()) {
            return;
        }
        let mut owners_removed = false;
        for owner in ended {
            if e.env.pruning.contains_key(&owner) || owner == self.self_id {
                continue;
            }
            tracing::debug!(replica = %self.self_id, key, %owner,
                "pruning marker of an ended owner replaced by another owner's; the ended owner is \
                 pruned on the key too");
            e.env
                .pruning
                .insert(owner.clone(), Pruning::started_by(&self.self_id));
            e.digest = None;
            owners_removed |= self.removed.insert(owner);
        }
        if owners_removed {
            self.persist_removed();
        }
    }

    /// Drops "pruning initialized" markers whose owner was removed (for example a pruning
    /// leader that restarted or left), and the current leader starts over. The owner may have
    /// performed the pruning already (every member had seen its marker), stored the collapsed
    /// value and stopped before any peer got it: that copy, in the owner's store, holds the
    /// removed incarnation's entries collapsed into the owner's. Pruning it again here collapses
    /// them a second time, so the owner is pruned on the key too, even where it has no entries:
    /// its "pruning performed" marker drops the first collapsed copy wherever it comes back (its
    /// replica returning from that store, after a restart or a long absence).
    fn drop_orphaned_markers(&mut self) {
        let this = &*self;
        let mut gone: Vec<(String, UniqueReplicaId, UniqueReplicaId)> = Vec::new();
        for (k, e) in &this.data {
            for (removed, p) in &e.env.pruning {
                // The pruning of this replica's own incarnation (the others removed it while it
                // runs) is kept, owner gone or not: the others take it over, and while it is
                // there this replica performs no pruning on the key (see `pruning_tick`).
                // Taken over here, this replica collapsed itself into itself and dropped its own
                // slot as pruned, losing every write it made (dd-sim seeds 132, 483, 653, 751,
                // 1694, 1937); dropped, it performed prunings while being pruned (seed 1114).
                if let Pruning::Initialized { owner, .. } = p
                    && *removed != this.self_id
                    && this.is_gone(owner)
                {
                    gone.push((k.to_string(), removed.clone(), owner.clone()));
                }
            }
        }
        let mut owners_removed = false;
        for (key, removed, owner) in gone {
            // Only an owner that surely ended is pruned: one that is only missing from this
            // replica's member list (it started alone, or its view has not converged) or whose
            // replica this replica knows by another incarnation (the owner may be a newer one
            // not heard from yet: incarnation numbers are not ordered) may still be running.
            let ended = self.has_ended(&owner);
            if let Some(e) = self.data.get_mut(key.as_str()) {
                tracing::debug!(replica = %self.self_id, key, %removed, %owner,
                    owner_pruned_too = ended, "pruning marker of a removed owner dropped");
                e.env.pruning.remove(&removed);
                e.digest = None;
                self.tree_dirty.insert(Arc::from(key.as_str()));
                if ended {
                    // The pruning is taken over here, as markers that travel with the value and
                    // outlive this replica: the leader may not have dropped the marker itself
                    // (it had not got it, or restarted since and lost what it held only in
                    // memory), and a collapse into the owner that comes back later is dropped
                    // only where the owner was pruned (dd-sim seed 3735). Two replicas taking
                    // it over at once are safe: the lower owner's marker wins.
                    // Not by an incarnation the cluster pruned: it performs no pruning.
                    for x in [&removed, &owner] {
                        if !self.own_incarnation_pruned && !e.env.pruning.contains_key(x) {
                            e.env
                                .pruning
                                .insert(x.clone(), Pruning::started_by(&self.self_id));
                        }
                    }
                    e.prune_anyway.insert(owner.clone());
                    owners_removed |= self.removed.insert(owner);
                }
                e.prune_anyway.insert(removed);
            }
        }
        if owners_removed {
            self.persist_removed();
        }
    }

    /// Forgets removed incarnations that no local value mentions and no pruning is under way
    /// for (so the removed set stays small). A stored value that brings one back later only
    /// keeps its (correct) entries unpruned; "pruning performed" markers are kept per key.
    fn compact_removed(&mut self) {
        let data = &self.data;
        self.removed.retain(|x| {
            data.values().any(|e| {
                e.env.pruning.iter().any(|(removed, p)| match p {
                    // Kept while it owns an unfinished pruning, so that marker is dropped.
                    Pruning::Initialized { owner, .. } => removed == x || owner == x,
                    Pruning::Performed { .. } => false,
                }) || e.prune_anyway.contains(x)
                    || matches!(&e.env.value, Value::Data(d) if d.needs_pruning_from(x))
            })
        });
    }

    /// Adds every incarnation of a departed replica found in the data to the removed set.
    fn note_departed_incarnations(&mut self) {
        if self.departed.is_empty() {
            return;
        }
        let mut found = BTreeSet::new();
        for e in self.data.values() {
            if let Value::Data(d) = &e.env.value {
                found.extend(
                    d.modified_by_nodes()
                        .into_iter()
                        .filter(|n| self.departed.contains(n.replica())),
                );
            }
        }
        for inc in found {
            if self.removed.insert(inc.clone()) {
                tracing::info!(replica = %self.self_id, removed = %inc,
                    "incarnation of a departed replica found in the data");
            }
        }
    }

    /// Replicas that hold entries in the data but are neither members nor accounted for as
    /// removed: this replica's membership view has not heard of them (it started alone, from a
    /// store written while they were its peers, or its gossip membership has not converged yet).
    /// One of them may already have pruned what this replica is about to prune (for example its
    /// own earlier incarnation, while it was away), so pruning is not performed while any exist.
    ///
    /// So are replicas of removed incarnations that were removed because their replica
    /// restarted, while that replica is not a member of this view (this replica restarted alone,
    /// from a store that recorded the restart): its live incarnation leads the pruning of its
    /// own earlier ones too, and may be performing it at the same time.
    fn unaccounted_replicas(&self) -> BTreeSet<ReplicaId> {
        let me = self.self_id.replica();
        let mut out: BTreeSet<ReplicaId> = self
            .restarted
            .iter()
            .filter(|x| {
                x.replica() != me
                    && self.removed.contains(*x)
                    && !self.members.contains_key(x.replica())
                    && !self.departed.contains(x.replica())
            })
            .map(|x| x.replica().clone())
            .collect();
        // Replicas known to the cluster's history: some incarnation of theirs is removed, or
        // was pruned (a marker names it). Dot-based values keep the dots of pruned incarnations
        // for good, so only their replicas that are none of these hold pruning back.
        let mut known: BTreeSet<&ReplicaId> = self.removed.iter().map(|x| x.replica()).collect();
        for e in self.data.values() {
            known.extend(e.env.pruning.keys().map(|x| x.replica()));
        }
        for e in self.data.values() {
            if let Value::Data(d) = &e.env.value {
                let collapsible = d.modified_by_nodes();
                out.extend(
                    d.replicas_in_state()
                        .into_iter()
                        .filter(|n| {
                            n.replica() != me
                                && !self.members.contains_key(n.replica())
                                && !self.removed.contains(n)
                                && !self.departed.contains(n.replica())
                                && (collapsible.contains(n) || !known.contains(n.replica()))
                        })
                        .map(|n| n.replica().clone()),
                );
            }
        }
        out
    }

    /// Whether pruning this replica owns may be performed: the membership view heard from the
    /// cluster, and every replica the data mentions is a member (whose acknowledgement the
    /// markers' `seen` sets carry) or known removed. Logs when that changes.
    fn may_perform_pruning(&mut self) -> bool {
        let owns_any = self.data.values().any(|e| {
            e.env
                .pruning
                .values()
                .any(|p| matches!(p, Pruning::Initialized { owner, .. } if *owner == self.self_id))
        });
        if !owns_any {
            return true;
        }
        if !self.view_settled {
            tracing::debug!(replica = %self.self_id,
                "pruning waits: the membership view has not heard from any other node yet");
            return false;
        }
        if self.waits_for_a_remembered_peer() {
            tracing::debug!(replica = %self.self_id,
                "pruning waits: this replica started alone from a store written while it had \
                 peers (one of them may have performed this pruning already, with this \
                 replica's earlier incarnation's acknowledgement)");
            return false;
        }
        let blocked = self.unaccounted_replicas();
        if blocked != self.pruning_blocked_by {
            if blocked.is_empty() {
                tracing::info!(replica = %self.self_id,
                    "every replica found in the data is a member or removed; pruning proceeds");
            } else {
                tracing::warn!(replica = %self.self_id, unaccounted = ?blocked,
                    "pruning waits: the data holds entries of replicas that are neither members \
                     nor known to be removed (this replica started alone or its membership view \
                     has not converged); they may have pruned already, so this replica does not \
                     complete pruning before they are members or removed");
            }
            self.pruning_blocked_by = blocked;
        }
        self.pruning_blocked_by.is_empty()
    }

    /// The replicas whose acknowledgements a pruning this replica owns counts towards its
    /// quorum ([`Settings::pruning_quorum`], see [`holds_pruning_quorum`]): the members of its
    /// view (itself among them), the replicas that left the member list since this replica
    /// started, and the replicas of removed incarnations not yet pruned, except incarnations
    /// removed because their replica restarted (that replica counts through its live
    /// incarnation, a member, or holds pruning back: [`Self::unaccounted_replicas`]). A replica
    /// removed while it runs is
    /// indistinguishable here from one that stopped, and it may be pruning in a view of its own
    /// (dd-sim seed 43: every member list held only its own replica), also where it wrote
    /// nothing this replica must prune. A replica the operator confirmed stopped for good
    /// ([`crate::cluster::StaticCluster::remove_stopped`]) runs nowhere: it is left out unless
    /// it is a member.
    fn pruning_universe(&self) -> BTreeSet<ReplicaId> {
        let mut out: BTreeSet<ReplicaId> = self.members.keys().cloned().collect();
        out.insert(self.self_id.replica().clone());
        out.extend(
            self.departed
                .iter()
                .chain(
                    self.removed
                        .iter()
                        .filter(|x| !self.restarted.contains(*x))
                        .map(UniqueReplicaId::replica),
                )
                .filter(|r| !self.stopped.contains(*r))
                .cloned(),
        );
        out
    }

    /// Removed-replica pruning, led by the lowest reachable member.
    fn pruning_tick(&mut self) {
        self.note_departed_incarnations();
        self.drop_orphaned_markers();
        if self.settings.pruning_quorum {
            // Acknowledgements held back by a promise (see `touched`) are given once the
            // displaced owner ended, which changes no key.
            let promised: Vec<String> = self
                .data
                .iter()
                .filter(|(_, e)| {
                    e.env.pruning.values().any(|p| {
                        matches!(p, Pruning::Initialized { seen, .. }
                            if !seen.contains(self.self_id.replica()))
                            && !p.promises_kept(&self.self_id, |_| false).is_empty()
                            && p.promises_kept(&self.self_id, |o| self.has_ended(o))
                                .is_empty()
                    })
                })
                .map(|(k, _)| k.to_string())
                .collect();
            for key in promised {
                self.touched(&key);
            }
        }
        self.compact_removed();
        self.persist_removed();
        self.persist_peers();
        let may_perform = self.may_perform_pruning();
        // Only the leader starts pruning; an owner finishes what it started even when another
        // replica leads by now (the markers carry its identity, nobody else may collapse).
        // An incarnation the cluster pruned (removed while it lived) neither starts nor performs
        // any pruning: what it collapsed would go into its own pruned slot, which every merge
        // drops (dd-sim seeds 14 and 23: r2#1, removed and added back, collapsed r1#1 into it).
        let pruned_here = self.own_incarnation_pruned;
        let may_perform = may_perform && !pruned_here;
        let leader = self.is_pruning_leader() && !pruned_here;
        let members: BTreeSet<ReplicaId> = self.members.keys().cloned().collect();
        let quorum = self.settings.pruning_quorum;
        let universe = if quorum {
            self.pruning_universe()
        } else {
            BTreeSet::new()
        };
        let mut short_of_quorum = Vec::new();
        let mut changed = Vec::new();
        for (key, entry) in self.data.iter_mut() {
            let Value::Data(value) = &mut entry.env.value else {
                continue;
            };
            if !value.prunes_by_collapsing() {
                // Dot-based values collapse nothing: no pruning is started or performed for
                // them, and an unfinished one an earlier version started is dropped.
                entry.prune_anyway.clear();
                let before = entry.env.pruning.len();
                entry.env.pruning.retain(|_, p| p.is_performed());
                if entry.env.pruning.len() != before {
                    entry.digest = None;
                    changed.push(key.clone());
                }
                continue;
            }
            let pruning = &entry.env.pruning;
            entry.prune_anyway.retain(|x| !pruning.contains_key(x));
            let mut key_changed = false;
            // No pruning is performed on a key where this replica's own incarnation is being
            // pruned (removed while it runs): two replicas removed live from each other's member
            // lists each collapsed the other into itself, and each collapse was then voided
            // where the other's was applied: a counter counted twice (dd-sim seed 1114, seen
            // once the removed replica no longer pruned itself). A replica that acknowledged
            // both markers relays the first to the second owner with its acknowledgement.
            let pruning_of_me = entry.env.pruning.contains_key(&self.self_id);
            let ready: Vec<UniqueReplicaId> = entry
                .env
                .pruning
                .iter()
                .filter_map(|(removed, p)| match p {
                    Pruning::Initialized { owner, seen, .. }
                        if may_perform
                            && *owner == self.self_id
                            && members.is_subset(seen)
                            && !pruning_of_me =>
                    {
                        if !quorum
                            || holds_pruning_quorum(
                                seen,
                                &universe,
                                removed,
                                self.self_id.replica(),
                            )
                        {
                            Some(removed.clone())
                        } else {
                            short_of_quorum.push((key.clone(), removed.clone()));
                            None
                        }
                    }
                    _ => None,
                })
                .collect();
            for removed in ready {
                value.prune(&removed, &self.self_id);
                entry.env.pruning.insert(
                    removed,
                    Pruning::Performed {
                        owner: Some(self.self_id.clone()),
                    },
                );
                key_changed = true;
            }
            if leader {
                for removed in &self.removed {
                    if !entry.env.pruning.contains_key(removed)
                        && (value.needs_pruning_from(removed)
                            || entry.prune_anyway.contains(removed))
                    {
                        entry
                            .env
                            .pruning
                            .insert(removed.clone(), Pruning::started_by(&self.self_id));
                        key_changed = true;
                    }
                }
            }
            if key_changed {
                entry.digest = None;
                changed.push(key.clone());
            }
        }
        for (key, removed) in short_of_quorum {
            tracing::debug!(replica = %self.self_id, key = &*key, %removed, universe = ?universe,
                "pruning waits: every member saw the marker, but not a quorum of the replicas \
                 known to this replica (members and removed replicas not pruned yet); a replica \
                 removed while it runs may be pruning in a view of its own");
        }
        for key in &changed {
            self.touched(key);
        }
        self.persist_detached(changed.iter().map(|k| k.to_string()));
    }
}

/// Whether the replicas that saw the marker of the pruning of `removed` (`seen`) are a quorum
/// of `universe` (see [`Replica::pruning_universe`]): more than half, or exactly half with the
/// lowest-named replica among them. Two views that disagree (member lists from which live
/// replicas were removed, each side removing the other) cannot both hold a quorum of the same
/// replicas, so at most one of them performs a pruning, and two replicas never collapse each
/// other's incarnations or the same incarnation twice (dd-sim seed 43). A view that lost half
/// of the replicas or more, the lowest-named among them, prunes nothing until they are back:
/// pruning is garbage collection, the values stay right without it.
///
/// A universe of two replicas is the exception: the survivor prunes the other alone, as in
/// Akka, or a cluster of two could never prune its lower-named replica. Split in two while both
/// run, each side may then prune the other (remove a replica only once it is stopped).
fn holds_pruning_quorum(
    seen: &BTreeSet<ReplicaId>,
    universe: &BTreeSet<ReplicaId>,
    removed: &UniqueReplicaId,
    me: &ReplicaId,
) -> bool {
    let pair;
    let universe = if universe.len() <= 2 {
        // Not this replica's own earlier incarnation: its replica is this one.
        pair = universe
            .iter()
            .filter(|r| *r != removed.replica() || *r == me)
            .cloned()
            .collect::<BTreeSet<_>>();
        &pair
    } else {
        universe
    };
    let acknowledged = universe.iter().filter(|r| seen.contains(*r)).count();
    let twice = acknowledged.saturating_mul(2);
    twice > universe.len()
        || (twice == universe.len() && universe.first().is_some_and(|low| seen.contains(low)))
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// Memory per key (issue 19, dd-bench area 5): a key's boxed entry is one heap block of at
    /// most 112 bytes with the allocator's 8-byte header (it was 152 bytes, a 160-byte block),
    /// its slot in the key map 24 bytes (a shared name and the box pointer), and the pruning
    /// bookkeeping almost every key lacks one pointer.
    #[test]
    fn entry_stays_small() {
        eprintln!(
            "Envelope {} (Value {}, DeltaVersions {}, pruning {}), Entry {}, RareSet {}, slot {}",
            size_of::<Envelope>(),
            size_of::<Value>(),
            size_of::<super::super::delta_versions::DeltaVersions>(),
            size_of::<BTreeMap<UniqueReplicaId, Pruning>>(),
            size_of::<Entry>(),
            size_of::<RareSet>(),
            size_of::<(Arc<str>, Box<Entry>)>(),
        );
        assert!(
            size_of::<Entry>() <= 104,
            "Entry is {} bytes",
            size_of::<Entry>()
        );
        assert_eq!(size_of::<RareSet>(), size_of::<usize>());
        assert!(size_of::<(Arc<str>, Box<Entry>)>() <= 24);
    }

    fn set(names: &[&str]) -> BTreeSet<ReplicaId> {
        names.iter().map(|n| ReplicaId::new(*n)).collect()
    }

    /// Seed 43's views: r0, r1 and r3 each alone, each knowing the three. No view holds a
    /// quorum, so none prunes; two of three do, and exactly half only with the lowest-named.
    #[test]
    fn a_pruning_quorum_is_a_majority_or_the_half_with_the_lowest_named_replica() {
        let all = set(&["r0", "r1", "r3"]);
        let r1 = UniqueReplicaId::new("r1", 1);
        let r0 = ReplicaId::new("r0");
        for alone in ["r0", "r1", "r3"] {
            assert!(
                !holds_pruning_quorum(&set(&[alone]), &all, &r1, &r0),
                "{alone}"
            );
        }
        assert!(holds_pruning_quorum(&set(&["r0", "r3"]), &all, &r1, &r0));
        let four = set(&["r0", "r1", "r2", "r3"]);
        assert!(holds_pruning_quorum(&set(&["r0", "r3"]), &four, &r1, &r0));
        assert!(!holds_pruning_quorum(&set(&["r2", "r3"]), &four, &r1, &r0));
        // Two replicas: the survivor prunes the other alone, and its own earlier incarnation.
        let two = set(&["a", "b"]);
        let (a, b) = (ReplicaId::new("a"), ReplicaId::new("b"));
        assert!(holds_pruning_quorum(
            &set(&["b"]),
            &two,
            &UniqueReplicaId::new("a", 1),
            &b
        ));
        assert!(holds_pruning_quorum(
            &set(&["a"]),
            &set(&["a"]),
            &UniqueReplicaId::new("a", 1),
            &a
        ));
    }
}
