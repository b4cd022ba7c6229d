//! The layers of dd-core's modules: each top-level module uses only modules of lower layers, so
//! the crate has no import cycle between its modules and no lower module reaches up.
//!
//! The test reads the sources (`src/`) and checks every `crate::NAME` outside comments against
//! [`LAYERS`]; `dd-core/README.md` draws the same layers. A new module goes into the list.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// From the bottom up; a module may use the modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    &["replica", "secret", "store"],
    &["crdt", "protocol", "cluster"],
    &["data", "key"],
    &["pruning_record"],
    &["durable", "transport"],
    &["replicator"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// The code of a file without its comments (line comments and doc comments).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = line.split("//").next().unwrap_or("");
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// Every `NAME` of `crate::NAME` in `code`.
fn crate_paths(code: &str) -> Vec<&str> {
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // `$crate::` in macros is the crate root as well; `dd_crate::` is not.
            let before = code[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, m)| {
            let rest = &code[at + m.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Where each name the crate root offers comes from: its modules, the names `lib.rs`
/// re-exports, and the macros exported at the root.
fn root_names(files: &[PathBuf]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let lib: Vec<&str> = code_lines(&lib).map(|(_, code)| code).collect();
    for statement in lib.join("\n").split(';').map(str::trim) {
        let module = ["pub mod ", "pub(crate) mod ", "mod "]
            .iter()
            .find_map(|prefix| statement.strip_prefix(prefix));
        if let Some(module) = module {
            names.insert(module.to_string(), module.to_string());
        } else if let Some(path) = statement.strip_prefix("pub use ") {
            match path.split_once("::") {
                Some((module, items)) => {
                    for item in items.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                        if !item.is_empty() {
                            names.insert(item.to_string(), module.to_string());
                        }
                    }
                }
                // `pub use other_crate as name;`: a module of the crate root by that name.
                None => {
                    let name = path.rsplit(" as ").next().unwrap_or(path).trim();
                    names.insert(name.to_string(), name.to_string());
                }
            }
        }
    }
    for file in files {
        let text = fs::read_to_string(file).unwrap();
        let Some(module) = module_of(file) else {
            continue;
        };
        let mut exported = false;
        for (_, code) in code_lines(&text) {
            if code.contains("#[macro_export]") {
                exported = true;
            } else if let Some(rest) = code
                .trim()
                .strip_prefix("macro_rules! ")
                .filter(|_| exported)
            {
                let name = rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap();
                names.insert(name.to_string(), module.clone());
                exported = false;
            }
        }
    }
    names
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_uses_only_lower_layers() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let names = root_names(&files);
    let mut wrong = Vec::new();
    for (name, module) in &names {
        if name == module {
            assert!(
                layer_of(module).is_some(),
                "module `{module}` is in no layer of dd-core/tests/layering.rs: add it to LAYERS"
            );
        }
    }
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        let from_layer = layer_of(&from)
            .unwrap_or_else(|| panic!("module `{from}` is in no layer: add it to LAYERS"));
        let text = fs::read_to_string(file).unwrap();
        for (line, code) in code_lines(&text) {
            for name in crate_paths(code) {
                let to = names.get(name).unwrap_or_else(|| {
                    panic!(
                        "{}:{line}: `crate::{name}` is no module or root name",
                        file.display()
                    )
                });
                if *to == from {
                    continue;
                }
                // A name the root re-exports from another crate is no module of this one.
                let Some(to_layer) = layer_of(to) else {
                    continue;
                };
                if to_layer >= from_layer {
                    wrong.push(format!(
                        "{}:{line}: `{from}` (layer {from_layer}) uses `crate::{name}` of `{to}` (layer {to_layer})",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that do not go down the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_finds_imports() {
    assert_eq!(
        crate_paths("use crate::data::{A, B}; $crate::crdt::X; dd_crate::no"),
        ["data", "crdt"]
    );
    assert_eq!(
        code_lines("/// crate::replicator\nuse crate::crdt; // crate::key\n").collect::<Vec<_>>(),
        [(2, "use crate::crdt; ")]
    );
}

#[test]
fn the_root_names_come_from_their_modules() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let names = root_names(&files);
    assert_eq!(
        names.get("replicator").map(String::as_str),
        Some("replicator")
    );
    assert_eq!(names.get("TypeName").map(String::as_str), Some("crdt"));
    assert_eq!(
        names.get("Replicator").map(String::as_str),
        Some("replicator")
    );
}
