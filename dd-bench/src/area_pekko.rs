//! Area "durable-dd vs Apache Pekko DD": the same workloads run by durable-dd (in this process
//! or a child of it) and by Apache Pekko Distributed Data (the Java harness of `bench/pekko`, one
//! JVM per run), alternating the two systems, medians, and a ratio per row that says how many
//! times durable-dd is ahead (above 1) or behind (below 1).
//!
//! The harness is built here: Maven resolves its classpath (`dependency:build-classpath`, offline
//! first, then online; jars stay in `~/.m2`) and `javac` compiles it into `bench/pekko/target`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dd_core::cluster::StaticCluster;
use dd_core::crdt::GCounter;
use dd_core::durable::CrdtValueStore;
use dd_core::replicator::{
    DistributedData, ReadConsistency, Replicator, ReplicatorError, Settings, WriteConsistency,
};
use dd_core::transport::memory::{Faults, MemoryNetwork};
use dd_core::{Key, ReplicaId, UniqueReplicaId};
use dd_durable::{DurableDistributedDataStore, DurableOptions, WriteMode};
use serde_json::Value;

use crate::area_gossip;
use crate::area_restore;
use crate::backends::BackendSpec;
use crate::child::{self, ChildSpec, MemoryMode, RestoreMode};
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Table, Verdict};
use crate::setup::{lone_replicator, unique_suffix};
use crate::stats::{fmt_bytes, fmt_rate, fmt_ratio, fmt_secs, median, ratio};

/// Write-behind interval on both sides (durable-dd `WriteBehind`, Pekko `write-behind-interval`).
const WRITE_BEHIND: Duration = Duration::from_millis(100);
/// Gossip interval on both sides of the cluster row (durable-dd's area 3 uses it too).
const GOSSIP_INTERVAL_MS: u64 = 500;
/// Every row's target: durable-dd at least as good as Pekko.
const TARGET: f64 = 1.0;
/// JVM flags: lmdbjava reaches into `java.nio` buffers, which Java 17 closes by default.
const JVM_FLAGS: [&str; 4] = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Xmx6g",
    "-XX:+UseG1GC",
];
/// Keys of the partition row (full profile), the size of issue 19's scenario.
const PARTITION_KEYS: usize = 100_000;
/// Keys changed on a while c is cut off.
const PARTITION_CHANGED: usize = 1_000;
/// How long c is cut off.
const PARTITION: Duration = Duration::from_secs(3);
/// Longest wait for c to receive the keys, and for the repair.
const PARTITION_LIMIT: Duration = Duration::from_secs(900);
/// The harness's main class.
const MAIN_CLASS: &str = "io.durabledd.bench.pekko.Harness";

/// The sizes of this area.
#[derive(Debug, Clone)]
struct PekkoSizes {
    /// Only the one tiny CI row (build the harness and prove it runs).
    smoke: bool,
    /// Runs per system per row, alternating.
    runs: usize,
    /// Updates per round with one writer.
    write_updates_1: usize,
    /// Updates per round with 64 writers.
    write_updates_64: usize,
    /// Measured rounds per run (after one uncounted round that creates the keys).
    write_rounds: usize,
    /// Keys loaded on start.
    restore_keys: usize,
    /// GCounter keys held.
    memory_keys: usize,
    /// Updates of the 5-node row.
    cluster_updates: usize,
    /// Keys of the 5-node row.
    cluster_keys: usize,
    /// Keys held by the 3 nodes of the partition row.
    partition_keys: usize,
}

impl PekkoSizes {
    fn of(full: bool) -> PekkoSizes {
        if full {
            PekkoSizes {
                smoke: false,
                runs: 3,
                write_updates_1: 100,
                write_updates_64: 640,
                write_rounds: 5,
                restore_keys: 100_000,
                memory_keys: 1_000_000,
                cluster_updates: 10_000,
                cluster_keys: 100,
                partition_keys: PARTITION_KEYS,
            }
        } else {
            PekkoSizes {
                smoke: true,
                runs: 1,
                write_updates_1: 20,
                write_updates_64: 0,
                write_rounds: 1,
                restore_keys: 0,
                memory_keys: 0,
                cluster_updates: 0,
                cluster_keys: 0,
                partition_keys: 0,
            }
        }
    }
}

