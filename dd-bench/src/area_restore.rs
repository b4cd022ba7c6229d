//! Area 2: restore on start — time and peak memory to load every key of one replica through
//! dd-durable (decoding included) against a raw scan of the same rows / files / objects, each
//! phase in its own child process.

use std::sync::Arc;

use bytes::Bytes;
use dd_core::crdt::ORSet;
use dd_core::data::{ErasedData, TypeRegistry};
use dd_core::durable::CrdtValueStore;
use dd_core::store::{DurableStateStore, Revision, WriteOp, WriteOutcome};
use dd_core::{ReplicaId, UniqueReplicaId};
use dd_durable::record::{self, Record};
use dd_durable::{DurableDistributedDataStore, DurableOptions};
use futures::TryStreamExt;

use crate::Sizes;
use crate::backends::{BackendSpec, RawScan};
use crate::child::{self, ChildResult, ChildSpec, RestoreMode};
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::setup::Backends;
use crate::stats::{fmt_bytes, fmt_ratio, fmt_secs, median, ratio};

/// The replica whose keys are loaded.
pub(crate) const REPLICA: &str = "restore";
/// Load time target: at most this multiple of the raw scan's time.
const TIME_TARGET: f64 = 1.25;
/// Memory target: the load's extra peak memory over the raw scan stays below this fraction of
/// the bytes loaded (a load that held every record would need more than all of them).
const MEMORY_TARGET: f64 = 0.5;
/// Records per populate batch.
const POPULATE_BATCH: usize = 500;

fn key_name(i: usize) -> String {
    format!("k{i:07}")
}

/// The stored value of every key: an `ORSet<String>` of a few elements, as a stored record.
pub(crate) fn record_bytes() -> Result<Bytes> {
    let node = UniqueReplicaId::new("writer", 1);
    let mut set = ORSet::new();
    for j in 0..8 {
        set.add(&node, format!("element-{j:02}-of-a-set-restored-on-start"));
    }
    let payload = ErasedData::encode(&set).context(|| "encoding an ORSet".to_owned())?;
    let bytes = record::encode(&Record::Data {
        type_name: "ORSet<String>",
        payload: &payload,
    })
    .context(|| "encoding a record".to_owned())?;
    Ok(Bytes::from(bytes))
}

/// Writes `n` keys of [`REPLICA`]. fs records are written as files directly (no fsync: 100,000
/// fsyncs take minutes on this machine and do not matter for reading); the others through the
/// backend's `write_batch`.
pub(crate) async fn populate(spec: &BackendSpec, n: usize, value: &Bytes) -> Result<()> {
    let store = spec.open().await?;
    if let BackendSpec::Fs { dir } = spec {
        // The first record through the store creates the replica directory as the store does.
        store
            .put(REPLICA, &key_name(0), None, value.clone())
            .await
            .context(|| "fs: first record".to_owned())?;
        let replica_dir = dir.join(dd_store_fs::name::FileName::for_name(REPLICA).as_str());
        let value = value.clone();
        return tokio::task::spawn_blocking(move || {
            for i in 1..n {
                let key = key_name(i);
                let file = dd_store_fs::name::FileName::for_name(&key);
                let bytes = dd_store_fs::record::encode(&key, Revision::FIRST, &value);
                std::fs::write(replica_dir.join(file.as_str()), bytes)
                    .context(|| format!("fs: writing {key}"))?;
            }
            Ok(())
        })
        .await
        .context(|| "fs populate task".to_owned())?;
    }
    for start in (0..n).step_by(POPULATE_BATCH) {
        let ops = (start..(start + POPULATE_BATCH).min(n))
            .map(|i| WriteOp::Put {
                key: key_name(i),
                expected: None,
                value: value.clone(),
            })
            .collect();
        let outcomes = store
            .write_batch(REPLICA, ops)
            .await
            .context(|| format!("{}: populating keys from {start}", spec.name()))?;
        if let Some(bad) = outcomes
            .iter()
            .find(|o| !matches!(o, WriteOutcome::Written(_)))
        {
            return Err(BenchError::Failed(format!(
                "{}: populating keys from {start}: {bad:?}",
                spec.name()
            )));
        }
    }
    Ok(())
}

