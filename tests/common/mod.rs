//! Test harness: real memcached and twemproxy processes on free loopback ports, with real faults.
//!
//! Every process is started as a child of the test, and stopped by its PID when its guard drops.
//! A missing program is a test failure naming the package to install, never a skip.

#![allow(dead_code)]

pub mod tls;
pub mod tomcat;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msm::{Config, SessionManager};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind a loopback port")
        .port()
}

fn require(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = PathBuf::from(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "`{program}` is not installed: run `apt-get install -y {package}` (or the README's test command, which does)"
    );
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Sends a signal to one of our children.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: the pid is our own live child.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({}, {sig}) failed", child.id());
}

/// Waits until `child` listens on `port`; false when it exited first (someone else took the
/// port meanwhile). Panics after ten seconds.
fn wait_for_port(port: u16, child: &mut Child, what: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        // Another test's server may hold the port (two tests can draw the same free port): the
        // port must be our child's.
        if listens(child.id(), port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what} did not listen on port {port}");
}

/// Whether the process `pid` holds a listening TCP socket on `port` (from `/proc`).
fn listens(pid: u32, port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let listening = fields.get(3) == Some(&"0A");
                    let inode = fields.get(9)?;
                    (listening && fields.get(1)?.ends_with(&wanted))
                        .then(|| format!("socket:[{inode}]"))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
}

/// A memcached server of our own.
pub struct Memcached {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    paused: bool,
    /// Arguments beyond the defaults (TLS, authentication), kept for restarts.
    extra: Vec<String>,
}

