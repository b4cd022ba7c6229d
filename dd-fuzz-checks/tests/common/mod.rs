//! Reading the committed inputs under `fuzz/`.

use std::fs;
use std::path::{Path, PathBuf};

/// `fuzz/` of the repository.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
}

/// Whether a directory entry is an input (not a dotfile such as `.gitkeep`, not a README).
pub fn is_input(name: &str) -> bool {
    !name.starts_with('.') && !name.eq_ignore_ascii_case("README.md")
}

/// The inputs in `dir`, sorted by file name.
pub fn inputs_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut inputs = Vec::new();
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_input(&name) {
            continue;
        }
        let path = entry.path();
        assert!(path.is_file(), "{} is not a file", path.display());
        let bytes =
            fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        inputs.push((name, bytes));
    }
    inputs.sort();
    inputs
}
