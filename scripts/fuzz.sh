#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET]
# (default 30). Installs cargo-fuzz when missing. Only a stable toolchain is available, so the
# nightly-only flags cargo-fuzz passes to rustc are enabled with RUSTC_BOOTSTRAP=1. Crashes are
# written to fuzz/artifacts/<target>/ and make this script fail; the corpus grows in
# fuzz/corpus/<target>/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
TARGETS=(envelope_decode transport_frame crdt_decode)
echo "== building ${#TARGETS[@]} fuzz targets"
# No sanitizer: the workspace forbids unsafe code, so AddressSanitizer would mostly slow the
# build and the runs down; panics, overflows (debug assertions on) and OOMs are still caught.
FUZZ_FLAGS=(--release --debug-assertions --sanitizer none)
cargo fuzz build "${FUZZ_FLAGS[@]}"
for target in "${TARGETS[@]}"; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    mkdir -p "fuzz/corpus/$target"
    cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1
done
echo "== no crash in ${#TARGETS[@]} targets"
