//! Runs an event list on a simulated cluster in simulated time and checks the oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dd_core::cluster::StaticCluster;
use dd_core::crdt::Crdt;
use dd_core::crdt::{GCounter, LWWRegister, ORMap, ORSet, PNCounter};
use dd_core::durable::CrdtValueStore;
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::store::fault::{Fault, FaultSwitch};
use dd_core::store::memory::MemoryStore;
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

use crate::config::{FaultClass, Mode, SimConfig};
use crate::event::{Doomed, Event, Level, StoreFault};
use crate::net::CrashableTransport;
use crate::oracle::{Breach, Model, Observed, Snapshot};
use crate::store::Observed as ObservedStore;

/// How long a write or read waits for other replicas.
const LEVEL_TIMEOUT: Duration = Duration::from_millis(800);
/// The bound of any single call into a replicator: past it the run fails as stuck.
const CALL_BOUND: Duration = Duration::from_secs(60);
/// How long quiescence may take (simulated time).
const QUIESCE_BOUND: Duration = Duration::from_secs(120);
/// How long a returning replica waits for its incarnation to be pruned (simulated time).
const PRUNE_BOUND: Duration = Duration::from_secs(30);

/// The counts of a run, printed as its summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events executed (events that did not apply are skipped and not counted).
    pub events: usize,
    /// Single-replica crashes.
    pub crashes: u64,
    /// Full-cluster restarts and crashes.
    pub full_restarts: u64,
    /// Partitions made.
    pub partitions: u64,
    /// Membership changes (removals and additions).
    pub membership_changes: u64,
    /// Incarnations whose pruning completed (seen leaving a replica's removed set).
    pub prunings: u64,
    /// Conflicts dd-durable merged.
    pub conflicts_merged: u64,
    /// Batches that landed in part.
    pub partial_batches: u64,
    /// Store faults injected.
    pub store_faults: u64,
    /// Oracle checks passed.
    pub checks: u64,
    /// Simulated time the run took.
    pub simulated: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "events {} crashes {} full-restarts {} partitions {} membership-changes {} \
             prunings {} conflicts-merged {} partial-batches {} store-faults {} checks {} \
             simulated {:.1}s",
            self.events,
            self.crashes,
            self.full_restarts,
            self.partitions,
            self.membership_changes,
            self.prunings,
            self.conflicts_merged,
            self.partial_batches,
            self.store_faults,
            self.checks,
            self.simulated.as_secs_f64()
        )
    }
}

/// How a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The index (in the event list) of the event during which the failure was found.
    pub at: usize,
    /// What failed.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at event {}: {}", self.at, self.message)
    }
}