/// The built harness: the java binary and the classpath to run it with.
struct Harness {
    java: PathBuf,
    classpath: String,
}

fn tool(name: &str) -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if Path::new(&home).join("bin").join(name).exists() => {
            Path::new(&home).join("bin").join(name)
        }
        _ => PathBuf::from(name),
    }
}

fn run_tool(command: &mut Command, what: &str) -> Result<()> {
    let out = command
        .output()
        .context(|| format!("starting {what} ({command:?})"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(BenchError::Failed(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail.join("\n")
    )))
}

impl Harness {
    /// Resolves the classpath with Maven (offline first) and compiles the harness.
    fn build() -> Result<Harness> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/pekko");
        let pom = dir.join("pom.xml");
        let target = dir.join("target");
        let classes = target.join("classes");
        std::fs::create_dir_all(&classes).context(|| format!("creating {}", classes.display()))?;
        let cp_file = target.join("classpath.txt");
        let started = Instant::now();
        let maven = |offline: bool| {
            let mut c = Command::new("mvn");
            c.arg("-B").arg("-q");
            if offline {
                c.arg("-o");
            }
            c.arg("-f")
                .arg(&pom)
                .arg("dependency:build-classpath")
                .arg("-DincludeScope=runtime")
                .arg(format!("-Dmdep.outputFile={}", cp_file.display()));
            c
        };
        if run_tool(&mut maven(true), "mvn -o dependency:build-classpath").is_err() {
            eprintln!("[pekko] the Maven cache lacks the harness's jars: resolving online");
            run_tool(&mut maven(false), "mvn dependency:build-classpath")?;
        }
        let classpath = std::fs::read_to_string(&cp_file)
            .context(|| format!("reading {}", cp_file.display()))?
            .trim()
            .to_owned();
        let source = dir.join("src/main/java/io/durabledd/bench/pekko/Harness.java");
        run_tool(
            Command::new(tool("javac"))
                .arg("--release")
                .arg("17")
                .arg("-cp")
                .arg(&classpath)
                .arg("-d")
                .arg(&classes)
                .arg(&source),
            "javac of the Pekko harness",
        )?;
        eprintln!(
            "[pekko] harness built in {}",
            fmt_secs(started.elapsed().as_secs_f64())
        );
        Ok(Harness {
            java: tool("java"),
            classpath: format!("{}:{classpath}", classes.display()),
        })
    }

    /// Runs one workload in a fresh JVM and returns its result object.
    fn run(&self, workload: &str, args: &[(&str, String)]) -> Result<Value> {
        let mut c = Command::new(&self.java);
        c.args(JVM_FLAGS)
            .arg("-cp")
            .arg(&self.classpath)
            .arg(MAIN_CLASS)
            .arg(workload);
        for (k, v) in args {
            c.arg(format!("{k}={v}"));
        }
        let what = format!("Pekko harness workload {workload} {args:?}");
        let out = c
            .stderr(std::process::Stdio::inherit())
            .output()
            .context(|| format!("starting {what}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(BenchError::Failed(format!(
                "{what} failed ({}): {stdout}",
                out.status
            )));
        }
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("PEKKO-RESULT "))
            .ok_or_else(|| BenchError::Failed(format!("{what}: no result line in {stdout}")))?;
        serde_json::from_str(line).context(|| format!("{what}: reading {line}"))
    }
}

/// Blocking work (a child process) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context(|| "blocking task".to_owned())?
}

fn number(v: &Value, field: &str) -> Result<f64> {
    v.get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| BenchError::Failed(format!("Pekko result {v} has no number {field}")))
}

