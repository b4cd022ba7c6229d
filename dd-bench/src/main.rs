//! `dd-bench`: measures durable-dd side by side with its baselines in one run, prints a table
//! per area and writes `BENCHMARKS.md`. See the crate README.
//!
//! ```text
//! cargo run --release -p dd-bench -- --profile small|full [--out BENCHMARKS.md] [--only AREA]
//! ```

mod area_antientropy;
mod area_concurrent;
mod area_concurrent_http;
mod area_crdt;
mod area_gossip;
mod area_memory;
mod area_pekko;
mod area_restore;
mod area_write;
mod backends;
mod child;
mod env;
mod error;
mod report;
mod setup;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};

use crate::child::{ChildResult, ChildSpec};
use crate::error::{Context, Result};
use crate::report::{Machine, RunInfo, Table};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// Small sizes: a smoke run for CI (a minute or two, even in a debug build).
    Small,
    /// The sizes of the figures in BENCHMARKS.md (run in release mode).
    Full,
}

/// The areas measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Area {
    /// Durable update throughput per backend (Sync, WriteBehind) against raw writes.
    Write,
    /// Restore on start: load time and peak memory against a raw scan.
    Restore,
    /// Gossip bytes per update (deltas vs full state) and convergence of 5 TCP replicas.
    Gossip,
    /// CRDT operations and merges against the crdts crate.
    Crdt,
    /// Memory per key in the replicator.
    Memory,
    /// durable-dd vs Apache Pekko Distributed Data (the JVM harness of bench/pekko).
    Pekko,
    /// Concurrent Sync updates (group commit) against write-behind and a raw write.
    Concurrent,
    /// Anti-entropy at scale: repair after a partition, idle traffic, CPU per round.
    Antientropy,
}

/// The sizes of one profile.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Updates per round (area 1).
    pub write_updates: usize,
    /// Measured rounds per variant (area 1).
    pub write_rounds: usize,
    /// Keys loaded (area 2).
    pub restore_keys: usize,
    /// Keys loaded from S3 (area 2): s3s-fs serves a few hundred GetObject per second here.
    pub restore_keys_s3: usize,
    /// Child runs per phase (area 2).
    pub restore_runs: usize,
    /// Updates (area 3).
    pub gossip_updates: usize,
    /// Keys the updates go to (area 3).
    pub gossip_keys: usize,
    /// Runs per mode (area 3).
    pub gossip_runs: usize,
    /// Set elements (area 4).
    pub crdt_elements: usize,
    /// Counters merged (area 4).
    pub counter_merges: usize,
    /// Runs per side (area 4).
    pub crdt_runs: usize,
    /// Keys held (area 5).
    pub memory_keys: usize,
    /// Updates per variant and round (area 7).
    pub concurrent_updates: usize,
    /// Rounds (area 7).
    pub concurrent_rounds: usize,
    /// Keys the writers spread their updates over (area 7).
    pub concurrent_keys: usize,
    /// Key counts of the partition-and-heal scenario on the in-memory network (area 8).
    pub antientropy_keys: Vec<usize>,
    /// Key counts of the same scenario over TCP on 127.0.0.1 (area 8).
    pub antientropy_tcp_keys: Vec<usize>,
    /// Gossip interval of area 8.
    pub antientropy_gossip_interval: std::time::Duration,
    /// How long replica c is cut off in area 8.
    pub antientropy_partition: std::time::Duration,
    /// Elements of the large `ORSet<String>` replicated and restored in area 8.
    pub antientropy_set_elements: usize,
}

impl Sizes {
    fn of(profile: Profile) -> Sizes {
        match profile {
            Profile::Small => Sizes {
                write_updates: 20,
                write_rounds: 5,
                restore_keys: 5_000,
                restore_keys_s3: 500,
                restore_runs: 3,
                gossip_updates: 1_000,
                gossip_keys: 100,
                gossip_runs: 1,
                crdt_elements: 2_000,
                counter_merges: 2_000,
                crdt_runs: 5,
                memory_keys: 50_000,
                concurrent_updates: 40,
                concurrent_rounds: 1,
                concurrent_keys: 40,
                antientropy_keys: vec![2_000, 10_000],
                antientropy_tcp_keys: vec![10_000],
                antientropy_gossip_interval: std::time::Duration::from_millis(500),
                antientropy_partition: std::time::Duration::from_secs(1),
                antientropy_set_elements: 100_000,
            },
            Profile::Full => Sizes {
                write_updates: 100,
                write_rounds: 11,
                restore_keys: 100_000,
                restore_keys_s3: 10_000,
                restore_runs: 3,
                gossip_updates: 10_000,
                gossip_keys: 100,
                gossip_runs: 3,
                crdt_elements: 100_000,
                counter_merges: 100_000,
                crdt_runs: 9,
                memory_keys: 1_000_000,
                concurrent_updates: 1_000,
                concurrent_rounds: 3,
                concurrent_keys: 1_000,
                antientropy_keys: vec![10_000, 100_000, 1_000_000],
                antientropy_tcp_keys: vec![100_000],
                antientropy_gossip_interval: std::time::Duration::from_secs(2),
                antientropy_partition: std::time::Duration::from_secs(3),
                antientropy_set_elements: 1_000_000,
            },
        }
    }
}

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "dd-bench",
    about = "durable-dd benchmarks against their baselines"
)]
struct Cli {
    /// Sizes of the run.
    #[arg(long, value_enum, default_value = "small")]
    profile: Profile,
    /// Write the results to this Markdown file (its hand-written Analysis section is kept).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these areas (repeatable); default: all.
    #[arg(long, value_enum)]
    only: Vec<Area>,
    /// Internal: a phase run in a child process.
    #[command(subcommand)]
    child: Option<ChildCommand>,
}