struct Live {
    replicator: Replicator,
    cluster: StaticCluster,
    durable: Arc<DurableDistributedDataStore<ObservedStore>>,
    switch: FaultSwitch,
    dead: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Down {
    Up,
    Crashed,
    Left,
}

struct Sim {
    config: SimConfig,
    net: MemoryNetwork,
    net_faults: Faults,
    names: Vec<ReplicaId>,
    disks: Vec<MemoryStore>,
    incarnations: Vec<u64>,
    live: Vec<Option<Live>>,
    state: Vec<Down>,
    /// Replicas removed from the others' member lists while alive.
    removed_live: BTreeSet<usize>,
    model: Model,
    summary: Summary,
    partial: Arc<AtomicU64>,
    removed_seen: BTreeMap<usize, BTreeSet<UniqueReplicaId>>,
    pruned: BTreeSet<UniqueReplicaId>,
    start: tokio::time::Instant,
}

fn failure(message: impl Into<String>) -> String {
    message.into()
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(CALL_BOUND, f)
        .await
        .map_err(|_| format!("stuck: {what} did not return within {CALL_BOUND:?}"))
}

fn write_level(level: Level) -> WriteConsistency {
    match level {
        Level::Local => WriteConsistency::Local,
        Level::Two => WriteConsistency::From {
            n: 2,
            timeout: LEVEL_TIMEOUT,
        },
        Level::Majority => WriteConsistency::Majority {
            timeout: LEVEL_TIMEOUT,
            min_capacity: 0,
        },
        Level::All => WriteConsistency::All {
            timeout: LEVEL_TIMEOUT,
        },
    }
}

fn read_level(level: Level) -> ReadConsistency {
    match level {
        Level::Local => ReadConsistency::Local,
        Level::Two => ReadConsistency::From {
            n: 2,
            timeout: LEVEL_TIMEOUT,
        },
        Level::Majority => ReadConsistency::Majority {
            timeout: LEVEL_TIMEOUT,
            min_capacity: 0,
        },
        Level::All => ReadConsistency::All {
            timeout: LEVEL_TIMEOUT,
        },
    }
}

/// Whether an update's outcome is an acknowledgement; errors that are not an expected outcome
/// of the faults (a wrong type, a failed load, ...) fail the run. A write refused with
/// `IncarnationPruned` (the cluster pruned this live incarnation) was not applied: it counts as
/// attempted, never as acknowledged.
fn acked<T>(what: &str, result: Result<T, ReplicatorError>) -> Result<bool, String> {
    match result {
        Ok(_) => Ok(true),
        Err(
            ReplicatorError::Timeout { .. }
            | ReplicatorError::StoreFailure { .. }
            | ReplicatorError::Deleted { .. }
            | ReplicatorError::NotFound { .. }
            | ReplicatorError::IncarnationPruned { .. },
        ) => Ok(false),
        Err(e) => Err(format!("{what}: unexpected error: {e}")),
    }
}

/// The GCounter keys `g0`, `G1` and `g2`. `G1` (like `0s`) sorts before the replicator's
/// `__dd/...` records, so that a batch cut in part may hold its value without its markers
/// (issue 17 item 1).
fn counter_key(k: u8) -> Key<GCounter> {
    match k {
        1 => Key::new("G1"),
        k => Key::new(format!("g{k}")),
    }
}
fn pn_key() -> Key<PNCounter> {
    Key::new("p0")
}
/// The ORSet keys `0s` and `s1`.
fn set_key(s: u8) -> Key<ORSet<String>> {
    match s {
        0 => Key::new("0s"),
        s => Key::new(format!("s{s}")),
    }
}
fn map_key() -> Key<ORMap<String, GCounter>> {
    Key::new("m0")
}
fn register_key() -> Key<LWWRegister<String>> {
    Key::new("l0")
}

async fn observe<T: Crdt>(
    r: &Replicator,
    key: &Key<T>,
    level: ReadConsistency,
    f: impl FnOnce(T) -> Observed,
) -> Observed {
    match r.get(key, level).await {
        Ok(v) => f(v),
        Err(ReplicatorError::NotFound { .. }) => Observed::Missing,
        Err(ReplicatorError::Deleted { .. }) => Observed::Deleted,
        Err(e) => Observed::Error(e.to_string()),
    }
}

/// Every key as `r` holds it locally.
async fn snapshot(r: &Replicator, level: ReadConsistency) -> Snapshot {
    let mut snap = Snapshot::new();
    for k in 0..3u8 {
        let key = counter_key(k);
        let v = observe(r, &key, level, |c| Observed::Counter(c.value())).await;
        snap.insert(key.id().to_owned(), v);
    }
    let v = observe(r, &pn_key(), level, |c| Observed::Pn {
        inc: c.increments().value(),
        dec: c.decrements().value(),
    })
    .await;
    snap.insert(pn_key().id().to_owned(), v);
    for s in 0..2u8 {
        let key = set_key(s);
        let v = observe(r, &key, level, |set| Observed::Set(set.elements())).await;
        snap.insert(key.id().to_owned(), v);
    }
    let v = observe(r, &map_key(), level, |m| {
        Observed::Map(
            m.entries()
                .into_iter()
                .map(|(k, c)| (k, c.value()))
                .collect(),
        )
    })
    .await;
    snap.insert(map_key().id().to_owned(), v);
    let v = observe(r, &register_key(), level, |reg| {
        Observed::Register(reg.value().clone(), reg.timestamp())
    })
    .await;
    snap.insert(register_key().id().to_owned(), v);
    snap
}

/// A key's whole CRDT state as one replica holds it locally, for quiescence.
#[derive(Debug, PartialEq)]
enum Held<T> {
    Value(T),
    Missing,
    Deleted,
    Error(String),
}

async fn held<T: Crdt>(r: &Replicator, key: &Key<T>) -> Held<T> {
    match r.get(key, ReadConsistency::Local).await {
        Ok(v) => Held::Value(v),
        Err(ReplicatorError::NotFound { .. }) => Held::Missing,
        Err(ReplicatorError::Deleted { .. }) => Held::Deleted,
        Err(e) => Held::Error(e.to_string()),
    }
}

/// Every key's whole state (slots, dots, timestamps and writers), not only the value the oracle
/// reads: replicas that read the same values may still hold different states (`{r3#1: 1}` and
/// `{r2#1: 1}` both read 1), so quiescence waits until the states are equal (seeds 9765, 10892,
/// 10914: a quiescence declared on equal reads checked replicas that had not converged).
#[derive(Debug, PartialEq)]
struct States {
    counters: Vec<Held<GCounter>>,
    pn: Held<PNCounter>,
    sets: Vec<Held<ORSet<String>>>,
    map: Held<ORMap<String, GCounter>>,
    register: Held<LWWRegister<String>>,
}

async fn states(r: &Replicator) -> States {
    let mut counters = Vec::new();
    for k in 0..3u8 {
        counters.push(held(r, &counter_key(k)).await);
    }
    let mut sets = Vec::new();
    for s in 0..2u8 {
        sets.push(held(r, &set_key(s)).await);
    }
    States {
        counters,
        pn: held(r, &pn_key()).await,
        sets,
        map: held(r, &map_key()).await,
        register: held(r, &register_key()).await,
    }
}

impl Sim {
    fn new(seed: u64, config: SimConfig) -> Self {
        let n = config.replicas.max(2);
        let net_faults = if config.has(FaultClass::Network) {
            Faults {
                drop_probability: 0.1,
                duplicate_probability: 0.05,
                max_delay: Duration::from_millis(20),
            }
        } else {
            Faults::default()
        };
        Self {
            model: Model::new(config.mode == Mode::WriteBehind),
            net: MemoryNetwork::new(seed, net_faults),
            net_faults,
            names: (0..n).map(|i| ReplicaId::new(format!("r{i}"))).collect(),
            disks: (0..n).map(|_| MemoryStore::new()).collect(),
            incarnations: vec![0; n],
            live: (0..n).map(|_| None).collect(),
            state: vec![Down::Crashed; n],
            removed_live: BTreeSet::new(),
            summary: Summary::default(),
            partial: Arc::new(AtomicU64::new(0)),
            removed_seen: BTreeMap::new(),
            pruned: BTreeSet::new(),
            start: tokio::time::Instant::now(),
            config,
        }
    }

