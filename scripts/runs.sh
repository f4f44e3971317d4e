# Shared by the long-run scripts (soak.sh, profile.sh, session-memory.sh), which source it: their
# prerequisites checked with one message naming the fix, free loopback ports, a Tomcat awaited.

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

# Waits up to a minute for a Tomcat started in the background to print READY on its standard
# output; exits with both of its logs if it does not.
await_ready() { # script what stdout-file stderr-file
    for _ in $(seq 600); do
        grep -q READY "$3" 2>/dev/null && return
        sleep 0.1
    done
    echo "$1: $2 did not start:" >&2
    cat "$3" "$4" >&2
    exit 1
}

# Starts memcached on 127.0.0.1:PORT as a child (`memcached -d` leaves zombies), its PID in
# memcached_pid, the options added to its command line; at exit it is stopped, and so is the
# Tomcat whose PID the caller puts in tomcat_pid.
start_memcached() { # port option...
    local port=$1 user=()
    shift
    [ "$(id -u)" = 0 ] && user=(-u root)
    memcached -l 127.0.0.1 -p "$port" -U 0 -t 2 "${user[@]}" "$@" </dev/null >/dev/null 2>&1 &
    memcached_pid=$!
    tomcat_pid=
    trap stop_started EXIT
}

stop_started() {
    for pid in $tomcat_pid $memcached_pid; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
