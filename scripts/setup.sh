#!/usr/bin/env bash
# Installs what a command of this project needs, once; a second run finds everything and does
# nothing. The README's commands call it themselves:
#
#   bash scripts/setup.sh build   the jars: a JDK and Maven (which fetches Tomcat's and Spring
#                                 Boot's artifacts from Maven Central), Rust's targets and
#                                 llvm-tools, zig (PyPI's ziglang) and cargo-zigbuild (crates.io)
#   bash scripts/setup.sh demo    the build, and memcached and curl
#   bash scripts/setup.sh test    the demo's, and what the tests start or read with:
#                                 nutcracker, Debian's tomcat10, wrk, binutils, unzip,
#                                 qemu-user with the aarch64 glibc and musl loaders, musl's
#                                 x86_64 loader, rustfmt and clippy
#
# Debian packages are installed with apt-get as root; otherwise one message names the exact
# install command and the set-up stops. The rest goes into the user's own directories: Rust's
# targets and components through rustup, cargo-zigbuild into ~/.cargo/bin, and zig and the
# aarch64 musl loader into the toolchain directory (scripts/toolchain.sh says where).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/toolchain.sh

what=${1:-}
case "$what" in
  build | demo | test) ;;
  *) echo "usage: bash scripts/setup.sh build|demo|test" >&2; exit 2 ;;
esac

# A file each needs, and the Debian package providing it.
requirements=(
  /usr/bin/cc:gcc
  /usr/bin/javac:default-jdk-headless
  /usr/bin/python3:python3
  /usr/bin/mvn:maven
)
if [ "$what" != build ]; then
  requirements+=(/usr/bin/memcached:memcached /usr/bin/curl:curl)
fi
if [ "$what" = test ]; then
  requirements+=(
    /usr/sbin/nutcracker:nutcracker
    /usr/share/tomcat10/bin/catalina.sh:tomcat10
    /usr/bin/wrk:wrk
    /usr/bin/readelf:binutils
    /usr/bin/unzip:unzip
    "$QEMU_AARCH64:qemu-user"
    "$AARCH64_GLIBC_ROOT/lib/ld-linux-aarch64.so.1:libc6-arm64-cross"
    /lib/ld-musl-x86_64.so.1:musl
  )
fi
missing=()
for requirement in "${requirements[@]}"; do
  package=${requirement##*:}
  if [ ! -e "${requirement%:*}" ] && [[ " ${missing[*]} " != *" $package "* ]]; then
    missing+=("$package")
  fi
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null || ! command -v cargo >/dev/null; then
  echo "missing: Rust (rustup and cargo); install it for this user with rustup (https://rustup.rs)" >&2
  exit 1
fi
installed_targets=$(rustup target list --installed)
for target in "${RUST_TARGETS[@]}"; do
  grep -qx "$target" <<<"$installed_targets" || rustup target add "$target"
done
components=(llvm-tools)
[ "$what" = test ] && components+=(rustfmt clippy)
installed_components=$(rustup component list --installed)
for component in "${components[@]}"; do
  grep -q "^$component" <<<"$installed_components" || rustup component add "$component"
done

if [ ! -x "$ZIG" ]; then
  echo "installing zig $ZIG_VERSION (PyPI's ziglang) into $ZIG_DIR"
  rm -rf "$ZIG_DIR.partial"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$ZIG_DIR.partial" \
    "ziglang==$ZIG_VERSION"
  rm -rf "$ZIG_DIR"
  mv "$ZIG_DIR.partial" "$ZIG_DIR"
fi
if [ "$(cargo-zigbuild -V 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]; then
  echo "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION (a few minutes, once)"
  cargo install --quiet --locked cargo-zigbuild --version "$CARGO_ZIGBUILD_VERSION"
fi

# Debian's musl for arm64, unpacked (not installed: this machine is amd64) for qemu-aarch64 -L.
# apt-get works on a package list of its own here, so the machine's apt state is left alone.
if [ "$what" = test ] && [ ! -e "$AARCH64_MUSL_ROOT/lib/ld-musl-aarch64.so.1" ]; then
  echo "fetching Debian's musl:arm64 into $AARCH64_MUSL_ROOT"
  apt_dir="$TOOLCHAIN_DIR/apt-arm64"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache"
  apt=(apt-get -qq -o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  "${apt[@]}" update
  (cd "$apt_dir" && rm -f musl_*.deb && "${apt[@]}" download musl:arm64)
  rm -rf "$AARCH64_MUSL_ROOT.partial"
  dpkg-deb -x "$apt_dir"/musl_*_arm64.deb "$AARCH64_MUSL_ROOT.partial"
  rm -rf "$AARCH64_MUSL_ROOT" "$apt_dir"
  mv "$AARCH64_MUSL_ROOT.partial" "$AARCH64_MUSL_ROOT"
fi
