#!/usr/bin/env bash
# Runs the dd-bench benchmarks: `scripts/bench.sh small` (CI smoke run, debug build, results on
# stdout only) or `scripts/bench.sh full` (release build, writes BENCHMARKS.md). Extra arguments
# go to dd-bench (e.g. `--only write`). The `pekko` area (durable-dd vs Apache Pekko DD) builds the
# JVM harness of bench/pekko with Maven and javac (JDK 17; jars cached in ~/.m2); the small profile
# runs only one tiny row of it. Like scripts/test.sh, it sources every script in
# scripts/services/ (the S3 benchmarks run against the s3s-fs it starts on 127.0.0.1) and stops
# what they started on exit. Missed targets do not fail the run; errors do.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-small}"
shift || true
case "$profile" in
    small) cargo_args=(--locked) ; out_args=() ;;
    full) cargo_args=(--locked --release) ; out_args=(--out BENCHMARKS.md) ;;
    *) echo "usage: scripts/bench.sh [small|full] [dd-bench args...]" >&2; exit 2 ;;
esac
CLEANUP=()
cleanup() {
    for c in "${CLEANUP[@]}"; do eval "$c" || true; done
}
trap cleanup EXIT
for svc in scripts/services/*.sh; do
    [ -e "$svc" ] || continue
    # shellcheck source=/dev/null
    source "$svc"
done
cargo run "${cargo_args[@]}" -p dd-bench -- --profile "$profile" "${out_args[@]}" "$@"
