#!/usr/bin/env bash
# Measures Tomcat with msm against Tomcat's own StandardManager, end to end over HTTP with wrk.
#
# Usage:
#   bash scripts/bench-tomcat.sh
#   WARMUP=10 DURATION=5 ROUNDS=1 bash scripts/bench-tomcat.sh     # smoke run (~1 minute)
#
# Environment (defaults in brackets):
#   WARMUP=120         seconds of load on each Tomcat before measuring (its JIT needs 100-200 s)
#   DURATION=30        seconds of each measured wrk run
#   ROUNDS=3           rounds; each round runs every mode once, in a rotated order
#   CONNECTIONS=8      wrk connections, and as many wrk threads (one connection, one session each)
#   WRITE_PERCENT=20   share of requests that modify the session (GET /); the rest are GET /read
#   JVM_OPTS="-Xms512m -Xmx512m -XX:+UseParallelGC"   flags of every Tomcat JVM (the same for all)
#   REBUILD=1          rebuild the jars even when they exist (default: build only when missing)
# Defaults take about 3*WARMUP + 3*ROUNDS*DURATION seconds plus ~30 s: ~11 minutes.
#
# What runs: one memcached and three Tomcats, each in its own JVM with the same flags, on free
# loopback ports, serving the demo web application (io.msm.demo.EmbeddedTomcat):
#   standard      Tomcat's StandardManager: sessions only in the JVM's memory (the baseline);
#   sticky-async  msm, sessionBackupAsync=true: the backup is written after the response;
#   sticky-sync   msm, sessionBackupAsync=false, sessionBackupTimeout=1000: the request waits
#                 for its backup.
# Each Tomcat is first warmed up under the same load, then every round runs each mode for
# DURATION seconds; the order is rotated from round to round (s,a,y / a,y,s / y,s,a ...) so that
# each mode takes each slot equally often and a noisy neighbour on the shared machine is spread
# over all modes. Figures are only meaningful as ratios between modes of the same run.
#
# The load: wrk keeps one Lua state per thread and calls request() per thread, not per
# connection, so a session is kept per wrk thread; running as many threads as connections
# (-t N -c N) makes each connection keep exactly one session. Its first request is GET / (which
# creates the session); the response's Set-Cookie gives the JSESSIONID it sends from then on.
# The mix is deterministic, not random, so every mode sees exactly the same sequence: with
# WRITE_PERCENT=20, every fifth request is GET / (increments the session's counter, so msm
# backs the session up) and the four others GET /read (reads it without changing it, so msm
# skips the backup). Each thread checks every answer: the session id must stay the one it holds
# and the counter must grow by one on each GET / and stay put on each GET /read.
#
# Output: one row per mode per round, then a table of requests/s (mean over rounds), p99 latency
# (median over rounds) and the ratio of requests/s to standard; then the checks: the sessions
# seen by wrk, memcached's cmd_set growth per mode (none for standard; for msm one set per
# modifying request is expected, plus an add reserving each new session's id), and a final curl to each Tomcat's / twice with a cookie jar (counter 1 then
# 2, and for msm a set reaching memcached). Exits 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

WARMUP=${WARMUP:-120}
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-8}
WRITE_PERCENT=${WRITE_PERCENT:-20}
JVM_OPTS=${JVM_OPTS:--Xms512m -Xmx512m -XX:+UseParallelGC}
read -r -a JVM_FLAGS <<<"$JVM_OPTS"

for setting in WARMUP DURATION ROUNDS CONNECTIONS WRITE_PERCENT; do
  if ! [[ ${!setting} =~ ^[0-9]+$ ]]; then
    echo "$setting must be a whole number, not '${!setting}'" >&2
    exit 1
  fi
done
if [ "$DURATION" -lt 1 ] || [ "$ROUNDS" -lt 1 ] || [ "$CONNECTIONS" -lt 1 ] || [ "$WRITE_PERCENT" -gt 100 ]; then
  echo "need DURATION >= 1, ROUNDS >= 1, CONNECTIONS >= 1 and WRITE_PERCENT <= 100" >&2
  exit 1
fi

