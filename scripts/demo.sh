#!/usr/bin/env bash
# The demo: two memcached nodes and two Tomcats on loopback, and a session that survives the
# death of the Tomcat that served it, then the death of the memcached node that held it.
#
#   bash scripts/demo.sh                 walk through the scenario, then stop everything
#   bash scripts/demo.sh --keep-running  leave the surviving Tomcat and node up for a browser
set -euo pipefail
cd "$(dirname "$0")/.."

keep_running=false
[ "${1:-}" = "--keep-running" ] && keep_running=true

bash scripts/setup.sh demo
if [ ! -f target/java/msm-tomcat10.jar ] || [ ! -d target/java/tomcat-10.1 ]; then
  echo "building the jars first (bash scripts/build-jar.sh; the first build takes several minutes)"
  bash scripts/build-jar.sh >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { # a random loopback port nothing answers on
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
proves() { printf '   => %s\n' "$*"; }

declare -A node_port node_pid
user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
for node in n1 n2; do
  node_port[$node]=$(free_port)
  memcached -l 127.0.0.1 -U 0 -p "${node_port[$node]}" "${user[@]}" &
  node_pid[$node]=$!
  pids+=("$!")
  wait_port "${node_port[$node]}"
done
nodes="n1:127.0.0.1:${node_port[n1]} n2:127.0.0.1:${node_port[n2]}"

declare -A tomcat_port tomcat_pid
classpath="target/java/msm-tomcat10.jar:target/java/msm-demo-tomcat10.jar:target/java/tomcat-10.1/*"
for route in a b; do
  tomcat_port[$route]=$(free_port)
  java -Xmx256m -cp "$classpath" io.msm.demo.EmbeddedTomcat --port "${tomcat_port[$route]}" \
    --route "$route" --attr "memcachedNodes=$nodes" --attr sessionBackupAsync=false \
    --attr operationTimeout=500 >"$work/tomcat-$route.out" 2>"$work/tomcat-$route.log" &
  tomcat_pid[$route]=$!
  pids+=("$!")
done
for route in a b; do
  until grep -q READY "$work/tomcat-$route.out"; do
    kill -0 "${tomcat_pid[$route]}" 2>/dev/null || { cat "$work/tomcat-$route.log"; exit 1; }
    sleep 0.1
  done
done

say "Two memcached nodes (n1 on port ${node_port[n1]}, n2 on port ${node_port[n2]}) and two Tomcats (route a on port ${tomcat_port[a]}, route b on port ${tomcat_port[b]}) are up."

jar="$work/cookies"
visit() { # visit ROUTE PATH: one request with the browser's cookie jar; prints the answer
  curl -s -b "$jar" -c "$jar" "http://127.0.0.1:${tomcat_port[$1]}${2:-/}"
}
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p"; }

say "1. A browser counts three times on Tomcat a."
for _ in 1 2 3; do line=$(visit a); echo "   $line"; done
session=$(echo "$line" | field session)
node=${session#*-}; node=${node%%.*}
proves "the session lives in Tomcat a's memory and, as a backup, on memcached node $node (named in its id)."

say "2. Tomcat a is killed (kill -9). The browser's next request goes to Tomcat b."
kill -9 "${tomcat_pid[a]}"; wait "${tomcat_pid[a]}" 2>/dev/null || true
line=$(visit b); echo "   $line"
[ "$(echo "$line" | field counter)" = 4 ] || { echo "FAILED: the counter did not survive" >&2; exit 1; }
proves "Tomcat b loaded the session from memcached: counter 4, nothing lost; its id now ends in .b, and the new cookie was sent."

say "3. Memcached node $node, which holds the session, is killed."
kill -9 "${node_pid[$node]}"; wait "${node_pid[$node]}" 2>/dev/null || true
for _ in 1 2; do line=$(visit b); echo "   $line"; done
moved=$(echo "$line" | field session)
moved_node=${moved#*-}; moved_node=${moved_node%%.*}
[ "$(echo "$line" | field counter)" = 6 ] || { echo "FAILED: the counter did not survive" >&2; exit 1; }
[ "$moved_node" != "$node" ] || { echo "FAILED: the session did not move" >&2; exit 1; }
proves "the first request found $node dead and kept the session in memory; the next moved it to $moved_node, changed its id and sent the new cookie. Counter 6: nothing lost."

say "4. Tomcat b's statistics (JMX MBean io.msm:type=MemcachedSessionManager):"
visit b /stats | tr ' ' '\n' | grep -E '^(RequestsWithSession|BackupsWritten|BackupsSkipped|TomcatFailovers|MemcachedFailovers|LoadTimeAvg|BackupTimeAvg|NodeStates)=' | sed 's/^/   /'

if $keep_running; then
  say "Tomcat b stays up at http://127.0.0.1:${tomcat_port[b]}/ (counter), /read, /stats, /invalidate. Ctrl-C stops everything."
  wait "${tomcat_pid[b]}"
fi
say "demo complete: everything stopped."