    fn n(&self) -> usize {
        self.names.len()
    }

    fn settings(&self, durable: Arc<dyn CrdtValueStore>) -> Result<Settings, String> {
        let settings = Settings::builder()
            .gossip_interval(Duration::from_millis(100))
            .delta_propagation_interval(Duration::from_millis(30))
            .notify_interval(Duration::from_millis(20))
            .pruning_interval(Duration::from_millis(200))
            // Replicas removed while they run: pruning needs a quorum (seed 43).
            .pruning_quorum(self.config.has(FaultClass::LiveRemovals))
            .durable_store(durable)
            .build()
            .map_err(|e| format!("settings: {e}"))?;
        settings.registry.register::<GCounter>();
        settings.registry.register::<PNCounter>();
        settings.registry.register::<ORSet<String>>();
        settings.registry.register::<ORMap<String, GCounter>>();
        settings.registry.register::<LWWRegister<String>>();
        Ok(settings)
    }

    /// The peers replica `i` lists: every replica but those removed (unless `i` is that one).
    fn peers_of(&self, i: usize) -> Vec<ReplicaId> {
        (0..self.n())
            .filter(|j| *j != i && self.state[*j] != Down::Left && !self.removed_live.contains(j))
            .map(|j| self.names[j].clone())
            .collect()
    }

