//! End to end with a real Tomcat 10 from Debian's `tomcat10` package, installed the way the
//! README tells an administrator to: the drop-in jar in `$CATALINA_BASE/lib/` and the README's
//! `context.xml` block, copied literally (only the two memcached addresses are replaced by the
//! test's servers). Tomcat runs through `catalina.sh run` in its own `CATALINA_BASE`, is stopped
//! gracefully (SIGTERM) and started again: the session survives, loaded from memcached.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tomcat::{Response, built_jar, http_get};
use common::{Memcached, TempDir, eventually, free_port, signal};

const CATALINA_HOME: &str = "/usr/share/tomcat10";
const README_MARKER: &str =
    "<!-- context.xml: tests/debian_tomcat.rs installs exactly this block -->";
const README_NODE_1: &str = "127.0.0.1:11211";
const README_NODE_2: &str = "127.0.0.1:11212";
const ROUTE: &str = "debian1";
const START_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn install_hint() -> &'static str {
    "run `apt-get install -y tomcat10` (or the README's test command, which does)"
}

/// `catalina.sh` of Debian's Tomcat 10.
fn catalina_sh() -> PathBuf {
    let script = Path::new(CATALINA_HOME).join("bin/catalina.sh");
    assert!(
        script.is_file() && Path::new(CATALINA_HOME).join("lib/catalina.jar").exists(),
        "Debian's Tomcat 10 is not installed ({} is missing): {}",
        script.display(),
        install_hint()
    );
    script
}

/// Debian's default `conf/web.xml` (the world-readable template, else the installed copy).
fn debian_web_xml() -> PathBuf {
    ["/usr/share/tomcat10/etc/web.xml", "/etc/tomcat10/web.xml"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Debian's default Tomcat web.xml is missing: {}",
                install_hint()
            )
        })
}

/// catalina.sh finds `java` on the PATH, else `/usr/bin/java`; make sure one of them exists.
fn require_java() {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("java").is_file()))
        .unwrap_or(false);
    assert!(
        on_path || Path::new("/usr/bin/java").exists(),
        "`java` is not installed: run `apt-get install -y default-jdk-headless`"
    );
}

/// The README's `context.xml` block, with the two example memcached addresses replaced.
fn readme_context_xml(node1: &str, node2: &str) -> String {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", readme_path.display()));
    context_block(&readme, node1, node2)
}

/// The ```xml block after [`README_MARKER`] in `readme`, with the two example addresses replaced.
fn context_block(readme: &str, node1: &str, node2: &str) -> String {
    let mut lines = readme
        .lines()
        .skip_while(|line| line.trim() != README_MARKER);
    assert!(
        lines.next().is_some(),
        "README.md has no line `{README_MARKER}`: the Tomcat installation snippet is gone"
    );
    let mut lines = lines.skip_while(|line| line.trim().is_empty());
    assert_eq!(
        lines.next().map(str::trim),
        Some("```xml"),
        "README.md: the line `{README_MARKER}` must be followed by a ```xml fenced block"
    );
    let mut block = String::new();
    let mut closed = false;
    for line in lines {
        if line.trim() == "```" {
            closed = true;
            break;
        }
        block.push_str(line);
        block.push('\n');
    }
    assert!(
        closed,
        "README.md: the ```xml block after `{README_MARKER}` is never closed"
    );
    for address in [README_NODE_1, README_NODE_2] {
        assert!(
            block.contains(address),
            "README.md: the context.xml block does not contain the memcached address {address}, \
             which the test replaces by its own servers:\n{block}"
        );
    }
    // Through placeholders, so that a replacement can never be replaced again.
    block
        .replace(README_NODE_1, "\u{0}node1\u{0}")
        .replace(README_NODE_2, "\u{0}node2\u{0}")
        .replace("\u{0}node1\u{0}", node1)
        .replace("\u{0}node2\u{0}", node2)
}

fn server_xml(port: u16) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000" />
    <Engine name="Catalina" defaultHost="localhost" jvmRoute="{ROUTE}">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false" />
    </Engine>
  </Service>
</Server>
"#
    )
}

const LOGGING_PROPERTIES: &str = "\
handlers = java.util.logging.ConsoleHandler
.handlers = java.util.logging.ConsoleHandler
.level = INFO
java.util.logging.ConsoleHandler.level = ALL
java.util.logging.ConsoleHandler.formatter = org.apache.juli.OneLineFormatter
";

