#!/usr/bin/env bash
# Where a Tomcat's CPU goes per request (not part of the test command): one Tomcat 10.1 serving
# the demo application over one memcached, warmed up under wrk (benches/tomcat/session.lua: one
# session per connection), then measured for DURATION seconds: CPU per request of each group of its
# threads (Tomcat's request threads, the core's runtime threads, the JIT, the collector), from
# /proc, and with PERF=1 a perf profile of the same window, read with the JIT's symbols (the
# JVM's perf map) and a build of the native library with frame pointers, so that stacks cross
# from Java into the core and back.
#
#   bash scripts/profile.sh                                    # msm sticky, async backups
#   MANAGER=standard bash scripts/profile.sh                   # Tomcat's StandardManager
#   ATTRS="sticky=false lockingMode=all" MIX=100 bash scripts/profile.sh
#
# Environment (defaults in brackets): MANAGER [msm] or standard; ATTRS [sessionBackupAsync=true]:
# manager attributes, name=value separated by spaces; MIX [20]: percent of modifying requests;
# CONNECTIONS [8] (one wrk thread each); SESSIONS [1] per wrk thread; ATTRIBUTES [0]: attributes
# of 1 KiB per session (the Tomcat benchmark's workload: CONNECTIONS=8 SESSIONS=128 ATTRIBUTES=1);
# WARMUP [120] and DURATION [20] seconds; PERF [1]; OUT [a new directory in /tmp]:
# where perf.data, the logs and the perf map's copy stay for `perf report -i OUT/perf.data`.
#
# Needs the jars (bash scripts/build-jar.sh), memcached, wrk, perf (apt-get install -y
# linux-perf) and a JDK (jcmd).
set -euo pipefail

MANAGER=${MANAGER:-msm}
ATTRS=${ATTRS:-sessionBackupAsync=true}
MIX=${MIX:-20}
CONNECTIONS=${CONNECTIONS:-8}
SESSIONS=${SESSIONS:-1}
ATTRIBUTES=${ATTRIBUTES:-0}
WARMUP=${WARMUP:-120}
DURATION=${DURATION:-20}
PERF=${PERF:-1}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/runs.sh
needed=(memcached:memcached wrk:wrk jcmd:default-jdk-headless java:default-jdk-headless python3:python3)
[ "$PERF" = 1 ] && needed+=(perf:linux-perf)
require_programs profile "${needed[@]}"
require_jars profile
OUT=${OUT:-$(mktemp -d /tmp/msm-profile.XXXXXX)}
mkdir -p "$OUT"

library=()
if [ "$PERF" = 1 ] && [ "$MANAGER" = msm ]; then
    # The jar's library has no frame pointers: perf could not walk from the core back to Java.
    RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --lib --locked --features mimalloc \
        --target-dir target/frame-pointers >"$OUT/cargo.log" 2>&1 || {
        cat "$OUT/cargo.log" >&2
        exit 1
    }
    library=(-Dmsm.native.library="$root/target/frame-pointers/release/libmsm.so")
fi

port=$(free_port)
memcached_port=$(free_port)
start_memcached "$memcached_port"

attributes=()
if [ "$MANAGER" = msm ]; then
    attributes=(--attr "memcachedNodes=n1:127.0.0.1:$memcached_port")
    for attribute in $ATTRS; do attributes+=(--attr "$attribute"); done
fi
java -Xms512m -Xmx512m -XX:+UseParallelGC -XX:+PreserveFramePointer "${library[@]}" \
    -cp "target/java/msm-tomcat10.jar:target/java/msm-demo-tomcat10.jar:target/java/tomcat-10.1/*" \
    io.msm.demo.EmbeddedTomcat --port "$port" --route a --manager "$MANAGER" "${attributes[@]}" \
    </dev/null >"$OUT/tomcat.out" 2>"$OUT/tomcat.err" &
tomcat_pid=$!
await_ready profile Tomcat "$OUT/tomcat.out" "$OUT/tomcat.err"

load() { # seconds output
    wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"$1s" -s benches/tomcat/session.lua \
        "http://127.0.0.1:$port/" -- "$MIX" "$ATTRIBUTES" "$SESSIONS" >"$2" 2>&1
}
# CPU ticks of the JVM's threads, summed per thread name without its number.
ticks_by_group() {
    for task in /proc/"$tomcat_pid"/task/*; do
        echo "$(tr ' ' _ <"$task/comm") $(cut -d')' -f2 "$task/stat")"
    done | awk '{sub(/[-#_]?[0-9]*-?$/, "", $1); ticks[$1] += $13 + $14}
        END {for (group in ticks) print group, ticks[group]}' | sort
}

echo "profile: $MANAGER ${ATTRS:+($ATTRS) }on 127.0.0.1:$port, $MIX% modifying, warming up ${WARMUP}s; output in $OUT"
[ "$WARMUP" -gt 0 ] && load "$WARMUP" "$OUT/warmup.txt"
ticks_by_group >"$OUT/ticks-before"
load "$DURATION" "$OUT/wrk.txt" &
wrk_pid=$!
if [ "$PERF" = 1 ]; then
    perf record -F 999 -g -p "$tomcat_pid" -o "$OUT/perf.data" -- sleep "$((DURATION - 1))" \
        >"$OUT/perf.log" 2>&1
fi
wait "$wrk_pid"
ticks_by_group >"$OUT/ticks-after"
requests=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
grep -E 'Requests/sec|SESSIONCHECK' "$OUT/wrk.txt"
hz=$(getconf CLK_TCK)
echo "CPU per request by thread group (${requests} requests):"
join "$OUT/ticks-before" "$OUT/ticks-after" | awk -v requests="$requests" -v hz="$hz" '
    { used = ($3 - $2) * 1e6 / hz / requests; total += used
      if (used >= 0.01) printf "  %-20s %7.2f us\n", $1, used }
    END { printf "  %-20s %7.2f us\n", "all", total }'
if [ "$PERF" = 1 ]; then
    set +o pipefail # head stops reading perf's report early
    jcmd "$tomcat_pid" Compiler.perfmap >/dev/null
    cp "/tmp/perf-$tomcat_pid.map" "$OUT/"
    echo "Top functions by own samples (perf report -i $OUT/perf.data):"
    perf report -i "$OUT/perf.data" --no-children --sort dso,sym -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -25 | cut -c1-150
    echo "The manager's functions, with what they call (--children):"
    perf report -i "$OUT/perf.data" --children --sort sym -g none 2>/dev/null |
        grep -E 'io\.msm\.(tomcat|Native|Pending)|msm::|Java_io_msm' | head -25 | cut -c1-150
fi
