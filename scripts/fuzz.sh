#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer with AddressSanitizer) of every parser of
# outside bytes: runs each target (all of them, or those named) for SECONDS, one at a time,
# starting from the seeds made from the golden fixtures (fuzz/seeds/) and the corpus kept so far
# (fuzz/corpus/, minimized afterwards), and prints executions, coverage and crashes per target.
# A crash leaves its input in fuzz/artifacts/<target>/: fix it, then copy the input to
# fuzz/regressions/<target>/, which `cargo test` replays with the corpora (tests/fuzz_corpora.rs).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 60 seconds, every target)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(session_id envelope validity node_list memcached_reply config)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi
# cargo fuzz passes unstable flags (-Zsanitizer=address); the stable toolchain accepts them so.
export RUSTC_BOOTSTRAP=1

cargo fuzz build
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

found=0
rows=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  before=$(find "fuzz/artifacts/$target" -type f | wc -l)
  echo "== $target: ${seconds}s"
  started=$SECONDS
  set +e
  cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$target.log" 2>&1
  status=$?
  set -e
  took=$((SECONDS - started))
  log="$logs/$target.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(($(find "fuzz/artifacts/$target" -type f | wc -l) - before))
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    found=1
    grep -E 'panicked|ERROR: |SUMMARY' "$log" | head -5 || true
    ls -1 "fuzz/artifacts/$target" | sed 's/^/  artifact: /'
  fi
  cargo fuzz cmin "$target" "fuzz/corpus/$target" >"$logs/$target.cmin.log" 2>&1 || true
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  rows+=("$(printf '%-16s %6ss %12s %9s %6s %7s %7s %8s' "$target" "$took" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "${features:-?}" "$corpus" "$crashes")")
  echo "${rows[-1]}"
done

printf '\n%-16s %7s %12s %9s %6s %7s %7s %8s\n' target time execs exec/s cov ft corpus crashes
printf '%s\n' "${rows[@]}"
exit "$found"
