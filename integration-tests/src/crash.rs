//! The protocol between the crash tests and the `crash_child` binary.
//!
//! The child opens the store at a URL, starts one replica and then, in a loop, increments a
//! `GCounter` ([`COUNTER_KEY`]) and adds a fresh element to an `ORSet<String>` ([`SET_KEY`]),
//! printing one line per acknowledged update (stdout, flushed), until it is killed or has done
//! `max_updates` iterations:
//!
//! ```text
//! READY
//! ACK C <acknowledged increments of this process> <unix time ms>
//! ACK S <element> <unix time ms>
//! DONE
//! ```
//!
//! A line the child prints is complete; a line cut by the kill is ignored by [`parse_line`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dd_core::Key;
use dd_core::crdt::{GCounter, ORSet};
use dd_durable::WriteMode;

/// The counter the child increments.
pub fn counter_key() -> Key<GCounter> {
    Key::new(COUNTER_KEY)
}

/// The set the child adds to.
pub fn set_key() -> Key<ORSet<String>> {
    Key::new(SET_KEY)
}

/// The id of the counter key.
pub const COUNTER_KEY: &str = "crash-counter";
/// The id of the set key.
pub const SET_KEY: &str = "crash-set";

/// Milliseconds since the Unix epoch (the clock of the timestamps the child prints).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The arguments of the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildArgs {
    /// The store URL (`dd_durable::open_store`).
    pub url: String,
    /// The replica name.
    pub replica: String,
    /// The write mode.
    pub write_mode: WriteMode,
    /// Prefix of the set elements (unique per run, so elements of different runs differ).
    pub tag: String,
    /// The most iterations before the child stops on its own.
    pub max_updates: u64,
    /// The pause between two iterations.
    pub pause: Duration,
}

impl ChildArgs {
    /// As command-line arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mode = match self.write_mode {
            WriteMode::Sync => "sync".to_owned(),
            WriteMode::WriteBehind { interval } => format!("write-behind:{}", interval.as_millis()),
        };
        vec![
            self.url.clone(),
            self.replica.clone(),
            mode,
            self.tag.clone(),
            self.max_updates.to_string(),
            self.pause.as_millis().to_string(),
        ]
    }

    /// From command-line arguments (without the program name).
    pub fn from_args(args: &[String]) -> Result<ChildArgs, String> {
        let [url, replica, mode, tag, max, pause] = args else {
            return Err(format!(
                "expected 6 arguments (url replica sync|write-behind:<ms> tag max-updates \
                 pause-ms), got {}",
                args.len()
            ));
        };
        let number = |what: &str, s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("{what} '{s}' is not a number: {e}"))
        };
        let write_mode = match mode.strip_prefix("write-behind:") {
            _ if mode == "sync" => WriteMode::Sync,
            Some(ms) => WriteMode::WriteBehind {
                interval: Duration::from_millis(number("write-behind interval", ms)?),
            },
            None => return Err(format!("unknown write mode '{mode}'")),
        };
        Ok(ChildArgs {
            url: url.clone(),
            replica: replica.clone(),
            write_mode,
            tag: tag.clone(),
            max_updates: number("max-updates", max)?,
            pause: Duration::from_millis(number("pause", pause)?),
        })
    }
}

/// One line of the child's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildLine {
    /// The replica started (the store loaded).
    Ready,
    /// The `count`-th increment of this process was acknowledged at `at_ms`.
    Counter {
        /// Acknowledged increments of this process so far.
        count: u64,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// `element` was added, acknowledged at `at_ms`.
    Element {
        /// The element.
        element: String,
        /// When (Unix ms).
        at_ms: u64,
    },
    /// The child stopped on its own after `max_updates` iterations.
    Done,
}

impl ChildLine {
    /// The line as printed.
    pub fn render(&self) -> String {
        match self {
            ChildLine::Ready => "READY".to_owned(),
            ChildLine::Counter { count, at_ms } => format!("ACK C {count} {at_ms}"),
            ChildLine::Element { element, at_ms } => format!("ACK S {element} {at_ms}"),
            ChildLine::Done => "DONE".to_owned(),
        }
    }
}

/// Parses one line; `None` for anything else (such as a line cut short by the kill).
///
/// ```
/// use integration_tests::crash::{ChildLine, parse_line};
/// let line = ChildLine::Element { element: "r1-7".into(), at_ms: 42 };
/// assert_eq!(parse_line(&line.render()), Some(line));
/// assert_eq!(parse_line("ACK C 3"), None);
/// ```
pub fn parse_line(line: &str) -> Option<ChildLine> {
    let parts: Vec<&str> = line.split(' ').collect();
    match parts.as_slice() {
        ["READY"] => Some(ChildLine::Ready),
        ["DONE"] => Some(ChildLine::Done),
        ["ACK", "C", count, at] => Some(ChildLine::Counter {
            count: count.parse().ok()?,
            at_ms: at.parse().ok()?,
        }),
        ["ACK", "S", element, at] => Some(ChildLine::Element {
            element: (*element).to_owned(),
            at_ms: at.parse().ok()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let args = ChildArgs {
            url: "fs:///tmp/x".into(),
            replica: "crash".into(),
            write_mode: WriteMode::WriteBehind {
                interval: Duration::from_millis(250),
            },
            tag: "r3".into(),
            max_updates: 100,
            pause: Duration::from_millis(2),
        };
        assert_eq!(ChildArgs::from_args(&args.to_args()), Ok(args.clone()));
        let sync = ChildArgs {
            write_mode: WriteMode::Sync,
            ..args
        };
        assert_eq!(ChildArgs::from_args(&sync.to_args()), Ok(sync));
        assert!(ChildArgs::from_args(&["x".into()]).is_err());
    }

    #[test]
    fn cut_lines_are_ignored() {
        assert_eq!(parse_line("ACK S r1-"), None);
        assert_eq!(
            parse_line("ACK C 12 17"),
            Some(ChildLine::Counter {
                count: 12,
                at_ms: 17
            })
        );
        assert_eq!(parse_line(""), None);
    }
}