    async fn start(&mut self, i: usize, alone: bool) -> Result<(), String> {
        self.incarnations[i] += 1;
        self.model.restarted(i);
        if self.removed_live.contains(&i) {
            // Removed live and not added back yet: the others do not list the new incarnation
            // either (below), so it too runs removed from their member lists until `AddBack`.
            self.model.removed_live(i);
        }
        let id = UniqueReplicaId::new(self.names[i].clone(), self.incarnations[i]);
        let dead = Arc::new(AtomicBool::new(false));
        let stack = ObservedStore::new(
            self.disks[i].clone(),
            Arc::clone(&dead),
            self.config.bug,
            Arc::clone(&self.partial),
        );
        let switch = stack.switch();
        let options = DurableOptions {
            write_mode: match self.config.mode {
                Mode::Sync => WriteMode::Sync,
                Mode::WriteBehind => WriteMode::WriteBehind {
                    interval: Duration::from_millis(100),
                },
            },
            retry_interval: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(2),
            operation_timeout: Some(Duration::from_secs(1)),
            ..DurableOptions::default()
        };
        let durable = Arc::new(DurableDistributedDataStore::new(stack, options));
        let settings = self.settings(durable.clone())?;
        let peers = if alone { Vec::new() } else { self.peers_of(i) };
        let cluster = StaticCluster::new(id.clone(), peers);
        let transport = CrashableTransport::new(self.net.join(id.clone()), Arc::clone(&dead));
        let replicator = bounded(
            &format!("start of {id}"),
            DistributedData::start(cluster.clone(), transport, settings),
        )
        .await?
        .map_err(|e| format!("start of {id} failed: {e}"))?;
        self.live[i] = Some(Live {
            replicator,
            cluster: cluster.clone(),
            durable,
            switch,
            dead,
        });
        self.state[i] = Down::Up;
        if alone {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for p in self.peers_of(i) {
                cluster.add_member(p, None);
            }
        }
        // The others list it again (a returning replica).
        for j in 0..self.n() {
            if j != i
                && let Some(l) = &self.live[j]
                && !self.removed_live.contains(&i)
            {
                l.cluster.add_member(self.names[i].clone(), None);
            }
        }
        Ok(())
    }

    /// Crashes replica `i` at once: its store and network are cut off, its task dropped.
    fn crash(&mut self, i: usize, state: Down) {
        if let Some(l) = self.live[i].take() {
            l.dead.store(true, Ordering::SeqCst);
            self.net.leave(&self.names[i]);
            self.summary.conflicts_merged += l.durable.stats().conflicts_merged;
            drop(l);
        }
        self.state[i] = state;
    }

    fn replicator(&self, i: usize) -> Option<&Replicator> {
        self.live.get(i)?.as_ref().map(|l| &l.replicator)
    }

    async fn restart_crashed(&mut self) -> Result<(), String> {
        for i in 0..self.n() {
            if self.state[i] == Down::Crashed {
                self.start(i, false).await?;
            }
        }
        Ok(())
    }

