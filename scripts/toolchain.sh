# Sourced by the scripts (and read by tests/platforms.rs): the platforms the jars carry, the
# toolchain that builds them, and where the set-up (scripts/setup.sh) puts it.

# Each platform the jars carry: its directory under META-INF/native/ and the Rust target that
# builds it (a .2.17 suffix makes cargo-zigbuild link against glibc 2.17).
PLATFORMS=(
  linux-x86_64=x86_64-unknown-linux-gnu.2.17
  linux-aarch64=aarch64-unknown-linux-gnu.2.17
  linux-x86_64-musl=x86_64-unknown-linux-musl
  linux-aarch64-musl=aarch64-unknown-linux-musl
  macos-x86_64=x86_64-apple-darwin
  macos-aarch64=aarch64-apple-darwin
)
RUST_TARGETS=()
for platform in "${PLATFORMS[@]}"; do
  target=${platform#*=}
  RUST_TARGETS+=("${target%.2.17}")
done

# library_file PLATFORM: the library's file name there.
library_file() {
  case "$1" in
    macos-*) echo libmsm.dylib ;;
    *) echo libmsm.so ;;
  esac
}

# Built from crates.io and PyPI, cached per user: a second set-up finds them.
TOOLCHAIN_DIR=${MSM_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/msm-toolchain}
ZIG_VERSION=0.17.1
ZIG_DIR="$TOOLCHAIN_DIR/ziglang-$ZIG_VERSION"
ZIG="$ZIG_DIR/ziglang/zig"
CARGO_ZIGBUILD_VERSION=0.24.1
# rustup's llvm-tools component: one objcopy for every architecture.
if command -v rustc >/dev/null; then
  LLVM_OBJCOPY="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-objcopy"
fi

# What runs the aarch64 and musl libraries here: qemu-user, and the loaders it finds under -L.
QEMU_AARCH64=/usr/bin/qemu-aarch64
AARCH64_GLIBC_ROOT=/usr/aarch64-linux-gnu
AARCH64_MUSL_ROOT="$TOOLCHAIN_DIR/musl-arm64"
