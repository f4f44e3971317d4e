#!/usr/bin/env bash
# Soak run (not part of the test command): two Tomcats (sticky, routes a and b) over two memcached
# nodes, each Tomcat under mixed load from wrk (benches/tomcat/session.lua: one session per
# connection, 20% modifying requests, every answer checked), a memcached node killed and
# restarted (empty) every KILL_EVERY seconds, and the web application's context reloaded RELOADS
# times on each Tomcat (through JMX), spread over the run. It stops by itself after DURATION
# seconds, and prints for each Tomcat, at the start, the middle and the end: heap used after a
# full GC, resident memory, the JVM's own native memory (NMT) and what lies outside it (the Rust
# core's allocations among them), open descriptors, Java and native threads, JNI global refs.
#
#   bash scripts/soak.sh                      # 20 minutes
#   DURATION=300 RELOADS=10 bash scripts/soak.sh
#
# Needs the jars (bash scripts/build-jar.sh), memcached, wrk and a JDK (jcmd, javac).
set -euo pipefail

DURATION=${DURATION:-1200}
KILL_EVERY=${KILL_EVERY:-180}
RELOADS=${RELOADS:-50}
CONNECTIONS=${CONNECTIONS:-4}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/runs.sh
require_programs soak memcached:memcached wrk:wrk jcmd:default-jdk-headless \
    javac:default-jdk-headless java:default-jdk-headless python3:python3
require_jars soak

work=$(mktemp -d /tmp/msm-soak.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}" ${mc_pids[@]+"${mc_pids[@]}"}; do
        kill -9 "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

declare -a mc_ports mc_pids
start_memcached() { # index
    local user=()
    [ "$(id -u)" = 0 ] && user=(-u root)
    memcached -l 127.0.0.1 -p "${mc_ports[$1]}" -U 0 -m 64 -t 2 "${user[@]}" \
        </dev/null >/dev/null 2>&1 &
    mc_pids[$1]=$!
    for _ in $(seq 100); do
        (echo >"/dev/tcp/127.0.0.1/${mc_ports[$1]}") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "soak: memcached did not listen on ${mc_ports[$1]}" >&2
    exit 1
}
for i in 0 1; do
    mc_ports[$i]=$(free_port)
    start_memcached "$i"
done
nodes="n1:127.0.0.1:${mc_ports[0]} n2:127.0.0.1:${mc_ports[1]}"

# A JMX client that reloads every web application of a JVM.
cat >"$work/Reload.java" <<'EOF'
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class Reload {
    public static void main(String[] args) throws Exception {
        JMXServiceURL url = new JMXServiceURL(
                "service:jmx:rmi:///jndi/rmi://127.0.0.1:" + args[0] + "/jmxrmi");
        try (JMXConnector connector = JMXConnectorFactory.connect(url)) {
            MBeanServerConnection server = connector.getMBeanServerConnection();
            int reloaded = 0;
            for (ObjectName name : server.queryNames(new ObjectName("*:j2eeType=WebModule,*"), null)) {
                server.invoke(name, "reload", new Object[0], new String[0]);
                reloaded++;
            }
            if (reloaded == 0) {
                throw new IllegalStateException("no web module registered in JMX");
            }
        }
    }
}
EOF
javac -d "$work" "$work/Reload.java"

classpath="target/java/msm-tomcat10.jar:target/java/msm-demo-tomcat10.jar:/usr/share/tomcat10/lib/*:/usr/share/tomcat10/bin/tomcat-juli.jar"
declare -a tc_ports jmx_ports tc_pids
routes=(a b)
for i in 0 1; do
    tc_ports[$i]=$(free_port)
    jmx_ports[$i]=$(free_port)
    java -Xmx256m -XX:+UseSerialGC -XX:NativeMemoryTracking=summary \
        -Djava.io.tmpdir="$work" \
        -Dcom.sun.management.jmxremote.port="${jmx_ports[$i]}" \
        -Dcom.sun.management.jmxremote.rmi.port="${jmx_ports[$i]}" \
        -Dcom.sun.management.jmxremote.host=127.0.0.1 \
        -Djava.rmi.server.hostname=127.0.0.1 \
        -Dcom.sun.management.jmxremote.authenticate=false \
        -Dcom.sun.management.jmxremote.ssl=false \
        -cp "$classpath" io.msm.demo.EmbeddedTomcat \
        --port "${tc_ports[$i]}" --route "${routes[$i]}" --manager msm \
        --attr "memcachedNodes=$nodes" --attr storageKeyPrefix=soak: \
        --attr operationTimeout=300 --attr nodeProbeInterval=100 \
        </dev/null >"$work/tomcat-$i.out" 2>"$work/tomcat-$i.err" &
    tc_pids[$i]=$!
    pids+=("$!")
