//! Area 5: memory per key in the replicator — RSS growth per key of a child process holding
//! many small keys, against a plain `BTreeMap<String, GCounter>` of the same keys.

use std::collections::BTreeMap;

use dd_core::crdt::GCounter;
use dd_core::data::ErasedData;
use dd_core::replicator::WriteConsistency;
use dd_core::{DeltaReplicatedData, Key, UniqueReplicaId};

use crate::Sizes;
use crate::child::{self, ChildResult, ChildSpec, MemoryMode};
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::setup::lone_replicator;
use crate::stats::{fmt_bytes, fmt_ratio, fmt_secs, ratio};

/// Issue 19's target: at most this many bytes of RSS growth per key in the replicator (10M
/// small keys on a 24 GiB machine).
const MAX_BYTES_PER_KEY: f64 = 400.0;

fn key_name(i: usize) -> String {
    format!("key-{i:07}")
}

/// The child side: holds `keys` keys and returns what it measured.
pub async fn child_phase(mode: MemoryMode, keys: usize) -> Result<ChildResult> {
    match mode {
        MemoryMode::Replicator => {
            let replicator = lone_replicator("memory", None).await?;
            let me = replicator.self_id();
            let result = child::measure(|| async {
                for i in 0..keys {
                    let me = me.clone();
                    replicator
                        .update(
                            &Key::<GCounter>::new(key_name(i)),
                            GCounter::new(),
                            WriteConsistency::Local,
                            move |c| c.increment(&me, 1),
                        )
                        .await
                        .context(|| format!("update of key {i}"))?;
                }
                let held = replicator
                    .status()
                    .await
                    .context(|| "replicator status".to_owned())?
                    .keys;
                Ok(held as u64)
            })
            .await?;
            replicator
                .shutdown()
                .await
                .context(|| "replicator shutdown".to_owned())?;
            Ok(result)
        }
        MemoryMode::PlainMap => {
            let me = UniqueReplicaId::new_incarnation(dd_core::ReplicaId::new("memory"));
            let mut map = BTreeMap::new();
            let result = child::measure(|| async {
                for i in 0..keys {
                    let mut c = GCounter::new();
                    c.increment(&me, 1)
                        .map_err(|e| BenchError::Failed(e.to_string()))?;
                    // The state alone, as the replicator keeps it once its delta went out.
                    DeltaReplicatedData::reset_delta(&mut c);
                    map.insert(key_name(i), c);
                }
                Ok(map.len() as u64)
            })
            .await?;
            std::hint::black_box(&map);
            Ok(result)
        }
    }
}

async fn in_child(mode: MemoryMode, keys: usize) -> Result<ChildResult> {
    let spec = ChildSpec::Memory { mode, keys };
    let result = tokio::task::spawn_blocking(move || child::run(&spec))
        .await
        .context(|| "child task".to_owned())??;
    if result.count != keys as u64 {
        return Err(BenchError::Failed(format!(
            "{mode:?} holds {} keys, expected {keys}",
            result.count
        )));
    }
    Ok(result)
}

/// Runs area 5.
pub async fn run(sizes: &Sizes) -> Result<Table> {
    let n = sizes.memory_keys;
    let mut table = Table::new(
        "5. Memory per key in the replicator",
        format!(
            "A child process starts a replicator (no peers, no durable store) and updates {n} \
             keys (`key-0000000`…, each a `GCounter` incremented once by this replica, Local \
             consistency); the figure is (RSS after − RSS before) / keys, RSS from \
             /proc/self/status. The baseline is a child holding the same keys and values in a \
             plain `BTreeMap<String, GCounter>` (each state without pending delta, as the replicator \
             keeps it once the delta went out). Ratio = replicator bytes per key / plain map \
             bytes per key (plain map = 1). One run each (RSS is deterministic enough at this \
             size)."
        ),
    );
    eprintln!("[memory] plain map, {n} keys");
    let plain = in_child(MemoryMode::PlainMap, n).await?;
    eprintln!("[memory] replicator, {n} keys");
    let replicator = in_child(MemoryMode::Replicator, n).await?;
    let per_key = |r: &ChildResult| r.rss_growth_bytes() / n as f64;
    let (p, r) = (per_key(&plain), per_key(&replicator));
    let mut base = Row::info(
        format!("plain `BTreeMap<String, GCounter>`, RSS growth per key ({n} keys)"),
        fmt_bytes(p),
    );
    base.ratio = "1 (baseline)".into();
    table.rows.push(base);
    table.rows.push(Row {
        what: format!("replicator, RSS growth per key ({n} keys)"),
        figure: fmt_bytes(r),
        baseline: format!("{} (plain map)", fmt_bytes(p)),
        ratio: format!("{} of the plain map", fmt_ratio(ratio(r, p))),
        target: format!("≤ {} per key", fmt_bytes(MAX_BYTES_PER_KEY)),
        met: Verdict::from_bool(r <= MAX_BYTES_PER_KEY),
    });
    let mut one = GCounter::new();
    let me = UniqueReplicaId::new_incarnation(dd_core::ReplicaId::new("memory"));
    one.increment(&me, 1)
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    let encoded = ErasedData::encode(&one).context(|| "encoding a GCounter".to_owned())?;
    table.notes.push(format!(
        "for scale: a key is {} bytes and its state {} bytes encoded (postcard); in memory a \
         `GCounter` is a sorted vector of `u128` slots keyed by interned `UniqueReplicaId`s \
         (8 bytes each)",
        key_name(0).len(),
        encoded.len()
    ));
    table.notes.push(format!(
        "replicator: {n} updates took {} ({:.1} µs per update); peak RSS growth {}",
        fmt_secs(replicator.seconds),
        replicator.seconds * 1e6 / n as f64,
        fmt_bytes(replicator.peak_growth_bytes()),
    ));
    Ok(table)
}
