#!/usr/bin/env bash
# Builds the drop-in jars: target/java/msm-tomcat10.jar (Tomcat 10.1 and 11, jakarta.*) and
# target/java/msm-tomcat9.jar (Tomcat 9, javax.*), each holding the Java shim and the native
# library for every platform of scripts/toolchain.sh under META-INF/native/<platform>/ (Linux
# x86_64 and aarch64 against glibc 2.17 and musl, built with cargo-zigbuild; macOS x86_64 and
# aarch64), with META-INF/native/platforms listing them; the demo web application jars (and
# msm-demo-extra.jar, a class for tests of missing classes) beside them, and the Tomcat
# releases the end-to-end tests run in target/java/tomcat-<line>/. The Linux libraries are
# stripped; their debug information stays in target/native/<platform>/libmsm.so.debug.
#
#   bash scripts/build-jar.sh          build (installing the toolchain first: scripts/setup.sh)
#   bash scripts/build-jar.sh --junit  build, and run the shim's JUnit tests before the jars
#                                      replace the previous ones
#
# The native libraries are built here; the Java side by Maven (java-shim/pom.xml) against
# Tomcat's artifacts from Maven Central, installed in the local Maven repository (io.msm:*).
set -euo pipefail
cd "$(dirname "$0")/.."

junit=false
[ "${1:-}" = "--junit" ] && junit=true
bash scripts/setup.sh build
source scripts/toolchain.sh

# One cargo run builds every platform. musl: a cdylib needs the C runtime linked dynamically.
# Linux: a build id, which debuggers match with the .debug file. macOS: an install name a C
# host can link against, and neither the debug map nor local symbols (-S -x: the linker strips,
# so its ad-hoc code signature covers the result).
targets=()
for platform in "${PLATFORMS[@]}"; do
  targets+=(--target "${platform#*=}")
done
for target in "${RUST_TARGETS[@]}"; do
  case "$target" in
    *-musl) flags="-C target-feature=-crt-static -C link-arg=-Wl,--build-id" ;;
    *-linux-*) flags="-C link-arg=-Wl,--build-id" ;;
    *-apple-*) flags="-C link-arg=-Wl,-install_name,@rpath/libmsm.dylib -C link-arg=-Wl,-S -C link-arg=-Wl,-x" ;;
  esac
  target=${target^^}
  export "CARGO_TARGET_${target//-/_}_RUSTFLAGS=$flags"
done
# cargo-zigbuild runs this zig, not one found on the PATH; macOS libraries load on macOS 11+
# (zig's default would be its newest SDK).
CARGO_ZIGBUILD_ZIG_PATH="$ZIG" MACOSX_DEPLOYMENT_TARGET=11.0 cargo zigbuild --release --lib --locked --features mimalloc "${targets[@]}"

# The shipped libraries, in target/native/<platform>/: Linux ones stripped, with their debug
# information (compressed) in a .debug file that the library names (.gnu_debuglink); macOS ones
# as the linker stripped and signed them (their exported symbols name the JNI and C entry
# points; a .dSYM would need Apple's dsymutil).
for platform in "${PLATFORMS[@]}"; do
  name=${platform%%=*} target=${platform#*=}
  built="target/${target%.2.17}/release/$(library_file "$name")"
  shipped="target/native/$name"
  rm -rf "$shipped"
  mkdir -p "$shipped"
  case "$name" in
    linux-*)
      "$LLVM_OBJCOPY" --only-keep-debug --compress-debug-sections=zlib "$built" "$shipped/libmsm.so.debug"
      (cd "$shipped" && "$LLVM_OBJCOPY" --strip-all --add-gnu-debuglink=libmsm.so.debug "$OLDPWD/$built" libmsm.so) ;;
    macos-*) cp "$built" "$shipped/" ;;
  esac
done
# The libraries as the jars carry them: META-INF/native/<platform>/ and the list of platforms.
native_jar=target/native-jar
rm -rf "$native_jar"
for platform in "${PLATFORMS[@]}"; do
  name=${platform%%=*}
  mkdir -p "$native_jar/META-INF/native/$name"
  cp "target/native/$name/$(library_file "$name")" "$native_jar/META-INF/native/$name/"
  echo "$name" >>"$native_jar/META-INF/native/platforms"
done

# Maven (java-shim/pom.xml) builds the jars against Tomcat's artifacts from Maven Central,
# installs them in the local repository (~/.m2) for the Boot example, and copies the Tomcat
# releases the tests run. Its output is shown only when it fails. cargo puts its build
# directories on LD_LIBRARY_PATH, which the JVM searches for libmsm before the jar: the JUnit
# tests must load the library the jar carries.
maven() {
  local log
  log=$(mktemp)
  if ! env -u LD_LIBRARY_PATH mvn -q -B "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "mvn $* failed" >&2
    exit 1
  fi
  rm -f "$log"
}
tests=-DskipTests
$junit && tests=
maven -f java-shim/pom.xml $tests "-Dmsm.native.dir=$PWD/$native_jar" install
# The Boot example, as a user builds it against the installed starter: with Boot 4.0
# (Tomcat 11) and Boot 3.5 (Tomcat 10.1).
for boot in 4.0.7 3.5.7; do
  maven -f examples/boot-app/pom.xml "-Dboot.version=$boot" "-Dexample.build=$PWD/target/boot-example/${boot%.*}" package
done

# Build in a staging directory and rename the jars into place at the end, so Tomcats running
# from the previous jars keep working.
dest=target/java
out="$dest/.build-$$"
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
version=$(sed -n 's:^  <version>\(.*\)</version>:\1:p' java-shim/pom.xml | head -1)
for module in tomcat10:msm-tomcat10 tomcat9:msm-tomcat9 demo10:msm-demo-tomcat10 demo9:msm-demo-tomcat9 \
  demo-extra-jar:msm-demo-extra; do
  cp "java-shim/${module%%:*}/target/${module#*:}-$version.jar" "$out/${module#*:}.jar"
done
for boot in 4.0 3.5; do
  cp "target/boot-example/$boot/msm-boot-example-$version.jar" "$out/msm-boot-example-$boot.jar"
done
for line in java-shim/tomcat-lines/target/tomcat-*; do
  cp -r "$line" "$out/"
done

for jar in "$out"/*.jar; do
  mv -f "$jar" "$dest/"
done
for line in "$out"/tomcat-*; do
  rm -rf "$dest/${line##*/}"
  mv "$line" "$dest/"
done
echo "built $dest/msm-tomcat10.jar $dest/msm-tomcat9.jar"
