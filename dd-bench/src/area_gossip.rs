//! Area 3: gossip — bytes on the wire per update with delta propagation against full-state
//! gossip only, and the time for 5 replicas on TCP (127.0.0.1) to converge.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dd_core::cluster::{Members, StaticCluster};
use dd_core::crdt::ORSet;
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::transport::tcp::{TcpConfig, TcpTransport};
use dd_core::transport::{IncomingStream, Message, Transport, TransportError};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use tokio::sync::watch;

use crate::Sizes;
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::stats::{fmt_bytes, fmt_ratio, fmt_secs, median, ratio};

const REPLICAS: usize = 5;
/// Anti-entropy gossip interval in both modes.
const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// Delta propagation interval when deltas are on (Akka's default).
const DELTA_INTERVAL: Duration = Duration::from_millis(200);
/// "Never": deltas off, only full-state gossip carries updates.
const NO_DELTAS: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for convergence before the run fails.
const CONVERGENCE_LIMIT: Duration = Duration::from_secs(180);

/// Bytes sent per message kind: encoded message + 4-byte length prefix, as the TCP transport
/// frames it.
#[derive(Debug, Default)]
pub struct WireCounters {
    deltas: AtomicU64,
    gossip: AtomicU64,
    status: AtomicU64,
    other: AtomicU64,
    messages: AtomicU64,
}

/// A snapshot of [`WireCounters`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WireBytes {
    deltas: u64,
    gossip: u64,
    status: u64,
    other: u64,
    messages: u64,
}

impl WireBytes {
    pub(crate) fn total(&self) -> u64 {
        self.deltas + self.gossip + self.status + self.other
    }
}

impl WireCounters {
    fn snapshot(&self) -> WireBytes {
        WireBytes {
            deltas: self.deltas.load(Ordering::Relaxed),
            gossip: self.gossip.load(Ordering::Relaxed),
            status: self.status.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
        }
    }
}

/// A transport that counts the bytes of every message it sends, then hands it to `inner`.
pub struct CountingTransport<T> {
    inner: T,
    counters: Arc<WireCounters>,
}

