#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default: $DD_FUZZ_SECONDS, else 30)
# `.ci/run` calls it after the tests. Installs the pinned cargo-fuzz when missing. Only a stable
# toolchain is available, so the nightly-only flags cargo-fuzz passes to rustc are enabled with
# RUSTC_BOOTSTRAP=1. All targets are built once, then each runs from its committed seeds
# (fuzz/seeds/<target>/) and regressions (fuzz/regressions/<target>/), both read-only; new
# inputs go to the scratch corpus fuzz/corpus/<target>/ (not committed). Every target runs even
# if an earlier one crashed; the script then fails and prints where each crashing input is.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-${DD_FUZZ_SECONDS:-30}}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: seconds per target must be a positive integer, got '$SECONDS_PER_TARGET'" >&2
    exit 2
fi
# Pinned: the newest cargo-fuzz that builds (--locked) on the workspace's rustc 1.95.
CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
fi
export RUSTC_BOOTSTRAP=1
TARGETS=(record_decode transport_frame crdt_decode)
# No sanitizer: the workspace forbids unsafe code, so AddressSanitizer would mostly slow the
# build and the runs down; panics, failed checks, overflows (debug assertions on), timeouts and
# OOMs are still caught.
FUZZ_FLAGS=(--release --debug-assertions --sanitizer none)
# cargo-fuzz has no --locked: check the committed fuzz/Cargo.lock is current before it builds.
cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null
echo "== building ${#TARGETS[@]} fuzz targets"
cargo fuzz build "${FUZZ_FLAGS[@]}"
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
FAILED=()
for target in "${TARGETS[@]}"; do
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    corpus="fuzz/corpus/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$corpus" "$artifacts" "fuzz/seeds/$target" "fuzz/regressions/$target"
    log="$LOGS/$target.log"
    # The build above is reused: `cargo fuzz run` with the same flags only checks it is fresh.
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" \
        "$corpus" "fuzz/seeds/$target" "fuzz/regressions/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
        execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
        echo "   $target: no crash, ${execs:-?} executions in ${SECONDS_PER_TARGET}s"
    else
        # From the panic (or libFuzzer's error) on: the message, the input's path, the replay hints.
        first="$(grep -n -m1 -E 'panicked at|ERROR: libFuzzer' "$log" | cut -d: -f1 || true)"
        if [ -n "$first" ]; then
            tail -n "+$first" "$log" | head -n 80
        else
            tail -n 60 "$log"
        fi
        inputs="$(grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to //' || true)"
        echo "!! $target CRASHED; crashing input: ${inputs:-none written (see the log above)}"
        FAILED+=("$target: ${inputs:-see its log above}")
    fi
done
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "== ${#FAILED[@]} fuzz target(s) crashed:"
    printf '   %s\n' "${FAILED[@]}"
    echo "   Reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${FUZZ_FLAGS[*]} <target> <input>"
    echo "   Then copy the input into fuzz/regressions/<target>/, fix the decoder, and check"
    echo "   with: cargo test -p dd-fuzz-checks --test regressions   (see fuzz/README.md)"
    exit 1
fi
echo "== no crash in ${#TARGETS[@]} targets"
