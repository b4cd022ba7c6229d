//! Read and write consistency levels, as in Akka Distributed Data.

use std::time::Duration;

/// How many replicas a read consults before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Only the local replica.
    Local,
    /// `n` replicas including the local one (capped at the cluster size).
    From {
        /// Replicas to consult, including this one.
        n: usize,
        /// How long to wait for the replies.
        timeout: Duration,
    },
    /// A majority of the members (`N/2 + 1`), at least `min_capacity` (capped at `N`).
    Majority {
        /// How long to wait for the replies.
        timeout: Duration,
        /// The minimum number of replicas to consult.
        min_capacity: usize,
    },
    /// Every member.
    All {
        /// How long to wait for the replies.
        timeout: Duration,
    },
}

/// How many replicas a write must reach before it is reported successful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConsistency {
    /// Only the local replica; gossip spreads it later.
    Local,
    /// `n` replicas including the local one (capped at the cluster size).
    From {
        /// Replicas to reach, including this one.
        n: usize,
        /// How long to wait for the acknowledgements.
        timeout: Duration,
    },
    /// A majority of the members (`N/2 + 1`), at least `min_capacity` (capped at `N`).
    Majority {
        /// How long to wait for the acknowledgements.
        timeout: Duration,
        /// The minimum number of replicas to reach.
        min_capacity: usize,
    },
    /// Every member.
    All {
        /// How long to wait for the acknowledgements.
        timeout: Duration,
    },
}

/// `(replicas needed including self, timeout)` for a level over `members` members.
fn required(n: Option<usize>, majority_min: Option<usize>, all: bool, members: usize) -> usize {
    let members = members.max(1);
    if all {
        members
    } else if let Some(n) = n {
        n.clamp(1, members)
    } else if let Some(min) = majority_min {
        (members / 2 + 1).max(min).min(members)
    } else {
        1
    }
}

impl ReadConsistency {
    /// Replicas (including this one) whose answer is needed, for a cluster of `members`.
    pub fn required(&self, members: usize) -> usize {
        match *self {
            Self::Local => 1,
            Self::From { n, .. } => required(Some(n), None, false, members),
            Self::Majority { min_capacity, .. } => {
                required(None, Some(min_capacity), false, members)
            }
            Self::All { .. } => required(None, None, true, members),
        }
    }

    /// The timeout (`None` for `Local`).
    pub fn timeout(&self) -> Option<Duration> {
        match *self {
            Self::Local => None,
            Self::From { timeout, .. } | Self::Majority { timeout, .. } | Self::All { timeout } => {
                Some(timeout)
            }
        }
    }
}

impl WriteConsistency {
    /// Replicas (including this one) that must acknowledge, for a cluster of `members`.
    pub fn required(&self, members: usize) -> usize {
        match *self {
            Self::Local => 1,
            Self::From { n, .. } => required(Some(n), None, false, members),
            Self::Majority { min_capacity, .. } => {
                required(None, Some(min_capacity), false, members)
            }
            Self::All { .. } => required(None, None, true, members),
        }
    }

    /// The timeout (`None` for `Local`).
    pub fn timeout(&self) -> Option<Duration> {
        match *self {
            Self::Local => None,
            Self::From { timeout, .. } | Self::Majority { timeout, .. } | Self::All { timeout } => {
                Some(timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_and_all() {
        let t = Duration::from_secs(1);
        let m = WriteConsistency::Majority {
            timeout: t,
            min_capacity: 0,
        };
        assert_eq!(m.required(3), 2);
        assert_eq!(m.required(5), 3);
        assert_eq!(m.required(4), 3);
        let m = ReadConsistency::Majority {
            timeout: t,
            min_capacity: 5,
        };
        assert_eq!(m.required(3), 3);
        assert_eq!(ReadConsistency::All { timeout: t }.required(5), 5);
        assert_eq!(WriteConsistency::From { n: 9, timeout: t }.required(3), 3);
        assert_eq!(WriteConsistency::Local.required(3), 1);
    }
}