impl Memcached {
    /// Starts a memcached with default settings (1 MiB item size limit).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a memcached with these arguments beyond the defaults (e.g. `-Z` for TLS, `-Y` for
    /// authentication), which restarts keep.
    pub fn start_with(extra: &[&str]) -> Self {
        for _ in 0..5 {
            let mut server = Memcached {
                child: None,
                port: free_port(),
                paused: false,
                extra: extra.iter().map(|a| a.to_string()).collect(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("memcached could not take a free port in five tries");
    }

    /// Starts the process on `self.port`; false when it exited at once (the port was taken).
    fn spawn(&mut self) -> bool {
        let program = require("memcached", "memcached");
        let mut cmd = Command::new(program);
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-m", "64", "-t", "2"])
            .args(["-p", &self.port.to_string()])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        let mut child = cmd.spawn().expect("cannot start memcached");
        let listening = wait_for_port(self.port, &mut child, "memcached");
        if listening {
            self.child = Some(child);
        }
        listening
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PID of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// Kills the server (SIGKILL) and reaps it; its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.paused {
                signal(&child, libc::SIGCONT);
                self.paused = false;
            }
            signal(&child, libc::SIGKILL);
            child.wait().expect("wait");
        }
    }

    /// Starts the server again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "memcached could not listen again on port {}",
            self.port
        );
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered.
    pub fn pause(&mut self) {
        let pid = self.pid();
        signal(self.child.as_ref().expect("not running"), libc::SIGSTOP);
        self.paused = true;
        // The signal is delivered asynchronously: wait until every thread is stopped, so no
        // request sent from now on is answered.
        eventually("memcached's threads are all stopped", || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|tasks| {
                    tasks.flatten().all(|task| {
                        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                            stat.rsplit_once(')')
                                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                        })
                    })
                })
                .unwrap_or(false)
        });
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&mut self) {
        signal(self.child.as_ref().expect("not running"), libc::SIGCONT);
        self.paused = false;
    }

    /// Sends raw protocol text and reads until a line equal to one of `ends` (any line when
    /// `ends` is empty), or EOF.
    pub fn raw(&self, request: &[u8], ends: &[&str]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut reader = BufReader::new(stream);
        let mut out = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return out;
            }
            out.push_str(&line);
            if ends.is_empty() || ends.contains(&line.trim_end()) {
                return out;
            }
        }
    }

    /// The server's `stats` counters.
    pub fn stats(&self) -> HashMap<String, u64> {
        parse_stats(&self.raw(b"stats\r\n", &["END"]))
    }

    /// One `stats` counter of a server requiring authentication (`-Y`).
    pub fn stat_authenticated(&self, user: &str, password: &str, name: &str) -> u64 {
        let line = format!("{user} {password}");
        let request = format!("set auth 0 0 {}\r\n{line}\r\nstats\r\n", line.len());
        parse_stats(&self.raw(request.as_bytes(), &["END"]))[name]
    }

    /// One counter of `stats`.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name]
    }

    /// Whether the server holds `key` (meta get; no value is transferred).
    pub fn has(&self, key: &str) -> bool {
        match self
            .raw(format!("mg {key}\r\n").as_bytes(), &["HD", "EN"])
            .trim_end()
        {
            "HD" => true,
            "EN" => false,
            other => panic!("unexpected meta get reply {other:?}"),
        }
    }

    /// The keys the server holds (`lru_crawler metadump`, keys decoded); waits while the
    /// crawler is busy with an earlier dump.
    pub fn keys(&self) -> Vec<String> {
        const BUSY: &str = "BUSY currently processing crawler request";
        let started = Instant::now();
        let dump = loop {
            let dump = self.raw(b"lru_crawler metadump all\r\n", &["END", BUSY]);
            if !dump.starts_with("BUSY") {
                break dump;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "crawler busy");
            std::thread::sleep(Duration::from_millis(10));
        };
        dump.lines()
            .filter_map(|line| line.strip_prefix("key=")?.split(' ').next())
            .map(percent_decoded)
            .collect()
    }

    /// Seconds until `key` expires (-1: never), or `None` when absent.
    pub fn ttl(&self, key: &str) -> Option<i64> {
        let reply = self.raw(format!("mg {key} t\r\n").as_bytes(), &[]);
        let reply = reply.trim_end();
        if reply == "EN" {
            return None;
        }
        let ttl = reply.strip_prefix("HD t").and_then(|t| t.parse().ok());
        Some(ttl.unwrap_or_else(|| panic!("unexpected meta get reply {reply:?}")))
    }

    /// Number of items the server holds.
    pub fn item_count(&self) -> u64 {
        self.stat("curr_items")
    }

    /// Reads a value with an independent client (the `memcache` crate, text protocol).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let client = memcache::Client::connect(format!(
            "memcache://{}?protocol=ascii&timeout=5",
            self.address()
        ))
        .expect("memcache client");
        client.get::<Vec<u8>>(key).expect("memcache get")
    }

    /// Writes a value with an independent client.
    pub fn set(&self, key: &str, value: &[u8]) {
        let client = memcache::Client::connect(format!(
            "memcache://{}?protocol=ascii&timeout=5",
            self.address()
        ))
        .expect("memcache client");
        client.set(key, value, 0).expect("memcache set");
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The counters of a `stats` snapshot that every command a client sends moves (gets, sets,
/// touches, deletes, flushes, increments): equal in two snapshots means nothing reached the server.
pub fn command_counters(stats: &HashMap<String, u64>) -> Vec<(&'static str, u64)> {
    [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "cmd_flush",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
    ]
    .into_iter()
    .map(|name| (name, stats[name]))
    .collect()
}

/// What `nodes` received in total: [keys read, storage commands, touches, deletes].
pub fn command_totals(nodes: &[&Memcached]) -> [u64; 4] {
    let sum = |name: &str| nodes.iter().map(|n| n.stat(name)).sum::<u64>();
    [
        sum("cmd_get"),
        sum("cmd_set"),
        sum("cmd_touch"),
        sum("delete_hits") + sum("delete_misses"),
    ]
}

/// A twemproxy (`nutcracker`) in front of some memcached servers.
pub struct Twemproxy {
    child: Child,
    /// Its listening port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl Twemproxy {
    /// Starts a proxy distributing over `servers`.
    pub fn start(servers: &[&Memcached]) -> Self {
        let program = require("nutcracker", "nutcracker");
        let dir = TempDir::new("twemproxy");
        let port = free_port();
        let mut conf = format!(
            "pool:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  distribution: ketama\n  timeout: 2000\n  servers:\n"
        );
        for s in servers {
            conf.push_str(&format!("   - {}:1\n", s.address()));
        }
        let conf_path = dir.path.join("nutcracker.yml");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new(program)
            .arg("-c")
            .arg(&conf_path)
            .args(["-a", "127.0.0.1", "-s", &free_port().to_string()])
            .arg("-o")
            .arg(dir.path.join("nutcracker.log"))
            .arg("-p")
            .arg(dir.path.join("nutcracker.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nutcracker");
        assert!(
            wait_for_port(port, &mut child, "nutcracker"),
            "nutcracker exited early"
        );
        Twemproxy {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        signal(&self.child, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        let bytes: [u8; 8] = random_bytes(8).try_into().unwrap();
        let path = std::env::temp_dir().join(format!(
            "msm-{tag}-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(bytes)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A key file in `dir` holding `keys`, one per line, and the `integrityKey` value naming it.
pub fn key_file(dir: &TempDir, keys: &[&str]) -> String {
    let path = dir.path.join("msm.keys");
    std::fs::write(&path, format!("{}\n", keys.join("\n"))).unwrap();
    format!("file:{}", path.display())
}

/// `len` random bytes from the operating system.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}

/// `memcachedNodes` for servers named n1, n2, ... in order.
pub fn node_list(servers: &[&Memcached]) -> String {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| format!("n{}:{}", i + 1, s.address()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A manager over `servers` (n1, n2, ...) with the given extra attributes, shared as the faces
/// share it.
pub fn manager(servers: &[&Memcached], extra: &[(&str, &str)]) -> Arc<SessionManager> {
    SessionManager::new(config(servers, extra)).expect("manager")
}

/// A new id on the node named `node`, drawing ids until one lands there.
pub fn id_on(m: &SessionManager, node: &str) -> msm::SessionId {
    for _ in 0..100 {
        let id = msm::runtime::block_on(m.new_session_id(None)).unwrap();
        if id.node() == node {
            return id;
        }
    }
    panic!("no id on {node}");
}

/// The configuration of [`manager`], with a fixed key prefix `test:`.
pub fn config(servers: &[&Memcached], extra: &[(&str, &str)]) -> Config {
    let nodes = node_list(servers);
    let mut pairs = vec![
        ("memcachedNodes", nodes.as_str()),
        ("storageKeyPrefix", "test:"),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "50"),
    ];
    pairs.extend_from_slice(extra);
    Config::from_pairs(pairs).expect("config")
}

/// Polls `condition` every 10 ms for up to 10 s; panics with `what` if it never holds.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened: {what}");
}

/// A benchmark's setting: the environment variable `name`, a positive integer, or `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={value:?}: expected a positive integer"),
        },
        Err(_) => default,
    }
}

/// A request on `m` that creates a session of `max_inactive` seconds holding its own id as the
/// attribute `id`, through the lifecycle a host runs; returns its id.
pub fn create_session(m: &SessionManager, max_inactive: i32) -> msm::SessionId {
    let id = msm::runtime::block_on(m.new_session_id(None)).unwrap();
    let start = msm::RequestStart {
        session_id: None,
        uri: "/",
        route: None,
    };
    let mut request = msm::runtime::block_on(m.begin(start)).unwrap();
    let mut session = msm::SessionData::new(max_inactive);
    session
        .attributes
        .insert("id".into(), id.to_string().into_bytes());
    let outcome = msm::Outcome::Used {
        id: &id.to_string(),
        session,
        previous: None,
    };
    msm::runtime::block_on(m.end(&mut request, outcome)).unwrap();
    id
}

/// A request on `m` that uses the session `id` (read from memcached unless `held`), setting
/// the attribute `n` to `value`; with `max_inactive`, it also accesses the session now and sets
/// its lifetime.
pub fn touch_session(
    m: &SessionManager,
    id: &msm::SessionId,
    held: Option<msm::SessionData>,
    max_inactive: Option<i32>,
    value: &[u8],
) {
    let raw = id.to_string();
    let start = msm::RequestStart {
        session_id: Some(&raw),
        uri: "/",
        route: None,
    };
    let mut request = msm::runtime::block_on(m.begin(start)).unwrap();
    let mut session = match held {
        Some(session) => session,
        None => {
            let found =
                msm::runtime::handle().block_on(m.lookup(&mut request, &raw, msm::HostCopy::None));
            let msm::Lookup::Found(loaded) = found else {
                panic!("session not found: {found:?}");
            };
            loaded.session
        }
    };
    if let Some(max_inactive) = max_inactive {
        session.max_inactive = max_inactive;
        session.last_accessed = msm::session::now_millis();
    }
    session.attributes.insert("n".into(), value.to_vec());
    let outcome = msm::Outcome::Used {
        id: &raw,
        session,
        previous: None,
    };
    msm::runtime::block_on(m.end(&mut request, outcome)).unwrap();
}

/// Every broadcast event `m` hears until it has heard `count` (or 10 s have passed).
pub fn hear(m: &SessionManager, count: usize) -> Vec<msm::SessionEvent> {
    let mut heard = Vec::new();
    eventually(&format!("{count} events heard"), || {
        heard.extend(msm::runtime::block_on(m.broadcast_events()).unwrap());
        heard.len() >= count
    });
    heard
}

/// The value of one counter in a manager's statistics text.
pub fn stat(manager: &SessionManager, name: &str) -> u64 {
    manager
        .stats_text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no statistic {name}"))
}

/// The static library of this very build.
///
/// `cargo test` builds the library with every crate type of `Cargo.toml` into the directory
/// holding the test executables (`target/<profile>/deps`); only `cargo build` copies it up to
/// `target/<profile>`, where it may be older than the code under test. So `deps` comes first.
pub fn static_library() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    let deps = exe.parent().expect("the test executable has a directory");
    let candidates: Vec<PathBuf> = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|dir| dir.join("libmsm.a"))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "libmsm.a is not in {candidates:?}: the [lib] crate-type of Cargo.toml must include \"staticlib\""
            )
        })
}

/// Compiles the C program `source` (relative to the project's root) against `include/msm.h`
/// and this build's static library into `output`, with `defines` (`-D...`); a compiler error
/// fails the test with its messages, a missing compiler with the command that installs it.
pub fn compile_c(source: &str, defines: &[&str], output: &std::path::Path) {
    let library = static_library();
    let compiled = Command::new("cc")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .args(defines)
        .args(["-I", "include", source])
        .arg(&library)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(output)
        .output()
        .unwrap_or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => panic!(
                "the C compiler `cc` is not installed: run `apt-get install -y gcc` (or the README's test command, which does)"
            ),
            _ => panic!("cannot run `cc`: {e}"),
        });
    assert!(
        compiled.status.success(),
        "{source} did not compile against include/msm.h and {}:\n{}{}",
        library.display(),
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr),
    );
}

/// `STAT <name> <number>` lines of a `stats` reply.
pub fn parse_stats(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            (parts.next() == Some("STAT")).then_some(())?;
            let name = parts.next()?.to_owned();
            let value = parts.next()?.parse().ok()?;
            Some((name, value))
        })
        .collect()
}

/// `text` with its `%XX` escapes decoded (as memcached's metadump writes keys).
fn percent_decoded(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