const APP_WEB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="https://jakarta.ee/xml/ns/jakartaee https://jakarta.ee/xml/ns/jakartaee/web-app_6_0.xsd"
         version="6.0">
  <servlet>
    <servlet-name>demo</servlet-name>
    <servlet-class>io.msm.demo.DemoServlet</servlet-class>
  </servlet>
  <servlet-mapping>
    <servlet-name>demo</servlet-name>
    <url-pattern>/*</url-pattern>
  </servlet-mapping>
</web-app>
"#;

/// A Tomcat from Debian's package in a `CATALINA_BASE` of its own; killed when dropped if the
/// test did not stop it.
struct DebianTomcat {
    child: Option<Child>,
    /// HTTP port of the current (or last) run.
    port: u16,
    /// Number of starts so far; each run logs into `run<N>.stdout` / `run<N>.stderr`.
    runs: u32,
    base: TempDir,
}

impl DebianTomcat {
    /// Lays out the CATALINA_BASE: conf, lib with the drop-in jar, the demo application.
    fn install(context_xml: &str) -> Self {
        catalina_sh();
        require_java();
        let base = TempDir::new("debian-tomcat");
        let root = &base.path;
        for dir in [
            "conf",
            "lib",
            "logs",
            "temp",
            "work",
            "webapps/ROOT/WEB-INF/lib",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::copy(debian_web_xml(), root.join("conf/web.xml")).unwrap();
        std::fs::write(root.join("conf/logging.properties"), LOGGING_PROPERTIES).unwrap();
        std::fs::write(root.join("conf/context.xml"), context_xml).unwrap();
        std::fs::copy(
            built_jar("msm-tomcat10.jar"),
            root.join("lib/msm-tomcat10.jar"),
        )
        .unwrap();
        std::fs::copy(
            built_jar("msm-demo-tomcat10.jar"),
            root.join("webapps/ROOT/WEB-INF/lib/msm-demo-tomcat10.jar"),
        )
        .unwrap();
        std::fs::write(root.join("webapps/ROOT/WEB-INF/web.xml"), APP_WEB_XML).unwrap();
        DebianTomcat {
            child: None,
            port: 0,
            runs: 0,
            base,
        }
    }

    /// `catalina.sh run` in the foreground on a fresh port; returns once HTTP is answered.
    fn start(&mut self) {
        assert!(self.child.is_none(), "Tomcat is already running");
        self.port = free_port();
        self.runs += 1;
        let root = &self.base.path;
        std::fs::write(root.join("conf/server.xml"), server_xml(self.port)).unwrap();
        let child = Command::new(catalina_sh())
            .arg("run")
            .env("CATALINA_HOME", CATALINA_HOME)
            .env("CATALINA_BASE", root)
            .env("CATALINA_TMPDIR", root.join("temp"))
            .env("JAVA_OPTS", "-Xmx256m")
            // Nothing from the caller's environment may change how this Tomcat runs.
            // cargo's build directories must not shadow the library inside the jar.
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("CATALINA_OPTS")
            .env_remove("CATALINA_PID")
            .env_remove("CATALINA_OUT")
            .env_remove("CATALINA_LOGGING_CONFIG")
            .env_remove("LOGGING_MANAGER")
            .env_remove("JPDA_OPTS")
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.log_path("stdout")).unwrap())
            .stderr(std::fs::File::create(self.log_path("stderr")).unwrap())
            .spawn()
            .expect("cannot run catalina.sh");
        self.child = Some(child);

        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "Tomcat exited with {status} before answering HTTP:\n{}",
                    self.log()
                );
            }
            if let Some(status) = http_status(self.port) {
                break status;
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "Tomcat did not answer HTTP on port {} within {} s:\n{}",
                self.port,
                START_TIMEOUT.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };

        // catalina.sh `exec`s the JVM: our child's PID is Tomcat itself, so signals reach it.
        let pid = self.child.as_ref().unwrap().id();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert_eq!(
            comm.trim(),
            "java",
            "`catalina.sh run` (PID {pid}) did not exec java; stopping it by PID would leave the JVM"
        );
        assert_eq!(
            status,
            200,
            "the demo application does not answer /read:\n{}",
            self.log()
        );
    }

    /// Graceful stop: SIGTERM (Tomcat's shutdown hook stops the contexts), then waits.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        panic!(
            "Tomcat did not stop within {} s of SIGTERM (killed):\n{}",
            STOP_TIMEOUT.as_secs(),
            self.log()
        );
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.base.path.join(format!("run{}.{stream}", self.runs))
    }

    /// What the current (or last) run wrote: stdout, then stderr (JULI's console handler).
    fn log(&self) -> String {
        let read = |stream| std::fs::read_to_string(self.log_path(stream)).unwrap_or_default();
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    fn get(&self, path: &str, session: Option<&str>) -> Response {
        http_get(self.port, path, session)
    }
}

impl Drop for DebianTomcat {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// The status of `GET /read` once Tomcat serves requests; `None` while it does not (yet).
/// Tomcat binds its port before the applications are deployed, so a connect alone proves nothing.
fn http_status(port: u16) -> Option<u16> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /read HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head)
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .parse()
        .ok()
}

/// `<32 upper-case hex>-<node>.debian1`: returns the node.
fn node_of(id: &str) -> &str {
    let (random, rest) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("session id {id:?} has no node"));
    assert!(
        random.len() == 32
            && random
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "session id {id:?} does not start with 32 upper-case hex characters"
    );
    let node = rest
        .strip_suffix(&format!(".{ROUTE}"))
        .unwrap_or_else(|| panic!("session id {id:?} does not end with the route .{ROUTE}"));
    assert!(
        node == "n1" || node == "n2",
        "session id {id:?} names node {node:?}, not n1 or n2"
    );
    node
}

#[test]
fn debian_tomcat_with_the_readme_context_keeps_sessions_across_a_restart() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let context_xml = readme_context_xml(&m1.address(), &m2.address());
    let mut tomcat = DebianTomcat::install(&context_xml);

    tomcat.start();
    let log = tomcat.log();
    assert!(
        log.lines().any(
            |l| l.contains("memcached session manager of context [") && l.contains("] started")
        ),
        "the manager did not log its start:\n{log}"
    );

    let first = tomcat.get("/", None);
    assert_eq!(first.status, 200, "{first:?}\n{}", tomcat.log());
    let id = first.new_session.clone().expect("a session cookie");
    assert_eq!(first.session(), id);
    assert_eq!(first.field("counter"), Some("1"), "{first:?}");
    let node = node_of(&id);
    let second = tomcat.get("/", Some(&id));
    assert_eq!(second.session(), id, "{second:?}");
    assert_eq!(second.field("counter"), Some("2"), "{second:?}");

    // The session and its id reservation are on the node its id names.
    let server = if node == "n1" { &m1 } else { &m2 };
    eventually(
        "the session and its id reservation are in memcached",
        || server.stat("curr_items") >= 2,
    );

    // Graceful restart: the same CATALINA_BASE, the session comes back from memcached.
    tomcat.stop();
    let log = tomcat.log();
    assert!(
        !log.contains(" SEVERE ") && !log.contains("session backups were still running at stop"),
        "the first run logged an error or lost backups at stop:\n{log}"
    );
    tomcat.start();
    let third = tomcat.get("/", Some(&id));
    assert_eq!(third.status, 200, "{third:?}\n{}", tomcat.log());
    assert_eq!(third.session(), id, "{third:?}\n{}", tomcat.log());
    assert_eq!(
        third.field("counter"),
        Some("3"),
        "the session did not survive the restart: {third:?}\n{}",
        tomcat.log()
    );
    assert!(server.stat("curr_items") >= 2, "the session left memcached");
    tomcat.stop();
    let log = tomcat.log();
    assert!(!log.contains(" SEVERE "), "Tomcat logged an error:\n{log}");
    assert!(
        !log.contains("failed to stop it"),
        "a thread of ours pins the web application:\n{log}"
    );
}

#[test]
fn the_readme_block_is_found_and_only_its_addresses_change() {
    let readme = format!(
        "intro\n\n{README_MARKER}\n```xml\n<Context>\n  <Manager memcachedNodes=\"n1:127.0.0.1:11211 n2:127.0.0.1:11212\" />\n</Context>\n```\n\n```xml\n<Other/>\n```\n"
    );
    assert_eq!(
        context_block(&readme, "127.0.0.1:11212", "127.0.0.1:4000"),
        "<Context>\n  <Manager memcachedNodes=\"n1:127.0.0.1:11212 n2:127.0.0.1:4000\" />\n</Context>\n"
    );
}

#[test]
#[should_panic(expected = "README.md has no line")]
fn a_readme_without_the_marker_fails() {
    context_block("```xml\n<Context/>\n```\n", "a:1", "b:2");
}

#[test]
#[should_panic(expected = "does not contain the memcached address 127.0.0.1:11212")]
fn a_readme_block_without_the_addresses_fails() {
    let readme =
        format!("{README_MARKER}\n```xml\n<Manager memcachedNodes=\"127.0.0.1:11211\"/>\n```\n");
    context_block(&readme, "a:1", "b:2");
}
