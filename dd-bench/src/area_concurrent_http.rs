//! Area 7 through `dd-node serve` over HTTP: a bounded load generator (N tokio tasks, one
//! reqwest client, a fixed number of requests each, on 127.0.0.1) against one node with no peers,
//! 1, 8 and 64 writers on SQLite and fs, Sync and write-behind in the same run, the HTTP ceiling
//! (the most writers on a node storing in `memory:`) in every round, and the node's RSS during a
//! 10x overload burst. With a baseline binary (`DD_BENCH_BASELINE_NODE_BIN`, e.g. a
//! `dd-node` built from the commit before group commit) one writer's Sync rate is compared with
//! it, both nodes running at once and the requests interleaved between them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::Sizes;
use crate::error::{BenchError, Context, Result};
use crate::report::{Row, Verdict};
use crate::stats::{fmt_bytes, fmt_rate, fmt_ratio, fmt_secs, median, ratio};

/// The write-behind interval used here (as through the replicator).
const WRITE_BEHIND_MS: u64 = 100;
/// Sync with 64 writers must reach this fraction of write-behind with 64 writers (SQLite).
const SYNC_VS_WRITE_BEHIND: f64 = 0.8;
/// One writer's Sync must reach this fraction of the baseline binary's.
const NO_REGRESSION: f64 = 0.95;
/// The node's RSS growth during the overload burst must stay below this.
const BURST_RSS_BOUND: f64 = 256.0 * 1024.0 * 1024.0;
/// How long a node may take to answer `/health` after it was started.
const START_BOUND: Duration = Duration::from_secs(60);
/// How long one request may take.
const REQUEST_BOUND: Duration = Duration::from_secs(60);

/// The `dd-node` binary measured: `DD_BENCH_NODE_BIN`, or `dd-node` next to this binary.
pub fn node_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DD_BENCH_NODE_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let sibling = exe.parent()?.join("dd-node");
    sibling.is_file().then_some(sibling)
}

/// The backends measured over HTTP.
const BACKENDS: [&str; 2] = ["sqlite", "fs"];
/// Names the backends (comma-separated) whose one-writer rows against the baseline binary are
/// the only rows of the area to run (no replicator rows, no other HTTP rows).
pub const BASELINE_ONLY_VAR: &str = "DD_BENCH_CONCURRENT_BASELINE_ONLY";

/// The backends of [`BASELINE_ONLY_VAR`], or `None` when it is not set; an unknown backend is
/// an error naming the known ones.
pub fn baseline_only() -> Result<Option<Vec<&'static str>>> {
    let Some(value) = crate::env::value(BASELINE_ONLY_VAR) else {
        return Ok(None);
    };
    let mut backends = Vec::new();
    for name in crate::env::items(&value) {
        match BACKENDS.iter().find(|b| **b == name) {
            Some(b) => backends.push(*b),
            None => {
                return Err(BenchError::Failed(format!(
                    "{BASELINE_ONLY_VAR}: unknown backend `{name}` in `{value}`; known: {}",
                    BACKENDS.join(", ")
                )));
            }
        }
    }
    Ok(Some(backends))
}

/// The baseline `dd-node` binary, when `DD_BENCH_BASELINE_NODE_BIN` names one.
fn baseline_binary() -> Option<PathBuf> {
    std::env::var_os("DD_BENCH_BASELINE_NODE_BIN").map(PathBuf::from)
}

/// A free TCP port on 127.0.0.1 (bound, then released).
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context(|| "a free port".to_owned())?;
    Ok(listener
        .local_addr()
        .context(|| "the free port's address".to_owned())?
        .port())
}

/// One running `dd-node serve`, killed when dropped.
struct Node {
    child: tokio::process::Child,
    base: String,
}