# What the benchmark runs: a file each needs, and the Debian package providing it.
requirements=(
  /usr/bin/wrk:wrk
  /usr/bin/memcached:memcached
  /usr/bin/java:default-jdk-headless
  /usr/bin/curl:curl
  /usr/share/tomcat10/lib/catalina.jar:libtomcat10-java
  /usr/share/tomcat10/bin/tomcat-juli.jar:tomcat10
)
missing=()
for requirement in "${requirements[@]}"; do
  command -v "$(basename "${requirement%%:*}")" >/dev/null 2>&1 || [ -e "${requirement%%:*}" ] ||
    missing+=("${requirement##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}; install them with: apt-get install -y ${missing[*]}" >&2
  exit 1
fi

JAR=target/java/msm-tomcat10.jar
DEMO_JAR=target/java/msm-demo-tomcat10.jar
if [ "${REBUILD:-0}" = 1 ] || [ ! -f "$JAR" ] || [ ! -f "$DEMO_JAR" ]; then
  echo "== building the jars (scripts/build-jar.sh)"
  bash scripts/build-jar.sh
fi
CLASSPATH_TOMCAT="$JAR:$DEMO_JAR:/usr/share/tomcat10/lib/*:/usr/share/tomcat10/bin/tomcat-juli.jar"

WORK=$(mktemp -d -t msm-bench.XXXXXX)
PIDS=() # every process this script started and has not yet reaped

# Stops PID if it is still our child: TERM, then KILL after 10 s.
stop_pid() {
  local pid=$1 i
  [ "$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)" = "$$" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # A zombie is gone already; wait reaps it.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
    { kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local keep=() pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    [ "$pid" = "$1" ] || keep+=("$pid")
  done
  PIDS=(${keep[@]+"${keep[@]}"})
}

cleanup() {
  local rc=$? pid log
  trap - EXIT INT TERM
  set +e
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    stop_pid "$pid"
  done
  if [ "$rc" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $(basename "$log")" >&2
      tail -n 20 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

START=$SECONDS
say() { printf '[%4ds] %s\n' "$((SECONDS - START))" "$*"; }

# free_port VAR: sets VAR to a loopback port nothing listens on, not handed out before by this
# script (a variable, not $(...), so that USED_PORTS survives).
USED_PORTS=" "
free_port() {
  local candidate
  while :; do
    candidate=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [[ $USED_PORTS == *" $candidate "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue
    if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Htan "sport = :$candidate" 2>/dev/null)" ]; then
      continue
    fi
    USED_PORTS+="$candidate "
    printf -v "$1" '%s' "$candidate"
    return
  done
}

# memcached's "stats" as "name value" lines.
mc_stats() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$MC_PORT"
    printf 'stats\r\n' >&3
    while IFS=$' \r' read -r -t 5 tag name value <&3; do
      [ "$tag" = END ] && break
      [ "$tag" = STAT ] && echo "$name $value"
    done
  ) 2>/dev/null
}
mc_stat() { mc_stats | awk -v n="$1" '$1 == n { print $2 }'; }

# ---------------------------------------------------------------------------------------------
# memcached, in the foreground as our child.

free_port MC_PORT
mc_cmd=(memcached -l 127.0.0.1 -U 0 -p "$MC_PORT")
[ "$(id -u)" -eq 0 ] && mc_cmd+=(-u root)
"${mc_cmd[@]}" >"$WORK/memcached.log" 2>&1 &
MC_PID=$!
PIDS+=("$MC_PID")
for ((i = 0; ; i++)); do
  # The pid in its stats proves the port is our memcached, not someone else's.
  [ "$(mc_stat pid)" = "$MC_PID" ] && break
  if ! kill -0 "$MC_PID" 2>/dev/null || [ "$i" -ge 100 ]; then
    echo "memcached did not start on 127.0.0.1:$MC_PORT" >&2
    exit 1
  fi
  sleep 0.1
done
say "memcached pid $MC_PID on 127.0.0.1:$MC_PORT"

# ---------------------------------------------------------------------------------------------
# Three Tomcats at once, each in its own JVM with the same flags.

# MODES (space-separated) picks the Tomcats; the first is the baseline of the ratios.
read -r -a MODES <<<"${MODES:-standard sticky-async sticky-sync}"
declare -A PORT ROUTE TPID
ROUTE=([standard]=std [sticky-async]=async [sticky-sync]=sync [nonsticky]=ns [nonsticky-locked]=nsl)

for mode in "${MODES[@]}"; do
  free_port port
  PORT[$mode]=$port
  args=(--port "${PORT[$mode]}" --route "${ROUTE[$mode]}")
  case $mode in
    standard) args+=(--manager standard) ;;
    sticky-async)
      args+=(--manager msm --attr "memcachedNodes=n1:127.0.0.1:$MC_PORT"
        --attr sessionBackupAsync=true)
      ;;
    sticky-sync)
      args+=(--manager msm --attr "memcachedNodes=n1:127.0.0.1:$MC_PORT"
        --attr sessionBackupAsync=false --attr sessionBackupTimeout=1000)
      ;;
    nonsticky)
      args+=(--manager msm --attr "memcachedNodes=n1:127.0.0.1:$MC_PORT" --attr sticky=false)
      ;;
    nonsticky-locked)
      args+=(--manager msm --attr "memcachedNodes=n1:127.0.0.1:$MC_PORT" --attr sticky=false
        --attr lockingMode=all)
      ;;
    *)
      echo "unknown mode $mode (standard sticky-async sticky-sync nonsticky nonsticky-locked)" >&2
      exit 1
      ;;
  esac
  java "${JVM_FLAGS[@]}" -cp "$CLASSPATH_TOMCAT" io.msm.demo.EmbeddedTomcat "${args[@]}" \
    >"$WORK/tomcat-$mode.log" 2>&1 &
  TPID[$mode]=$!
  PIDS+=("${TPID[$mode]}")
