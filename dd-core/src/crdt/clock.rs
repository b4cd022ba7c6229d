//! Clocks for last-writer-wins registers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Chooses the timestamp of a new [`LWWRegister`](super::LWWRegister) value, as Akka's
/// `LWWRegister.Clock`.
///
/// It receives the register's current timestamp (0 for a new register) and the new value. The
/// write replaces the local value whatever the timestamp; when replicas merge, the greater
/// timestamp wins. Any `Fn(i64, &T) -> i64` is a clock, so a custom one (a hybrid logical clock, a
/// version number carried in the value) is a closure away.
///
/// ```
/// use dd_core::crdt::{Clock, LWWRegister};
/// use dd_core::UniqueReplicaId;
/// let a = UniqueReplicaId::new("a", 1);
/// // the value carries its own version
/// let by_version = |_current: i64, v: &(i64, String)| v.0;
/// let mut r = LWWRegister::new(&a, (1, "one".to_string()), &by_version);
/// r.set(&a, (2, "two".to_string()), &by_version);
/// assert_eq!(r.timestamp(), 2);
/// ```
pub trait Clock<T> {
    /// The timestamp of a write of `value` to a register whose current timestamp is `current`.
    fn timestamp(&self, current: i64, value: &T) -> i64;
}

impl<T, F: Fn(i64, &T) -> i64> Clock<T> for F {
    fn timestamp(&self, current: i64, value: &T) -> i64 {
        self(current, value)
    }
}

/// Milliseconds since the Unix epoch (0 for a system clock set before it).
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The default clock: wall-clock milliseconds, but always at least one more than the current
/// timestamp, so that a replica's own writes are ordered even if its clock steps back (Akka's
/// `LWWRegister.defaultClock`). Concurrent writes on different replicas are ordered by their
/// clocks, which therefore should be roughly synchronised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WallClock;

impl<T> Clock<T> for WallClock {
    fn timestamp(&self, current: i64, _value: &T) -> i64 {
        now_millis().max(current.saturating_add(1))
    }
}

/// The "first writer wins" clock: the negated wall-clock, at most one less than the current
/// timestamp (Akka's `LWWRegister.reverseClock`). When replicas merge, the earliest write wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReverseClock;

impl<T> Clock<T> for ReverseClock {
    fn timestamp(&self, current: i64, _value: &T) -> i64 {
        (-now_millis()).min(current.saturating_sub(1))
    }
}
