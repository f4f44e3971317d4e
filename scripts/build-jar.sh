#!/usr/bin/env bash
# Builds the drop-in jars: target/java/msm-tomcat10.jar (Tomcat 10.1+, jakarta.*) and
# target/java/msm-tomcat9.jar (Tomcat 9, javax.*), each holding the Java shim and the native
# library for every platform of scripts/toolchain.sh under META-INF/native/<platform>/ (Linux
# x86_64 and aarch64 against glibc 2.17 and musl, built with cargo-zigbuild; macOS x86_64 and
# aarch64), with META-INF/native/platforms listing them; the demo web application jars (and
# msm-demo-extra.jar, a class for tests of missing classes) beside them. The Linux libraries are
# stripped; their debug information stays in target/native/<platform>/libmsm.so.debug.
#
#   bash scripts/build-jar.sh          build (installing the toolchain first: scripts/setup.sh)
#   bash scripts/build-jar.sh --junit  build, and run the shim's JUnit tests before the jars
#                                      replace the previous ones
#
# Uses Debian's Tomcat jars (no Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."

junit=false
[ "${1:-}" = "--junit" ] && junit=true
bash scripts/setup.sh build
source scripts/toolchain.sh

TOMCAT10_CP="$(printf '%s:' /usr/share/tomcat10/lib/*.jar)/usr/share/tomcat10/bin/tomcat-juli.jar"
TOMCAT9_CP="/usr/share/java/tomcat9-api.jar:/usr/share/java/tomcat9-catalina.jar:/usr/share/java/tomcat9-coyote.jar:/usr/share/java/tomcat9-util.jar:/usr/share/java/tomcat9-util-scan.jar:/usr/share/java/tomcat9-juli.jar:/usr/share/java/tomcat9-servlet-api.jar:/usr/share/java/tomcat9-jaspic-api.jar:/usr/share/java/tomcat9-annotations-api.jar"
JUNIT=/usr/share/java/junit-platform-console-standalone.jar
JAVAC=(javac --release 11 -encoding UTF-8 -Xlint:all,-path,-classfile -Werror)

if $junit && [ ! -f "$JUNIT" ]; then
  echo "missing $JUNIT: run 'bash scripts/setup.sh test' (or apt-get install -y junit5)" >&2
  exit 1
fi

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
CARGO_ZIGBUILD_ZIG_PATH="$ZIG" MACOSX_DEPLOYMENT_TARGET=11.0 cargo zigbuild --release --lib --locked "${targets[@]}"

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
# Build in a staging directory and rename the jars into place at the end, so Tomcats running
# from the previous jars keep working.
dest=target/java
out="$dest/.build-$$"
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

# A class only the web applications given this jar have (EmbeddedTomcat --webapp-jar): plain
# Java, for both Tomcat lines.
mkdir -p "$out/extra"
"${JAVAC[@]}" -d "$out/extra" $(find java-shim/src/demo-extra/java -name '*.java')
jar --create --file "$out/msm-demo-extra.jar" -C "$out/extra" .

# build VARIANT CLASSPATH SOURCE_ROOT
build() {
  local variant=$1 classpath=$2 src=$3
  local classes="$out/$variant/classes" demo="$out/$variant/demo"
  mkdir -p "$classes/META-INF/native" "$demo"
  "${JAVAC[@]}" -cp "$classpath" -d "$classes" $(find "$src/main/java" -name '*.java')
  for platform in "${PLATFORMS[@]}"; do
    name=${platform%%=*}
    mkdir "$classes/META-INF/native/$name"
    cp "target/native/$name/$(library_file "$name")" "$classes/META-INF/native/$name/"
    echo "$name" >>"$classes/META-INF/native/platforms"
  done
  jar --create --file "$out/msm-$variant.jar" -C "$classes" .
  "${JAVAC[@]}" -cp "$classpath:$out/msm-$variant.jar" -d "$demo" $(find "$src/demo/java" -name '*.java')
  jar --create --file "$out/msm-demo-$variant.jar" -C "$demo" .
}

build tomcat10 "$TOMCAT10_CP" java-shim/src

# Tomcat 9: the same sources with the javax.* servlet API.
mkdir -p "$out/tomcat9/src"
cp -r java-shim/src/main java-shim/src/demo "$out/tomcat9/src/"
find "$out/tomcat9/src" -name '*.java' -exec sed -i 's/\bjakarta\.servlet\b/javax.servlet/g' {} +
build tomcat9 "$TOMCAT9_CP" "$out/tomcat9/src"

# The shim's own tests, against the Tomcat 10 jar.
if $junit; then
  tests="$out/tomcat10/test-classes"
  mkdir -p "$tests"
  "${JAVAC[@]}" -cp "$TOMCAT10_CP:$out/msm-tomcat10.jar:$JUNIT" -d "$tests" $(find java-shim/src/test/java -name '*.java')
  env -u LD_LIBRARY_PATH java -jar "$JUNIT" --disable-banner --disable-ansi-colors --details=summary --fail-if-no-tests \
    -cp "$TOMCAT10_CP:$out/msm-tomcat10.jar:$tests" --scan-classpath "$tests"
fi

for jar in "$out"/*.jar; do
  mv -f "$jar" "$dest/"
done
echo "built $dest/msm-tomcat10.jar $dest/msm-tomcat9.jar"
