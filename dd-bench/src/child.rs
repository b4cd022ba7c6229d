//! Phases measured in a child process, so that their peak memory is their own: the bench binary
//! re-executes itself with the hidden `child` subcommand and a JSON [`ChildSpec`]; the child runs
//! the phase, reads its own `VmHWM` (peak RSS) and `VmRSS` from /proc/self/status, and prints a
//! JSON [`ChildResult`] as its last line of output.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backends::BackendSpec;
use crate::error::{BenchError, Context, Result};

/// How the child reads the stored keys.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum RestoreMode {
    /// `DurableDistributedDataStore::load`, decoding every value.
    Durable,
    /// The backend read directly (SQL SELECT, file reads, ListObjects + GetObject).
    Raw,
    /// The raw read plus the record format check and CRDT decode of every value, without dd-durable
    /// (fs and sqlite): tells the decoding cost from dd-durable's own.
    RawDecode,
}

/// What the child keeps in memory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum MemoryMode {
    /// A running replicator (no peers, no durable store) holding the keys.
    Replicator,
    /// A plain `BTreeMap<String, GCounter>` of the same keys and values.
    PlainMap,
}

/// A phase to run in a child process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ChildSpec {
    /// Load every key of `replica`.
    Restore {
        /// Where the keys are.
        backend: BackendSpec,
        /// The replica whose keys are loaded.
        replica: String,
        /// How they are read.
        mode: RestoreMode,
    },
    /// Hold `keys` small keys.
    Memory {
        /// What holds them.
        mode: MemoryMode,
        /// How many keys.
        keys: usize,
    },
}

/// What a child measured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChildResult {
    /// Seconds the phase took.
    pub seconds: f64,
    /// Items the phase handled (records loaded, keys held).
    pub count: u64,
    /// Resident memory just before the phase, KiB.
    pub rss_before_kib: u64,
    /// Resident memory at the end of the phase, KiB.
    pub rss_after_kib: u64,
    /// Peak resident memory of the process, KiB (`VmHWM`).
    pub peak_kib: u64,
}

impl ChildResult {
    /// Peak RSS growth during the phase, in bytes.
    pub fn peak_growth_bytes(&self) -> f64 {
        self.peak_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0
    }

    /// RSS growth from before to after the phase, in bytes.
    pub fn rss_growth_bytes(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0
    }
}

/// A field of /proc/self/status in KiB (for example `VmHWM`).
pub fn proc_status_kib(field: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/self/status")
        .context(|| "reading /proc/self/status".to_owned())?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::Failed(format!("no {field} in /proc/self/status")))
}

/// Measures one phase in this process: RSS before, the phase's time, RSS after and the peak.
pub async fn measure<F, Fut>(phase: F) -> Result<ChildResult>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    let rss_before_kib = proc_status_kib("VmRSS")?;
    let started = Instant::now();
    let count = phase().await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(ChildResult {
        seconds,
        count,
        rss_before_kib,
        rss_after_kib: proc_status_kib("VmRSS")?,
        peak_kib: proc_status_kib("VmHWM")?,
    })
}

/// Runs `spec` in a child process (this binary, `child <json>`) and returns what it measured.
pub fn run(spec: &ChildSpec) -> Result<ChildResult> {
    let exe = std::env::current_exe().context(|| "finding the bench binary".to_owned())?;
    let json = serde_json::to_string(spec).context(|| "encoding a child spec".to_owned())?;
    let out = std::process::Command::new(&exe)
        .arg("child")
        .arg(&json)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context(|| format!("starting {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BenchError::Failed(format!(
            "child phase {json} failed ({}): {stdout}",
            out.status
        )));
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).context(|| format!("reading the child's result {last:?}"))
}
