//! The committed seed corpus `fuzz/seeds/<target>/` must be exactly what
//! [`Target::seeds`] generates, and every seed must be accepted by its target's decoders, so the
//! seeds follow format changes. `DD_FUZZ_WRITE_SEEDS=1 cargo test -p dd-fuzz-checks --test seeds`
//! rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use dd_fuzz_checks::{Outcome, Target};

const REGENERATE: &str =
    "regenerate them with DD_FUZZ_WRITE_SEEDS=1 cargo test -p dd-fuzz-checks --test seeds";

fn write_requested() -> bool {
    std::env::var("DD_FUZZ_WRITE_SEEDS").is_ok_and(|v| v == "1")
}

#[test]
fn generated_seeds_are_accepted_and_uniquely_named() {
    for target in Target::ALL {
        let seeds = target.seeds().unwrap();
        assert!(!seeds.is_empty(), "{target} has no seeds");
        let mut names = BTreeSet::new();
        for seed in &seeds {
            assert!(
                !seed.name.is_empty()
                    && seed
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{target} seed name '{}' is not file-name safe",
                seed.name
            );
            assert!(
                names.insert(&seed.name),
                "{target} seed '{}' twice",
                seed.name
            );
            assert_eq!(
                target.check(&seed.bytes),
                Ok(Outcome::Accepted),
                "{target} seed '{}' is not accepted",
                seed.name
            );
        }
    }
}

#[test]
fn crdt_seeds_cover_every_built_in_type() {
    let seeds = Target::CrdtDecode.seeds().unwrap();
    for name in dd_core::data::builtin_type_names() {
        let file = dd_fuzz_checks::seeds::file_name_of(&name);
        assert!(
            seeds.iter().any(|s| s.name == format!("state-{file}")),
            "no seed for the state of {name}"
        );
    }
}

#[test]
fn committed_seeds_are_current() {
    let root = common::fuzz_dir().join("seeds");
    let mut problems = Vec::new();
    for target in Target::ALL {
        let dir = root.join(target.name());
        let generated: BTreeMap<String, Vec<u8>> = target
            .seeds()
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.bytes))
            .collect();
        if write_requested() {
            fs::create_dir_all(&dir).unwrap();
            for (name, _) in common::inputs_in(&dir) {
                fs::remove_file(dir.join(name)).unwrap();
            }
            for (name, bytes) in &generated {
                fs::write(dir.join(name), bytes).unwrap();
            }
            println!("wrote {} seeds to {}", generated.len(), dir.display());
        }
        let committed: BTreeMap<String, Vec<u8>> = if dir.is_dir() {
            common::inputs_in(&dir).into_iter().collect()
        } else {
            BTreeMap::new()
        };
        for (name, bytes) in &committed {
            let path = format!("fuzz/seeds/{target}/{name}");
            match generated.get(name) {
                None => problems.push(format!("{path} is no longer generated")),
                Some(current) if current != bytes => {
                    problems.push(format!("{path} differs from the current encoding"))
                }
                Some(_) => {}
            }
            if target.check(bytes) != Ok(Outcome::Accepted) {
                problems.push(format!("{path} is not accepted by its target"));
            }
        }
        for name in generated.keys() {
            if !committed.contains_key(name) {
                problems.push(format!("fuzz/seeds/{target}/{name} is missing"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the committed seeds are stale; {REGENERATE}:\n{}",
        problems.join("\n")
    );
}
