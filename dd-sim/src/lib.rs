//! # dd-sim
//!
//! A deterministic simulation of the whole durable-dd stack, with an oracle (issue 17, "What to
//! build" 1, 2 and 4). Several replicators run on the in-memory network with its faults, each
//! over the real [`DurableDistributedDataStore`](dd_durable::DurableDistributedDataStore) over a
//! `MemoryStore` wrapped in the `FaultInjectingStore`, in either write mode; the events of a run
//! (updates of GCounter, PNCounter, ORSet, ORMap and LWWRegister keys at every consistency level,
//! deletes, crashes and restarts with a new incarnation, full-cluster restarts and crashes,
//! membership changes, long absences past pruning, store faults, partitions) are drawn from one
//! seed; time is tokio's paused clock. The [`oracle`] is checked after every quiescence and
//! every full-cluster restart. A failing seed is shrunk ([`shrink::ddmin`]) and reported with a
//! one-line replay command ([`Report`]).
//!
//! ```no_run
//! use dd_sim::{Mode, SimConfig, check_seed};
//! let config = SimConfig::new(Mode::Sync);
//! match check_seed(7, &config) {
//!     Ok(summary) => println!("seed 7: {summary}"),
//!     Err(report) => panic!("{report}"),
//! }
//! ```

use std::fmt;
use std::time::Duration;

pub mod config;
pub mod event;
pub mod net;
pub mod oracle;
pub mod run;
pub mod shrink;
pub mod store;

pub use config::{ConfigError, FaultClass, Mode, SimConfig, parse_classes};
pub use event::{Event, generate};
pub use run::{Outcome, Summary, Violation, run_events};
pub use store::InjectedBug;

/// A failed seed: the violation, the shrunk event trace and the command that replays it.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The configuration of the run.
    pub config: SimConfig,
    /// The violation of the full run.
    pub violation: Violation,
    /// The indices (into the seed's event list) of the shrunk trace.
    pub kept: Vec<usize>,
    /// The shrunk trace's events.
    pub trace: Vec<Event>,
    /// The violation of the shrunk trace.
    pub shrunk_violation: Violation,
}

impl Report {
    /// The one-line command that replays the shrunk trace.
    pub fn replay_command(&self) -> String {
        let keep = self
            .kept
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "DD_SIM_SEED={} DD_SIM_MODE={} DD_SIM_FAULTS={} DD_SIM_STEPS={} DD_SIM_KEEP={keep} \
             cargo test -p dd-sim --test sim replay -- --nocapture",
            self.seed,
            self.config.mode,
            self.config.classes_arg(),
            self.config.steps,
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "dd-sim: seed {} ({} mode, faults {}) fails {}",
            self.seed,
            self.config.mode,
            self.config.classes_arg(),
            self.violation
        )?;
        writeln!(
            f,
            "shrunk trace ({} of the seed's events; fails {}):",
            self.trace.len(),
            self.shrunk_violation
        )?;
        for (i, ev) in self.kept.iter().zip(&self.trace) {
            writeln!(f, "  [{i}] {ev}")?;
        }
        write!(f, "replay: {}", self.replay_command())
    }
}

/// The kind of a violation (the text before its first colon), so that shrinking keeps to the
/// same failure instead of drifting to another.
fn kind(v: &Violation) -> &str {
    v.message.split(':').next().unwrap_or_default()
}

/// The events of `seed`, cut to the indices `keep` if given.
pub fn events_of(seed: u64, config: &SimConfig, keep: Option<&[usize]>) -> Vec<Event> {
    let all = generate(seed, config);
    match keep {
        Some(k) => k.iter().filter_map(|i| all.get(*i).cloned()).collect(),
        None => all,
    }
}

/// Runs `seed`; on a violation, shrinks its trace (at most `config.shrink_runs` runs, 90 s)
/// and reports.
pub fn check_seed(seed: u64, config: &SimConfig) -> Result<Summary, Box<Report>> {
    let events = generate(seed, config);
    let outcome = run_events(seed, config, &events);
    let Some(violation) = outcome.violation else {
        return Ok(outcome.summary);
    };
    let wanted = kind(&violation).to_owned();
    let mut last = violation.clone();
    let kept = shrink::ddmin(
        &events,
        config.shrink_runs,
        Duration::from_secs(90),
        |sub| match run_events(seed, config, sub).violation {
            Some(v) if kind(&v) == wanted => {
                last = v;
                true
            }
            _ => false,
        },
    );
    let trace: Vec<Event> = kept.iter().map(|i| events[*i].clone()).collect();
    // The shrunk trace's own violation (re-run: the last failing candidate may not be `kept`).
    let shrunk_violation = if kept.len() == events.len() {
        violation.clone()
    } else {
        run_events(seed, config, &trace).violation.unwrap_or(last)
    };
    Err(Box::new(Report {
        seed,
        config: config.clone(),
        violation,
        kept,
        trace,
        shrunk_violation,
    }))
}
