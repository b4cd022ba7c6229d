//! SIGKILL tests: a child process (`crash_child`) does acknowledged updates on one replica and is
//! killed at a seeded random moment, several times, restarted on the same store each time.
//! After every kill the store opens cleanly and every acknowledged update is there (sync); with
//! write-behind, only updates of the last write-behind intervals may be lost.
//!
//! Set `DD_CRASH_SEED` to replay a run (the seed is printed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use dd_core::replicator::{ReadConsistency, ReplicatorError};
use dd_durable::WriteMode;
use integration_tests::crash::{ChildArgs, ChildLine, counter_key, parse_line, set_key, unix_ms};
use integration_tests::{BackendKind, ReplicaConfig, StoreLocation, backend_tests, start_alone};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const REPLICA: &str = "crash";
const WAIT: Duration = Duration::from_secs(60);
const SYNC_ROUNDS: usize = 5;

fn seed() -> u64 {
    let seed = std::env::var("DD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed: DD_CRASH_SEED={seed}");
    seed
}

/// What one life of the child acknowledged.
#[derive(Debug, Default)]
struct Life {
    counter_acks: Vec<u64>,
    elements: Vec<(String, u64)>,
    done: bool,
}

impl Life {
    fn record(&mut self, line: ChildLine) {
        match line {
            ChildLine::Counter { at_ms, .. } => self.counter_acks.push(at_ms),
            ChildLine::Element { element, at_ms } => self.elements.push((element, at_ms)),
            ChildLine::Done => self.done = true,
            ChildLine::Ready => {}
        }
    }
}

struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    life: Life,
}

impl Running {
    fn spawn(args: &ChildArgs) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_child"))
            .args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn crash_child");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running {
            child,
            lines,
            life: Life::default(),
        }
    }

    /// Reads lines until `until` holds for the life so far (bounded by `WAIT`).
    async fn read_until(&mut self, what: &str, until: impl Fn(&Life, &ChildLine) -> bool) {
        let read = async {
            loop {
                let Some(line) = self.lines.next_line().await.unwrap() else {
                    return false;
                };
                let Some(parsed) = parse_line(&line) else {
                    panic!("unexpected line from crash_child: {line:?}");
                };
                let stop = until(&self.life, &parsed);
                self.life.record(parsed);
                if stop {
                    return true;
                }
            }
        };
        let reached = tokio::time::timeout(WAIT, read).await.unwrap_or(false);
        if !reached {
            let _ = self.child.start_kill();
            let mut stderr = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                let _ = tokio::time::timeout(WAIT, e.read_to_string(&mut stderr)).await;
            }
            panic!("crash_child did not reach '{what}' within {WAIT:?}; its stderr:\n{stderr}");
        }
    }

    /// Kills the child with SIGKILL, then reads what it printed before dying.
    async fn kill(mut self) -> (Life, u64) {
        let kill_ms = unix_ms();
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the killed child exits")
            .unwrap();
        assert!(
            !status.success(),
            "the child was killed, not finished: {status:?}"
        );
        let rest = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                // A line cut short by the kill is not an acknowledgement.
                if let Some(parsed) = parse_line(&line) {
                    self.life.record(parsed);
                }
            }
        };
        tokio::time::timeout(WAIT, rest)
            .await
            .expect("stdout closes");
        assert!(!self.life.done, "the child finished before the kill");
        (self.life, kill_ms)
    }
}

/// Opens the store, starts a replica on it and reads the counter and the set.
async fn recovered(location: &StoreLocation) -> (u128, BTreeSet<String>) {
    let store = location
        .open()
        .await
        .expect("the store opens after the kill");
    let r = start_alone(&ReplicaConfig::new(REPLICA), store)
        .await
        .expect("a replica starts on the store after the kill");
    let counter = match r.get(&counter_key(), ReadConsistency::Local).await {
        Ok(c) => c.value(),
        Err(ReplicatorError::NotFound { .. }) => 0,
        Err(e) => panic!("reading the counter: {e}"),
    };
    let set = match r.get(&set_key(), ReadConsistency::Local).await {
        Ok(s) => s.elements(),
        Err(ReplicatorError::NotFound { .. }) => BTreeSet::new(),
        Err(e) => panic!("reading the set: {e}"),
    };
    r.shutdown().await.unwrap();
    (counter, set)
}

fn child_args(
    location: &StoreLocation,
    write_mode: WriteMode,
    tag: String,
    pause_ms: u64,
) -> ChildArgs {
    ChildArgs {
        url: location.url().expect("a backend with a URL").to_owned(),
        replica: REPLICA.to_owned(),
        write_mode,
        tag,
        max_updates: 100_000,
        pause: Duration::from_millis(pause_ms),
    }
}