/// durable-dd's side of a write run: a replicator with a fresh `backend` store in `mode`;
/// `writers` tasks update distinct GCounter keys (`Local`, each waiting for its update); the
/// median rate of `rounds` rounds after one uncounted round that creates the keys. No final
/// `flush()` for WriteBehind: Pekko's write-behind acknowledges before LMDB has the update too.
async fn dd_write(
    backend: &BackendSpec,
    mode: WriteMode,
    writers: usize,
    updates: usize,
    rounds: usize,
) -> Result<f64> {
    let store = backend.open().await?;
    let durable: Arc<dyn CrdtValueStore> = Arc::new(DurableDistributedDataStore::from_arc(
        store,
        DurableOptions {
            write_mode: mode,
            ..DurableOptions::default()
        },
    ));
    let replicator = lone_replicator("pekko-pair", Some(durable)).await?;
    let mut rates = Vec::new();
    for round in 0..=rounds {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..writers {
            let replicator = replicator.clone();
            tasks.push(tokio::spawn(async move {
                let me = replicator.self_id();
                for i in (w..updates).step_by(writers) {
                    let me = me.clone();
                    replicator
                        .update(
                            &Key::<GCounter>::new(format!("k{i:06}")),
                            GCounter::new(),
                            WriteConsistency::Local,
                            move |c| c.increment(&me, 1),
                        )
                        .await
                        .context(|| format!("update of key {i}"))?;
                }
                Ok::<(), BenchError>(())
            }));
        }
        for t in tasks {
            t.await.context(|| "writer task".to_owned())??;
        }
        let seconds = started.elapsed().as_secs_f64();
        if round > 0 {
            rates.push(updates as f64 / seconds.max(1e-9));
        }
    }
    replicator
        .shutdown()
        .await
        .context(|| "replicator shutdown".to_owned())?;
    Ok(median(&rates))
}