impl<T: Transport> Transport for CountingTransport<T> {
    fn send(&self, to: &ReplicaId, message: Message) {
        let len = message.encode().map_or(0, |b| b.len() as u64 + 4);
        let counter = match &message {
            Message::Deltas { .. } => &self.counters.deltas,
            Message::Gossip { .. } => &self.counters.gossip,
            Message::Tree { .. } | Message::LeafDigests { .. } => &self.counters.status,
            _ => &self.counters.other,
        };
        counter.fetch_add(len, Ordering::Relaxed);
        self.counters.messages.fetch_add(1, Ordering::Relaxed);
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

/// How updates travel between the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Delta propagation on (plus anti-entropy gossip).
    Deltas,
    /// Full-state gossip only.
    FullState,
}

/// What one run measured.
pub(crate) struct Outcome {
    /// Bytes sent, by message kind.
    pub(crate) bytes: WireBytes,
    /// Seconds the updates took.
    pub(crate) update_seconds: f64,
    /// Seconds from the last update until every replica read every element.
    pub(crate) converge_seconds: f64,
}

async fn start_cluster(mode: Mode, counters: &Arc<WireCounters>) -> Result<Vec<Replicator>> {
    let mut transports = Vec::new();
    let cluster_name = format!("bench-{}", crate::setup::unique_suffix());
    for i in 0..REPLICAS {
        let id = UniqueReplicaId::new_incarnation(ReplicaId::new(format!("r{i}")));
        let addr = "127.0.0.1:0"
            .parse()
            .map_err(|e| BenchError::Failed(format!("{e}")))?;
        let t = TcpTransport::bind(id.clone(), addr, TcpConfig::new(cluster_name.clone()))
            .await
            .context(|| "binding a TCP transport on 127.0.0.1".to_owned())?;
        transports.push((id, t));
    }
    let addresses: Vec<_> = transports
        .iter()
        .map(|(id, t)| (id.replica().clone(), Some(t.local_addr())))
        .collect();
    let mut replicas = Vec::new();
    for (id, t) in transports {
        let peers = addresses.iter().filter(|(n, _)| n != id.replica()).cloned();
        let cluster = StaticCluster::with_addresses(id.clone(), Some(t.local_addr()), peers);
        let delta = match mode {
            Mode::Deltas => DELTA_INTERVAL,
            Mode::FullState => NO_DELTAS,
        };
        let settings = Settings::builder()
            .gossip_interval(GOSSIP_INTERVAL)
            .delta_propagation_interval(delta)
            .build()
            .context(|| "replicator settings".to_owned())?;
        let transport = CountingTransport {
            inner: t,
            counters: Arc::clone(counters),
        };
        replicas.push(
            DistributedData::start(cluster, transport, settings)
                .await
                .context(|| format!("starting replica {id}"))?,
        );
    }
    Ok(replicas)
}

fn set_key(k: usize) -> Key<ORSet<u64>> {
    Key::new(format!("set{k:04}"))
}

/// Whether every replica has every key with its expected number of elements.
async fn converged(replicas: &[Replicator], expected: &BTreeMap<usize, usize>) -> Result<bool> {
    for r in replicas {
        for (k, len) in expected {
            match r.get(&set_key(*k), ReadConsistency::Local).await {
                Ok(set) if set.len() == *len => {}
                Ok(_) | Err(ReplicatorError::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e).context(|| format!("reading set{k:04}")),
            }
        }
    }
    Ok(true)
}

pub(crate) async fn run_once(mode: Mode, updates: usize, keys: usize) -> Result<Outcome> {
    let counters = Arc::new(WireCounters::default());
    let replicas = start_cluster(mode, &counters).await?;
    let per_replica = updates.div_ceil(REPLICAS);
    let mut expected: BTreeMap<usize, usize> = BTreeMap::new();
    for u in 0..updates {
        *expected.entry(u % keys).or_default() += 1;
    }
    // Let every replica connect and pass its first (immediate) delta tick before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = counters.snapshot();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        let replica = replica.clone();
        tasks.push(tokio::spawn(async move {
            let me = replica.self_id();
            for j in 0..per_replica {
                let u = r * per_replica + j;
                if u >= updates {
                    break;
                }
                let me = me.clone();
                replica
                    .update(
                        &set_key(u % keys),
                        ORSet::new(),
                        WriteConsistency::Local,
                        move |s| {
                            s.add(&me, u as u64);
                            Ok::<(), std::convert::Infallible>(())
                        },
                    )
                    .await
                    .context(|| format!("update {u}"))?;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for t in tasks {
        t.await.context(|| "update task".to_owned())??;
    }
    let updated = Instant::now();
    loop {
        if converged(&replicas, &expected).await? {
            break;
        }
        if updated.elapsed() > CONVERGENCE_LIMIT {
            return Err(BenchError::Failed(format!(
                "{mode:?}: 5 replicas did not converge within {CONVERGENCE_LIMIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    let after = counters.snapshot();
    for r in &replicas {
        r.shutdown()
            .await
            .context(|| "replica shutdown".to_owned())?;
    }
    Ok(Outcome {
        bytes: WireBytes {
            deltas: after.deltas - before.deltas,
            gossip: after.gossip - before.gossip,
            status: after.status - before.status,
            other: after.other - before.other,
            messages: after.messages - before.messages,
        },
        update_seconds: (updated - started).as_secs_f64(),
        converge_seconds: (done - updated).as_secs_f64(),
    })
}

/// Runs area 3.
pub async fn run(sizes: &Sizes) -> Result<Table> {
    let updates = sizes.gossip_updates;
    let keys = sizes.gossip_keys;
    let mut table = Table::new(
        "3. Gossip",
        format!(
            "{REPLICAS} replicas over TCP on 127.0.0.1 (gossip interval {g} ms). {updates} \
             updates, each adding one new `u64` to one of {keys} `ORSet<u64>` keys (round-robin), \
             issued concurrently on all replicas (Local consistency). Bytes = every message sent \
             by every replica from the first update until all replicas hold every element \
             (encoded message + 4-byte frame prefix; counted by a wrapper around the TCP \
             transport), divided by the updates. Deltas on: delta propagation every {d} ms \
             (Akka's default). Full-state gossip: the same replicator with delta propagation \
             switched off (interval of a day), so digests + full states carry every update. \
             Convergence = time from the last update returning until every replica reads every \
             element (polled every 20 ms). {r} runs per mode, alternating; medians. Ratios take \
             full-state gossip as the baseline (= 1).",
            g = GOSSIP_INTERVAL.as_millis(),
            d = DELTA_INTERVAL.as_millis(),
            r = sizes.gossip_runs,
        ),
    );
    let mut results: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
    for run in 0..sizes.gossip_runs {
        let modes = if run % 2 == 0 {
            [Mode::Deltas, Mode::FullState]
        } else {
            [Mode::FullState, Mode::Deltas]
        };
        for mode in modes {
            eprintln!("[gossip] run {} {mode:?}", run + 1);
            let outcome = run_once(mode, updates, keys).await?;
            let name = if mode == Mode::Deltas {
                "deltas"
            } else {
                "full"
            };
            results.entry(name).or_default().push(outcome);
        }
    }
    let pick = |name: &str, f: &dyn Fn(&Outcome) -> f64| {
        median(
            &results
                .get(name)
                .map(|v| v.iter().map(f).collect::<Vec<_>>())
                .unwrap_or_default(),
        )
    };
    let per_update = |o: &Outcome| o.bytes.total() as f64 / updates as f64;
    let (d_bytes, f_bytes) = (pick("deltas", &per_update), pick("full", &per_update));
    let (d_conv, f_conv) = (
        pick("deltas", &|o| o.converge_seconds),
        pick("full", &|o| o.converge_seconds),
    );
    let (d_upd, f_upd) = (
        pick("deltas", &|o| o.update_seconds),
        pick("full", &|o| o.update_seconds),
    );
    let mut base = Row::info(
        "bytes on the wire per update, full-state gossip only (deltas off)",
        fmt_bytes(f_bytes),
    );
    base.ratio = "1 (baseline)".into();
    table.rows.push(base);
    let r = ratio(d_bytes, f_bytes);
    table.rows.push(Row {
        what: "bytes on the wire per update, with delta propagation".into(),
        figure: fmt_bytes(d_bytes),
        baseline: format!("{} (full-state)", fmt_bytes(f_bytes)),
        ratio: format!("{} of full-state", fmt_ratio(r)),
        target: "fewer bytes than full-state".into(),
        met: Verdict::from_bool(r < 1.0),
    });
    let mut base = Row::info(
        format!(
            "time for {REPLICAS} replicas to converge after {updates} updates, full-state gossip only"
        ),
        fmt_secs(f_conv),
    );
    base.ratio = "1 (baseline)".into();
    table.rows.push(base);
    table.rows.push(Row {
        what: format!(
            "time for {REPLICAS} replicas to converge after {updates} updates, with deltas"
        ),
        figure: fmt_secs(d_conv),
        baseline: format!("{} (full-state)", fmt_secs(f_conv)),
        ratio: format!("{} of full-state", fmt_ratio(ratio(d_conv, f_conv))),
        target: "—".into(),
        met: Verdict::NoTarget,
    });
    table.rows.push(Row::info(
        format!("time to issue the {updates} updates (deltas / full-state)"),
        format!("{} / {}", fmt_secs(d_upd), fmt_secs(f_upd)),
    ));
    for (name, label) in [("deltas", "with deltas"), ("full", "full-state only")] {
        let runs: Vec<String> = results
            .get(name)
            .map(|v| {
                v.iter()
                    .map(|o| {
                        format!(
                            "{} ({})",
                            fmt_bytes(per_update(o)),
                            fmt_secs(o.converge_seconds)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        table.notes.push(format!(
            "every run, {label}: bytes per update (convergence time): {}",
            runs.join(", ")
        ));
    }
    for (name, label) in [("deltas", "with deltas"), ("full", "full-state only")] {
        if let Some(o) = results.get(name).and_then(|v| v.first()) {
            table.notes.push(format!(
                "first run, {label}: {} messages; bytes by kind: deltas {}, gossip (full states) \
                 {}, status (digests) {}, other {}",
                o.bytes.messages,
                fmt_bytes(o.bytes.deltas as f64),
                fmt_bytes(o.bytes.gossip as f64),
                fmt_bytes(o.bytes.status as f64),
                fmt_bytes(o.bytes.other as f64),
            ));
        }
    }
    Ok(table)
}