/// Sync writes: after each of several kills at random moments, every acknowledged update is in
/// the store, and at most the one update in flight at the kill is there beyond them.
async fn sigkill_keeps_every_acknowledged_sync_update(backend: BackendKind) {
    let mut rng = StdRng::seed_from_u64(seed());
    let location = backend.fresh_location("crash-sync").await.unwrap();
    let mut acked_counter: u128 = 0;
    let mut acked_elements = BTreeSet::new();
    for round in 1..=SYNC_ROUNDS {
        let args = child_args(&location, WriteMode::Sync, format!("r{round}"), 0);
        let mut child = Running::spawn(&args);
        child
            .read_until("READY", |_, l| *l == ChildLine::Ready)
            .await;
        let target: usize = rng.random_range(0..=40);
        if target > 0 {
            child
                .read_until(&format!("{target} acknowledged increments"), |life, l| {
                    matches!(l, ChildLine::Counter { .. }) && life.counter_acks.len() + 1 >= target
                })
                .await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
        let (life, _) = child.kill().await;
        acked_counter += life.counter_acks.len() as u128;
        acked_elements.extend(life.elements.iter().map(|(e, _)| e.clone()));

        let (counter, set) = recovered(&location).await;
        let kills = round as u128;
        eprintln!(
            "{backend} sync round {round}: acknowledged {acked_counter} increments and {} \
             elements; recovered {counter} and {}",
            acked_elements.len(),
            set.len()
        );
        assert!(
            counter >= acked_counter,
            "round {round}: counter {counter} < acknowledged {acked_counter}"
        );
        assert!(
            counter <= acked_counter + kills,
            "round {round}: counter {counter} has more than one unacknowledged increment per kill"
        );
        let missing: Vec<_> = acked_elements.difference(&set).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged elements lost: {missing:?}"
        );
        assert!(set.len() as u128 <= acked_elements.len() as u128 + kills);
    }
}

/// Write-behind: a kill loses at most the updates acknowledged within the last two write-behind
/// intervals before it (documented: entries queued but not yet written are lost).
async fn sigkill_loses_only_the_last_write_behind_intervals(backend: BackendKind) {
    let interval = Duration::from_millis(500);
    let window_ms = 2 * interval.as_millis() as u64;
    let mut rng = StdRng::seed_from_u64(seed());
    for round in 1..=2 {
        let location = backend.fresh_location("crash-write-behind").await.unwrap();
        let mode = WriteMode::WriteBehind { interval };
        let args = child_args(&location, mode, format!("wb{round}"), 2);
        let mut child = Running::spawn(&args);
        child
            .read_until("READY", |_, l| *l == ChildLine::Ready)
            .await;
        // Run for several intervals, then kill at a random moment.
        let run_for = Duration::from_millis(rng.random_range(1500..3000));
        let started = unix_ms();
        child
            .read_until("running long enough", |_, l| match l {
                ChildLine::Element { at_ms, .. } => *at_ms >= started + run_for.as_millis() as u64,
                _ => false,
            })
            .await;
        let (life, kill_ms) = child.kill().await;

        let (counter, set) = recovered(&location).await;
        let recent = |at: u64| at + window_ms >= kill_ms;
        let acked = life.counter_acks.len() as u128;
        let lost = acked.saturating_sub(counter);
        let allowed = life.counter_acks.iter().filter(|at| recent(**at)).count() as u128;
        let lost_elements: Vec<_> = life
            .elements
            .iter()
            .filter(|(e, _)| !set.contains(e))
            .collect();
        eprintln!(
            "{backend} write-behind round {round} (interval {interval:?}): acknowledged {acked} \
             increments, lost {lost} (bound: {allowed} acknowledged in the last {window_ms} ms); \
             lost {} of {} elements",
            lost_elements.len(),
            life.elements.len()
        );
        assert!(
            counter <= acked + 1,
            "counter {counter} > acknowledged {acked} + 1"
        );
        assert!(
            lost <= allowed,
            "lost {lost} increments, more than the {allowed} of the last window"
        );
        let old: Vec<_> = lost_elements
            .iter()
            .filter(|(_, at)| !recent(*at))
            .collect();
        assert!(
            old.is_empty(),
            "elements acknowledged before the last window were lost: {old:?}"
        );
        assert!(
            counter > 0 && !set.is_empty(),
            "write-behind wrote nothing in {run_for:?} of {interval:?} intervals"
        );
    }
}

backend_tests!(
    crash: sigkill_keeps_every_acknowledged_sync_update,
    sigkill_loses_only_the_last_write_behind_intervals,
);
