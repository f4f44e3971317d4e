#!/usr/bin/env bash
# The project's test command: installs what the tests need on a Debian machine, then runs every
# check. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests start or build with: a file each needs, and the Debian package providing it.
requirements=(
  /usr/bin/memcached:memcached
  /usr/sbin/nutcracker:nutcracker
  /usr/bin/cc:gcc
  /usr/bin/javac:default-jdk-headless
  /usr/share/tomcat10/bin/catalina.sh:tomcat10
  /usr/share/tomcat10/lib/catalina.jar:libtomcat10-java
  /usr/share/java/tomcat9-catalina.jar:libtomcat9-java
  /usr/share/java/junit-platform-console-standalone.jar:junit5
  /usr/bin/wrk:wrk
  /usr/bin/curl:curl
)
missing=()
for requirement in "${requirements[@]}"; do
  [ -e "${requirement%%:*}" ] || missing+=("${requirement##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

echo "== format"
cargo fmt --check
echo "== lint"
cargo clippy --all-targets --locked -- -D warnings
echo "== jars and JUnit"
bash scripts/build-jar.sh
echo "== tests"
cargo test --locked
echo "== benchmarks compile"
cargo bench --locked --no-run
