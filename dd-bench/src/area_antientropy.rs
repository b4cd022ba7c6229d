//! Area 8: anti-entropy at scale — three replicas, a partition-and-heal scenario per key count
//! (time to repair 1,000 keys changed while one replica was cut off), idle anti-entropy traffic
//! per round when in sync, and process CPU per round, on the in-memory network and over TCP on
//! 127.0.0.1; and a large `ORSet<String>` replicated to an empty replica, stored and restored
//! after that replica's restart.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dd_core::cluster::{Members, StaticCluster};
use dd_core::crdt::{GCounter, ORSet};
use dd_core::durable::CrdtValueStore;
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_core::transport::{IncomingStream, Message, Transport, TransportError};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use tokio::sync::watch;

use crate::backends::BackendSpec;
use crate::child::proc_status_kib;

use crate::Sizes;
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::stats::{fmt_bytes, fmt_ratio, fmt_secs, median, ratio};

/// Keys changed on `a` while `c` is partitioned.
const CHANGED: usize = 1_000;
/// Idle rounds measured per size.
const IDLE_ROUNDS: u64 = 12;
/// Longest wait for any phase before the run fails.
const LIMIT: Duration = Duration::from_secs(900);
/// What protocol version 2 sent per round: one chunk of this many `(key, digest)` pairs.
const V2_DIGESTS_PER_ROUND: usize = 200;

/// Anti-entropy traffic of all replicas, and a partition switch.
#[derive(Default)]
struct Wire {
    /// Tree roots sent: anti-entropy rounds started.
    rounds: AtomicU64,
    /// Anti-entropy messages (tree levels, leaf digests, full states and their pieces).
    messages: AtomicU64,
    /// Their encoded bytes plus the 4-byte frame prefix.
    bytes: AtomicU64,
    /// Replicas cut off from the others: nothing is sent to or from them.
    cut: Mutex<HashSet<ReplicaId>>,
    /// The joining replica whose received states are counted (see [`Joined`]).
    joining: Mutex<Option<ReplicaId>>,
    /// What was sent to and received by the joining replica.
    joined: Mutex<Joined>,
}

/// The messages carrying states ([`Message::StreamBatch`], [`Message::EntryChunk`], a
/// [`Message::Gossip`] with states) sent to the joining replica, and those its transport
/// handed to it.
#[derive(Default)]
struct Joined {
    /// Copies of the messages sent, in order (the raw baseline sends the same ones again).
    sent: Vec<Message>,
    /// Their encoded bytes plus the 4-byte frame prefix.
    bytes: u64,
    /// Of them, those received.
    received: u64,
    /// When the first and the last of them were received.
    first_received: Option<Instant>,
    last_received: Option<Instant>,
}

/// Whether `message` carries states (what the join counts).
fn carries_states(message: &Message) -> bool {
    match message {
        Message::StreamBatch { .. } | Message::EntryChunk { .. } => true,
        Message::Gossip { entries, .. } => !entries.is_empty(),
        _ => false,
    }
}

impl Wire {
    fn reset(&self) {
        self.rounds.store(0, Ordering::SeqCst);
        self.messages.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
    }

    fn is_cut(&self, who: &ReplicaId) -> bool {
        self.cut.lock().map(|c| c.contains(who)).unwrap_or(false)
    }

    fn is_joining(&self, who: &ReplicaId) -> bool {
        self.joining
            .lock()
            .map(|j| j.as_ref() == Some(who))
            .unwrap_or(false)
    }

    fn set_joining(&self, who: Option<ReplicaId>) {
        if let Ok(mut j) = self.joining.lock() {
            *j = who;
        }
    }

    fn take_joined(&self) -> Joined {
        self.joined
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default()
    }

    fn set_cut(&self, who: Option<ReplicaId>) {
        if let Ok(mut c) = self.cut.lock() {
            c.clear();
            c.extend(who);
        }
    }
}

/// A transport that counts anti-entropy traffic and drops messages of a cut-off replica.
struct Gate<T> {
    inner: T,
    me: ReplicaId,
    wire: Arc<Wire>,
}

impl<T: Transport> Transport for Gate<T> {
    fn send(&self, to: &ReplicaId, message: Message) {
        if self.wire.is_cut(&self.me) || self.wire.is_cut(to) {
            return;
        }
        let anti_entropy = match &message {
            Message::Tree { level: 0, .. } | Message::LeafDigests { whole: true, .. } => {
                self.wire.rounds.fetch_add(1, Ordering::Relaxed);
                true
            }
            Message::Tree { .. }
            | Message::LeafDigests { .. }
            | Message::Gossip { .. }
            | Message::EntryChunk { .. }
            | Message::StreamBatch { .. }
            | Message::StreamAck { .. } => true,
            _ => false,
        };
        if anti_entropy {
            let len = message.encode().map_or(0, |b| b.len() as u64 + 4);
            self.wire.messages.fetch_add(1, Ordering::Relaxed);
            self.wire.bytes.fetch_add(len, Ordering::Relaxed);
            if carries_states(&message)
                && self.wire.is_joining(to)
                && let Ok(mut j) = self.wire.joined.lock()
            {
                j.bytes += len;
                j.sent.push(message.clone());
            }
        }
        self.inner.send(to, message);
    }