    /// Polls every live replica's removed set; an incarnation that leaves one was pruned.
    async fn note_prunings(&mut self) -> Result<(), String> {
        for i in 0..self.n() {
            let Some(r) = self.replicator(i) else {
                self.removed_seen.remove(&i);
                continue;
            };
            let Ok(status) = bounded("status", r.status()).await? else {
                continue;
            };
            let before = self.removed_seen.insert(i, status.removed.clone());
            for gone in before.unwrap_or_default() {
                if !status.removed.contains(&gone) {
                    self.pruned.insert(gone);
                }
            }
        }
        self.summary.prunings = self.pruned.len() as u64;
        Ok(())
    }

    /// Heals everything, waits until every live replica holds the same values and every store
    /// wrote everything, then checks the oracle.
    async fn quiesce(&mut self) -> Result<Snapshot, String> {
        self.restart_crashed().await?;
        self.net.heal();
        self.net.set_faults(Faults::default());
        for l in self.live.iter().flatten() {
            l.switch.clear();
        }
        let deadline = tokio::time::Instant::now() + QUIESCE_BOUND;
        let snap = loop {
            let mut snaps = Vec::new();
            let mut whole = Vec::new();
            for l in self.live.iter().flatten() {
                snaps.push(
                    bounded(
                        "a local read",
                        snapshot(&l.replicator, ReadConsistency::Local),
                    )
                    .await?,
                );
                whole.push(bounded("a local read", states(&l.replicator)).await?);
            }
            let stores_done = self
                .live
                .iter()
                .flatten()
                .all(|l| l.durable.health().pending == 0);
            let states_equal = whole.windows(2).all(|w| w[0] == w[1]);
            if stores_done && states_equal && snaps.windows(2).all(|w| w[0] == w[1]) {
                break snaps.into_iter().next().unwrap_or_default();
            }
            if tokio::time::Instant::now() >= deadline {
                let mut text = String::new();
                for (i, s) in snaps.iter().enumerate() {
                    text.push_str(&format!("\n  replica #{i}: {s:?}"));
                }
                if !states_equal {
                    for (i, s) in whole.iter().enumerate() {
                        text.push_str(&format!("\n  replica #{i} state: {s:?}"));
                    }
                }
                return Err(failure(format!(
                    "no quiescence within {QUIESCE_BOUND:?} (stores done: {stores_done}, \
                     states equal: {states_equal}):{text}"
                )));
            }
            for l in self.live.iter().flatten() {
                let _ = bounded("a flush", l.durable.flush()).await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.note_prunings().await?;
        self.model
            .check(&snap)
            .map_err(|Breach(b)| format!("oracle: {b}"))?;
        self.model.quiesced();
        self.summary.checks += 1;
        self.net.set_faults(self.net_faults);
        Ok(snap)
    }

    async fn apply(&mut self, ev: &Event) -> Result<bool, String> {
        match ev {
            Event::IncCounter {
                replica,
                key,
                by,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let by = *by;
                let res = bounded(
                    "an update",
                    r.update(
                        &counter_key(*key),
                        GCounter::new(),
                        write_level(*level),
                        move |c| c.increment(&me, by),
                    ),
                )
                .await?;
                let ok = acked("counter update", res)?;
                let signed = i64::try_from(by).unwrap_or(i64::MAX);
                self.model.counter(
                    counter_key(*key).id(),
                    *replica,
                    signed,
                    ok,
                    *level == Level::Local,
                );
            }
            Event::ChangePn { replica, by, level } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let by = *by;
                let res = bounded(
                    "an update",
                    r.update(&pn_key(), PNCounter::new(), write_level(*level), move |c| {
                        c.change(&me, by)
                    }),
                )
                .await?;
                let ok = acked("pn update", res)?;
                self.model
                    .counter(pn_key().id(), *replica, by, ok, *level == Level::Local);
            }
            Event::AddElement {
                replica,
                set,
                element,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let e = format!("e{element}");
                let added = e.clone();
                let res = bounded(
                    "an update",
                    r.update(
                        &set_key(*set),
                        ORSet::new(),
                        write_level(*level),
                        move |s| {
                            s.add(&me, added);
                            Ok::<(), std::convert::Infallible>(())
                        },
                    ),
                )
                .await?;
                let ok = acked("set add", res)?;
                self.model.add(
                    set_key(*set).id(),
                    &e,
                    *replica,
                    1,
                    ok,
                    *level == Level::Local,
                );
            }
            Event::RemoveElement {
                replica,
                set,
                element,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let e = format!("e{element}");
                let removed = e.clone();
                let res = bounded(
                    "an update",
                    r.update(
                        &set_key(*set),
                        ORSet::new(),
                        write_level(*level),
                        move |s| {
                            s.remove(&me, &removed);
                            Ok::<(), std::convert::Infallible>(())
                        },
                    ),
                )
                .await?;
                let ok = acked("set remove", res)?;
                self.model
                    .remove(set_key(*set).id(), &e, *replica, ok, *level == Level::Local);
            }
            Event::IncEntry {
                replica,
                entry,
                by,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let name = format!("k{entry}");
                let k = name.clone();
                let by = *by;
                let res = bounded(
                    "an update",
                    r.update(&map_key(), ORMap::new(), write_level(*level), move |m| {
                        let node = me.clone();
                        m.try_update(&me, k, GCounter::new(), move |c| c.increment(&node, by))
                    }),
                )
                .await?;
                let ok = acked("map update", res)?;
                self.model.add(
                    map_key().id(),
                    &name,
                    *replica,
                    by,
                    ok,
                    *level == Level::Local,
                );
            }
            Event::RemoveEntry {
                replica,
                entry,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let name = format!("k{entry}");
                let k = name.clone();
                let res = bounded(
                    "an update",
                    r.update(&map_key(), ORMap::new(), write_level(*level), move |m| {
                        m.remove(&me, &k);
                        Ok::<(), std::convert::Infallible>(())
                    }),
                )
                .await?;
                let ok = acked("map remove", res)?;
                self.model
                    .remove(map_key().id(), &name, *replica, ok, *level == Level::Local);
            }
            Event::SetRegister {
                replica,
                value,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let me = r.self_id();
                let v = format!("v{value}");
                let ts = i64::try_from(self.model.next_seq()).unwrap_or(i64::MAX);
                let initial = LWWRegister::with_timestamp(&me, v.clone(), ts);
                let set = v.clone();
                let res = bounded(
                    "an update",
                    r.update(&register_key(), initial, write_level(*level), move |reg| {
                        reg.set(&me, set, &move |_: i64, _: &String| ts);
                        Ok::<(), std::convert::Infallible>(())
                    }),
                )
                .await?;
                let ok = acked("register set", res)?;
                self.model.set_register(
                    register_key().id(),
                    &v,
                    ts,
                    *replica,
                    ok,
                    *level == Level::Local,
                );
            }
            Event::Delete {
                replica,
                key,
                level,
            } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                let (id, res) = match key {
                    Doomed::Counter => {
                        let k = counter_key(2);
                        (
                            k.id().to_owned(),
                            bounded("a delete", r.delete(&k, write_level(*level))).await?,
                        )
                    }
                    Doomed::Set => {
                        let k = set_key(1);
                        (
                            k.id().to_owned(),
                            bounded("a delete", r.delete(&k, write_level(*level))).await?,
                        )
                    }
                };
                // Deleting a deleted key answers `Deleted`: it is deleted, and stays so.
                let ok = match res {
                    Err(ReplicatorError::Deleted { .. }) => true,
                    other => acked("delete", other)?,
                };
                self.model.delete(&id, *replica, ok, *level == Level::Local);
            }
            Event::Read { replica, level } => {
                let Some(r) = self.replicator(*replica) else {
                    return Ok(false);
                };
                bounded("a read", snapshot(r, read_level(*level))).await?;
            }
            Event::Sleep { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Event::Partition { split } => {
                if *split == 0 || *split >= self.n() {
                    return Ok(false);
                }
                self.net
                    .partition(&self.names[..*split], &self.names[*split..]);
                self.summary.partitions += 1;
            }
            Event::Heal => self.net.heal(),
            Event::StoreFault { replica, fault } => {
                let Some(l) = self.live.get(*replica).and_then(Option::as_ref) else {
                    return Ok(false);
                };
                l.switch.set(match fault {
                    StoreFault::Down => Fault::Fail,
                    StoreFault::RefuseWrites => Fault::FailWrites,
                    StoreFault::Flaky => Fault::Flaky {
                        error_rate: 0.3,
                        seed: self.summary.store_faults,
                    },
                    StoreFault::Hang => Fault::Hang,
                    StoreFault::Partial => Fault::PartialBatch { written: 1 },
                });
                self.summary.store_faults += 1;
            }
            Event::StoreClear { replica } => {
                let Some(l) = self.live.get(*replica).and_then(Option::as_ref) else {
                    return Ok(false);
                };
                l.switch.clear();
            }
            Event::Crash { replica } => {
                if self.state.get(*replica) != Some(&Down::Up) {
                    return Ok(false);
                }
                self.crash(*replica, Down::Crashed);
                self.model.crashed(Some(*replica));
                self.summary.crashes += 1;
            }
            Event::Restart { replica, alone } => {
                if self.state.get(*replica) != Some(&Down::Crashed) {
                    return Ok(false);
                }
                self.start(*replica, *alone).await?;
            }
            Event::FullRestart => {
                let before = self.quiesce().await?;
                // A replica that left comes back with its stale store: only the others must
                // hold the values they held.
                let was_up: Vec<usize> = (0..self.n())
                    .filter(|i| self.state[*i] == Down::Up)
                    .collect();
                for i in 0..self.n() {
                    self.crash(i, Down::Crashed);
                }
                self.model.crashed(None);
                self.removed_live.clear();
                for i in 0..self.n() {
                    self.start(i, false).await?;
                }
                if self.config.mode == Mode::Sync {
                    for i in was_up {
                        let Some(r) = self.replicator(i) else {
                            continue;
                        };
                        let after =
                            bounded("a local read", snapshot(r, ReadConsistency::Local)).await?;
                        if after != before {
                            return Err(format!(
                                "after a full restart (Sync), replica r{i} holds {after:?}, \
                                 not the values before: {before:?}"
                            ));
                        }
                    }
                }
                self.summary.full_restarts += 1;
                self.quiesce().await?;
            }
            Event::FullCrash => {
                for i in 0..self.n() {
                    self.crash(i, Down::Crashed);
                }
                self.model.crashed(None);
                self.removed_live.clear();
                for i in 0..self.n() {
                    self.start(i, false).await?;
                }
                self.summary.full_restarts += 1;
                self.quiesce().await?;
            }
            Event::Leave { replica } => {
                if self.state.get(*replica) != Some(&Down::Up)
                    || self.state.contains(&Down::Left)
                    || self.removed_live.contains(replica)
                {
                    return Ok(false);
                }
                // A replica removed with updates nobody else has loses them to pruning, by
                // design: it leaves once everything spread.
                self.quiesce().await?;
                self.crash(*replica, Down::Left);
                self.model.crashed(Some(*replica));
                for l in self.live.iter().flatten() {
                    l.cluster.remove_member(&self.names[*replica]);
                }
                self.summary.crashes += 1;
                self.summary.membership_changes += 1;
            }
            Event::Return { replica } => {
                if self.state.get(*replica) != Some(&Down::Left) {
                    return Ok(false);
                }
                let gone =
                    UniqueReplicaId::new(self.names[*replica].clone(), self.incarnations[*replica]);
                let deadline = tokio::time::Instant::now() + PRUNE_BOUND;
                loop {
                    let mut pruned = true;
                    for l in self.live.iter().flatten() {
                        if let Ok(st) = bounded("status", l.replicator.status()).await?
                            && st.removed.contains(&gone)
                        {
                            pruned = false;
                        }
                    }
                    if pruned || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                self.note_prunings().await?;
                self.state[*replica] = Down::Crashed;
                self.start(*replica, false).await?;
                self.model.returned(*replica);
                self.summary.membership_changes += 1;
            }
            Event::RemoveLive { replica } => {
                if self.state.get(*replica) != Some(&Down::Up)
                    || self.removed_live.contains(replica)
                {
                    return Ok(false);
                }
                self.removed_live.insert(*replica);
                self.model.removed_live(*replica);
                for (j, l) in self.live.iter().enumerate() {
                    if j != *replica
                        && let Some(l) = l
                    {
                        l.cluster.remove_member(&self.names[*replica]);
                    }
                }
                self.summary.membership_changes += 1;
            }
            Event::AddBack { replica } => {
                if !self.removed_live.remove(replica) {
                    return Ok(false);
                }
                for (j, l) in self.live.iter().enumerate() {
                    if j != *replica
                        && let Some(l) = l
                    {
                        l.cluster.add_member(self.names[*replica].clone(), None);
                    }
                }
                self.summary.membership_changes += 1;
            }
            Event::Quiesce => {
                // Replicas removed while alive are added back: quiescence is a healed cluster.
                let back: Vec<usize> = self.removed_live.iter().copied().collect();
                for i in back {
                    Box::pin(self.apply(&Event::AddBack { replica: i })).await?;
                }
                self.quiesce().await?;
            }
        }
        Ok(true)
    }

    async fn run(&mut self, events: &[Event]) -> Result<(), Violation> {
        for i in 0..self.n() {
            self.start(i, false)
                .await
                .map_err(|message| Violation { at: 0, message })?;
        }
        for (at, ev) in events.iter().enumerate() {
            match self.apply(ev).await {
                Ok(true) => self.summary.events += 1,
                Ok(false) => {}
                Err(message) => return Err(Violation { at, message }),
            }
            if let Err(message) = self.note_prunings().await {
                return Err(Violation { at, message });
            }
        }
        // The end: everyone back, healed, checked.
        let at = events.len();
        let left: Vec<usize> = (0..self.n())
            .filter(|i| self.state[*i] == Down::Left)
            .collect();
        for i in left {
            self.apply(&Event::Return { replica: i })
                .await
                .map_err(|message| Violation { at, message })?;
        }
        self.apply(&Event::Quiesce)
            .await
            .map_err(|message| Violation { at, message })?;
        Ok(())
    }

    fn finish(&mut self) {
        for i in 0..self.n() {
            if let Some(l) = self.live[i].take() {
                self.summary.conflicts_merged += l.durable.stats().conflicts_merged;
                l.dead.store(true, Ordering::SeqCst);
            }
        }
        self.summary.partial_batches = self.partial.load(Ordering::Relaxed);
        self.summary.simulated = self.start.elapsed();
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the run counted.
    pub summary: Summary,
    /// The failure, if any.
    pub violation: Option<Violation>,
}

/// Runs `events` on a fresh simulated cluster (its own single-threaded tokio runtime with the
/// clock paused: time advances only when every task waits, so a run takes little wall time and
/// a seed replays the same run).
pub fn run_events(seed: u64, config: &SimConfig, events: &[Event]) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Outcome {
                summary: Summary::default(),
                violation: Some(Violation {
                    at: 0,
                    message: format!("cannot build a tokio runtime: {e}"),
                }),
            };
        }
    };
    let config = config.clone();
    let events = events.to_vec();
    runtime.block_on(async move {
        let mut sim = Sim::new(seed, config);
        let result = sim.run(&events).await;
        sim.finish();
        // Let the crashed tasks wind down before the runtime goes.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Outcome {
            summary: sim.summary.clone(),
            violation: result.err(),
        }
    })
}
