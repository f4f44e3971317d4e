#!/usr/bin/env bash
# Builds the drop-in jars: target/java/msm-tomcat10.jar (Tomcat 10.1+, jakarta.*) and
# target/java/msm-tomcat9.jar (Tomcat 9, javax.*), each holding the Java shim and the release
# build of the native library under META-INF/native/<os>-<arch>/; the demo web application jars
# (and msm-demo-extra.jar, a class for tests of missing classes) beside them; then runs the shim's
# JUnit tests. Uses Debian's Tomcat jars (no Maven Central).
set -euo pipefail
cd "$(dirname "$0")/.."

TOMCAT10_CP="$(printf '%s:' /usr/share/tomcat10/lib/*.jar)/usr/share/tomcat10/bin/tomcat-juli.jar"
TOMCAT9_CP="/usr/share/java/tomcat9-api.jar:/usr/share/java/tomcat9-catalina.jar:/usr/share/java/tomcat9-coyote.jar:/usr/share/java/tomcat9-util.jar:/usr/share/java/tomcat9-util-scan.jar:/usr/share/java/tomcat9-juli.jar:/usr/share/java/tomcat9-servlet-api.jar:/usr/share/java/tomcat9-jaspic-api.jar:/usr/share/java/tomcat9-annotations-api.jar"
JUNIT=/usr/share/java/junit-platform-console-standalone.jar
JAVAC=(javac --release 11 -encoding UTF-8 -Xlint:all,-path,-classfile -Werror)

for need in /usr/share/tomcat10/lib/catalina.jar /usr/share/java/tomcat9-catalina.jar "$JUNIT"; do
  if [ ! -f "$need" ]; then
    echo "missing $need: run 'apt-get install -y tomcat10 libtomcat10-java libtomcat9-java junit5'" >&2
    exit 1
  fi
done

cargo build --release --lib --locked
# Build in a staging directory and rename the jars into place at the end, so Tomcats running
# from the previous jars keep working.
dest=target/java
out="$dest/.build-$$"
rm -rf "$out"
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
platform="linux-$(uname -m)"
[ "$platform" = "linux-amd64" ] && platform=linux-x86_64

# A class only the web applications given this jar have (EmbeddedTomcat --webapp-jar): plain
# Java, for both Tomcat lines.
mkdir -p "$out/extra"
"${JAVAC[@]}" -d "$out/extra" $(find java-shim/src/demo-extra/java -name '*.java')
jar --create --file "$out/msm-demo-extra.jar" -C "$out/extra" .

# build VARIANT CLASSPATH SOURCE_ROOT
build() {
  local variant=$1 classpath=$2 src=$3
  local classes="$out/$variant/classes" demo="$out/$variant/demo"
  mkdir -p "$classes/META-INF/native/$platform" "$demo"
  "${JAVAC[@]}" -cp "$classpath" -d "$classes" $(find "$src/main/java" -name '*.java')
  cp target/release/libmsm.so "$classes/META-INF/native/$platform/"
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
tests="$out/tomcat10/test-classes"
mkdir -p "$tests"
"${JAVAC[@]}" -cp "$TOMCAT10_CP:$out/msm-tomcat10.jar:$JUNIT" -d "$tests" $(find java-shim/src/test/java -name '*.java')
env -u LD_LIBRARY_PATH java -jar "$JUNIT" --disable-banner --disable-ansi-colors --details=summary --fail-if-no-tests \
  -cp "$TOMCAT10_CP:$out/msm-tomcat10.jar:$tests" --scan-classpath "$tests"

for jar in "$out"/*.jar; do
  mv -f "$jar" "$dest/"
done
echo "built $dest/msm-tomcat10.jar $dest/msm-tomcat9.jar"
