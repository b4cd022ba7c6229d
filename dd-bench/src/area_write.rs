//! Area 1: durable update throughput per backend, Sync and WriteBehind, against the raw backend
//! writing the same bytes with the same durability.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dd_core::crdt::GCounter;
use dd_core::data::ErasedData;
use dd_core::durable::{CrdtValueStore, DurableValue};
use dd_core::replicator::{Replicator, WriteConsistency};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use dd_durable::record::{self, Record};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

use crate::Sizes;
use crate::backends::{BackendSpec, RawWriter, raw_write_description};
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::setup::{Backends, lone_replicator};
use crate::stats::{fmt_rate, fmt_ratio, median, ratio};

/// The write-behind interval used here.
const WRITE_BEHIND_INTERVAL: Duration = Duration::from_millis(100);
/// Sync must reach this fraction of the raw rate.
const SYNC_TARGET: f64 = 0.8;
/// Write-behind must reach this multiple of the raw rate.
const WRITE_BEHIND_TARGET: f64 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Raw,
    StoreSync,
    StoreWriteBehind,
    ReplicatorSync,
    ReplicatorWriteBehind,
}

const VARIANTS: [Variant; 5] = [
    Variant::Raw,
    Variant::StoreSync,
    Variant::StoreWriteBehind,
    Variant::ReplicatorSync,
    Variant::ReplicatorWriteBehind,
];

impl Variant {
    fn is_write_behind(self) -> bool {
        matches!(
            self,
            Variant::StoreWriteBehind | Variant::ReplicatorWriteBehind
        )
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Raw => "raw",
            Variant::StoreSync => "`DurableDistributedDataStore::store`, Sync",
            Variant::StoreWriteBehind => "`DurableDistributedDataStore::store`, WriteBehind",
            Variant::ReplicatorSync => "replicator `update` (Local), Sync",
            Variant::ReplicatorWriteBehind => "replicator `update` (Local), WriteBehind",
        }
    }
}

fn durable(
    store: &Arc<dyn dd_core::store::DurableStateStore>,
    mode: WriteMode,
) -> Arc<DurableDistributedDataStore> {
    let options = DurableOptions {
        write_mode: mode,
        ..DurableOptions::default()
    };
    Arc::new(DurableDistributedDataStore::from_arc(
        Arc::clone(store),
        options,
    ))
}

/// Everything one backend's rounds use.
struct Subjects {
    raw: Option<RawWriter>,
    sync: Arc<DurableDistributedDataStore>,
    write_behind: Arc<DurableDistributedDataStore>,
    repl_sync: (Replicator, Arc<DurableDistributedDataStore>),
    repl_write_behind: (Replicator, Arc<DurableDistributedDataStore>),
}

fn key_name(i: usize) -> String {
    format!("k{i:06}")
}

/// The counter every key holds after `round` rounds, and its record bytes.
fn round_value(round: usize) -> Result<(GCounter, Bytes)> {
    let node = UniqueReplicaId::new("bench", 1);
    let mut counter = GCounter::new();
    counter
        .increment(&node, round as u64 + 1)
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let payload = ErasedData::encode(&counter).context(|| "encoding a GCounter".to_owned())?;
    let bytes = record::encode(&Record::Data {
        type_name: "GCounter",
        payload: &payload,
    })
    .context(|| "encoding a record".to_owned())?;
    Ok((counter, Bytes::from(bytes)))
}

