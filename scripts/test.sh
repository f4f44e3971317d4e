#!/usr/bin/env bash
# The project's test command: installs what the tests need on a Debian machine
# (scripts/setup.sh), then runs every check. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh test

echo "== format"
cargo fmt --check
echo "== lint"
cargo clippy --all-targets --locked -- -D warnings
echo "== jars and JUnit"
bash scripts/build-jar.sh --junit
echo "== tests"
cargo test --locked
echo "== benchmarks compile"
cargo bench --locked --no-run
