#!/usr/bin/env bash
# Browser test of dd-node's dashboard (dd-node/dashboard-test/dashboard.test.mjs): installs
# Debian's chromium (apt) and playwright-core (npm, pinned, into target/dashboard-test-node) when
# they are missing, starts three `dd-node serve` processes on 127.0.0.1 with SQLite stores in a
# temporary directory and drives replica b's dashboard in headless Chromium. With
# DD_DASHBOARD_SCREENSHOT=PATH it also writes a screenshot there (the one in dd-node's README:
# DD_DASHBOARD_SCREENSHOT=dd-node/docs/dashboard.png scripts/dashboard-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
playwright_version=1.65.1
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
modules=target/dashboard-test-node
if ! grep -qs "\"version\": \"$playwright_version\"" "$modules/node_modules/playwright-core/package.json"; then
    echo "== installing playwright-core $playwright_version (npm)"
    mkdir -p "$modules"
    echo '{"private": true}' >"$modules/package.json"
    npm install --prefix "$modules" --silent --no-audit --no-fund "playwright-core@$playwright_version"
fi
cargo build --locked -p dd-node
dir="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
names=(a b c)
declare -A http cluster
for n in "${names[@]}"; do http[$n]="$(free_port)"; cluster[$n]="$(free_port)"; done
bases=()
for n in "${names[@]}"; do
    peers=()
    for p in "${names[@]}"; do
        [ "$p" = "$n" ] || peers+=(--peer "$p=127.0.0.1:${cluster[$p]}")
    done
    target/debug/dd-node serve --replica "$n" --http-addr "127.0.0.1:${http[$n]}" \
        --cluster-addr "127.0.0.1:${cluster[$n]}" "${peers[@]}" --store "sqlite://$dir/$n.db" \
        >"$dir/$n.log" 2>&1 &
    pids+=($!)
    bases+=("http://127.0.0.1:${http[$n]}")
done
for base in "${bases[@]}"; do
    for _ in $(seq 1 300); do
        curl -fsS "$base/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "$base/health" >/dev/null || { tail -n 30 "$dir"/*.log; exit 1; }
done
status=0
DD_NODE_MODULES_DIR="$PWD/$modules" DD_BASES="$(IFS=,; echo "${bases[*]}")" \
    node dd-node/dashboard-test/dashboard.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
    for n in "${names[@]}"; do echo "--- $n"; tail -n 20 "$dir/$n.log"; done >&2
fi
exit "$status"
