//! Replays every committed crash input in `fuzz/regressions/<target>/` through exactly the checks
//! its fuzz target runs: none may panic or fail a check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dd_fuzz_checks::{CheckFailure, Outcome, Target};

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `check` on every input, catching panics; returns one line per failing input.
fn replay(
    label: &str,
    inputs: &[(String, Vec<u8>)],
    check: impl Fn(&[u8]) -> Result<Outcome, CheckFailure>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, bytes) in inputs {
        match catch_unwind(AssertUnwindSafe(|| check(bytes))) {
            Ok(Ok(_)) => {}
            Ok(Err(failure)) => failures.push(format!("{label}/{name}: {failure}")),
            Err(panic) => failures.push(format!(
                "{label}/{name}: panicked: {}",
                panic_message(panic.as_ref())
            )),
        }
    }
    failures
}

#[test]
fn every_regression_input_passes_its_targets_checks() {
    let root = common::fuzz_dir().join("regressions");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for target in Target::ALL {
        let dir = root.join(target.name());
        assert!(
            dir.is_dir(),
            "{} is missing: every fuzz target has a regression directory",
            dir.display()
        );
        let inputs = common::inputs_in(&dir);
        replayed += inputs.len();
        let label = format!("fuzz/regressions/{target}");
        failures.extend(replay(&label, &inputs, |bytes| target.check(bytes)));
    }
    println!("replayed {replayed} regression inputs");
    assert!(
        failures.is_empty(),
        "{} regression input(s) fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn regression_directories_are_named_after_targets() {
    let root = common::fuzz_dir().join("regressions");
    for entry in fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !common::is_input(&name) {
            continue;
        }
        assert!(
            entry.path().is_dir() && Target::from_name(&name).is_some(),
            "fuzz/regressions/{name} is not the directory of a fuzz target (expected one of {:?}); \
             a crash input goes into fuzz/regressions/<target>/",
            Target::ALL.map(Target::name)
        );
    }
}

#[test]
fn replay_reports_panics_and_check_failures_by_input() {
    let inputs = vec![
        ("fine".to_owned(), vec![0]),
        ("panics".to_owned(), vec![1]),
        ("violates".to_owned(), vec![2]),
    ];
    let failures = replay("dir", &inputs, |bytes| match bytes {
        [1] => panic!("decoder bug"),
        [2] => Err(CheckFailure {
            target: Target::CrdtDecode,
            reason: "broken property".to_owned(),
        }),
        _ => Ok(Outcome::Rejected),
    });
    assert_eq!(
        failures,
        vec![
            "dir/panics: panicked: decoder bug".to_owned(),
            "dir/violates: fuzz target crdt_decode: broken property".to_owned(),
        ]
    );
}