/// A fresh fs or SQLite backend under `root`.
fn fresh_backend(root: &Path, sqlite: bool) -> Result<BackendSpec> {
    let dir = root.join(format!("pekko-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).context(|| format!("creating {}", dir.display()))?;
    Ok(if sqlite {
        BackendSpec::Sqlite {
            path: dir.join("store.db"),
        }
    } else {
        BackendSpec::Fs {
            dir: dir.join("fs-store"),
        }
    })
}

fn row(what: String, dd: String, pekko: String, advantage: f64, how: &str) -> Row {
    Row {
        what,
        figure: dd,
        baseline: format!("{pekko} (Pekko)"),
        ratio: format!("{} {how}", fmt_ratio(advantage)),
        target: format!("≥ {TARGET}x (durable-dd ahead)"),
        met: Verdict::from_bool(advantage >= TARGET),
    }
}

/// Rows of workload (1): durable update throughput.
async fn write_rows(
    harness: &Arc<Harness>,
    root: &Path,
    sizes: &PekkoSizes,
    table: &mut Table,
) -> Result<()> {
    let writer_counts: &[usize] = if sizes.smoke { &[1] } else { &[1, 64] };
    let wb = WriteMode::WriteBehind {
        interval: WRITE_BEHIND,
    };
    let modes: Vec<(&str, WriteMode)> = if sizes.smoke {
        vec![("durable", WriteMode::Sync)]
    } else {
        vec![("durable", WriteMode::Sync), ("write-behind", wb)]
    };
    let backends: &[bool] = if sizes.smoke { &[true] } else { &[true, false] };
    for &writers in writer_counts {
        let updates = if writers == 1 {
            sizes.write_updates_1
        } else {
            sizes.write_updates_64
        };
        for (pekko_mode, dd_mode) in &modes {
            let mut pekko_rates = Vec::new();
            let mut dd_rates: Vec<Vec<f64>> = vec![Vec::new(); backends.len()];
            for run in 0..sizes.runs {
                eprintln!(
                    "[pekko] write: {writers} writer(s), {pekko_mode}, run {}",
                    run + 1
                );
                let pekko_first = run % 2 == 0;
                let pekko = || {
                    let harness = Arc::clone(harness);
                    let dir = root.join(format!("lmdb-{}", unique_suffix()));
                    let mut args = vec![
                        ("writers", writers.to_string()),
                        ("updates", updates.to_string()),
                        ("rounds", sizes.write_rounds.to_string()),
                        ("mode", (*pekko_mode).to_owned()),
                        ("dir", dir.display().to_string()),
                    ];
                    if *pekko_mode == "write-behind" {
                        args.push(("interval", format!("{}ms", WRITE_BEHIND.as_millis())));
                    }
                    blocking(move || harness.run("write", &args))
                };
                if pekko_first {
                    pekko_rates.push(number(&pekko().await?, "median_rate")?);
                }
                for (i, &sqlite) in backends.iter().enumerate() {
                    let spec = fresh_backend(root, sqlite)?;
                    dd_rates[i].push(
                        dd_write(&spec, *dd_mode, writers, updates, sizes.write_rounds).await?,
                    );
                }
                if !pekko_first {
                    pekko_rates.push(number(&pekko().await?, "median_rate")?);
                }
            }
            let pekko_rate = median(&pekko_rates);
            let dd_label = match dd_mode {
                WriteMode::Sync => "Sync".to_owned(),
                _ => format!("WriteBehind {} ms", WRITE_BEHIND.as_millis()),
            };
            let pekko_label = if *pekko_mode == "durable" {
                "LMDB, write-behind off".to_owned()
            } else {
                format!(
                    "LMDB, write-behind-interval {} ms",
                    WRITE_BEHIND.as_millis()
                )
            };
            for (i, &sqlite) in backends.iter().enumerate() {
                let rate = median(&dd_rates[i]);
                table.rows.push(row(
                    format!(
                        "(1) update throughput, {writers} writer{s}: durable-dd {b} {dd_label} vs Pekko {pekko_label}",
                        s = if writers == 1 { "" } else { "s" },
                        b = if sqlite { "SQLite" } else { "fs" },
                    ),
                    fmt_rate(rate, "updates"),
                    fmt_rate(pekko_rate, "updates"),
                    ratio(rate, pekko_rate),
                    "Pekko's rate",
                ));
            }
        }
    }
    Ok(())
}

/// Rows of workload (2): restore on start.
async fn restore_rows(
    harness: &Arc<Harness>,
    root: &Path,
    sizes: &PekkoSizes,
    table: &mut Table,
) -> Result<()> {
    let n = sizes.restore_keys;
    let lmdb = root.join(format!("lmdb-restore-{}", unique_suffix()));
    eprintln!("[pekko] restore: populating {n} keys (Pekko)");
    {
        let harness = Arc::clone(harness);
        let args = vec![("keys", n.to_string()), ("dir", lmdb.display().to_string())];
        blocking(move || harness.run("restore-populate", &args)).await?;
    }
    let value = area_restore::record_bytes()?;
    let specs = [fresh_backend(root, true)?, fresh_backend(root, false)?];
    for spec in &specs {
        eprintln!("[pekko] restore: populating {n} keys ({})", spec.name());
        area_restore::populate(spec, n, &value).await?;
    }
    let mut pekko_secs = Vec::new();
    let mut dd_secs: Vec<Vec<f64>> = vec![Vec::new(); specs.len()];
    for run in 0..sizes.runs {
        eprintln!("[pekko] restore: run {}", run + 1);
        let pekko = || {
            let harness = Arc::clone(harness);
            let args = vec![("keys", n.to_string()), ("dir", lmdb.display().to_string())];
            blocking(move || harness.run("restore-load", &args))
        };
        if run % 2 == 0 {
            pekko_secs.push(number(&pekko().await?, "seconds")?);
        }
        for (i, spec) in specs.iter().enumerate() {
            let child_spec = ChildSpec::Restore {
                backend: spec.clone(),
                replica: area_restore::REPLICA.to_owned(),
                mode: RestoreMode::Durable,
            };
            let result = blocking(move || child::run(&child_spec)).await?;
            if result.count != n as u64 {
                return Err(BenchError::Failed(format!(
                    "{}: loaded {} keys, expected {n}",
                    spec.name(),
                    result.count
                )));
            }
            dd_secs[i].push(result.seconds);
        }
        if run % 2 == 1 {
            pekko_secs.push(number(&pekko().await?, "seconds")?);
        }
    }
    let pekko = median(&pekko_secs);
    for (i, spec) in specs.iter().enumerate() {
        let dd = median(&dd_secs[i]);
        table.rows.push(row(
            format!(
                "(2) restore on start, {n} `ORSet<String>` keys of 8 elements: durable-dd {} load vs Pekko LMDB load",
                spec.name()
            ),
            fmt_secs(dd),
            fmt_secs(pekko),
            ratio(pekko, dd),
            "(Pekko's time / durable-dd's)",
        ));
    }
    Ok(())
}

/// Rows of workload (3): 5 nodes on 127.0.0.1.
async fn cluster_rows(harness: &Arc<Harness>, sizes: &PekkoSizes, table: &mut Table) -> Result<()> {
    let (updates, keys) = (sizes.cluster_updates, sizes.cluster_keys);
    let mut pekko_bytes = Vec::new();
    let mut pekko_conv = Vec::new();
    let mut dd_bytes = Vec::new();
    let mut dd_conv = Vec::new();
    for run in 0..sizes.runs {
        eprintln!("[pekko] 5 nodes: run {}", run + 1);
        let pekko = || {
            let harness = Arc::clone(harness);
            let args = vec![
                ("updates", updates.to_string()),
                ("keys", keys.to_string()),
                ("gossip_interval", format!("{GOSSIP_INTERVAL_MS}ms")),
            ];
            blocking(move || harness.run("cluster", &args))
        };
        let mut record = |v: Value| -> Result<()> {
            pekko_bytes.push(number(&v, "bytes_per_update")?);
            pekko_conv.push(number(&v, "converge_seconds")?);
            Ok(())
        };
        if run % 2 == 0 {
            record(pekko().await?)?;
        }
        let outcome = area_gossip::run_once(area_gossip::Mode::Deltas, updates, keys).await?;
        dd_bytes.push(outcome.bytes.total() as f64 / updates as f64);
        dd_conv.push(outcome.converge_seconds);
        if run % 2 == 1 {
            record(pekko().await?)?;
        }
    }
    let (pb, db) = (median(&pekko_bytes), median(&dd_bytes));
    let (pc, dc) = (median(&pekko_conv), median(&dd_conv));
    table.rows.push(row(
        format!(
            "(3) 5 nodes, {updates} updates of {keys} `ORSet` keys: bytes on the wire per update"
        ),
        fmt_bytes(db),
        fmt_bytes(pb),
        ratio(pb, db),
        "(Pekko's bytes / durable-dd's)",
    ));
    table.rows.push(row(
        format!("(3) 5 nodes, {updates} updates: time from the last update until every node reads every element"),
        fmt_secs(dc),
        fmt_secs(pc),
        ratio(pc, dc),
        "(Pekko's time / durable-dd's)",
    ));
    Ok(())
}

/// Rows of workload (4): memory per key.
async fn memory_rows(harness: &Arc<Harness>, sizes: &PekkoSizes, table: &mut Table) -> Result<()> {
    let keys = sizes.memory_keys;
    eprintln!("[pekko] memory: {keys} keys (Pekko)");
    let pekko = {
        let harness = Arc::clone(harness);
        let args = vec![("keys", keys.to_string())];
        blocking(move || harness.run("memory", &args)).await?
    };
    let pekko_per_key = number(&pekko, "bytes_per_key")?;
    eprintln!("[pekko] memory: {keys} keys (durable-dd)");
    let spec = ChildSpec::Memory {
        mode: MemoryMode::Replicator,
        keys,
    };
    let dd = blocking(move || child::run(&spec)).await?;
    if dd.count != keys as u64 {
        return Err(BenchError::Failed(format!(
            "the replicator holds {} keys, expected {keys}",
            dd.count
        )));
    }
    let dd_per_key = dd.rss_growth_bytes() / keys as f64;
    table.rows.push(row(
        format!(
            "(4) memory per key, {keys} `GCounter` keys: durable-dd RSS growth vs Pekko live heap growth (after full GCs)"
        ),
        fmt_bytes(dd_per_key),
        fmt_bytes(pekko_per_key),
        ratio(pekko_per_key, dd_per_key),
        "(Pekko's bytes / durable-dd's)",
    ));
    Ok(())
}

fn partition_key(i: usize) -> Key<GCounter> {
    Key::new(format!("key-{i:07}"))
}

/// Whether `replica` reads `value` in every key `0..keys` stepping by `step`.
async fn all_hold(replica: &Replicator, keys: usize, step: usize, value: u128) -> Result<bool> {
    for i in (0..keys).step_by(step.max(1)) {
        match replica.get(&partition_key(i), ReadConsistency::Local).await {
            Ok(c) if c.value() == value => {}
            Ok(_) | Err(ReplicatorError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e).context(|| format!("reading key {i}")),
        }
    }
    Ok(true)
}

/// durable-dd's side of the partition row: 3 replicas on the in-process network
/// (`MemoryNetwork`, which can partition; messages are encoded and decoded as over TCP), default
/// settings; `keys` GCounter keys written on a until c holds them all; c cut from a and b for
/// [`PARTITION`] while [`PARTITION_CHANGED`] keys are incremented on a; then healed. Returns the
/// seconds from the heal until c reads every changed value, and how many c read during the cut.
async fn dd_partition(keys: usize) -> Result<(f64, usize)> {
    let net = MemoryNetwork::new(7, Faults::default());
    let ids: Vec<UniqueReplicaId> = ["a", "b", "c"]
        .into_iter()
        .map(|n| UniqueReplicaId::new_incarnation(ReplicaId::new(n)))
        .collect();
    let mut replicas = Vec::new();
    for id in &ids {
        let peers: Vec<ReplicaId> = ids
            .iter()
            .filter(|o| *o != id)
            .map(|o| o.replica().clone())
            .collect();
        let cluster = StaticCluster::new(id.clone(), peers);
        replicas.push(
            DistributedData::start(cluster, net.join(id.clone()), Settings::default())
                .await
                .context(|| format!("starting replica {id}"))?,
        );
    }
    let (a, c) = (&replicas[0], &replicas[2]);
    let me = a.self_id();
    let bump = |i: usize| {
        let me = me.clone();
        async move {
            a.update(
                &partition_key(i),
                GCounter::new(),
                WriteConsistency::Local,
                move |x| x.increment(&me, 1),
            )
            .await
            .context(|| format!("update of key {i}"))
        }
    };
    for i in 0..keys {
        bump(i).await?;
    }
    let started = Instant::now();
    while !(all_hold(c, keys, keys / 200, 1).await? && all_hold(c, keys, 1, 1).await?) {
        if started.elapsed() > PARTITION_LIMIT {
            return Err(BenchError::Failed(format!(
                "c did not receive the {keys} keys within {PARTITION_LIMIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let step = (keys / PARTITION_CHANGED).max(1);
    let (ra, rb, rc) = (
        ids[0].replica().clone(),
        ids[1].replica().clone(),
        ids[2].replica().clone(),
    );
    let cut = Instant::now();
    net.partition(&[rc], &[ra, rb]);
    for j in 0..PARTITION_CHANGED {
        bump(j * step).await?;
    }
    if let Some(rest) = PARTITION.checked_sub(cut.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let mut seen = 0;
    for j in 0..PARTITION_CHANGED {
        if matches!(c.get(&partition_key(j * step), ReadConsistency::Local).await, Ok(x) if x.value() == 2)
        {
            seen += 1;
        }
    }
    net.heal();
    let healed = Instant::now();
    loop {
        let mut all = true;
        for j in 0..PARTITION_CHANGED {
            match c
                .get(&partition_key(j * step), ReadConsistency::Local)
                .await
            {
                Ok(x) if x.value() == 2 => {}
                Ok(_) => {
                    all = false;
                    break;
                }
                Err(e) => return Err(e).context(|| format!("reading key {}", j * step)),
            }
        }
        if all {
            break;
        }
        if healed.elapsed() > PARTITION_LIMIT {
            return Err(BenchError::Failed(format!(
                "c was not repaired within {PARTITION_LIMIT:?} of the heal"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let repair = healed.elapsed().as_secs_f64();
    for r in &replicas {
        r.shutdown()
            .await
            .context(|| "replica shutdown".to_owned())?;
    }
    Ok((repair, seen))
}

/// Rows of workload (5): repair after a partition.
async fn partition_rows(
    harness: &Arc<Harness>,
    sizes: &PekkoSizes,
    table: &mut Table,
) -> Result<()> {
    let keys = sizes.partition_keys;
    eprintln!("[pekko] partition: {keys} keys (Pekko)");
    let pekko = {
        let harness = Arc::clone(harness);
        let args = vec![
            ("keys", keys.to_string()),
            ("changed", PARTITION_CHANGED.to_string()),
            ("partition_ms", PARTITION.as_millis().to_string()),
            ("gossip_interval", "2s".to_owned()),
            ("limit_s", PARTITION_LIMIT.as_secs().to_string()),
        ];
        blocking(move || harness.run("partition", &args)).await?
    };
    if number(&pekko, "repaired")? < 1.0 {
        return Err(BenchError::Failed(format!(
            "Pekko's c was not repaired within {PARTITION_LIMIT:?}: {pekko}"
        )));
    }
    let pekko_seen = number(&pekko, "seen_during_partition")?;
    let pekko_s = number(&pekko, "repair_seconds")?;
    eprintln!("[pekko] partition: {keys} keys (durable-dd)");
    let (dd_s, dd_seen) = dd_partition(keys).await?;
    if dd_seen > 0 || pekko_seen > 0.0 {
        return Err(BenchError::Failed(format!(
            "the partition let updates through (durable-dd: {dd_seen}, Pekko: {pekko_seen})"
        )));
    }
    table.rows.push(row(
        format!(
            "(5) 3 nodes, {keys} `GCounter` keys, c cut off for {} s while {PARTITION_CHANGED} keys change on a: time from the heal until c reads them all",
            PARTITION.as_secs()
        ),
        fmt_secs(dd_s),
        fmt_secs(pekko_s),
        ratio(pekko_s, dd_s),
        "(Pekko's time / durable-dd's)",
    ));
    Ok(())
}

/// The rows named by `DD_BENCH_PEKKO_ROWS` (comma-separated: `write`, `restore`, `cluster`,
/// `memory`, `partition`), or `None` for every row; an unknown name is an error naming the known ones.
fn selected_rows() -> Result<Option<Vec<String>>> {
    const KNOWN: [&str; 5] = ["write", "restore", "cluster", "memory", "partition"];
    let Some(value) = crate::env::value("DD_BENCH_PEKKO_ROWS") else {
        return Ok(None);
    };
    let rows: Vec<String> = crate::env::items(&value).map(str::to_owned).collect();
    if let Some(bad) = rows.iter().find(|r| !KNOWN.contains(&r.as_str())) {
        return Err(BenchError::Failed(format!(
            "DD_BENCH_PEKKO_ROWS: unknown row `{bad}` in `{value}`; known rows: {}",
            KNOWN.join(", ")
        )));
    }
    Ok(Some(rows))
}

/// Runs the area; `full` selects the sizes of BENCHMARKS.md, else one tiny row for CI.
pub async fn run(root: &Path, full: bool) -> Result<Table> {
    let sizes = PekkoSizes::of(full);
    let harness = Arc::new(blocking(Harness::build).await?);
    let version = {
        let harness = Arc::clone(&harness);
        let probe = blocking(move || harness.run("version", &[])).await?;
        format!(
            "Apache Pekko {} on Java {}",
            probe
                .get("pekko_version")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            probe
                .get("java_version")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    };
    let mut table = Table::new(
        "durable-dd vs Apache Pekko DD",
        format!(
            "{version} (`pekko-distributed-data_2.13`, classic Replicator, one node per \
             `ActorSystem` with Artery TCP on 127.0.0.1; JVM flags {flags}), run by the harness \
             in `bench/pekko`, one fresh JVM per run, against durable-dd in this process (or a \
             child). Each row runs both systems {r} time(s), alternating which goes first; \
             figures are medians. The ratio says how many times durable-dd is ahead (above 1) or \
             behind (below 1). (1): a one-node cluster; every round updates distinct `GCounter` \
             keys once (Local / WriteLocal), one writer or 64 concurrent writers each waiting for \
             its update; one uncounted round creates the keys, then {wr} rounds, median rate \
             ({u1} updates per round with 1 writer, {u64} with 64). Pekko stores in LMDB through \
             its durable store actor (`durable.keys = [\"*\"]`), with write-behind off (each \
             update in LMDB before `UpdateSuccess`) or `write-behind-interval = {wb} ms`; \
             durable-dd's replicator stores through dd-durable Sync or WriteBehind ({wb} ms) on \
             SQLite or fs. Neither write-behind side waits for the final write. (2): the clock \
             runs from starting Pekko's replicator (which loads every durable key before it \
             answers) until it answers a Get of the last key; durable-dd: dd-durable `load` of \
             every key in a child process (area 2's phase). (3): 5 nodes in one JVM (Pekko) / \
             5 replicators in this process over TCP (durable-dd, area 3's delta mode); gossip \
             interval {g} ms on both (Pekko's delta propagation then runs every 200 ms, as \
             durable-dd's); Pekko's bytes are counted by a TCP relay in front of each node, less \
             its idle heartbeat and membership traffic (measured for 3 s before the updates); \
             durable-dd counts every message its replicators send. (4): Pekko: growth of the \
             heap in use after full GCs; durable-dd: RSS growth of a child process (area 5). (5): \
             3 nodes with default settings (gossip every 2 s), {pk} keys written on a until c \
             holds them; c cut off from a and b for {ps} s while {pc} keys change on a (Pekko: \
             Artery's test-mode blackhole, both ways, 3 nodes in one JVM over TCP; durable-dd: \
             the partition of dd-core's in-process `MemoryNetwork`, which encodes every message \
             as TCP does), then healed; the figure is the time from the heal until c reads every \
             changed value (polled every 100 ms); both sides check that c read none of them \
             during the cut. One run each.",
            flags = JVM_FLAGS.join(" "),
            r = sizes.runs,
            wr = sizes.write_rounds,
            u1 = sizes.write_updates_1,
            u64 = sizes.write_updates_64,
            wb = WRITE_BEHIND.as_millis(),
            g = GOSSIP_INTERVAL_MS,
            pk = sizes.partition_keys,
            ps = PARTITION.as_secs(),
            pc = PARTITION_CHANGED,
        ),
    );
    let rows = selected_rows()?;
    let wanted = |name: &str| rows.as_ref().is_none_or(|r| r.iter().any(|x| x == name));
    if wanted("write") {
        write_rows(&harness, root, &sizes, &mut table).await?;
    }
    if !sizes.smoke {
        if wanted("restore") {
            restore_rows(&harness, root, &sizes, &mut table).await?;
        }
        if wanted("cluster") {
            cluster_rows(&harness, &sizes, &mut table).await?;
        }
        if wanted("memory") {
            memory_rows(&harness, &sizes, &mut table).await?;
        }
        if wanted("partition") {
            partition_rows(&harness, &sizes, &mut table).await?;
        }
    } else {
        table.notes.push(
            "small profile: only the harness build and one tiny row, so that it cannot rot".into(),
        );
    }
    Ok(table)
}
