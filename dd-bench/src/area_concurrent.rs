//! Area 7: concurrent Sync updates through the replicator: 1, 8 and 64 writers on SQLite and fs,
//! Sync and write-behind in the same run, the p99 latency against one raw store write, and the
//! memory of a 10x overload burst.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dd_core::Key;
use dd_core::crdt::PNCounter;
use dd_core::durable::CrdtValueStore;
use dd_core::replicator::{Replicator, WriteConsistency};
use dd_core::store::DurableStateStore;
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};

use crate::Sizes;
use crate::backends::{BackendSpec, RawWriter};
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::setup::lone_replicator;
use crate::stats::{fmt_bytes, fmt_rate, fmt_ratio, fmt_secs, median, ratio};

/// The write-behind interval used here.
const WRITE_BEHIND_INTERVAL: Duration = Duration::from_millis(100);
/// Sync with 64 writers must reach this fraction of write-behind with 64 writers (SQLite).
const SYNC_VS_WRITE_BEHIND: f64 = 0.8;
/// Sync with 64 writers must reach this multiple of one writer's Sync rate (fs): one writer's
/// rate is what Sync served before group commit, whatever the number of writers.
const FS_GROUP_GAIN: f64 = 5.0;
/// The p99 of Sync with 64 writers must stay within this multiple of one raw write's p99.
const P99_VS_RAW: f64 = 3.0;
/// The RSS growth during the overload burst must stay below this.
const BURST_RSS_BOUND: f64 = 256.0 * 1024.0 * 1024.0;

/// One measured configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    writers: usize,
    sync: bool,
}

impl Variant {
    fn label(self) -> String {
        let mode = if self.sync {
            "Sync".to_owned()
        } else {
            format!("write-behind {} ms", WRITE_BEHIND_INTERVAL.as_millis())
        };
        format!("{} writer(s), {mode}", self.writers)
    }
}

/// What one run of a variant measured.
struct Run {
    rate: f64,
    p99: f64,
}

/// The 99th percentile of `samples` (seconds).
pub(crate) fn p99(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64) * 0.99).ceil() as usize;
    samples[i.saturating_sub(1).min(samples.len() - 1)]
}

/// The resident set size of this process, from `/proc/self/status` (0 where there is none).
fn rss_bytes() -> f64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0.0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// `writers` tasks each doing `per_writer` increments of keys spread over `keys`, waiting for
/// each; the rate of the whole and the p99 latency of one update.
async fn drive(
    replicator: &Replicator,
    keys: usize,
    writers: usize,
    per_writer: usize,
) -> Result<Run> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let r = replicator.clone();
            tokio::spawn(async move {
                let me = r.self_id();
                let mut latencies = Vec::with_capacity(per_writer);
                for j in 0..per_writer {
                    let key =
                        Key::<PNCounter>::new(format!("c{:04}", (w * 7919 + j * 31) % keys.max(1)));
                    let me = me.clone();
                    let t = Instant::now();
                    r.update(&key, PNCounter::new(), WriteConsistency::Local, move |c| {
                        c.increment(&me, 1)
                    })
                    .await
                    .map_err(|e| BenchError::Failed(format!("update of {key:?}: {e}")))?;
                    latencies.push(t.elapsed().as_secs_f64());
                }
                Ok::<_, BenchError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(writers * per_writer);
    for t in tasks {
        latencies.extend(t.await.context(|| "writer task".to_owned())??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        rate: (writers * per_writer) as f64 / seconds.max(1e-9),
        p99: p99(&mut latencies),
    })
}

/// One raw store write's p99 (the same bytes as one key's record), `n` writes one after the other.
async fn raw_p99(raw: &RawWriter, keys: usize, n: usize) -> Result<f64> {
    let value = Bytes::from(vec![7u8; 64]);
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        raw.write(&format!("raw{:04}", i % keys.max(1)), value.clone())
            .await?;
        latencies.push(t.elapsed().as_secs_f64());
    }
    Ok(p99(&mut latencies))
}

fn durable(store: &Arc<dyn DurableStateStore>, sync: bool) -> Arc<DurableDistributedDataStore> {
    let write_mode = if sync {
        WriteMode::Sync
    } else {
        WriteMode::WriteBehind {
            interval: WRITE_BEHIND_INTERVAL,
        }
    };
    Arc::new(DurableDistributedDataStore::from_arc(
        Arc::clone(store),
        DurableOptions {
            write_mode,
            ..DurableOptions::default()
        },
    ))
}

/// The writer counts of a profile.
fn writer_counts(sizes: &Sizes) -> Vec<usize> {
    if sizes.concurrent_updates >= 500 {
        vec![1, 8, 64]
    } else {
        vec![1, 8]
    }
}

