//! The child process of the crash tests (see `integration_tests::crash`): opens the store at a
//! URL, starts one replica and does acknowledged updates, printing each, until killed.

use std::io::Write;
use std::process::ExitCode;

use dd_core::crdt::{GCounter, ORSet};
use dd_core::replicator::{Replicator, ReplicatorError, WriteConsistency};
use integration_tests::crash::{ChildArgs, ChildLine, counter_key, set_key, unix_ms};
use integration_tests::{ReplicaConfig, start_alone};

fn say(line: &ChildLine) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.render())?;
    out.flush()
}

async fn updates(r: &Replicator, args: &ChildArgs) -> Result<(), String> {
    let counter = counter_key();
    let set = set_key();
    let io = |e: std::io::Error| format!("stdout: {e}");
    let failed = |e: ReplicatorError| format!("update failed: {e}");
    for i in 0..args.max_updates {
        let me = r.self_id();
        r.update(
            &counter,
            GCounter::new(),
            WriteConsistency::Local,
            move |c| c.increment(&me, 1),
        )
        .await
        .map_err(failed)?;
        say(&ChildLine::Counter {
            count: i + 1,
            at_ms: unix_ms(),
        })
        .map_err(io)?;
        let me = r.self_id();
        let element = format!("{}-{i}", args.tag);
        let added = element.clone();
        r.update(&set, ORSet::new(), WriteConsistency::Local, move |s| {
            s.add(&me, added);
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .map_err(failed)?;
        say(&ChildLine::Element {
            element,
            at_ms: unix_ms(),
        })
        .map_err(io)?;
        if !args.pause.is_zero() {
            tokio::time::sleep(args.pause).await;
        }
    }
    Ok(())
}

async fn run(args: ChildArgs) -> Result<(), String> {
    let store = dd_durable::open_store(&args.url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", args.url))?;
    let config = ReplicaConfig::new(args.replica.clone()).write_mode(args.write_mode);
    let r = start_alone(&config, store)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    say(&ChildLine::Ready).map_err(|e| format!("stdout: {e}"))?;
    updates(&r, &args).await?;
    r.shutdown().await.map_err(|e| format!("shutdown: {e}"))?;
    say(&ChildLine::Done).map_err(|e| format!("stdout: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match ChildArgs::from_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("crash_child: {e}");
            return ExitCode::from(2);
        }
    };
    integration_tests::child::run_child("crash_child", run(args))
}
