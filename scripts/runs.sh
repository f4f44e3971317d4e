# Shared by the long-run scripts (soak.sh, profile.sh), which source it: their prerequisites
# checked with one message naming the fix, and free loopback ports.

# Exits naming the install command unless each program is on the PATH; each argument is
# program:debian-package.
require_programs() { # script program:package...
    local script=$1 entry
    shift
    for entry in "$@"; do
        command -v "${entry%%:*}" >/dev/null || {
            echo "$script: ${entry%%:*} is missing: apt-get install -y ${entry#*:}" >&2
            exit 1
        }
    done
}

# Exits naming the build command unless the Tomcat 10.1 jars of scripts/build-jar.sh are there.
require_jars() { # script
    local jar
    for jar in msm-tomcat10.jar msm-demo-tomcat10.jar; do
        [ -f "target/java/$jar" ] || {
            echo "$1: target/java/$jar is missing: run bash scripts/build-jar.sh" >&2
            exit 1
        }
    done
}

# A loopback port free now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