async fn measure_backend(spec: &BackendSpec, root: &Path, sizes: &Sizes) -> Result<Vec<Row>> {
    let name = spec.name();
    let store = spec.open().await?;
    let raw = RawWriter::open(
        spec,
        &match spec {
            BackendSpec::Sqlite { .. } => root.join("raw.db"),
            _ => root.join("raw-files"),
        },
    )
    .await?
    .ok_or_else(|| BenchError::Failed(format!("no raw writer for {name}")))?;
    let sync_store = durable(&store, true);
    let wb_store = durable(&store, false);
    let sync = lone_replicator("conc-sync", Some(sync_store.clone())).await?;
    let wb = lone_replicator("conc-wb", Some(wb_store.clone())).await?;
    let variants: Vec<Variant> = writer_counts(sizes)
        .into_iter()
        .flat_map(|writers| {
            [true, false]
                .into_iter()
                .map(move |sync| Variant { writers, sync })
        })
        .collect();
    // A first pass creates every key; not counted.
    for r in [&sync, &wb] {
        drive(r, sizes.concurrent_keys, 8, sizes.concurrent_keys / 8 + 1).await?;
    }
    wb_store
        .flush()
        .await
        .context(|| "flush after the first pass".to_owned())?;
    let mut rates = vec![Vec::new(); variants.len()];
    let mut p99s = vec![Vec::new(); variants.len()];
    let mut batch_sizes = vec![Vec::new(); variants.len()];
    let mut call_times = vec![Vec::new(); variants.len()];
    let mut raw_p99s = Vec::new();
    for round in 0..sizes.concurrent_rounds {
        // Alternate the order of the variants (and the raw baseline) round by round, so that
        // they share the moments of a busy machine.
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        raw_p99s.push(
            raw_p99(
                &raw,
                sizes.concurrent_keys,
                sizes.concurrent_updates.min(500),
            )
            .await?,
        );
        for i in order {
            let v = variants[i];
            let per_writer = (sizes.concurrent_updates / v.writers).max(1);
            let (replicator, store) = if v.sync {
                (&sync, &sync_store)
            } else {
                (&wb, &wb_store)
            };
            let before = store.stats();
            let started = Instant::now();
            let run = drive(replicator, sizes.concurrent_keys, v.writers, per_writer).await?;
            let elapsed = started.elapsed().as_secs_f64();
            let after = store.stats();
            // Records per store call: how many updates one batch carried.
            let batches = after.batches_written.saturating_sub(before.batches_written);
            let records = after.records_written.saturating_sub(before.records_written);
            batch_sizes[i].push(records as f64 / batches.max(1) as f64);
            // Time per store call: in Sync the writer is always in the store while updates
            // wait, so this is one batch's write (transaction and fsyncs).
            call_times[i].push(elapsed / batches.max(1) as f64);
            rates[i].push(run.rate);
            p99s[i].push(run.p99);
        }
    }
    let raw_p99 = median(&raw_p99s);
    let rate = |writers: usize, sync: bool| {
        variants
            .iter()
            .position(|v| *v == Variant { writers, sync })
            .map(|i| (median(&rates[i]), median(&p99s[i])))
    };
    let mut rows = Vec::new();
    rows.push(Row::info(
        format!("{name}: one raw store write, p99"),
        fmt_secs(raw_p99),
    ));
    for (i, v) in variants.iter().enumerate() {
        let per_call = if v.sync {
            format!(", {} per store call", fmt_secs(median(&call_times[i])))
        } else {
            String::new()
        };
        let mut row = Row::info(
            format!("{name}: {}", v.label()),
            format!(
                "{}, p99 {}, {:.1} records per store call{per_call}",
                fmt_rate(median(&rates[i]), "updates"),
                fmt_secs(median(&p99s[i])),
                median(&batch_sizes[i])
            ),
        );
        if v.sync
            && v.writers > 1
            && let Some((one, _)) = rate(1, true)
        {
            let r = ratio(median(&rates[i]), one);
            row.baseline = format!("{} (1 writer, Sync)", fmt_rate(one, "updates"));
            row.ratio = format!("{} of 1 writer", fmt_ratio(r));
        }
        rows.push(row);
    }
    let most = writer_counts(sizes).into_iter().max().unwrap_or(1);
    if let (Some((s, s_p99)), Some((w, _))) = (rate(most, true), rate(most, false)) {
        if name == "sqlite" {
            let r = ratio(s, w);
            rows.push(Row {
                what: format!("{name}: Sync vs write-behind, {most} writers"),
                figure: fmt_rate(s, "updates"),
                baseline: format!("{} (write-behind)", fmt_rate(w, "updates")),
                ratio: format!("{} of write-behind", fmt_ratio(r)),
                target: format!("≥ {SYNC_VS_WRITE_BEHIND}x"),
                met: Verdict::from_bool(r >= SYNC_VS_WRITE_BEHIND),
            });
        }
        if name == "fs"
            && let Some((one, _)) = rate(1, true)
        {
            let r = ratio(s, one);
            rows.push(Row {
                what: format!(
                    "{name}: Sync with {most} writers vs Sync with 1 writer (= Sync's rate \
                     before group commit, which wrote one update after the other)"
                ),
                figure: fmt_rate(s, "updates"),
                baseline: format!("{} (1 writer)", fmt_rate(one, "updates")),
                ratio: format!("{} of 1 writer", fmt_ratio(r)),
                target: format!("≥ {FS_GROUP_GAIN}x"),
                met: Verdict::from_bool(r >= FS_GROUP_GAIN),
            });
        }
        let r = ratio(s_p99, raw_p99);
        rows.push(Row {
            what: format!("{name}: p99 of Sync with {most} writers vs one raw write's p99"),
            figure: fmt_secs(s_p99),
            baseline: format!("{} (raw write)", fmt_secs(raw_p99)),
            ratio: format!("{} of raw", fmt_ratio(r)),
            target: format!("≤ {P99_VS_RAW}x"),
            met: Verdict::from_bool(r <= P99_VS_RAW),
        });
    }
    // The overload burst: 10x the most writers, each writing its own keys, at once.
    let before = rss_bytes();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak.max(rss_bytes())
        })
    };
    // 10x the writers, each doing as many updates as one writer of the largest variant.
    let burst = drive(
        &sync,
        sizes.concurrent_keys,
        most * 10,
        (sizes.concurrent_updates / most).max(1),
    )
    .await?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.context(|| "rss sampler".to_owned())?;
    let growth = (peak - before).max(0.0);
    rows.push(Row {
        what: format!(
            "{name}: RSS growth during a burst of {} Sync writers (10x), {}",
            most * 10,
            fmt_rate(burst.rate, "updates")
        ),
        figure: fmt_bytes(growth),
        baseline: format!("{} (RSS before)", fmt_bytes(before)),
        ratio: "—".into(),
        target: format!("< {}", fmt_bytes(BURST_RSS_BOUND)),
        met: Verdict::from_bool(growth < BURST_RSS_BOUND),
    });
    for r in [sync, wb] {
        r.shutdown()
            .await
            .context(|| "replicator shutdown".to_owned())?;
    }
    Ok(rows)
}

