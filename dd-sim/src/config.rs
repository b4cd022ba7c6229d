//! What a simulation run exercises: the write mode, the size of the run and the fault classes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::store::InjectedBug;

/// The durable write mode of every replica of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// `WriteMode::Sync`.
    Sync,
    /// `WriteMode::WriteBehind` with a short interval.
    WriteBehind,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sync => "sync",
            Self::WriteBehind => "write-behind",
        })
    }
}

impl FromStr for Mode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Self::Sync),
            "write-behind" | "wb" => Ok(Self::WriteBehind),
            other => Err(ConfigError::UnknownMode(other.to_owned())),
        }
    }
}

/// A class of events or faults the generator may draw. Classes that hit a known, not yet fixed
/// bug are off by default ([`FaultClass::DEFAULT`]); `DD_SIM_FAULTS=all` turns every class on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultClass {
    /// Message loss, duplication and reordering on the in-memory network.
    Network,
    /// Partitions between groups of replicas (and heals).
    Partitions,
    /// Store errors: the store down, refusing writes, or flaky.
    StoreErrors,
    /// The store hanging past the operation timeout.
    StoreHangs,
    /// Batches that land in part and then fail.
    PartialBatches,
    /// A replica crashing at once (no flush) and restarting with a new incarnation.
    Crashes,
    /// The whole cluster stopping after quiescence and restarting (values must be equal after).
    FullRestarts,
    /// The whole cluster crashing at once, with no quiescence before.
    FullCrashes,
    /// A replica away past the pruning of its incarnation, removed from the membership and
    /// added back with a new incarnation over its stale store.
    LongAbsences,
    /// A live replica removed from the member lists and added back (issue 17 item 6).
    LiveRemovals,
    /// A restarted replica whose member list starts with only itself (issue 17 item 5).
    StartAlone,
    /// Deleting keys.
    Deletes,
}

impl FaultClass {
    /// Every class.
    pub const ALL: [Self; 12] = [
        Self::Network,
        Self::Partitions,
        Self::StoreErrors,
        Self::StoreHangs,
        Self::PartialBatches,
        Self::Crashes,
        Self::FullRestarts,
        Self::FullCrashes,
        Self::LongAbsences,
        Self::LiveRemovals,
        Self::StartAlone,
        Self::Deletes,
    ];

    /// The classes `cargo test` runs by default: those that run clean on the current code (see
    /// the crate README for which bug each other class hits).
    pub const DEFAULT: [Self; 12] = [
        Self::Network,
        Self::Partitions,
        Self::StoreErrors,
        Self::StoreHangs,
        Self::PartialBatches,
        Self::Crashes,
        Self::FullRestarts,
        Self::FullCrashes,
        Self::LongAbsences,
        Self::LiveRemovals,
        Self::StartAlone,
        Self::Deletes,
    ];

    /// The class's name in `DD_SIM_FAULTS`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::Partitions => "partitions",
            Self::StoreErrors => "store-errors",
            Self::StoreHangs => "store-hangs",
            Self::PartialBatches => "partial-batches",
            Self::Crashes => "crashes",
            Self::FullRestarts => "full-restarts",
            Self::FullCrashes => "full-crashes",
            Self::LongAbsences => "long-absences",
            Self::LiveRemovals => "live-removals",
            Self::StartAlone => "start-alone",
            Self::Deletes => "deletes",
        }
    }
}

/// A wrong `DD_SIM_*` setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A fault class name that does not exist.
    #[error("DD_SIM_FAULTS: unknown fault class '{0}' (known: all, default, {known})", known = known_classes())]
    UnknownClass(String),
    /// A write mode that does not exist.
    #[error("DD_SIM_MODE: unknown write mode '{0}' (known: sync, write-behind)")]
    UnknownMode(String),
    /// A number that does not parse.
    #[error("{var}: '{value}' is not a number")]
    NotANumber {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

fn known_classes() -> String {
    FaultClass::ALL
        .iter()
        .map(|c| c.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses a `DD_SIM_FAULTS` value: `all`, `default`, or a comma-separated list of class names,
/// each optionally prefixed with `-` to remove it (`default,full-restarts`, `all,-live-removals`).
pub fn parse_classes(text: &str) -> Result<BTreeSet<FaultClass>, ConfigError> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (remove, name) = match part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        let classes: Vec<FaultClass> = match name {
            "all" => FaultClass::ALL.to_vec(),
            "default" => FaultClass::DEFAULT.to_vec(),
            other => vec![
                FaultClass::ALL
                    .into_iter()
                    .find(|c| c.name() == other)
                    .ok_or_else(|| ConfigError::UnknownClass(other.to_owned()))?,
            ],
        };
        for c in classes {
            if remove {
                out.remove(&c);
            } else {
                out.insert(c);
            }
        }
    }
    Ok(out)
}

/// What a run exercises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The write mode of every replica.
    pub mode: Mode,
    /// The number of replicas.
    pub replicas: usize,
    /// The number of events drawn from the seed.
    pub steps: usize,
    /// The fault classes drawn.
    pub classes: BTreeSet<FaultClass>,
    /// A deliberately broken store, to show the oracle catches it.
    pub bug: InjectedBug,
    /// The most runs spent shrinking a failing seed's trace (0: report the full trace).
    pub shrink_runs: usize,
}

impl SimConfig {
    /// The default run: 4 replicas, 80 events, the [`FaultClass::DEFAULT`] classes, shrinking
    /// with at most 150 runs.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            replicas: 4,
            steps: 80,
            classes: FaultClass::DEFAULT.into_iter().collect(),
            bug: InjectedBug::None,
            shrink_runs: 150,
        }
    }

    /// Whether `class` is on.
    pub fn has(&self, class: FaultClass) -> bool {
        self.classes.contains(&class)
    }

    /// The classes as a `DD_SIM_FAULTS` value.
    pub fn classes_arg(&self) -> String {
        self.classes
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}