done

for mode in "${MODES[@]}"; do
  for ((i = 0; ; i++)); do
    grep -q "^READY ${PORT[$mode]}\$" "$WORK/tomcat-$mode.log" && break
    if ! kill -0 "${TPID[$mode]}" 2>/dev/null || grep -q '^CONTEXT FAILED' "$WORK/tomcat-$mode.log"; then
      echo "Tomcat $mode did not start (see its log below)" >&2
      exit 1
    fi
    if [ "$i" -ge 1800 ]; then
      echo "Tomcat $mode not ready after 180 s" >&2
      exit 1
    fi
    sleep 0.1
  done
  # Its route in the answer proves the port is this Tomcat.
  answer=$(curl -fsS --max-time 10 "http://127.0.0.1:${PORT[$mode]}/read")
  if [[ $answer != *"tomcat=${ROUTE[$mode]} "* && $answer != *"tomcat=${ROUTE[$mode]}" ]]; then
    echo "127.0.0.1:${PORT[$mode]} is not Tomcat $mode: $answer" >&2
    exit 1
  fi
  say "Tomcat $mode pid ${TPID[$mode]} on 127.0.0.1:${PORT[$mode]}"
done

# ---------------------------------------------------------------------------------------------
# The wrk script: one session per thread (see the header).

cat >"$WORK/session.lua" <<'LUA'
-- Each wrk thread runs its own copy of this script (its own Lua state, its own globals), and
-- request() is called per thread, not per connection: run wrk with as many threads as
-- connections so that each connection keeps one session.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Globals, so that done() can read them from each thread with thread:get().
writes, reads, sessions, changed, lost, mismatches, failures, counter = 0, 0, 0, 0, 0, 0, 0, 0

local write_percent = 20
local credit = 0
local cookie = nil
local session = nil
local expect = nil -- "write" or "read": what the request in flight was

function init(args)
  write_percent = tonumber(args[1]) or 20
end