/// The child side: loads every key of `replica` and returns what it measured.
pub async fn child_phase(
    backend: &BackendSpec,
    replica: &str,
    mode: RestoreMode,
) -> Result<ChildResult> {
    match mode {
        RestoreMode::Raw | RestoreMode::RawDecode => {
            let scan = RawScan::prepare(backend).await?;
            let decode = mode == RestoreMode::RawDecode;
            child::measure(|| scan.scan(replica, decode)).await
        }
        RestoreMode::Durable => {
            let store: Arc<dyn DurableStateStore> = backend.open().await?;
            let durable = DurableDistributedDataStore::from_arc(store, DurableOptions::default());
            let registry = TypeRegistry::with_builtin_types();
            let replica = ReplicaId::new(replica);
            child::measure(|| async {
                durable
                    .load(&replica, &registry)
                    .try_fold(0u64, |n, _entry| async move { Ok(n + 1) })
                    .await
                    .context(|| format!("loading replica {replica}"))
            })
            .await
        }
    }
}

/// Runs area 2.
pub async fn run(backends: &Backends, sizes: &Sizes) -> Result<Table> {
    let n = sizes.restore_keys;
    let value = record_bytes()?;
    let mut table = Table::new(
        "2. Restore on start",
        format!(
            "{n} keys of one replica (each an `ORSet<String>` of 8 elements, {b} bytes as a stored \
             record; {total} in all; fewer for S3, see the notes) are loaded, each phase in a fresh child process: \
             dd-durable `load` (streamed scan + record format check + CRDT decode) against a raw scan \
             of the same rows / files / objects (rusqlite SELECT; read_dir + reading each file; \
             ListObjectsV2 + GetObject with dd-store-s3's fetch concurrency of 16; for Cassandra a \
             bare scylla `SELECT` of each of the replica's 64 bucket partitions, all at once, paged \
             by the driver), and, for fs, SQLite and Cassandra, the raw scan plus the same record format check and CRDT decode without dd-durable, \
             which shows how much of the load is decoding. The phases rotate, {r} runs each; figures are medians. Time ratio = load time / raw scan \
             time (raw = 1). Memory = peak RSS (`VmHWM`) minus RSS just before the phase.",
            b = value.len(),
            total = fmt_bytes((n * value.len()) as f64),
            r = sizes.restore_runs,
        ),
    );
    table.notes.extend(backends.skipped.iter().cloned());
    for spec in &backends.specs {
        if matches!(spec, BackendSpec::CassandraDouble { .. }) {
            table.notes.push(
                "cassandra: not measured here (a load from an in-memory CQL test double says \
                 nothing about a real Cassandra)"
                    .into(),
            );
            continue;
        }
        let name = spec.name();
        let is_s3 = matches!(spec, BackendSpec::S3 { .. });
        let is_cassandra = matches!(spec, BackendSpec::Cassandra { .. });
        let n = if is_s3 || is_cassandra {
            sizes.restore_keys_s3
        } else {
            sizes.restore_keys
        };
        let loaded_bytes = (n * value.len()) as f64;
        if is_cassandra && n != sizes.restore_keys {
            table.notes.push(format!(
                "cassandra: {n} keys instead of {}: populating writes every key with its own \
                 lightweight transaction (a Paxos round), a few hundred per second on this \
                 one-node server",
                sizes.restore_keys
            ));
        }
        if is_s3 && n != sizes.restore_keys {
            table.notes.push(format!(
                "s3: {n} keys instead of {}: s3s-fs on this machine serves only a few hundred \
                 GetObject per second, so a full-size S3 load takes minutes per run",
                sizes.restore_keys
            ));
        }
        eprintln!("[restore] {name}: populating {n} keys");
        populate(spec, n, &value).await?;
        let mut modes = vec![RestoreMode::Raw, RestoreMode::Durable];
        if !is_s3 {
            modes.insert(1, RestoreMode::RawDecode);
        }
        let mut results: Vec<Vec<ChildResult>> = vec![Vec::new(); modes.len()];
        for run in 0..sizes.restore_runs {
            eprintln!("[restore] {name}: run {}", run + 1);
            // Rotate the order so that no phase always runs first.
            let mut order: Vec<usize> = (0..modes.len()).collect();
            order.rotate_left(run % modes.len());
            for i in order {
                let mode = modes[i];
                let spec = ChildSpec::Restore {
                    backend: spec.clone(),
                    replica: REPLICA.to_owned(),
                    mode,
                };
                let result = tokio::task::spawn_blocking(move || child::run(&spec))
                    .await
                    .context(|| "child task".to_owned())??;
                if result.count != n as u64 {
                    return Err(BenchError::Failed(format!(
                        "{name}: {mode:?} read {} records, expected {n}",
                        result.count
                    )));
                }
                results[i].push(result);
            }
        }
        let of = |mode: RestoreMode| {
            modes
                .iter()
                .position(|m| *m == mode)
                .map(|i| results[i].clone())
                .unwrap_or_default()
        };
        let secs = |rs: &[ChildResult]| median(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
        let peak = |rs: &[ChildResult]| {
            median(
                &rs.iter()
                    .map(ChildResult::peak_growth_bytes)
                    .collect::<Vec<_>>(),
            )
        };
        let (raw, durable) = (of(RestoreMode::Raw), of(RestoreMode::Durable));
        let (raw_s, durable_s) = (secs(&raw), secs(&durable));
        let (raw_m, durable_m) = (peak(&raw), peak(&durable));
        let time_ratio = ratio(durable_s, raw_s);
        let mut raw_row = Row::info(
            format!(
                "{name}: raw scan of {n} records, no decoding (time; peak memory growth {})",
                fmt_bytes(raw_m)
            ),
            fmt_secs(raw_s),
        );
        raw_row.ratio = "1 (baseline)".into();
        table.rows.push(raw_row);
        let raw_decode = of(RestoreMode::RawDecode);
        if !raw_decode.is_empty() {
            let s = secs(&raw_decode);
            table.rows.push(Row {
                what: format!(
                    "{name}: raw scan + record format check + CRDT decode, without dd-durable \
                     (informational: the decoding share)"
                ),
                figure: fmt_secs(s),
                baseline: format!("{} (raw scan)", fmt_secs(raw_s)),
                ratio: format!("{} of raw", fmt_ratio(ratio(s, raw_s))),
                target: "—".into(),
                met: Verdict::NoTarget,
            });
        }
        table.rows.push(Row {
            what: format!("{name}: dd-durable `load` of {n} keys, decode included (time)"),
            figure: fmt_secs(durable_s),
            baseline: format!("{} (raw scan)", fmt_secs(raw_s)),
            ratio: format!("{} of raw", fmt_ratio(time_ratio)),
            target: format!("≤ {TIME_TARGET}x raw"),
            met: Verdict::from_bool(time_ratio <= TIME_TARGET),
        });
        let extra = (durable_m - raw_m).max(0.0);
        table.rows.push(Row {
            what: format!("{name}: dd-durable `load` peak memory growth"),
            figure: fmt_bytes(durable_m),
            baseline: format!("{} (raw scan)", fmt_bytes(raw_m)),
            ratio: format!(
                "+{} over raw = {:.0}% of the {} loaded ({:.0} B/key)",
                fmt_bytes(extra),
                100.0 * ratio(extra, loaded_bytes),
                fmt_bytes(loaded_bytes),
                extra / n as f64
            ),
            target: format!(
                "streamed: extra < {:.0}% of the bytes loaded",
                MEMORY_TARGET * 100.0
            ),
            met: Verdict::from_bool(extra < MEMORY_TARGET * loaded_bytes),
        });
    }
    Ok(table)
}
