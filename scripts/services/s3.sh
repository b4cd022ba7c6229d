# shellcheck shell=bash
# Sourced by scripts/test.sh (under `set -euo pipefail`): provides an S3 endpoint for the
# dd-store-s3 tests. If DD_TEST_S3_ENDPOINT is already set, that external endpoint is used as is
# (set DD_TEST_S3_BUCKET, DD_TEST_S3_REGION, DD_TEST_S3_ACCESS_KEY, DD_TEST_S3_SECRET_KEY too).
# Otherwise s3s-fs (installed with cargo when missing) is started on 127.0.0.1 on a free port
# with a temporary data directory, and a command stopping it is appended to CLEANUP.
# It never calls `exit`: failures are reported with `return 1`.

dd_s3_service() {
    if [ -n "${DD_TEST_S3_ENDPOINT:-}" ]; then
        echo "s3: using external endpoint $DD_TEST_S3_ENDPOINT" >&2
        export DD_TEST_S3_BUCKET="${DD_TEST_S3_BUCKET:-dd-test}"
        export DD_TEST_S3_REGION="${DD_TEST_S3_REGION:-us-east-1}"
        return 0
    fi
    local version="0.14.1"
    if ! command -v s3s-fs >/dev/null 2>&1; then
        echo "s3: installing s3s-fs $version (takes a few minutes)" >&2
        cargo install --locked "s3s-fs@$version" --features binary >&2 || {
            echo "s3: cannot install s3s-fs" >&2
            return 1
        }
    fi
    local dir port log pid access_key secret_key
    dir="$(mktemp -d "${TMPDIR:-/tmp}/dd-s3s-fs.XXXXXX")"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    access_key="dd-test-access"
    secret_key="dd-test-secret-$RANDOM$RANDOM"
    log="$dir.log"
    s3s-fs --host 127.0.0.1 --port "$port" --access-key "$access_key" --secret-key "$secret_key" \
        "$dir" >"$log" 2>&1 &
    pid=$!
    CLEANUP+=("{ kill $pid; wait $pid; } 2>/dev/null || true; rm -rf '$dir' '$log'")
    # Wait (bounded: 30 s) until it answers HTTP.
    local i
    for i in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3: s3s-fs exited at start; its log ($log):" >&2
            cat "$log" >&2 || true
            return 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [ "$i" -ge 300 ]; then
        echo "s3: s3s-fs did not answer on 127.0.0.1:$port within 30 s" >&2
        return 1
    fi
    # s3s-fs keeps every bucket as a directory of its data directory.
    mkdir -p "$dir/dd-test"
    export DD_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export DD_TEST_S3_BUCKET="dd-test"
    export DD_TEST_S3_REGION="us-east-1"
    export DD_TEST_S3_ACCESS_KEY="$access_key"
    export DD_TEST_S3_SECRET_KEY="$secret_key"
    # s3s-fs keeps object metadata in files named after the base64 of bucket and object name,
    # which limits object names to about 160 bytes (bucket dd-test: 161).
    export DD_TEST_S3_MAX_OBJECT_NAME_LEN="${DD_TEST_S3_MAX_OBJECT_NAME_LEN:-160}"
    echo "s3: s3s-fs (pid $pid) on $DD_TEST_S3_ENDPOINT, data in $dir" >&2
}

dd_s3_service