function request()
  -- Deterministic mix: a write each time the credit reaches 100; always a write until the
  -- session exists.
  credit = credit + write_percent
  if cookie == nil or credit >= 100 then
    if credit >= 100 then credit = credit - 100 end
    expect = "write"
    if cookie == nil then
      return wrk.format("GET", "/")
    end
    return wrk.format("GET", "/", { ["Cookie"] = "JSESSIONID=" .. cookie })
  end
  expect = "read"
  return wrk.format("GET", "/read", { ["Cookie"] = "JSESSIONID=" .. cookie })
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    return
  end
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set then
    local id = set:match("JSESSIONID=([^;]+)")
    if id and id ~= cookie then
      if cookie == nil then sessions = sessions + 1 else changed = changed + 1 end
      cookie = id
    end
  end
  local id = body:match("session=(%S+)")
  local value = tonumber(body:match("counter=(%d+)") or "")
  if id == nil or id == "none" or id ~= cookie or value == nil then
    lost = lost + 1
    return
  end
  if expect == "write" then
    writes = writes + 1
    if value ~= counter + 1 then mismatches = mismatches + 1 end
  else
    reads = reads + 1
    if value ~= counter then mismatches = mismatches + 1 end
  end
  counter = value
end

function done(summary, latency, requests)
  local names = { "sessions", "changed", "writes", "reads", "lost", "mismatches", "failures" }
  local total = {}
  for _, name in ipairs(names) do total[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do total[name] = total[name] + (thread:get(name) or 0) end
  end
  io.write(string.format(
    "SESSIONCHECK threads=%d sessions=%d changed=%d writes=%d reads=%d lost=%d mismatches=%d failures=%d\n",
    #threads, total.sessions, total.changed, total.writes, total.reads, total.lost,
    total.mismatches, total.failures))
end
LUA

# run_wrk MODE SECONDS OUTPUT: one wrk run against MODE's Tomcat.
run_wrk() {
  local mode=$1 seconds=$2 output=$3 pid rc=0
  wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s --latency \
    -s "$WORK/session.lua" "http://127.0.0.1:${PORT[$mode]}/" -- "$WRITE_PERCENT" >"$output" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  if [ "$rc" -ne 0 ] || ! grep -q '^Requests/sec:' "$output"; then
    echo "wrk against $mode failed (status $rc):" >&2
    cat "$output" >&2
    exit 1
  fi
}

# parse_wrk OUTPUT: prints "requests/s p99-ms requests errors sessions changed writes reads lost
# mismatches failures".
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /[0-9]m$/) return v * 60000
      if (v ~ /s$/) return v * 1000
      return v + 0
    }
    function field(line, name,    n, i, kv) {
      n = split(line, kv, /[ =]/)
      for (i = 1; i < n; i++) if (kv[i] == name) return kv[i + 1]
      return -1
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { total = $1 }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    /^SESSIONCHECK/ { check = $0 }
    END {
      printf "%.2f %.3f %d %d", rps, p99, total, errors
      split("sessions changed writes reads lost mismatches failures", names, " ")
      for (i = 1; i <= 7; i++) printf " %d", field(check, names[i])
      printf "\n"
    }' "$1"
}

# ---------------------------------------------------------------------------------------------
# Warm-up: each Tomcat under the same load, one after the other.

if [ "$WARMUP" -gt 0 ]; then
  for mode in "${MODES[@]}"; do
    say "warming up $mode for ${WARMUP}s"
    run_wrk "$mode" "$WARMUP" "$WORK/warmup-$mode.txt"
    read -r rps p99 _ <<<"$(parse_wrk "$WORK/warmup-$mode.txt")"
    say "  warm-up $mode: $rps requests/s, p99 $p99 ms"
  done
fi

# ---------------------------------------------------------------------------------------------
# Measured rounds, the order rotated from one round to the next.

RESULTS=$WORK/results.txt
: >"$RESULTS"
declare -A SETS WRITES READS CHECKFAIL
for mode in "${MODES[@]}"; do
  SETS[$mode]=0
  WRITES[$mode]=0
  READS[$mode]=0
  CHECKFAIL[$mode]=""
done

