#!/usr/bin/env bash
# Memory a Tomcat holds per session (not part of the test command), with this manager (sticky,
# asynchronous backups) and with Tomcat's StandardManager side by side: one Tomcat 10.1 each,
# serving the demo application, given SESSIONS new sessions (each a counter and one 1 KiB
# byte[], `GET /?attributes=1` without a cookie), then measured after a full collection: the
# Java heap's live bytes per session (jcmd GC.class_histogram) and the process's resident
# memory per session (/proc, which includes the native core's heap), each as the difference
# between before and after the sessions, divided by their number.
#
#   bash scripts/session-memory.sh                  # 100,000 sessions
#   SESSIONS=20000 bash scripts/session-memory.sh
#
# The core's own heap per session is measured exactly by `cargo bench --bench scale`.
# Needs the jars (bash scripts/build-jar.sh), memcached, python3 and a JDK (jcmd).
set -euo pipefail

SESSIONS=${SESSIONS:-100000}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/runs.sh
require_programs session-memory memcached:memcached jcmd:default-jdk-headless \
    java:default-jdk-headless python3:python3
require_jars session-memory
OUT=$(mktemp -d /tmp/msm-session-memory.XXXXXX)

memcached_port=$(free_port)
# Room for every session's backup: an eviction would not change the Tomcat's memory, but keep
# the run real.
start_memcached "$memcached_port" -m $((SESSIONS * 3 / 1024 + 64))

# GET the path COUNT times on one connection, without a cookie: a new session each time.
requests() { # port path count
    python3 - "$@" <<'EOF'
import http.client, sys
port, path, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"GET {path}: {response.status}")
EOF
}
# Live Java heap bytes after a full collection, and resident bytes.
heap() { # pid
    jcmd "$1" GC.class_histogram | awk '/^Total/ {print $3}'
}
resident() { # pid
    echo $(($(awk '/^VmRSS/ {print $2}' "/proc/$1/status") * 1024))
}

printf '%-10s %10s %20s %20s\n' manager sessions "heap bytes/session" "RSS bytes/session"
for manager in standard msm; do
    port=$(free_port)
    attributes=()
    [ "$manager" = msm ] && attributes=(--attr "memcachedNodes=n1:127.0.0.1:$memcached_port"
        --attr sessionBackupAsync=true)
    java -Xms2g -Xmx2g -XX:+UseParallelGC -XX:+AlwaysPreTouch \
        -cp "target/java/msm-tomcat10.jar:target/java/msm-demo-tomcat10.jar:target/java/tomcat-10.1/*" \
        io.msm.demo.EmbeddedTomcat --port "$port" --route a --manager "$manager" "${attributes[@]}" \
        </dev/null >"$OUT/$manager.out" 2>"$OUT/$manager.err" &
    tomcat_pid=$!
    await_ready session-memory Tomcat "$OUT/$manager.out" "$OUT/$manager.err"
    # Every class and path loaded, the JIT's first work done, before the first measure.
    requests "$port" "/?attributes=1" 2000
    heap_before=$(heap "$tomcat_pid")
    resident_before=$(resident "$tomcat_pid")
    requests "$port" "/?attributes=1" "$SESSIONS"
    sleep 2 # the last backups
    heap_after=$(heap "$tomcat_pid")
    resident_after=$(resident "$tomcat_pid")
    printf '%-10s %10d %20d %20d\n' "$manager" "$SESSIONS" \
        $(((heap_after - heap_before) / SESSIONS)) $(((resident_after - resident_before) / SESSIONS))
    kill "$tomcat_pid"
    wait "$tomcat_pid" 2>/dev/null || true
    tomcat_pid=
done