impl Node {
    async fn start(
        binary: &Path,
        store: &str,
        sync: bool,
        client: &reqwest::Client,
    ) -> Result<Node> {
        let http = free_port()?;
        let cluster = free_port()?;
        let mode = if sync {
            "sync".to_owned()
        } else {
            format!("write-behind={WRITE_BEHIND_MS}")
        };
        let child = tokio::process::Command::new(binary)
            .args(["serve", "--replica", "bench"])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--cluster-addr", &format!("127.0.0.1:{cluster}")])
            .args(["--store", store, "--write-mode", &mode])
            .env("RUST_LOG", "warn")
            .env_remove("DD_NODE_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(|| format!("starting {}", binary.display()))?;
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{http}"),
        };
        let deadline = Instant::now() + START_BOUND;
        loop {
            let up = client
                .get(format!("{}/health", node.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return Ok(node);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Failed(format!(
                    "{} serve --store {store} did not answer /health within {START_BOUND:?}",
                    binary.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node's resident set size (0 where there is no /proc).
    fn rss(&self) -> f64 {
        self.child.id().map_or(0.0, rss_of)
    }

    async fn stop(mut self) -> Result<()> {
        // SIGKILL: the store is thrown away after the run; a graceful stop is not measured.
        self.child
            .kill()
            .await
            .context(|| "stopping dd-node".to_owned())
    }
}

/// What one load run measured.
struct Load {
    rate: f64,
    p99: f64,
}

/// `writers` tasks each sending `per_writer` increments of keys spread over `keys`, each waiting
/// for its answer; every answer must be a success.
async fn load(
    client: &reqwest::Client,
    base: &str,
    keys: usize,
    writers: usize,
    per_writer: usize,
) -> Result<Load> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let client = client.clone();
            let base = base.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_writer);
                for j in 0..per_writer {
                    let key = format!("c{:04}", (w * 7919 + j * 31) % keys.max(1));
                    let t = Instant::now();
                    increment(&client, &base, &key).await?;
                    latencies.push(t.elapsed().as_secs_f64());
                }
                Ok::<_, BenchError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(writers * per_writer);
    for t in tasks {
        latencies.extend(t.await.context(|| "HTTP writer task".to_owned())??);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Load {
        rate: (writers * per_writer) as f64 / seconds.max(1e-9),
        p99: crate::area_concurrent::p99(&mut latencies),
    })
}

/// The store URL of a backend under `dir`, fresh for every node started.
fn store_url(backend: &str, dir: &Path, n: usize) -> String {
    let path = match backend {
        "sqlite" => dir.join(format!("node-{n}.db")),
        _ => dir.join(format!("node-{n}-fs")),
    };
    format!("{backend}://{}", path.display())
}

/// The writer counts of a profile.
fn writer_counts(sizes: &Sizes) -> Vec<usize> {
    if sizes.concurrent_updates >= 500 {
        vec![1, 8, 64]
    } else {
        vec![1, 8]
    }
}

/// A node started on `store` with every key of the area created (8 writers, not counted).
async fn started_with_keys(
    binary: &Path,
    store: &str,
    sync: bool,
    client: &reqwest::Client,
    sizes: &Sizes,
) -> Result<Node> {
    let node = Node::start(binary, store, sync, client).await?;
    load(
        client,
        &node.base,
        sizes.concurrent_keys,
        8,
        sizes.concurrent_keys / 8 + 1,
    )
    .await?;
    Ok(node)
}

/// Starts a node, creates every key (not counted), runs `runs` in order, stops it.
async fn with_node<T>(
    binary: &Path,
    store: &str,
    sync: bool,
    client: &reqwest::Client,
    sizes: &Sizes,
    body: impl AsyncFnOnce(&Node) -> Result<T>,
) -> Result<T> {
    let node = started_with_keys(binary, store, sync, client, sizes).await?;
    let out = body(&node).await;
    node.stop().await?;
    out
}

/// One writer's Sync rate on two nodes at once (`(binary, store)` each, started fresh, every
/// key created first on both, not counted): the writer sends each increment to both nodes, one
/// after the other, the first of each pair alternating (`second_first`: the second node starts),
/// and waits for each answer. A node's rate is its requests over the sum of its latencies.
async fn interleaved(
    nodes: [(&Path, &str); 2],
    client: &reqwest::Client,
    sizes: &Sizes,
    second_first: bool,
) -> Result<[Paced; 2]> {
    let mut started = Vec::with_capacity(2);
    for (binary, store) in nodes {
        started.push(started_with_keys(binary, store, true, client, sizes).await?);
    }
    let keys = sizes.concurrent_keys.max(1);
    let mut latencies = [Vec::new(), Vec::new()];
    let mut measured = Ok(());
    'requests: for j in 0..sizes.concurrent_updates {
        let key = format!("c{:04}", (j * 31) % keys);
        let first = usize::from((j % 2 == 1) != second_first);
        for i in [first, 1 - first] {
            let t = Instant::now();
            if let Err(e) = increment(client, &started[i].base, &key).await {
                measured = Err(e);
                break 'requests;
            }
            latencies[i].push(t.elapsed().as_secs_f64());
        }
    }
    for node in started {
        node.stop().await?;
    }
    measured?;
    let of = |l: &[f64]| Paced {
        rate: l.len() as f64 / l.iter().sum::<f64>().max(1e-9),
        median_latency: median(l),
    };
    Ok([of(&latencies[0]), of(&latencies[1])])
}

/// One node's share of an [`interleaved`] run.
struct Paced {
    /// Its requests over the sum of its latencies.
    rate: f64,
    /// The median latency of one of its requests (seconds).
    median_latency: f64,
}

/// One `POST /keys/pncounter/<key>` increment, waiting for a successful answer.
async fn increment(client: &reqwest::Client, base: &str, key: &str) -> Result<()> {
    let answer = client
        .post(format!("{base}/keys/pncounter/{key}"))
        .header("content-type", "application/json")
        .body(r#"{"op":"increment"}"#)
        .timeout(REQUEST_BOUND)
        .send()
        .await
        .map_err(|e| BenchError::Failed(format!("POST of {key}: {e}")))?;
    if !answer.status().is_success() {
        return Err(BenchError::Failed(format!(
            "POST of {key}: status {}",
            answer.status()
        )));
    }
    // Read the body, so the connection is reused.
    answer
        .bytes()
        .await
        .map_err(|e| BenchError::Failed(format!("answer to {key}: {e}")))?;
    Ok(())
}

/// Measures one backend over HTTP.
async fn measure_backend(
    binary: &Path,
    baseline: Option<&Path>,
    backend: &str,
    dir: &Path,
    sizes: &Sizes,
    client: &reqwest::Client,
    baseline_only: bool,
) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let dir = &dir
        .canonicalize()
        .context(|| format!("the absolute path of {}", dir.display()))?;
    let counts = writer_counts(sizes);
    let variants: Vec<(usize, bool)> = counts
        .iter()
        .flat_map(|&w| [(w, true), (w, false)])
        .collect();
    let mut rates = vec![Vec::new(); variants.len()];
    let mut p99s = vec![Vec::new(); variants.len()];
    let mut base_rates = Vec::new();
    let mut ours_one = Vec::new();
    let mut pair_ratios = Vec::new();
    let mut latency_ratios = Vec::new();
    let most = counts.iter().copied().max().unwrap_or(1);
    let mut ceiling_rates = Vec::new();
    let mut n = 0;
    for round in 0..sizes.concurrent_rounds {
        let variant_nodes = if baseline_only {
            Vec::new()
        } else {
            vec![round % 2 == 0, round % 2 != 0]
        };
        for sync in variant_nodes {
            n += 1;
            let store = store_url(backend, dir, n);
            let mut order: Vec<usize> = (0..variants.len())
                .filter(|&i| variants[i].1 == sync)
                .collect();
            if round % 2 == 1 {
                order.reverse();
            }
            let measured = with_node(binary, &store, sync, client, sizes, async |node| {
                let mut out = Vec::new();
                for &i in &order {
                    let writers = variants[i].0;
                    let per_writer = (sizes.concurrent_updates / writers).max(1);
                    let l = load(
                        client,
                        &node.base,
                        sizes.concurrent_keys,
                        writers,
                        per_writer,
                    )
                    .await?;
                    out.push((i, l));
                }
                Ok(out)
            })
            .await?;
            for (i, l) in measured {
                rates[i].push(l.rate);
                p99s[i].push(l.p99);
            }
        }
        // The HTTP ceiling in the same round: the most writers on a node storing (Sync) in
        // `memory:`, the same path without a disk.
        if !baseline_only {
            let per_writer = (sizes.concurrent_updates / most).max(1);
            let ceiling = with_node(binary, "memory:", true, client, sizes, async |node| {
                load(client, &node.base, sizes.concurrent_keys, most, per_writer).await
            })
            .await?;
            ceiling_rates.push(ceiling.rate);
        }
        // The baseline binary against this one, one writer, Sync, both nodes up at once
        // (fresh stores, same disk) and the writer's requests interleaved between them, the
        // first of each pair alternating: both see the disk's same moments. Whole runs one
        // after the other did not compare binaries: the same binary in both places measured
        // 0.60x (SQLite) and 0.71x (fs) of itself, and 0.86x with both orders (ABBA).
        if let Some(baseline) = baseline {
            let store_ours = store_url(backend, dir, n + 1);
            let store_base = store_url(backend, dir, n + 2);
            n += 2;
            let [ours, theirs] = interleaved(
                [(binary, &store_ours), (baseline, &store_base)],
                client,
                sizes,
                round % 2 == 1,
            )
            .await?;
            // The baseline's median latency over ours: above 1 when ours is faster.
            let latency_ratio = ratio(theirs.median_latency, ours.median_latency);
            eprintln!(
                "[concurrent] HTTP {backend} round {round}: 1 writer Sync, interleaved: this \
                 build {}, baseline {} ({}; median latencies {} / {}: {})",
                fmt_rate(ours.rate, "requests"),
                fmt_rate(theirs.rate, "requests"),
                fmt_ratio(ratio(ours.rate, theirs.rate)),
                fmt_secs(ours.median_latency),
                fmt_secs(theirs.median_latency),
                fmt_ratio(latency_ratio)
            );
            ours_one.push(ours.rate);
            base_rates.push(theirs.rate);
            pair_ratios.push(ratio(ours.rate, theirs.rate));
            latency_ratios.push(latency_ratio);
        }
    }
    let baseline_row = (baseline.is_some() && !base_rates.is_empty()).then(|| {
        let (ours, theirs) = (median(&ours_one), median(&base_rates));
        let r = median(&pair_ratios);
        Row {
            what: format!(
                "HTTP, {backend}: 1 writer, Sync, this build vs the baseline binary \
                 ({} rounds, requests interleaved between both nodes; ratio: median of the \
                 rounds' ratios)",
                base_rates.len()
            ),
            figure: fmt_rate(ours, "requests"),
            baseline: format!("{} (baseline binary)", fmt_rate(theirs, "requests")),
            ratio: format!(
                "{} of the baseline (by median latency: {})",
                fmt_ratio(r),
                fmt_ratio(median(&latency_ratios))
            ),
            target: format!("≥ {NO_REGRESSION}x"),
            met: Verdict::from_bool(r >= NO_REGRESSION),
        }
    });
    if baseline_only {
        return Ok(baseline_row.into_iter().collect());
    }
    let find = |writers: usize, sync: bool| {
        variants
            .iter()
            .position(|v| *v == (writers, sync))
            .map(|i| (median(&rates[i]), median(&p99s[i])))
    };
    let mut rows = Vec::new();
    for (i, (writers, sync)) in variants.iter().enumerate() {
        let mode = if *sync {
            "Sync".to_owned()
        } else {
            format!("write-behind {WRITE_BEHIND_MS} ms")
        };
        let mut row = Row::info(
            format!("HTTP, {backend}: {writers} writer(s), {mode}"),
            format!(
                "{}, p99 {}",
                fmt_rate(median(&rates[i]), "requests"),
                fmt_secs(median(&p99s[i]))
            ),
        );
        if *writers > 1
            && let Some((one, _)) = find(1, *sync)
        {
            row.baseline = format!("{} (1 writer, {mode})", fmt_rate(one, "requests"));
            row.ratio = format!("{} of 1 writer", fmt_ratio(ratio(median(&rates[i]), one)));
        }
        rows.push(row);
    }
    if let Some((s, _)) = find(most, true) {
        let ceiling = median(&ceiling_rates);
        rows.push(Row {
            what: format!(
                "HTTP, {backend}: Sync with {most} writers vs the HTTP ceiling (a node on \
                 `memory:`, Sync, {most} writers, same rounds)"
            ),
            figure: fmt_rate(s, "requests"),
            baseline: format!("{} (`memory:`)", fmt_rate(ceiling, "requests")),
            ratio: format!("{} of the ceiling", fmt_ratio(ratio(s, ceiling))),
            target: "—".into(),
            met: Verdict::NoTarget,
        });
    }
    if let (Some((s, _)), Some((w, _))) = (find(most, true), find(most, false)) {
        let r = ratio(s, w);
        // The target is the issue's: 64 writers on SQLite (the small profile has fewer).
        let targeted = backend == "sqlite" && most >= 64;
        rows.push(Row {
            what: format!("HTTP, {backend}: Sync vs write-behind, {most} writers"),
            figure: fmt_rate(s, "requests"),
            baseline: format!("{} (write-behind)", fmt_rate(w, "requests")),
            ratio: format!("{} of write-behind", fmt_ratio(r)),
            target: if targeted {
                format!("≥ {SYNC_VS_WRITE_BEHIND}x")
            } else {
                "—".into()
            },
            met: if targeted {
                Verdict::from_bool(r >= SYNC_VS_WRITE_BEHIND)
            } else {
                Verdict::NoTarget
            },
        });
    }
    rows.extend(baseline_row);
    // The overload burst: 10x the most writers at once on a Sync node; its RSS sampled.
    n += 1;
    let store = store_url(backend, dir, n);
    let (growth, before, rate) = with_node(binary, &store, true, client, sizes, async |node| {
        let before = node.rss();
        let sampling = Arc::new(AtomicBool::new(true));
        let pid_rss = {
            let sampling = Arc::clone(&sampling);
            let pid = node.child.id();
            tokio::spawn(async move {
                let mut peak = 0.0f64;
                while sampling.load(Ordering::Relaxed) {
                    if let Some(pid) = pid {
                        peak = peak.max(rss_of(pid));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                peak
            })
        };
        let burst = load(
            client,
            &node.base,
            sizes.concurrent_keys,
            most * 10,
            (sizes.concurrent_updates / most).max(1),
        )
        .await;
        sampling.store(false, Ordering::Relaxed);
        let peak = pid_rss.await.context(|| "RSS sampler".to_owned())?;
        let burst = burst?;
        Ok(((peak.max(node.rss()) - before).max(0.0), before, burst.rate))
    })
    .await?;
    rows.push(Row {
        what: format!(
            "HTTP, {backend}: dd-node RSS growth during a burst of {} Sync writers (10x), {}",
            most * 10,
            fmt_rate(rate, "requests")
        ),
        figure: fmt_bytes(growth),
        baseline: format!("{} (RSS before)", fmt_bytes(before)),
        ratio: "—".into(),
        target: format!("< {}", fmt_bytes(BURST_RSS_BOUND)),
        met: Verdict::from_bool(growth < BURST_RSS_BOUND),
    });
    Ok(rows)
}

/// The resident set size of process `pid`, from `/proc/<pid>/status` (0 where there is none).
fn rss_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb * 1024.0)
}

/// The HTTP rows of area 7 on SQLite and fs, or one row saying why they are missing.
pub async fn run(root: &Path, sizes: &Sizes) -> Result<Vec<Row>> {
    let Some(binary) = node_binary() else {
        return Ok(vec![Row::info(
            "HTTP: not measured",
            "no dd-node binary next to dd-bench and DD_BENCH_NODE_BIN not set \
             (cargo build --release -p dd-node)",
        )]);
    };
    let baseline = baseline_binary();
    let only = baseline_only()?;
    if only.is_some() && baseline.is_none() {
        return Err(BenchError::Failed(format!(
            "{BASELINE_ONLY_VAR} needs a baseline binary in DD_BENCH_BASELINE_NODE_BIN"
        )));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| BenchError::Failed(format!("HTTP client: {e}")))?;
    let mut rows = Vec::new();
    for backend in BACKENDS {
        if only.as_ref().is_some_and(|o| !o.contains(&backend)) {
            continue;
        }
        eprintln!("[concurrent] HTTP {backend}");
        let dir = root.join("concurrent-http").join(backend);
        rows.extend(
            measure_backend(
                &binary,
                baseline.as_deref(),
                backend,
                &dir,
                sizes,
                &client,
                only.is_some(),
            )
            .await?,
        );
    }
    Ok(rows)
}
