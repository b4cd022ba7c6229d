#!/usr/bin/env bash
# Long runs of the whole-stack simulation (dd-sim): SEEDS seeds per write mode.
#   scripts/sim.sh [SEEDS]          (default: $DD_SIM_SEEDS, else 1000)
# Every other DD_SIM_* variable of dd-sim/README.md passes through, e.g.
#   DD_SIM_FAULTS=all DD_SIM_FIRST=5000 scripts/sim.sh 200
# `cargo test` (and so .ci/run) runs the bounded slice: 20 seeds per mode plus every fixed
# regression. A failing seed prints its shrunk trace and a one-line replay command; add it to
# dd-sim/regressions.txt. Shrinking is off unless DD_SIM_SHRINK_RUNS is set, so that a long run
# reports every failing seed quickly. Also runs the map model test with DD_MODEL_CASES cases
# (default 2000) per map type.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${1:-${DD_SIM_SEEDS:-1000}}"
if ! [[ "$SEEDS" =~ ^[1-9][0-9]*$ ]]; then
    echo "sim.sh: seeds per mode must be a positive integer, got '$SEEDS'" >&2
    exit 2
fi
export DD_SIM_SHRINK_RUNS="${DD_SIM_SHRINK_RUNS:-0}"
echo "== dd-sim: $SEEDS seeds per write mode (faults: ${DD_SIM_FAULTS:-default})"
DD_SIM_SEEDS="$SEEDS" cargo test --locked -p dd-sim --test sim seeds_run_clean -- --nocapture
echo "== map model: ${DD_MODEL_CASES:-2000} cases per map type"
DD_MODEL_CASES="${DD_MODEL_CASES:-2000}" cargo test --locked -p dd-core --test crdt_map_model