    fn incoming(&self) -> std::result::Result<IncomingStream, TransportError> {
        use futures::StreamExt as _;
        let wire = self.wire.clone();
        let me = self.me.clone();
        Ok(Box::pin(self.inner.incoming()?.inspect(move |m| {
            if carries_states(&m.message)
                && wire.is_joining(&me)
                && let Ok(mut j) = wire.joined.lock()
            {
                j.received += 1;
                let now = Instant::now();
                j.first_received.get_or_insert(now);
                j.last_received = Some(now);
            }
        })))
    }

    fn follow_members(&self, members: watch::Receiver<Members>) {
        self.inner.follow_members(members);
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Memory,
    Tcp,
}

impl Net {
    fn label(self) -> &'static str {
        match self {
            Net::Memory => "in-memory network",
            Net::Tcp => "TCP 127.0.0.1",
        }
    }
}

/// What one run of the scenario measured.
struct Outcome {
    keys: usize,
    net: Net,
    fill_seconds: f64,
    delta_seconds: f64,
    repair_seconds: f64,
    repair_rounds: u64,
    repair_bytes: u64,
    repair_cpu: f64,
    idle_rounds: u64,
    idle_bytes: u64,
    idle_cpu: f64,
    join: JoinOutcome,
}

/// CPU time of this process so far (user + system), from /proc/self/stat (clock ticks of
/// 10 ms).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (tick(11) + tick(12)) / 100.0
}

fn key(i: usize) -> Key<GCounter> {
    Key::new(format!("counter-{i:07}"))
}

/// The three replicas of a run and what a fourth needs to join them.
struct Started {
    replicas: Vec<Replicator>,
    /// Each replica's cluster view (a joining replica is added to them).
    clusters: Vec<StaticCluster>,
    /// The in-memory network, or the TCP cluster name and the replicas' addresses.
    network: Option<MemoryNetwork>,
    cluster_name: String,
    addresses: Vec<(ReplicaId, Option<SocketAddr>)>,
}

async fn bind_tcp(id: &UniqueReplicaId, cluster_name: &str) -> Result<TcpTransport> {
    let addr = "127.0.0.1:0"
        .parse()
        .map_err(|e| BenchError::Failed(format!("{e}")))?;
    TcpTransport::bind(id.clone(), addr, TcpConfig::new(cluster_name.to_owned()))
        .await
        .context(|| "binding a TCP transport on 127.0.0.1".to_owned())
}

async fn start(net: Net, wire: &Arc<Wire>, settings: &Settings) -> Result<Started> {
    let names: Vec<ReplicaId> = ["a", "b", "c"].map(ReplicaId::new).to_vec();
    let mut replicas = Vec::new();
    let mut clusters = Vec::new();
    match net {
        Net::Memory => {
            let network = MemoryNetwork::new(6, Faults::default());
            for name in &names {
                let id = UniqueReplicaId::new_incarnation(name.clone());
                let peers = names.iter().filter(|p| *p != name).cloned();
                let transport = Gate {
                    inner: network.join(id.clone()),
                    me: name.clone(),
                    wire: wire.clone(),
                };
                let cluster = StaticCluster::new(id.clone(), peers);
                clusters.push(cluster.clone());
                replicas.push(
                    DistributedData::start(cluster, transport, settings.clone())
                        .await
                        .context(|| format!("starting replica {id}"))?,
                );
            }
            Ok(Started {
                replicas,
                clusters,
                network: Some(network),
                cluster_name: String::new(),
                addresses: Vec::new(),
            })
        }
        Net::Tcp => {
            let cluster_name = format!("antientropy-{}", crate::setup::unique_suffix());
            let mut bound = Vec::new();
            for name in &names {
                let id = UniqueReplicaId::new_incarnation(name.clone());
                let t = bind_tcp(&id, &cluster_name).await?;
                bound.push((id, t));
            }
            let addresses: Vec<_> = bound
                .iter()
                .map(|(id, t)| (id.replica().clone(), Some(t.local_addr())))
                .collect();
            for (id, t) in bound {
                let peers = addresses.iter().filter(|(n, _)| n != id.replica()).cloned();
                let cluster =
                    StaticCluster::with_addresses(id.clone(), Some(t.local_addr()), peers);
                clusters.push(cluster.clone());
                let transport = Gate {
                    inner: t,
                    me: id.replica().clone(),
                    wire: wire.clone(),
                };
                replicas.push(
                    DistributedData::start(cluster, transport, settings.clone())
                        .await
                        .context(|| format!("starting replica {id}"))?,
                );
            }
            Ok(Started {
                replicas,
                clusters,
                network: None,
                cluster_name,
                addresses,
            })
        }
    }
}

