#!/usr/bin/env bash
# Checks dd-node's HTTP API against its own OpenAPI document (`GET /openapi.json`) with
# schemathesis (PyPI, pinned below, installed into target/schemathesis-venv on first use): one
# `dd-node serve` on 127.0.0.1 with a SQLite store in a temporary directory, at most
# DD_SCHEMATHESIS_EXAMPLES generated requests per operation and phase (default 50). Fails on any
# 5xx, any response whose status, content type or body the document does not describe, a request
# the server does not answer, or a server that is not alive afterwards. The server-sent events
# endpoint is left out (its response never ends). About a minute on 2 cores once dd-node is built.
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
examples="${DD_SCHEMATHESIS_EXAMPLES:-50}"
venv="$PWD/target/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$version"; then
    echo "== installing schemathesis $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi
cargo build --locked -p dd-node
dir="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port="$(free_port)"
cluster_port="$(free_port)"
base="http://127.0.0.1:$http_port"
target/debug/dd-node serve --replica st --http-addr "127.0.0.1:$http_port" \
    --cluster-addr "127.0.0.1:$cluster_port" --store "sqlite://$dir/st.db" >"$dir/node.log" 2>&1 &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -fsS "$base/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/node.log"; exit 1; }
    sleep 0.1
done
curl -fsS "$base/health" >/dev/null
status=0
# From the temporary directory: schemathesis keeps its example database in ./.schemathesis.
(cd "$dir" && "$venv/bin/st" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path '/keys/{type}/{key}/subscribe' \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --seed 21 \
    --workers 2 \
    --request-timeout 10 \
    --no-shrink \
    --warnings off) || status=$?
if ! curl -fsS "$base/health/live" >/dev/null; then
    echo "dd-node stopped answering; its log:" >&2
    tail -n 50 "$dir/node.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "schemathesis failed (exit $status); dd-node's log:" >&2
    tail -n 50 "$dir/node.log" >&2
fi
exit "$status"
