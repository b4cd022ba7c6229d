#!/usr/bin/env bash
# Runs every test of the workspace. Each script in scripts/services/ starts, on 127.0.0.1, a
# server that backend tests need (installing it when missing) and exports the environment
# variables that point the tests at it; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
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
cargo test --workspace --locked "$@"