impl Subjects {
    /// Updates the keys `keys` (each once) to their state of round `round` through `variant`;
    /// write-behind variants end with `flush()`. Returns the seconds.
    async fn ops(&self, variant: Variant, round: usize, keys: Range<usize>) -> Result<f64> {
        let (counter, bytes) = round_value(round)?;
        let started = Instant::now();
        match variant {
            Variant::Raw => {
                let Some(raw) = &self.raw else {
                    return Ok(0.0);
                };
                for i in keys {
                    raw.write(&key_name(i), bytes.clone()).await?;
                }
            }
            Variant::StoreSync | Variant::StoreWriteBehind => {
                let (store, replica) = if variant == Variant::StoreSync {
                    (&self.sync, ReplicaId::new("store-sync"))
                } else {
                    (&self.write_behind, ReplicaId::new("store-wb"))
                };
                for i in keys {
                    let entry = (key_name(i), DurableValue::Data(Box::new(counter.clone())));
                    store
                        .store(&replica, vec![entry])
                        .await
                        .context(|| format!("{} of key {i}", variant.label()))?;
                }
                if variant.is_write_behind() {
                    store
                        .flush()
                        .await
                        .context(|| format!("flush after {}", variant.label()))?;
                }
            }
            Variant::ReplicatorSync | Variant::ReplicatorWriteBehind => {
                let (replicator, store) = if variant == Variant::ReplicatorSync {
                    &self.repl_sync
                } else {
                    &self.repl_write_behind
                };
                for i in keys {
                    let me = replicator.self_id();
                    replicator
                        .update(
                            &Key::<GCounter>::new(key_name(i)),
                            GCounter::new(),
                            WriteConsistency::Local,
                            move |c| c.increment(&me, 1),
                        )
                        .await
                        .context(|| format!("{} of key {i}", variant.label()))?;
                }
                if variant.is_write_behind() {
                    store
                        .flush()
                        .await
                        .context(|| format!("flush after {}", variant.label()))?;
                }
            }
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

async fn measure_backend(
    spec: &BackendSpec,
    root: &Path,
    sizes: &Sizes,
) -> Result<Vec<(Variant, f64)>> {
    let store = spec.open().await?;
    let raw_place = match spec {
        BackendSpec::Sqlite { .. } => root.join("raw.db"),
        _ => root.join("raw-files"),
    };
    let raw = RawWriter::open(spec, &raw_place).await?;
    let sync_mode = WriteMode::Sync;
    let wb_mode = WriteMode::WriteBehind {
        interval: WRITE_BEHIND_INTERVAL,
    };
    let repl_sync_store = durable(&store, sync_mode);
    let repl_wb_store = durable(&store, wb_mode);
    let subjects = Subjects {
        raw,
        sync: durable(&store, sync_mode),
        write_behind: durable(&store, wb_mode),
        repl_sync: (
            lone_replicator("repl-sync", Some(repl_sync_store.clone())).await?,
            repl_sync_store,
        ),
        repl_write_behind: (
            lone_replicator("repl-wb", Some(repl_wb_store.clone())).await?,
            repl_wb_store,
        ),
    };
    let variants: Vec<Variant> = VARIANTS
        .into_iter()
        .filter(|v| *v != Variant::Raw || subjects.raw.is_some())
        .collect();
    let n = sizes.write_updates;
    // Round 0 creates every key (creates cost more than updates on some backends); not counted.
    for v in &variants {
        subjects.ops(*v, 0, 0..n).await?;
    }
    let per_update: Vec<usize> = (0..variants.len())
        .filter(|i| !variants[*i].is_write_behind())
        .collect();
    let batched: Vec<usize> = (0..variants.len())
        .filter(|i| variants[*i].is_write_behind())
        .collect();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 1..=sizes.write_rounds {
        let mut seconds = vec![0.0; variants.len()];
        // The raw baseline and the Sync variants alternate update by update (rotating which
        // goes first), so that all of them see the same moments of a busy disk.
        for k in 0..n {
            let mut order = per_update.clone();
            let shift = k % order.len().max(1);
            order.rotate_left(shift);
            for i in order {
                seconds[i] += subjects.ops(variants[i], round, k..k + 1).await?;
            }
        }
        // Write-behind rounds (which batch) run whole, in alternating order.
        let mut order = batched.clone();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            seconds[i] = subjects.ops(variants[i], round, 0..n).await?;
        }
        for (i, s) in seconds.into_iter().enumerate() {
            rates[i].push(n as f64 / s.max(1e-9));
        }
    }
    subjects
        .repl_sync
        .0
        .shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    subjects
        .repl_write_behind
        .0
        .shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    Ok(variants
        .into_iter()
        .zip(rates)
        .map(|(v, r)| (v, median(&r)))
        .collect())
}

/// Runs area 1.
pub async fn run(backends: &Backends, root: &Path, sizes: &Sizes) -> Result<Table> {
    let mut table = Table::new(
        "1. Durable update throughput",
        format!(
            "Each round updates {n} distinct keys once (a `GCounter` state, {bytes} bytes as a stored \
             record), one update at a time, waiting for each. The raw baseline and the Sync \
             variants alternate update by update (rotating which goes first), so that they share \
             the same moments of a busy disk. WriteBehind rounds (interval {wb} ms, batches of at \
             most 500) run whole, alternating in order, and end with `flush()`, so their time \
             includes writing everything. A first round creates the keys and is not counted; then \
             {r} measured rounds; the figure is the median of the per-round rates. The raw \
             baseline writes the same bytes to the same backend with the same durability (its \
             own table / directory / prefix). Ratio = candidate rate / raw rate (raw = 1).",
            n = sizes.write_updates,
            bytes = round_value(1).map(|(_, b)| b.len()).unwrap_or(0),
            wb = WRITE_BEHIND_INTERVAL.as_millis(),
            r = sizes.write_rounds,
        ),
    );
    table.notes.extend(backends.skipped.iter().cloned());
    for spec in &backends.specs {
        let name = spec.name();
        eprintln!("[write] {name}");
        let place = root.join(format!(
            "write-raw-{}",
            name.split(' ').next().unwrap_or(name)
        ));
        std::fs::create_dir_all(&place).context(|| format!("creating {}", place.display()))?;
        let results = measure_backend(spec, &place, sizes).await?;
        let double = matches!(spec, BackendSpec::CassandraDouble { .. });
        let raw_rate = results
            .iter()
            .find(|(v, _)| *v == Variant::Raw)
            .map(|(_, r)| *r);
        for (variant, rate) in results {
            let figure = fmt_rate(rate, "updates");
            if variant == Variant::Raw {
                let mut row = Row::info(
                    format!("{name}: raw baseline — {}", raw_write_description(name)),
                    figure,
                );
                row.ratio = "1 (baseline)".into();
                table.rows.push(row);
                continue;
            }
            let target = match variant {
                Variant::StoreSync | Variant::ReplicatorSync => SYNC_TARGET,
                _ => WRITE_BEHIND_TARGET,
            };
            let row = match raw_rate {
                Some(raw) if !double => {
                    let r = ratio(rate, raw);
                    Row {
                        what: format!("{name}: {}", variant.label()),
                        figure,
                        baseline: format!("{} (raw)", fmt_rate(raw, "updates")),
                        ratio: format!("{} of raw", fmt_ratio(r)),
                        target: format!("≥ {target}x raw"),
                        met: Verdict::from_bool(r >= target),
                    }
                }
                _ => Row {
                    what: format!(
                        "{name}: {} — informational, in-process CQL test double, not a real Cassandra",
                        variant.label()
                    ),
                    figure,
                    baseline: "—".into(),
                    ratio: "—".into(),
                    target: "—".into(),
                    met: Verdict::TestDouble,
                },
            };
            table.rows.push(row);
        }
    }
    Ok(table)
}