/// Increments the counters `keys` on `r` by one (Local), 1,000 updates in flight at most.
async fn increment(r: &Replicator, keys: &[usize]) -> Result<()> {
    let me = r.self_id();
    for batch in keys.chunks(1000) {
        let updates = batch.iter().map(|&i| {
            let me = me.clone();
            async move {
                r.update(
                    &key(i),
                    GCounter::new(),
                    WriteConsistency::Local,
                    move |c| c.increment(&me, 1),
                )
                .await
                .map(|_| ())
                .context(|| format!("update of key {i}"))
            }
        });
        for result in futures::future::join_all(updates).await {
            result?;
        }
    }
    Ok(())
}

/// Polls `check` every 10 ms until it holds; fails after [`LIMIT`].
async fn until<F, Fut>(what: &str, mut check: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let started = Instant::now();
    loop {
        if check().await? {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > LIMIT {
            return Err(BenchError::Failed(format!(
                "{what}: not reached within {LIMIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn holds_all(r: &Replicator, n: usize) -> Result<bool> {
    Ok(r.status()
        .await
        .context(|| "replicator status".to_owned())?
        .keys
        == n)
}

async fn has_values(r: &Replicator, keys: &[usize], value: u128) -> Result<bool> {
    for &i in keys {
        match r.get(&key(i), ReadConsistency::Local).await {
            Ok(c) if c.value() == value => {}
            Ok(_) | Err(ReplicatorError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e).context(|| format!("reading key {i}")),
        }
    }
    Ok(true)
}

async fn run_once(net: Net, n: usize, sizes: &Sizes) -> Result<Outcome> {
    let mut builder = Settings::builder().gossip_interval(sizes.antientropy_gossip_interval);
    if let Some(window) = stream_window_from_env()? {
        builder = builder.stream_window(window);
    }
    let settings = builder
        .build()
        .context(|| "replicator settings".to_owned())?;
    let wire = Arc::new(Wire::default());
    let three = start(net, &wire, &settings).await?;
    let rs = &three.replicas;
    let (a, b, c) = (&rs[0], &rs[1], &rs[2]);
    // The writes of every key on a, and the time until b and c hold them all.
    let all: Vec<usize> = (0..n).collect();
    let started = Instant::now();
    increment(a, &all).await?;
    until("b and c hold every key", || async {
        Ok(holds_all(b, n).await? && holds_all(c, n).await?)
    })
    .await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    // Let the trees settle (every replica in sync), then cut c off.
    until("the replicas are in sync", || async {
        Ok(wire.rounds.load(Ordering::SeqCst) >= 3)
    })
    .await?;
    let changed: Vec<usize> = (0..CHANGED)
        .map(|i| i * (n / CHANGED) + n / (2 * CHANGED))
        .collect();
    wire.set_cut(Some(ReplicaId::new("c")));
    let cut_at = Instant::now();
    increment(a, &changed).await?;
    let delta_seconds = until("b has the 1,000 changes by delta", || async {
        has_values(b, &changed, 2).await
    })
    .await?;
    tokio::time::sleep(sizes.antientropy_partition.saturating_sub(cut_at.elapsed())).await;
    wire.reset();
    let cpu = process_cpu_seconds();
    wire.set_cut(None);
    let repair_seconds = until("c has the 1,000 changes", || async {
        has_values(c, &changed, 2).await
    })
    .await?;
    let repair_cpu = process_cpu_seconds() - cpu;
    let repair_rounds = wire.rounds.load(Ordering::SeqCst);
    let repair_bytes = wire.bytes.load(Ordering::SeqCst);
    // Idle: every replica in sync, count a number of rounds.
    until("a round after the repair", || async {
        Ok(wire.rounds.load(Ordering::SeqCst) >= repair_rounds + 3)
    })
    .await?;
    wire.reset();
    let cpu = process_cpu_seconds();
    until("idle rounds", || async {
        Ok(wire.rounds.load(Ordering::SeqCst) >= IDLE_ROUNDS)
    })
    .await?;
    let idle_cpu = process_cpu_seconds() - cpu;
    let idle_rounds = wire.rounds.load(Ordering::SeqCst);
    let idle_bytes = wire.bytes.load(Ordering::SeqCst);
    let join = join_empty(net, &three, &wire, n, &settings).await?;
    for r in rs {
        r.shutdown()
            .await
            .context(|| "replicator shutdown".to_owned())?;
    }
    Ok(Outcome {
        keys: n,
        net,
        fill_seconds,
        delta_seconds,
        repair_seconds,
        repair_rounds,
        repair_bytes,
        repair_cpu,
        idle_rounds: idle_rounds.max(1),
        idle_bytes,
        idle_cpu,
        join,
    })
}

/// Messages the raw baseline keeps in flight at most (the transport's outbound queue holds
/// 4,096 per peer by default; beyond, TCP drops the newest).
const RAW_IN_FLIGHT: u64 = 1024;

/// What the join of an empty replica measured.
struct JoinOutcome {
    /// From starting d until it held every key.
    seconds: f64,
    /// Of it: until d received its first state (d's start and the first anti-entropy round
    /// that finds it empty), and from then until it received its last.
    to_first_state_seconds: f64,
    streaming_seconds: f64,
    /// Messages carrying states sent to d (batches, pieces; resends included), their bytes
    /// (encoded + 4-byte frame prefix), and how many d's transport handed to it.
    frames: u64,
    bytes: u64,
    received: u64,
    /// The same messages sent again raw over the same transport kind, with no replicator:
    /// the time until the receiver had them all, and how many it did not get.
    raw_seconds: f64,
    raw_dropped: u64,
    /// Over the replicas that streamed to d: the largest peak of bytes buffered for d, the
    /// largest batch, how many streamed, batches sent and sent again.
    peak_buffered: u64,
    largest_batch: u64,
    senders: usize,
    batches_sent: u64,
    batches_resent: u64,
    /// `stream_window`.
    window: usize,
}

/// An empty replica d joins the three in-sync replicas of `started`: the time until it holds
/// all `n` keys, what was streamed to it, and the raw streaming of the same messages.
async fn join_empty(
    net: Net,
    started: &Started,
    wire: &Arc<Wire>,
    n: usize,
    settings: &Settings,
) -> Result<JoinOutcome> {
    let d = ReplicaId::new("d");
    let id = UniqueReplicaId::new_incarnation(d.clone());
    let peers: Vec<ReplicaId> = started
        .replicas
        .iter()
        .map(|r| r.self_id().replica().clone())
        .collect();
    wire.take_joined();
    wire.set_joining(Some(d.clone()));
    let begun = Instant::now();
    let joiner = match (net, &started.network) {
        (Net::Memory, Some(network)) => {
            for c in &started.clusters {
                c.add_member(d.clone(), None);
            }
            let transport = Gate {
                inner: network.join(id.clone()),
                me: d.clone(),
                wire: wire.clone(),
            };
            DistributedData::start(
                StaticCluster::new(id.clone(), peers),
                transport,
                settings.clone(),
            )
            .await
        }
        _ => {
            let t = bind_tcp(&id, &started.cluster_name).await?;
            for c in &started.clusters {
                c.add_member(d.clone(), Some(t.local_addr()));
            }
            let cluster = StaticCluster::with_addresses(
                id.clone(),
                Some(t.local_addr()),
                started.addresses.iter().cloned(),
            );
            let transport = Gate {
                inner: t,
                me: d.clone(),
                wire: wire.clone(),
            };
            DistributedData::start(cluster, transport, settings.clone()).await
        }
    }
    .context(|| format!("starting the joining replica {id}"))?;
    // Polling d's status costs d a pass over its keys: poll less often at large sizes (the
    // 1,000,000-key join polled every 100 ms did not finish within the limit).
    let poll = Duration::from_millis((n as u64 / 2_000).max(10));
    loop {
        if holds_all(&joiner, n).await? {
            break;
        }
        if begun.elapsed() > LIMIT {
            return Err(BenchError::Failed(format!(
                "d holds every key: not reached within {LIMIT:?}"
            )));
        }
        tokio::time::sleep(poll).await;
    }
    let seconds = begun.elapsed().as_secs_f64();
    // Batches still on their way (a resend) are counted when they arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    wire.set_joining(None);
    let joined = wire.take_joined();
    let mut peak_buffered = 0;
    let mut largest_batch = 0;
    let mut senders = 0;
    let mut batches_sent = 0;
    let mut batches_resent = 0;
    for r in &started.replicas {
        let status = r
            .status()
            .await
            .context(|| "replicator status".to_owned())?;
        if let Some(s) = status.streams.get(&d) {
            senders += 1;
            peak_buffered = peak_buffered.max(s.peak_buffered_bytes);
            largest_batch = largest_batch.max(s.largest_batch_bytes);
            batches_sent += s.batches_sent;
            batches_resent += s.batches_resent;
        }
    }
    joiner
        .shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    for c in &started.clusters {
        c.remove_member(&d);
    }
    let frames = joined.sent.len() as u64;
    let since_begun = |t: Option<Instant>| t.map_or(0.0, |t| (t - begun).as_secs_f64());
    let to_first_state_seconds = since_begun(joined.first_received);
    let streaming_seconds = since_begun(joined.last_received) - to_first_state_seconds;
    let (raw_seconds, raw_received) = raw_stream(net, joined.sent).await?;
    Ok(JoinOutcome {
        seconds,
        to_first_state_seconds,
        streaming_seconds,
        frames,
        bytes: joined.bytes,
        received: joined.received,
        raw_seconds,
        raw_dropped: frames.saturating_sub(raw_received),
        peak_buffered,
        largest_batch,
        senders,
        batches_sent,
        batches_resent,
        window: settings.stream_window,
    })
}

/// Sends `frames` from one transport to another of the same kind, no replicator, at most
/// [`RAW_IN_FLIGHT`] not yet received: the time until the receiver has them all (or, if some
/// were dropped, until nothing arrived for a second), and how many it received.
async fn raw_stream(net: Net, frames: Vec<Message>) -> Result<(f64, u64)> {
    use futures::StreamExt as _;
    let x = UniqueReplicaId::new_incarnation(ReplicaId::new("raw-x"));
    let y = UniqueReplicaId::new_incarnation(ReplicaId::new("raw-y"));
    let (sender, receiver): (Box<dyn Transport>, Box<dyn Transport>) = match net {
        Net::Memory => {
            let network = MemoryNetwork::new(7, Faults::default());
            (
                Box::new(network.join(x.clone())),
                Box::new(network.join(y.clone())),
            )
        }
        Net::Tcp => {
            let name = format!("antientropy-raw-{}", crate::setup::unique_suffix());
            let tx = bind_tcp(&x, &name).await?;
            let ty = bind_tcp(&y, &name).await?;
            let members: Members = [
                (x.replica().clone(), Some(tx.local_addr())),
                (y.replica().clone(), Some(ty.local_addr())),
            ]
            .into_iter()
            .collect();
            let (_keep, watch_rx) = watch::channel(members);
            tx.follow_members(watch_rx.clone());
            ty.follow_members(watch_rx);
            (Box::new(tx), Box::new(ty))
        }
    };
    let received = Arc::new(AtomicU64::new(0));
    let arrived = Arc::new(tokio::sync::Notify::new());
    let mut incoming = receiver
        .incoming()
        .context(|| "the raw receiver's incoming stream".to_owned())?;
    let counter = {
        let received = received.clone();
        let arrived = arrived.clone();
        tokio::spawn(async move {
            while incoming.next().await.is_some() {
                received.fetch_add(1, Ordering::AcqRel);
                arrived.notify_one();
            }
        })
    };
    let total = frames.len() as u64;
    let to = y.replica().clone();
    let begun = Instant::now();
    for (sent, frame) in frames.into_iter().enumerate() {
        while sent as u64 >= received.load(Ordering::Acquire) + RAW_IN_FLIGHT {
            if tokio::time::timeout(Duration::from_secs(1), arrived.notified())
                .await
                .is_err()
            {
                break; // frames were dropped: go on
            }
        }
        sender.send(&to, frame);
    }
    while received.load(Ordering::Acquire) < total {
        if tokio::time::timeout(Duration::from_secs(1), arrived.notified())
            .await
            .is_err()
        {
            break;
        }
    }
    let seconds = begun.elapsed().as_secs_f64();
    let got = received.load(Ordering::Acquire);
    sender.shutdown();
    receiver.shutdown();
    counter.abort();
    Ok((seconds, got))
}

/// The postcard length of an unsigned varint.
fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// What protocol version 2 sent every round: a `Status { chunk, total_chunks, digests }` of
/// 200 `(key, digest)` pairs (variant tag, two varints, the list; digests are uniformly
/// distributed 64-bit hashes, so almost all take 10 bytes), plus the frame prefix.
fn v2_round_bytes() -> usize {
    let pairs: usize = (0..V2_DIGESTS_PER_ROUND)
        .map(|i| {
            let key = format!("counter-{i:07}").len();
            varint_len(key as u64) + key + varint_len(u64::MAX - i as u64)
        })
        .sum();
    1 + varint_len(1) + varint_len(500) + varint_len(V2_DIGESTS_PER_ROUND as u64) + pairs + 4
}

/// What the large-set scenario measured.
struct LargeSet {
    elements: usize,
    encoded_bytes: usize,
    /// Encoding and decoding the set once (postcard), the floor of any transfer.
    codec_seconds: f64,
    join_seconds: f64,
    restart_seconds: f64,
    /// Peak resident memory of the process (both replicas), and its RSS before the scenario.
    peak_bytes: f64,
    rss_before_bytes: f64,
    /// Whether the peak was reset before the scenario (else it covers the whole process).
    peak_reset: bool,
}

fn set_key() -> Key<ORSet<String>> {
    Key::new("large-set")
}

async fn set_len(r: &Replicator) -> Result<usize> {
    match r.get(&set_key(), ReadConsistency::Local).await {
        Ok(s) => Ok(s.elements().len()),
        Err(ReplicatorError::NotFound { .. }) => Ok(0),
        Err(e) => Err(e).context(|| "reading the large set".to_owned()),
    }
}

/// A large `ORSet<String>` written on a replica a, received by an empty replica b (with a
/// filesystem store under `dir`), then b restarted alone and reading it back from its store.
async fn large_set(
    dir: &std::path::Path,
    elements: usize,
    settings: &Settings,
) -> Result<LargeSet> {
    // "5" resets the process's peak RSS (VmHWM) to its current RSS (Linux 4.0 and later).
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before_bytes = proc_status_kib("VmRSS")? as f64 * 1024.0;
    let network = MemoryNetwork::new(8, Faults::default());
    let names: Vec<ReplicaId> = ["a", "b"].map(ReplicaId::new).to_vec();
    let spec = BackendSpec::Fs {
        dir: dir.join("large-set-fs"),
    };
    let store = spec.open().await?;
    let durable: Arc<dyn CrdtValueStore> = Arc::new(DurableDistributedDataStore::from_arc(
        store,
        DurableOptions::default(),
    ));
    let start = |name: &ReplicaId, incarnation: u64, durable: Option<Arc<dyn CrdtValueStore>>| {
        let id = UniqueReplicaId::new(name.clone(), incarnation);
        let peers = names.iter().filter(|p| *p != name).cloned();
        let cluster = StaticCluster::new(id.clone(), peers);
        let mut settings = settings.clone();
        if let Some(d) = durable {
            settings = settings.durable_store(d);
        }
        let transport = network.join(id.clone());
        async move {
            DistributedData::start(cluster, transport, settings)
                .await
                .context(|| format!("starting replica {id}"))
        }
    };
    let a = start(&names[0], 1, None).await?;
    let me = a.self_id();
    a.update(
        &set_key(),
        ORSet::new(),
        WriteConsistency::Local,
        move |s| {
            for i in 0..elements {
                s.add(&me, format!("element-{i:08}"));
            }
            Ok::<_, ReplicatorError>(())
        },
    )
    .await
    .context(|| "writing the large set".to_owned())?;
    let value = a
        .get(&set_key(), ReadConsistency::Local)
        .await
        .context(|| "reading the large set".to_owned())?;
    let started = Instant::now();
    let encoded = postcard::to_stdvec(&value).map_err(|e| BenchError::Failed(e.to_string()))?;
    let decoded: ORSet<String> =
        postcard::from_bytes(&encoded).map_err(|e| BenchError::Failed(e.to_string()))?;
    let codec_seconds = started.elapsed().as_secs_f64();
    drop((value, decoded));
    let started = Instant::now();
    let b = start(&names[1], 1, Some(durable.clone())).await?;
    // The key appears once the whole state arrived (its pieces are merged at once).
    until("b holds the large set", || async { holds_all(&b, 1).await }).await?;
    let join_seconds = started.elapsed().as_secs_f64();
    let got = set_len(&b).await?;
    if got != elements {
        return Err(BenchError::Failed(format!(
            "b holds {got} of the {elements} elements"
        )));
    }
    b.shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    a.shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    // b alone: the set can only come from its store (loaded before start returns).
    let started = Instant::now();
    let b = start(&names[1], 2, Some(durable)).await?;
    let got = set_len(&b).await?;
    let restart_seconds = started.elapsed().as_secs_f64();
    if got != elements {
        return Err(BenchError::Failed(format!(
            "b restarted holds {got} of the {elements} elements"
        )));
    }
    b.shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    Ok(LargeSet {
        elements,
        encoded_bytes: encoded.len(),
        codec_seconds,
        join_seconds,
        restart_seconds,
        peak_bytes: proc_status_kib("VmHWM")? as f64 * 1024.0,
        rss_before_bytes,
        peak_reset,
    })
}

/// Replaces the profile's key counts of the in-memory runs (comma-separated; empty: none).
const KEYS_VAR: &str = "DD_BENCH_ANTIENTROPY_KEYS";
/// Replaces the profile's key counts of the TCP runs (comma-separated; empty: none).
const TCP_KEYS_VAR: &str = "DD_BENCH_ANTIENTROPY_TCP_KEYS";

/// The key counts named by the environment variable `var`, or `None` when it is not set; a
/// count that is not a number is an error naming the variable and the value.
fn keys_from_env(var: &str) -> Result<Option<Vec<usize>>> {
    let Some(value) = crate::env::value(var) else {
        return Ok(None);
    };
    crate::env::items(&value)
        .map(|v| {
            v.replace('_', "").parse::<usize>().map_err(|e| {
                BenchError::Failed(format!("{var}: `{v}` in `{value}` is not a key count: {e}"))
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Replaces the replicator's `stream_window` in the scenario's runs (to measure what the window
/// costs a join).
const STREAM_WINDOW_VAR: &str = "DD_BENCH_ANTIENTROPY_STREAM_WINDOW";

/// The `stream_window` named by [`STREAM_WINDOW_VAR`], or `None` when it is not set; a value
/// that is not a positive number is an error naming the variable and the value.
fn stream_window_from_env() -> Result<Option<usize>> {
    let Some(value) = crate::env::value(STREAM_WINDOW_VAR) else {
        return Ok(None);
    };
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(BenchError::Failed(format!(
            "{STREAM_WINDOW_VAR}: `{value}` is not a positive batch count"
        ))),
    }
}

/// Prints the join time of the last run (progress on stderr).
fn log_join(outcome: Option<&Outcome>) {
    if let Some(o) = outcome {
        eprintln!(
            "[antientropy] {} keys, {}: join {:.2} s ({:.2} s to the first state, {:.2} s \
             streaming; raw streaming {:.2} s), repair {:.2} s",
            o.keys,
            o.net.label(),
            o.join.seconds,
            o.join.to_first_state_seconds,
            o.join.streaming_seconds,
            o.join.raw_seconds,
            o.repair_seconds
        );
    }
}

/// Runs area 8.
pub async fn run(root: &std::path::Path, sizes: &Sizes) -> Result<Table> {
    let gossip = sizes.antientropy_gossip_interval;
    let partition = sizes.antientropy_partition;
    let mut table = Table::new(
        "8. Anti-entropy at scale",
        format!(
            "Three replicas (a, b, c; gossip every {}, other settings default) in one process. \
             `n` keys (`GCounter`s) are written on a; then c is cut off from a and b (every \
             message to or from it dropped) for {} while {CHANGED} existing keys are incremented \
             on a; then the cut heals. *Repair* is the time from the heal until c reads all \
             {CHANGED} new values, with the anti-entropy rounds (tree roots sent, all replicas) \
             and bytes (tree levels, leaf digests, states; encoded + 4-byte frame prefix) it \
             took. The baseline of the repair is the time b took to get the same {CHANGED} \
             changes by delta in the same run. *Idle* is {IDLE_ROUNDS} rounds once in sync: \
             bytes per round (each round is one replica's root sent to one peer) against what \
             the chunked digest gossip of protocol version 2 sent per round ({} digests, \
             computed). *CPU per round* is process CPU time (user + system, /proc/self/stat, \
             10 ms ticks) over the idle or repair window divided by its rounds. One run per \
             size and network; the machine is shared with other builds.",
            fmt_secs(gossip.as_secs_f64()),
            fmt_secs(partition.as_secs_f64()),
            V2_DIGESTS_PER_ROUND
        ),
    );
    let memory_keys = keys_from_env(KEYS_VAR)?.unwrap_or_else(|| sizes.antientropy_keys.clone());
    let tcp_keys =
        keys_from_env(TCP_KEYS_VAR)?.unwrap_or_else(|| sizes.antientropy_tcp_keys.clone());
    let mut outcomes = Vec::new();
    for &n in &memory_keys {
        eprintln!("[antientropy] {n} keys, in-memory network");
        outcomes.push(run_once(Net::Memory, n, sizes).await?);
        log_join(outcomes.last());
    }
    for &n in &tcp_keys {
        eprintln!("[antientropy] {n} keys, TCP");
        outcomes.push(run_once(Net::Tcp, n, sizes).await?);
        log_join(outcomes.last());
    }
    let v2 = v2_round_bytes() as f64;
    let smallest_idle_cpu = outcomes
        .first()
        .map_or(0.0, |o| o.idle_cpu / o.idle_rounds as f64);
    for o in &outcomes {
        let at = format!("{} keys, {}", o.keys, o.net.label());
        table.rows.push(Row {
            what: format!(
                "repair of {CHANGED} keys after a {} partition ({at})",
                fmt_secs(partition.as_secs_f64())
            ),
            figure: format!(
                "{} ({} rounds, {})",
                fmt_secs(o.repair_seconds),
                o.repair_rounds,
                fmt_bytes(o.repair_bytes as f64)
            ),
            baseline: format!("{} (b, by delta)", fmt_secs(o.delta_seconds)),
            ratio: format!(
                "{} of the delta time",
                fmt_ratio(ratio(o.repair_seconds, o.delta_seconds))
            ),
            target: "≤ 5 s".into(),
            met: Verdict::from_bool(o.repair_seconds <= 5.0),
        });
        let per_round = o.idle_bytes as f64 / o.idle_rounds as f64;
        table.rows.push(Row {
            what: format!("idle anti-entropy traffic per round ({at})"),
            figure: fmt_bytes(per_round),
            baseline: format!("{} (protocol 2 chunk)", fmt_bytes(v2)),
            ratio: format!("{:.1}% of protocol 2", 100.0 * ratio(per_round, v2)),
            target: "≤ 1 KiB".into(),
            met: Verdict::from_bool(per_round <= 1024.0),
        });
        let idle_cpu = o.idle_cpu / o.idle_rounds as f64;
        let repair_cpu = o.repair_cpu / o.repair_rounds.max(1) as f64;
        table.rows.push(Row {
            what: format!("process CPU per round, idle / repairing ({at})"),
            figure: format!("{} / {}", fmt_secs(idle_cpu), fmt_secs(repair_cpu)),
            baseline: format!("{} (idle, smallest size)", fmt_secs(smallest_idle_cpu)),
            ratio: if smallest_idle_cpu > 0.0 {
                format!("{} (idle)", fmt_ratio(ratio(idle_cpu, smallest_idle_cpu)))
            } else {
                "— (below the 10 ms tick)".into()
            },
            target: "grows with changed keys, not all keys".into(),
            met: Verdict::NoTarget,
        });
        let j = &o.join;
        let dropped = j.frames.saturating_sub(j.received);
        let join_ratio = ratio(j.seconds, j.raw_seconds);
        table.rows.push(Row {
            what: format!("join of an empty replica d to the in-sync cluster ({at})"),
            figure: format!(
                "{} ({} until the first state, {} streaming; {} frames, {}; {dropped} \
                 dropped; {} of {} batches resent)",
                fmt_secs(j.seconds),
                fmt_secs(j.to_first_state_seconds),
                fmt_secs(j.streaming_seconds),
                j.frames,
                fmt_bytes(j.bytes as f64),
                j.batches_resent,
                j.batches_sent
            ),
            baseline: format!(
                "{} (the same frames raw, same transport kind; {} dropped)",
                fmt_secs(j.raw_seconds),
                j.raw_dropped
            ),
            ratio: format!("{} of raw", fmt_ratio(join_ratio)),
            target: "≤ 1.5x raw, no dropped frames".into(),
            met: Verdict::from_bool(join_ratio <= 1.5 && dropped == 0),
        });
        let window = (j.window as u64).saturating_mul(j.largest_batch);
        table.rows.push(Row {
            what: format!("join ({at}): a sender's peak bytes buffered for d"),
            figure: format!(
                "{} (largest of {} senders)",
                fmt_bytes(j.peak_buffered as f64),
                j.senders
            ),
            baseline: format!(
                "{} (one window: stream_window {} x largest batch {})",
                fmt_bytes(window as f64),
                j.window,
                fmt_bytes(j.largest_batch as f64)
            ),
            ratio: format!(
                "{} of one window",
                fmt_ratio(ratio(j.peak_buffered as f64, window as f64))
            ),
            target: "≤ 2x one window".into(),
            met: Verdict::from_bool(j.peak_buffered <= window.saturating_mul(2)),
        });
        table.notes.push(format!(
            "{at}: writing the keys on a until b and c held all took {}",
            fmt_secs(o.fill_seconds)
        ));
    }
    table.notes.push(
        "Join: after the idle rounds, an empty replica d is added to a, b and c's member lists \
         and started; the figure is the time from its start until it holds every key, of \
         which the time until d received its first state (its start and the first \
         anti-entropy round that finds it empty, up to a gossip interval) and from then until \
         it received its last (streaming). The \
         frames are the messages carrying states sent to d (stream batches, pieces of large \
         states; resends included), counted and copied on the senders' side; dropped is how \
         many of them d's transport did not hand to it. The raw baseline sends the same \
         messages again, in the same order, from one bare transport to another of the same \
         kind (no replicator, at most 1,024 not yet received), timed until the receiver has \
         them all. The sender's buffered bytes are the replicator's stream gauge \
         (`ReplicatorStatus::streams`): the states of its unacknowledged batches plus the \
         state waiting to open the next batch, at its peak; one window is `stream_window` \
         batches of the largest batch that sender sent."
            .into(),
    );
    let dir = root.join("antientropy");
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    eprintln!(
        "[antientropy] ORSet<String> of {} elements",
        sizes.antientropy_set_elements
    );
    let settings = Settings::builder()
        .gossip_interval(gossip)
        .build()
        .context(|| "replicator settings".to_owned())?;
    let l = large_set(&dir, sizes.antientropy_set_elements, &settings).await?;
    let set = format!(
        "ORSet<String> of {} elements, {} encoded",
        l.elements,
        fmt_bytes(l.encoded_bytes as f64)
    );
    table.rows.push(Row {
        what: format!("{set}: to an empty replica (in-memory network, fs store)"),
        figure: fmt_secs(l.join_seconds),
        baseline: format!("{} (encode + decode once)", fmt_secs(l.codec_seconds)),
        ratio: fmt_ratio(ratio(l.join_seconds, l.codec_seconds)),
        target: "replicates (any size up to max_value_bytes)".into(),
        met: Verdict::Met,
    });
    table.rows.push(Row {
        what: format!("{set}: restart of that replica alone, from its store"),
        figure: fmt_secs(l.restart_seconds),
        baseline: format!("{} (encode + decode once)", fmt_secs(l.codec_seconds)),
        ratio: fmt_ratio(ratio(l.restart_seconds, l.codec_seconds)),
        target: "survives a restart".into(),
        met: Verdict::Met,
    });
    table.rows.push(Row {
        what: format!("{set}: peak resident memory of the process (both replicas)"),
        figure: fmt_bytes(l.peak_bytes),
        baseline: format!(
            "{} (RSS before the scenario)",
            fmt_bytes(l.rss_before_bytes)
        ),
        ratio: fmt_ratio(ratio(l.peak_bytes, l.rss_before_bytes)),
        target: "—".into(),
        met: Verdict::NoTarget,
    });
    table.notes.push(format!(
        "The large set goes as one state in pieces of max_gossip_bytes (chunked), reassembled \
         and merged at once; the restart row is the time from starting the replica alone until \
         it read the whole set. The peak is the process's VmHWM {}.",
        if l.peak_reset {
            "during the large-set scenario (reset through /proc/self/clear_refs before it): \
             both replicas' copies, the encoded pieces and the store's"
        } else {
            "over the whole area (/proc/self/clear_refs could not reset it), the key-count rows \
             above included"
        }
    ));
    let repairs: Vec<f64> = outcomes.iter().map(|o| o.repair_seconds).collect();
    table.notes.push(format!(
        "median repair over all sizes: {}",
        fmt_secs(median(&repairs))
    ));
    Ok(table)
}