echo
printf '%-5s  %-12s  %12s  %9s  %9s  %6s  %9s  %s\n' round mode requests/s "p99 ms" requests errors "mc sets" "sessions kept (wrk)"
for ((round = 1; round <= ROUNDS; round++)); do
  for ((slot = 0; slot < ${#MODES[@]}; slot++)); do
    mode=${MODES[$(((round - 1 + slot) % ${#MODES[@]}))]}
    sets_before=$(mc_stat cmd_set)
    run_wrk "$mode" "$DURATION" "$WORK/round$round-$mode.txt"
    sleep 1 # let asynchronous backups of the last requests land before counting sets
    sets_after=$(mc_stat cmd_set)
    read -r rps p99 total errors sessions changed writes reads lost mismatches failures \
      <<<"$(parse_wrk "$WORK/round$round-$mode.txt")"
    sets=$((sets_after - sets_before))
    SETS[$mode]=$((SETS[$mode] + sets))
    WRITES[$mode]=$((WRITES[$mode] + writes))
    READS[$mode]=$((READS[$mode] + reads))
    echo "$round $mode $rps $p99 $total $errors" >>"$RESULTS"
    kept="$sessions/$CONNECTIONS, writes $writes, reads $reads"
    if [ "$sessions" -ne "$CONNECTIONS" ] || [ "$changed" -ne 0 ] || [ "$lost" -ne 0 ] ||
      [ "$mismatches" -ne 0 ] || [ "$failures" -ne 0 ] || [ "$errors" -ne 0 ]; then
      kept+=", LOST $lost, MISMATCHES $mismatches, CHANGED $changed, FAILURES $failures"
      CHECKFAIL[$mode]+="round $round: $kept; "
    fi
    printf '%-5s  %-12s  %12s  %9s  %9s  %6s  %9s  %s\n' "$round" "$mode" "$rps" "$p99" "$total" \
      "$errors" "+$sets" "$kept"
  done
done

# ---------------------------------------------------------------------------------------------
# Summary: mean requests/s, median p99, ratio to standard.

echo
echo "== summary: $ROUNDS round(s) of ${DURATION}s per mode after ${WARMUP}s warm-up each;" \
  "wrk -t$CONNECTIONS -c$CONNECTIONS, one session per connection, $WRITE_PERCENT% GET / (modifying)," \
  "$((100 - WRITE_PERCENT))% GET /read; JVM: $JVM_OPTS"
base_rps=$(awk '$2 == "standard" { s += $3; n++ } END { printf "%.2f", s / n }' "$RESULTS")
printf '%-12s  %12s  %12s  %18s  %s\n' mode "requests/s" "p99 ms" "ratio to standard" "requests/s min-max"
for mode in "${MODES[@]}"; do
  mean=$(awk -v m="$mode" '$2 == m { s += $3; n++ } END { printf "%.0f", s / n }' "$RESULTS")
  range=$(awk -v m="$mode" '$2 == m { if (n == 0 || $3 < lo) lo = $3; if (n == 0 || $3 > hi) hi = $3; n++ }
    END { printf "%.0f-%.0f", lo, hi }' "$RESULTS")
  median=$(awk -v m="$mode" '$2 == m { print $4 }' "$RESULTS" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  ratio=$(awk -v a="$mean" -v b="$base_rps" 'BEGIN { printf "%.2f", a / b }')
  printf '%-12s  %12s  %12s  %18s  %s\n' "$mode" "$mean" "$median" "$ratio" "$range"
done

# ---------------------------------------------------------------------------------------------
# Checks: the sessions really worked.

echo
echo "== checks"
ok=1
for mode in "${MODES[@]}"; do
  if [ -n "${CHECKFAIL[$mode]}" ]; then
    echo "FAIL $mode: wrk's sessions: ${CHECKFAIL[$mode]}"
    ok=0
  else
    echo "ok   $mode: under wrk every connection kept its one session; every counter as expected"
  fi
  per=$(awk -v s="${SETS[$mode]}" -v w="${WRITES[$mode]}" 'BEGIN { printf "%.2f", w ? s / w : 0 }')
  if [ "$mode" = standard ]; then
    # msm Tomcats are idle during standard's runs, so memcached must see nothing.
    if [ "${SETS[$mode]}" -eq 0 ]; then
      echo "ok   $mode: memcached cmd_set +0 during its runs (sessions only in memory)"
    else
      echo "FAIL $mode: memcached cmd_set +${SETS[$mode]} during its runs"
      ok=0
    fi
  elif [ "${SETS[$mode]}" -gt 0 ]; then
    echo "ok   $mode: memcached cmd_set +${SETS[$mode]} during its runs: $per per modifying request" \
      "(${WRITES[$mode]} GET /, ${READS[$mode]} GET /read; one id reservation per new session too)"
  else
    echo "FAIL $mode: memcached cmd_set did not grow during its runs"
    ok=0
  fi
done

for mode in "${MODES[@]}"; do
  jar="$WORK/cookies-$mode.txt"
  url="http://127.0.0.1:${PORT[$mode]}"
  sets_before=$(mc_stat cmd_set)
  first=$(curl -fsS --max-time 10 -c "$jar" -b "$jar" "$url/")
  second=$(curl -fsS --max-time 10 -c "$jar" -b "$jar" "$url/")
  read_back=$(curl -fsS --max-time 10 -c "$jar" -b "$jar" "$url/read")
  sets_after=$sets_before
  for ((i = 0; i < 50; i++)); do # asynchronous backups land just after the response
    sets_after=$(mc_stat cmd_set)
    [ "$mode" = standard ] || [ "$sets_after" -gt "$sets_before" ] && break
    sleep 0.1
  done
  [ "$mode" = standard ] && sleep 1 && sets_after=$(mc_stat cmd_set)
  session1=$(sed -n 's/.*session=\([^ ]*\).*/\1/p' <<<"$first")
  session2=$(sed -n 's/.*session=\([^ ]*\).*/\1/p' <<<"$second")
  if [[ $first == *" counter=1 "* && $second == *" counter=2 "* && $read_back == *" counter=2 "* &&
    -n $session1 && $session1 == "$session2" ]]; then
    echo "ok   $mode: curl / twice with a cookie jar: counter 1 then 2 in session $session1; /read shows 2"
  else
    echo "FAIL $mode: curl / twice with a cookie jar: '$first' then '$second', /read '$read_back'"
    ok=0
  fi
  sets=$((sets_after - sets_before))
  if [ "$mode" = standard ]; then
    [ "$sets" -eq 0 ] && echo "ok   $mode: memcached cmd_set +0 (expected: StandardManager)" ||
      { echo "FAIL $mode: memcached cmd_set +$sets"; ok=0; }
  elif [ "$sets" -gt 0 ]; then
    echo "ok   $mode: memcached cmd_set +$sets for those requests (the session reached memcached)"
  else
    echo "FAIL $mode: memcached cmd_set did not grow for those requests"
    ok=0
  fi
done
echo "memcached: $(mc_stats | awk '$1 ~ /^(cmd_get|cmd_set|cmd_touch|get_hits|get_misses|curr_items)$/ { printf "%s=%s ", $1, $2 }')"

# ---------------------------------------------------------------------------------------------
# memcached operations per request: every command memcached counts, over OPS_REQUESTS requests
# of one session, for a reading request and a modifying one (one memcached node, so no backup
# copies: with two nodes, non-sticky writes and pings count twice).

OPS_REQUESTS=${OPS_REQUESTS:-100}
mc_commands() { mc_stats | awk '$1 ~ /^(cmd_get|cmd_set|cmd_touch|delete_hits|delete_misses|incr_hits|incr_misses)$/ { s += $2 } END { print s }'; }
echo
echo "== memcached operations per request ($OPS_REQUESTS requests each, one session)"
printf '%-18s  %14s  %16s
' mode "GET /read" "GET / (changes)"
for mode in "${MODES[@]}"; do
  jar="$WORK/ops-$mode.txt"
  url="http://127.0.0.1:${PORT[$mode]}"
  curl -fsS --max-time 10 -c "$jar" -b "$jar" "$url/" >/dev/null
  sleep 0.5
  line=$(printf '%-18s' "$mode")
  for path in /read /; do
    before=$(mc_commands)
    for ((i = 0; i < OPS_REQUESTS; i++)); do
      curl -fsS --max-time 10 -c "$jar" -b "$jar" "$url$path" >/dev/null
    done
    sleep 0.5 # asynchronous backups land just after the responses
    after=$(mc_commands)
    line+=$(awk -v a="$after" -v b="$before" -v n="$OPS_REQUESTS" 'BEGIN { printf "  %14.2f", (a - b) / n }')
  done
  echo "$line"
done
say "done"
[ "$ok" = 1 ] || exit 1