done
for i in 0 1; do
    await_ready soak "Tomcat ${routes[$i]}" "$work/tomcat-$i.out" "$work/tomcat-$i.err"
done

# Resources of one JVM, on one line.
measure() { # label index
    local pid=${tc_pids[$2]}
    jcmd "$pid" GC.run >/dev/null
    local heap heap_committed anon rss nmt threads java_threads jni fds
    heap=$(jcmd "$pid" GC.heap_info | sed -n 's/.*total [0-9]*K, used \([0-9]*\)K.*/\1/p' | awk "{s += \$1} END {print s}")
    heap_committed=$(jcmd "$pid" GC.heap_info | sed -n 's/.*total \([0-9]*\)K, used.*/\1/p' | awk '{s += $1} END {print s}')
    anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    nmt=$(jcmd "$pid" VM.native_memory summary | sed -n 's/^Total: reserved=[0-9]*KB, committed=\([0-9]*\)KB.*/\1/p')
    threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
    local dump
    dump=$(jcmd "$pid" Thread.print)
    java_threads=$(grep -c '^"' <<<"$dump")
    jni=$(sed -n 's/^JNI global refs: \([0-9]*\).*/\1/p' <<<"$dump")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    printf '%-6s tomcat %s: heap after full GC %6d KiB | RSS %7d KiB | native: anonymous memory outside the Java heap %7d KiB, NMT committed %7d KiB | fds %4d | threads java %3d native %3d | JNI global refs %4d\n' \
        "$1" "${routes[$2]}" "$heap" "$rss" "$((anon - heap_committed))" "$nmt" "$fds" "$java_threads" "$threads" "$jni"
}

echo "soak: ${DURATION}s, memcached $nodes, Tomcats on ${tc_ports[*]}, a node killed every ${KILL_EVERY}s, $RELOADS reloads per Tomcat; work dir $work"
for i in 0 1; do
    wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
        -s benches/tomcat/session.lua "http://127.0.0.1:${tc_ports[$i]}/" -- 20 \
        >"$work/wrk-$i.out" 2>&1 &
    pids+=("$!")
    wrk_pids[$i]=$!
done
sleep 20
for i in 0 1; do measure start "$i"; done

start=$(date +%s)
reload_every=$((DURATION / (RELOADS + 1)))
next_reload=$((start + reload_every))
next_kill=$((start + KILL_EVERY))
reloads=0
kills=0
middle_done=0
while :; do
    now=$(date +%s)
    elapsed=$((now - start))
    [ "$elapsed" -ge $((DURATION - 30)) ] && break
    if [ "$now" -ge "$next_kill" ]; then
        victim=$((kills % 2))
        kill -9 "${mc_pids[$victim]}"
        wait "${mc_pids[$victim]}" 2>/dev/null || true
        sleep 5
        start_memcached "$victim"
        kills=$((kills + 1))
        echo "t=${elapsed}s: memcached n$((victim + 1)) killed and restarted empty ($kills)"
        next_kill=$((next_kill + KILL_EVERY))
    fi
    if [ "$now" -ge "$next_reload" ] && [ "$reloads" -lt "$RELOADS" ]; then
        for i in 0 1; do
            java -cp "$work" Reload "${jmx_ports[$i]}"
        done
        reloads=$((reloads + 1))
        [ $((reloads % 10)) = 0 ] && echo "t=${elapsed}s: $reloads reloads per Tomcat"
        next_reload=$((next_reload + reload_every))
    fi
    if [ "$middle_done" = 0 ] && [ "$elapsed" -ge $((DURATION / 2)) ]; then
        for i in 0 1; do measure middle "$i"; done
        middle_done=1
    fi
    sleep 1
done
for i in 0 1; do wait "${wrk_pids[$i]}" || true; done
for i in 0 1; do measure end "$i"; done
echo "reloads per Tomcat: $reloads; memcached kills: $kills"
for i in 0 1; do
    echo "wrk on tomcat ${routes[$i]}:"
    grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|SESSIONCHECK' "$work/wrk-$i.out" || cat "$work/wrk-$i.out"
    echo "tomcat ${routes[$i]} log: $(grep -c SEVERE "$work/tomcat-$i.err" || true) SEVERE, $(grep -c 'marked down' "$work/tomcat-$i.err" || true) 'marked down'"
done