#[derive(Debug, Subcommand)]
enum ChildCommand {
    /// Runs one measured phase (JSON spec) and prints its result as JSON.
    #[command(hide = true)]
    Child {
        /// The phase, as JSON.
        spec: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context(|| "starting the tokio runtime".to_owned())
}

async fn run_child(spec: &str) -> Result<ChildResult> {
    let spec: ChildSpec = serde_json::from_str(spec).context(|| format!("child spec {spec}"))?;
    match spec {
        ChildSpec::Restore {
            backend,
            replica,
            mode,
        } => area_restore::child_phase(&backend, &replica, mode).await,
        ChildSpec::Memory { mode, keys } => area_memory::child_phase(mode, keys).await,
    }
}

async fn run_areas(
    areas: &[Area],
    sizes: &Sizes,
    full: bool,
    root: &std::path::Path,
) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    for area in areas {
        let started = Instant::now();
        let table = match area {
            Area::Write => {
                if let Some(cluster) = setup::CassandraAt::cluster_from_env() {
                    // The real Cassandra of scripts/services/cassandra.sh (or any cluster).
                    let backends = setup::fresh(root, "write", Some(&cluster))?;
                    area_write::run(&backends, root, sizes).await?
                } else {
                    // The in-process CQL test double, for the informational Cassandra rows.
                    let double = cql_test_double::CqlTestDouble::start()
                        .await
                        .context(|| "starting the CQL test double".to_owned())?;
                    let at = setup::CassandraAt::Double(double.addr().to_string());
                    let backends = setup::fresh(root, "write", Some(&at))?;
                    let table = area_write::run(&backends, root, sizes).await;
                    double.shutdown().await;
                    table?
                }
            }
            Area::Restore => {
                // The real Cassandra of scripts/services/cassandra.sh, when it runs.
                let cassandra = setup::CassandraAt::cluster_from_env();
                let backends = setup::fresh(root, "restore", cassandra.as_ref())?;
                area_restore::run(&backends, sizes).await?
            }
            Area::Gossip => area_gossip::run(sizes).await?,
            Area::Crdt => {
                let sizes = sizes.clone();
                tokio::task::spawn_blocking(move || area_crdt::run(&sizes))
                    .await
                    .context(|| "crdt task".to_owned())??
            }
            Area::Memory => area_memory::run(sizes).await?,
            Area::Pekko => area_pekko::run(root, full).await?,
            Area::Concurrent => area_concurrent::run(root, sizes).await?,
            Area::Antientropy => area_antientropy::run(root, sizes).await?,
        };
        eprintln!(
            "{}(area took {})",
            table.plain(),
            stats::fmt_secs(started.elapsed().as_secs_f64())
        );
        tables.push(table);
    }
    Ok(tables)
}

/// Logs of the measured crates to stderr, `warn` and above unless `RUST_LOG` says otherwise.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main_result() -> Result<()> {
    let cli = Cli::parse();
    init_logs();
    if let Some(ChildCommand::Child { spec }) = &cli.child {
        let result = runtime()?.block_on(run_child(spec))?;
        let json = serde_json::to_string(&result).context(|| "encoding the result".to_owned())?;
        println!("{json}");
        return Ok(());
    }
    let started = Instant::now();
    let machine = Machine::detect();
    let sizes = Sizes::of(cli.profile);
    let areas = if cli.only.is_empty() {
        vec![
            Area::Write,
            Area::Restore,
            Area::Gossip,
            Area::Crdt,
            Area::Memory,
            Area::Pekko,
            Area::Concurrent,
            Area::Antientropy,
        ]
    } else {
        cli.only.clone()
    };
    let profile = match cli.profile {
        Profile::Small => "small",
        Profile::Full => "full",
    };
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "dd-bench: profile {profile} ({build} build), areas {areas:?}, on {} CPUs ({}), load {}",
        machine.cpus, machine.cpu_model, machine.load_at_start
    );
    let root = tempfile::Builder::new()
        .prefix("dd-bench-")
        .tempdir()
        .context(|| "creating a temporary directory".to_owned())?;
    let tables = runtime()?.block_on(run_areas(
        &areas,
        &sizes,
        cli.profile == Profile::Full,
        root.path(),
    ))?;
    let info = RunInfo {
        profile: profile.to_owned(),
        build,
        machine,
        load_at_end: report::load_average(),
        duration: stats::fmt_secs(started.elapsed().as_secs_f64()),
    };
    for t in &tables {
        println!("{}", t.plain());
    }
    if let Some(out) = &cli.out {
        report::write_file(out, &report::markdown(&info, &tables))?;
        eprintln!("dd-bench: wrote {}", out.display());
    }
    eprintln!("dd-bench: done in {}", info.duration);
    Ok(())
}

fn main() -> std::process::ExitCode {
    match main_result() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("dd-bench: error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