/// Runs area 7 on SQLite and fs.
pub async fn run(root: &Path, sizes: &Sizes) -> Result<Table> {
    let mut table = Table::new(
        "7. Concurrent Sync updates (group commit)",
        format!(
            "N writer tasks each increment PNCounters spread over {k} keys through one \
             replicator (`update`, Local), waiting for each update, {u} updates per variant and \
             round; Sync and write-behind ({wb} ms) replicators over the same store. Variants \
             alternate in order round by round; {r} rounds; figures are medians. p99 is the 99th \
             percentile of one update's latency; the raw baseline is one bare store write of the \
             same durability (as in area 1), one after the other. Time per store call (Sync) is \
             the variant's time divided by its store calls (the writer task is in the store \
             all the while updates wait). The burst runs 10x the most \
             writers at once on the Sync replicator; RSS is sampled every 5 ms. The HTTP rows \
             run the same load through `dd-node serve` (one node, no peers, a fresh store per \
             node started): N tokio tasks share one reqwest client on 127.0.0.1, each sending \
             its share of {u} `POST /keys/pncounter/<key>` increments and waiting for each \
             answer; each round starts one Sync node and one write-behind node (order \
             alternating) and runs the writer counts in alternating order, then a node on \
             `memory:` (Sync, no disk) with the most writers: the HTTP ceiling; the burst sends 10x \
             the most writers at once to a Sync node whose RSS is sampled every 5 ms. With \
             `DD_BENCH_BASELINE_NODE_BIN` (a dd-node built from an older commit) one writer's \
             Sync rate is compared on both binaries in every round: both nodes run at once \
             (fresh stores) and one writer sends each increment to both, the first of each pair \
             alternating; a node's rate is its requests over the sum of its latencies, the ratio \
             the median of the rounds' ratios.",
            k = sizes.concurrent_keys,
            u = sizes.concurrent_updates,
            wb = WRITE_BEHIND_INTERVAL.as_millis(),
            r = sizes.concurrent_rounds,
        ),
    );
    let dir = root.join("concurrent");
    let specs = [
        BackendSpec::Sqlite {
            path: dir.join("store.db"),
        },
        BackendSpec::Fs {
            dir: dir.join("fs-store"),
        },
    ];
    // Only the one-writer rows against the baseline binary (over HTTP), when asked for.
    let replicator_rows = crate::area_concurrent_http::baseline_only()?.is_none();
    for spec in specs.iter().filter(|_| replicator_rows) {
        let name = spec.name();
        eprintln!("[concurrent] {name}");
        let place = dir.join(format!("raw-{name}"));
        std::fs::create_dir_all(&place).context(|| format!("creating {}", place.display()))?;
        table
            .rows
            .extend(measure_backend(spec, &place, sizes).await?);
    }
    table
        .rows
        .extend(crate::area_concurrent_http::run(&dir, sizes).await?);
    Ok(table)
}
