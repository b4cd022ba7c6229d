//! The checks the cargo-fuzz targets of durable-dd run, in one place so that the regression
//! tests replay committed inputs through exactly the same code, plus the generator of the seed
//! corpus the fuzz runs start from.
//!
//! Each [`Target`] is one fuzz target of `fuzz/` (same name). [`Target::check`] feeds the input
//! to the decoders under test; a decoder may reject it ([`Outcome::Rejected`]), but it must not
//! panic, and what it accepts must keep the properties the target checks (re-encoding,
//! re-decoding to an equal value, merging), otherwise the check returns a [`CheckFailure`].
//! The fuzz target turns that failure into a panic, which libFuzzer reports as a crash.
//!
//! ```
//! use dd_fuzz_checks::{Outcome, Target};
//! let seeds = Target::RecordDecode.seeds().unwrap();
//! assert!(!seeds.is_empty());
//! for seed in &seeds {
//!     assert_eq!(Target::RecordDecode.check(&seed.bytes), Ok(Outcome::Accepted));
//! }
//! assert_eq!(Target::RecordDecode.check(b"not a record"), Ok(Outcome::Rejected));
//! ```

use std::fmt;

pub mod crdt;
pub mod record;
pub mod seeds;
pub mod transport;

pub use seeds::{Seed, SeedError};

/// What a decoder made of an input that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one decoder accepted the input, and everything it accepted kept the checked
    /// properties.
    Accepted,
    /// Every decoder rejected the input cleanly.
    Rejected,
}

impl Outcome {
    /// [`Outcome::Accepted`] when either is.
    pub fn or(self, other: Outcome) -> Outcome {
        if self == Outcome::Accepted || other == Outcome::Accepted {
            Outcome::Accepted
        } else {
            Outcome::Rejected
        }
    }
}

/// An input that a decoder accepted but that broke a property the fuzz target checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fuzz target {target}: {reason}")]
pub struct CheckFailure {
    /// The target whose check failed.
    pub target: Target,
    /// What went wrong.
    pub reason: String,
}

impl CheckFailure {
    pub(crate) fn new(target: Target, reason: impl Into<String>) -> Self {
        Self {
            target,
            reason: reason.into(),
        }
    }
}

/// One fuzz target of `fuzz/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `record_decode`: the durable record format ([`record::check`]).
    RecordDecode,
    /// `transport_frame`: handshake and replicator message frames ([`transport::check`]).
    TransportFrame,
    /// `crdt_decode`: the built-in CRDT states and deltas ([`crdt::check`]).
    CrdtDecode,
}

impl Target {
    /// Every target, in the order `scripts/fuzz.sh` runs them.
    pub const ALL: [Target; 3] = [
        Target::RecordDecode,
        Target::TransportFrame,
        Target::CrdtDecode,
    ];

    /// The name of the fuzz target binary, which is also the name of its directories under
    /// `fuzz/seeds/` and `fuzz/regressions/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::RecordDecode => "record_decode",
            Target::TransportFrame => "transport_frame",
            Target::CrdtDecode => "crdt_decode",
        }
    }

    /// The target with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target's checks on one input (what the fuzz target does with each input).
    pub fn check(self, data: &[u8]) -> Result<Outcome, CheckFailure> {
        match self {
            Target::RecordDecode => record::check(data),
            Target::TransportFrame => transport::check(data),
            Target::CrdtDecode => crdt::check(data),
        }
    }

    /// The seed corpus of the target: valid encodings of every kind of input it decodes.
    pub fn seeds(self) -> Result<Vec<Seed>, SeedError> {
        match self {
            Target::RecordDecode => seeds::record(),
            Target::TransportFrame => seeds::transport(),
            Target::CrdtDecode => seeds::crdt(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
