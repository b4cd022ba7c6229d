//! Area 8: anti-entropy at scale — three replicas, a partition-and-heal scenario per key count
//! (time to repair 1,000 keys changed while one replica was cut off), idle anti-entropy traffic
//! per round when in sync, and process CPU per round, on the in-memory network and over TCP on
//! 127.0.0.1; and a large `ORSet<String>` replicated to an empty replica, stored and restored
//! after that replica's restart.

use std::collections::HashSet;
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
        }
        self.inner.send(to, message);
    }

    fn incoming(&self) -> std::result::Result<IncomingStream, TransportError> {
        self.inner.incoming()
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

async fn start(net: Net, wire: &Arc<Wire>, settings: &Settings) -> Result<Vec<Replicator>> {
    let names: Vec<ReplicaId> = ["a", "b", "c"].map(ReplicaId::new).to_vec();
    let mut replicas = Vec::new();
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
                replicas.push(
                    DistributedData::start(cluster, transport, settings.clone())
                        .await
                        .context(|| format!("starting replica {id}"))?,
                );
            }
        }
        Net::Tcp => {
            let cluster_name = format!("antientropy-{}", crate::setup::unique_suffix());
            let mut bound = Vec::new();
            for name in &names {
                let id = UniqueReplicaId::new_incarnation(name.clone());
                let addr = "127.0.0.1:0"
                    .parse()
                    .map_err(|e| BenchError::Failed(format!("{e}")))?;
                let t = TcpTransport::bind(id.clone(), addr, TcpConfig::new(cluster_name.clone()))
                    .await
                    .context(|| "binding a TCP transport on 127.0.0.1".to_owned())?;
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
        }
    }
    Ok(replicas)
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
    let settings = Settings::builder()
        .gossip_interval(sizes.antientropy_gossip_interval)
        .build()
        .context(|| "replicator settings".to_owned())?;
    let wire = Arc::new(Wire::default());
    let rs = start(net, &wire, &settings).await?;
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
    for r in &rs {
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
    })
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
    let mut outcomes = Vec::new();
    for &n in &sizes.antientropy_keys {
        eprintln!("[antientropy] {n} keys, in-memory network");
        outcomes.push(run_once(Net::Memory, n, sizes).await?);
    }
    for &n in &sizes.antientropy_tcp_keys {
        eprintln!("[antientropy] {n} keys, TCP");
        outcomes.push(run_once(Net::Tcp, n, sizes).await?);
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
        table.notes.push(format!(
            "{at}: writing the keys on a until b and c held all took {}",
            fmt_secs(o.fill_seconds)
        ));
    }
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
