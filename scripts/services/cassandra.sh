# shellcheck shell=bash
# Sourced by scripts/test.sh (under `set -euo pipefail`): provides a real one-node Apache
# Cassandra 5.0 for the dd-store-cassandra and integration-tests Cassandra tests. If
# DD_TEST_CASSANDRA_CONTACT_POINTS is already set, that external cluster is used as is.
# Otherwise cassandra-all and its runtime dependencies are resolved with Maven from
# scripts/services/cassandra/pom.xml (jars cached in ~/.m2), and CassandraDaemon is started in
# the foreground with OpenJDK 17 on free 127.0.0.1 ports, a temporary data directory and the
# committed cassandra.yaml / logback.xml / jvm17-server.options. It waits (bounded) until CQL
# answers, prints the server's release_version, exports DD_TEST_CASSANDRA_CONTACT_POINTS and
# appends a command stopping it to CLEANUP. A start failure prints the end of its log and
# returns 1 (never a silent skip). It never calls `exit`.
# DD_CASSANDRA_JAVA overrides the java binary (default: Java 17 or 11, see dd_cassandra_java); DD_CASSANDRA_START_TIMEOUT (seconds, default 240)
# bounds the start (after Maven).

dd_cassandra_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The java binary to run Cassandra with: DD_CASSANDRA_JAVA as given, else the first of
# OpenJDK 17's Debian path, $JAVA_HOME/bin/java and `java` on PATH that is Java 17 or 11 (5.0
# refuses newer ones: it installs a SecurityManager).
dd_cassandra_java() {
    if [ -n "${DD_CASSANDRA_JAVA:-}" ]; then
        echo "$DD_CASSANDRA_JAVA"
        return 0
    fi
    local candidate version
    for candidate in /usr/lib/jvm/java-17-openjdk-amd64/bin/java "${JAVA_HOME:+$JAVA_HOME/bin/java}" \
        "$(command -v java 2>/dev/null || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        version="$("$candidate" -version 2>&1 | head -n 1 | sed -n 's/.*version "\([0-9]*\).*/\1/p')"
        case "$version" in 17 | 11) echo "$candidate"; return 0 ;; esac
    done
    return 1
}

dd_cassandra_service() {
    if [ -n "${DD_TEST_CASSANDRA_CONTACT_POINTS:-}" ]; then
        echo "cassandra: using external cluster $DD_TEST_CASSANDRA_CONTACT_POINTS" >&2
        return 0
    fi
    local conf
    conf="$(cd "$(dirname "${BASH_SOURCE[0]}")/cassandra" && pwd)"
    local java
    if ! java="$(dd_cassandra_java)"; then
        echo "cassandra: no Java 17 or 11 found (Cassandra 5.0 needs one; tried DD_CASSANDRA_JAVA, /usr/lib/jvm/java-17-openjdk-amd64, JAVA_HOME, java on PATH)" >&2
        return 1
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        echo "cassandra: mvn (Apache Maven) not found; it resolves cassandra-all from Maven Central" >&2
        return 1
    fi
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/dd-cassandra.XXXXXX")"
    local resolving=$SECONDS
    echo "cassandra: resolving cassandra-all with Maven (cached in ~/.m2)" >&2
    if ! mvn -B -q -f "$conf/pom.xml" dependency:build-classpath \
        -DincludeScope=runtime -Dmdep.outputFile="$dir/classpath" >"$dir/maven.log" 2>&1; then
        echo "cassandra: Maven could not resolve cassandra-all; its output ($dir/maven.log):" >&2
        tail -n 40 "$dir/maven.log" >&2 || true
        return 1
    fi
    local classpath jamm
    classpath="$(cat "$dir/classpath")"
    jamm="$(tr ':' '\n' <"$dir/classpath" | grep '/jamm-[0-9.]*\.jar$' | head -n 1 || true)"
    local storage_port native_port
    storage_port="$(dd_cassandra_free_port)"
    native_port="$(dd_cassandra_free_port)"
    while [ "$native_port" = "$storage_port" ]; do native_port="$(dd_cassandra_free_port)"; done
    local flags=()
    local line
    while IFS= read -r line; do
        case "$line" in '' | '#'*) continue ;; esac
        flags+=("$line")
    done <"$conf/jvm17-server.options"
    if [ -n "$jamm" ]; then flags+=("-javaagent:$jamm"); fi
    echo "cassandra: resolved in $((SECONDS - resolving)) s; starting CassandraDaemon" >&2
    local started=$SECONDS
    local log="$dir/cassandra.log"
    mkdir -p "$dir/triggers"
    "$java" "${flags[@]}" \
        -Dcassandra.config="file://$conf/cassandra.yaml" \
        -Dcassandra.storagedir="$dir/data" \
        -Dcassandra.logdir="$dir" \
        -Dcassandra.triggers_dir="$dir/triggers" \
        -Dcassandra.storage_port="$storage_port" \
        -Dcassandra.native_transport_port="$native_port" \
        -Dcassandra-foreground=yes \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 \
        -Dlogback.configurationFile="file://$conf/logback.xml" \
        -cp "$classpath" org.apache.cassandra.service.CassandraDaemon >"$log" 2>&1 &
    local pid=$!
    # SIGTERM runs Cassandra's shutdown hook; SIGKILL if it has not exited within 30 s.
    CLEANUP+=("kill $pid 2>/dev/null; for _ in \$(seq 1 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf '$dir'")
    local timeout="${DD_CASSANDRA_START_TIMEOUT:-240}"
    local version=""
    while [ $((SECONDS - started)) -lt "$timeout" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "cassandra: CassandraDaemon exited at start; the end of its log ($log):" >&2
            tail -n 60 "$log" >&2 || true
            return 1
        fi
        if version="$(python3 "$conf/cql_probe.py" 127.0.0.1 "$native_port" 5 2>/dev/null)"; then
            break
        fi
        version=""
        sleep 1
    done
    if [ -z "$version" ]; then
        echo "cassandra: CQL did not answer on 127.0.0.1:$native_port within ${timeout} s; the end of its log ($log):" >&2
        tail -n 60 "$log" >&2 || true
        return 1
    fi
    export DD_TEST_CASSANDRA_CONTACT_POINTS="127.0.0.1:$native_port"
    export DD_TEST_CASSANDRA_KEYSPACE="${DD_TEST_CASSANDRA_KEYSPACE:-dd_test}"
    echo "cassandra: Apache Cassandra $version (pid $pid) on $DD_TEST_CASSANDRA_CONTACT_POINTS, started in $((SECONDS - started)) s, data and log in $dir" >&2
}

dd_cassandra_service
