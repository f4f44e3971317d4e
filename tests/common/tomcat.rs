//! Real Tomcats for end-to-end tests: each in its own JVM, serving the demo web application with
//! the manager under test, and a minimal HTTP client that keeps the session cookie.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, free_port, signal};

/// A Tomcat line the end-to-end tests run: an embedded Tomcat of that line from Maven Central
/// (`scripts/build-jar.sh` copies it to `target/java/tomcat-<line>/`), with the manager's jar
/// built for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Tomcat 9.0 (`javax.*`), with `msm-tomcat9.jar`.
    Tomcat9,
    /// Tomcat 10.1 (`jakarta.*`), with `msm-tomcat10.jar`.
    Tomcat10,
    /// Tomcat 11.0 (`jakarta.*`), with the same `msm-tomcat10.jar`.
    Tomcat11,
}

impl Variant {
    /// Every line, oldest first.
    pub const ALL: [Variant; 3] = [Variant::Tomcat9, Variant::Tomcat10, Variant::Tomcat11];

    /// The line, as in the directory name: `9.0`, `10.1`, `11.0`.
    pub fn line(self) -> &'static str {
        match self {
            Variant::Tomcat9 => "9.0",
            Variant::Tomcat10 => "10.1",
            Variant::Tomcat11 => "11.0",
        }
    }

    /// The name of the manager's jar for this line, without `msm-` and `.jar`: `tomcat9` for
    /// `javax.*`, `tomcat10` for `jakarta.*`.
    pub fn jar(self) -> &'static str {
        match self {
            Variant::Tomcat9 => "tomcat9",
            Variant::Tomcat10 | Variant::Tomcat11 => "tomcat10",
        }
    }

    /// Tomcat's own jars of this line.
    pub fn classpath(self) -> String {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/java")
            .join(format!("tomcat-{}", self.line()));
        assert!(
            dir.is_dir(),
            "{} is missing: run `bash scripts/build-jar.sh` (the README's test command does)",
            dir.display()
        );
        format!("{}/*", dir.display())
    }
}

/// The storage part of a session id from a cookie (`<random>-<node>`, without the route).
pub fn storage(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// The node a session id from a cookie names.
pub fn node_of(id: &str) -> &str {
    storage(id).rsplit('-').next().unwrap_or(id)
}

/// A jar built by `scripts/build-jar.sh`.
pub fn built_jar(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/java")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/build-jar.sh` (the README's test command does)",
        path.display()
    );
    path
}

/// Manager attributes of the sticky end-to-end tests: key prefix `prefix`, short timeouts, and
/// synchronous backups (so a response means the write is done), with `extra` added.
pub fn sticky_attributes<'a>(
    prefix: &'a str,
    nodes: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("memcachedNodes", nodes),
        ("storageKeyPrefix", prefix),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "100"),
        ("sessionBackupAsync", "false"),
        ("sessionBackupTimeout", "2000"),
    ];
    all.extend_from_slice(extra);
    all
}

/// How to start a Tomcat.
#[derive(Clone, Debug)]
pub struct Options {
    /// The Tomcat line.
    pub variant: Variant,
    /// The manager's jar, when not the one built for `variant` (a user's mistake).
    pub jar: Option<&'static str>,
    /// `msm`, `standard` (Tomcat's StandardManager) or `class:NAME` (another manager, from
    /// [`Options::lib_jars`]), as `EmbeddedTomcat --manager` takes it.
    pub manager: &'static str,
    /// The engine's jvmRoute.
    pub route: Option<String>,
    /// Manager attributes, as in `context.xml`.
    pub attributes: Vec<(String, String)>,
    /// Attributes of the `<Context>` itself, as in `context.xml`.
    pub context: Vec<(String, String)>,
    /// The JVM's heap and collector flags, ahead of `jvm`: a small heap and the serial collector
    /// by default; the benchmark sets its own (a JVM refuses two collectors).
    pub jvm_base: Vec<String>,
    /// Extra JVM options.
    pub jvm: Vec<String>,
    /// Jars added to the web application, as if in its `WEB-INF/lib`.
    pub webapp_jars: Vec<PathBuf>,
    /// Jars added to Tomcat's own class path, as if in `$CATALINA_BASE/lib`: another session
    /// manager and its dependencies (the benchmark's original memcached-session-manager).
    pub lib_jars: Vec<PathBuf>,
    /// Attributes of the HTTP connector, as in `server.xml` (`useVirtualThreads`, ...).
    pub connector: Vec<(String, String)>,
    /// The JVM to run; the default one when `None`.
    pub java: Option<PathBuf>,
    /// The manager's jar (the Java shim with its native library), e.g. another build to compare
    /// with; this build's `msm-<jar>.jar` when `None`. The demo application stays this
    /// build's.
    pub manager_jar: Option<PathBuf>,
    /// `user:password:role`: `/secure/*` behind Tomcat's FORM login against a Realm holding
    /// that user.
    pub form_login: Option<String>,
}

impl Options {
    /// Tomcat 10.1 with this manager configuration and route.
    pub fn msm(route: &str, attributes: &[(&str, &str)]) -> Self {
        Options {
            variant: Variant::Tomcat10,
            jar: None,
            manager: "msm",
            route: Some(route.to_owned()),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            context: Vec::new(),
            jvm_base: ["-Xmx256m", "-XX:+UseSerialGC", "-Xshare:auto"]
                .map(str::to_owned)
                .to_vec(),
            jvm: Vec::new(),
            webapp_jars: Vec::new(),
            lib_jars: Vec::new(),
            connector: Vec::new(),
            java: None,
            manager_jar: None,
            form_login: None,
        }
    }
}

/// A JVM with virtual threads (Java 21 or later): `MSM_JAVA_VIRTUAL`, else the Temurin 25 this
/// kind of machine ships in `/usr/lib/jvm/temurin-25-jdk-amd64`.
pub fn java_with_virtual_threads() -> PathBuf {
    let path = std::env::var_os("MSM_JAVA_VIRTUAL").map_or_else(
        || PathBuf::from("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: install a JDK 21 or later (e.g. `apt-get install -y openjdk-21-jdk-headless` \
         where the distribution has it) and name its `java` in MSM_JAVA_VIRTUAL",
        path.display()
    );
    path
}

/// An embedded Tomcat in its own JVM, killed when dropped.
pub struct Tomcat {
    child: Option<Child>,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
}

/// How a start ended.
pub enum Started {
    /// Serving.
    Ready(Tomcat),
    /// The context refused to start; the log says why.
    Failed(String),
}

fn java() -> PathBuf {
    for candidate in ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("`java` is not installed: run `apt-get install -y default-jdk-headless`");
}

impl Tomcat {
    /// Starts a Tomcat and waits until it serves; panics when it does not.
    pub fn start(options: &Options) -> Tomcat {
        match Self::try_start(options) {
            Started::Ready(tomcat) => tomcat,
            Started::Failed(log) => panic!("Tomcat did not start:\n{log}"),
        }
    }

    /// Starts a Tomcat and reports whether its context started.
    pub fn try_start(options: &Options) -> Started {
        let port = free_port();
        let dir = TempDir::new("tomcat");
        let demo = options.variant.jar();
        let manager_jar = options
            .manager_jar
            .clone()
            .unwrap_or_else(|| built_jar(&format!("msm-{}.jar", options.jar.unwrap_or(demo))));
        let mut classpath = format!(
            "{}:{}:{}",
            manager_jar.display(),
            built_jar(&format!("msm-demo-{demo}.jar")).display(),
            options.variant.classpath()
        );
        for jar in &options.lib_jars {
            classpath = format!("{classpath}:{}", jar.display());
        }
        let mut command = Command::new(options.java.clone().unwrap_or_else(java));
        // cargo puts its build directories on LD_LIBRARY_PATH, which the JVM searches for
        // libmsm before the jar: Tomcat must load the library the jar carries.
        command
            .env_remove("LD_LIBRARY_PATH")
            .args(&options.jvm_base)
            .args(&options.jvm)
            .arg(format!("-Djava.io.tmpdir={}", dir.path.display()))
            .args(["-cp", &classpath, "io.msm.demo.EmbeddedTomcat"])
            .args(["--port", &port.to_string(), "--manager", options.manager]);
        if let Some(route) = &options.route {
            command.args(["--route", route]);
        }
        for (name, value) in &options.attributes {
            command.args(["--attr", &format!("{name}={value}")]);
        }
        for (name, value) in &options.context {
            command.args(["--context", &format!("{name}={value}")]);
        }
        for (name, value) in &options.connector {
            command.args(["--connector", &format!("{name}={value}")]);
        }
        for jar in &options.webapp_jars {
            command.arg("--webapp-jar").arg(jar);
        }
        if let Some(login) = &options.form_login {
            command.args(["--form-login", login]);
        }
        let child = command
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(dir.path.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path.join("stderr")).unwrap())
            .spawn()
            .expect("cannot start java");
        let mut tomcat = Tomcat {
            child: Some(child),
            port,
            dir,
        };
        let start = Instant::now();
        loop {
            let stdout =
                std::fs::read_to_string(tomcat.dir.path.join("stdout")).unwrap_or_default();
            if stdout.contains("READY") {
                return Started::Ready(tomcat);
            }
            let exited = tomcat.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if stdout.contains("CONTEXT FAILED") || exited {
                let log = tomcat.log();
                tomcat.kill();
                return Started::Failed(format!("{stdout}{log}"));
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Tomcat did not start within 60 s:\n{}",
                tomcat.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The PID of the running JVM.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("not running").id()
    }

    /// Kills the JVM (SIGKILL): a crash, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // One that exited by itself (and was reaped) has nothing left to kill.
            if matches!(child.try_wait(), Ok(None)) {
                signal(&child, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    /// Stops Tomcat gracefully (SIGTERM: its contexts and their managers stop, as a Tomcat
    /// shutdown does) and waits for the JVM to exit; kills it and panics when it takes longer
    /// than 30 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&child, libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if child.try_wait().expect("try_wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
        panic!(
            "Tomcat did not stop within 30 s of SIGTERM (killed):\n{}",
            self.log()
        );
    }

    /// Reloads the web application's context (`EmbeddedTomcat`'s `reload` command: its manager
    /// stopped and started again in the same JVM, as a redeployment does) and waits until it
    /// serves again; panics when it did not start again within 60 s.
    pub fn reload(&mut self) {
        let done = self.stdout().matches("RELOADED").count() + 1;
        let child = self.child.as_mut().expect("not running");
        let stdin = child.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(b"reload\n").expect("Tomcat's stdin");
        stdin.flush().expect("Tomcat's stdin");
        let start = Instant::now();
        while self.stdout().matches("RELOADED").count() < done {
            let stdout = self.stdout();
            assert!(
                !stdout.contains("RELOAD FAILED") && start.elapsed() < Duration::from_secs(60),
                "the context did not start again:\n{stdout}{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the JVM printed to standard output (the demo's `SessionEvents` lines among it),
    /// readable after it was killed too.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("stdout")).unwrap_or_default()
    }

    /// What Tomcat logged (JULI writes to stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("stderr")).unwrap_or_default()
    }

    /// A GET request, sending `session` as the JSESSIONID cookie.
    pub fn get(&self, path: &str, session: Option<&str>) -> Response {
        http_get(self.port, path, session)
    }

    /// A counter of the manager's statistics, as the demo's `/stats` reads it from JMX.
    pub fn statistic(&self, name: &str) -> u64 {
        let stats = self.get("/stats", None);
        stats
            .field(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stats:?}"))
    }
}

impl Drop for Tomcat {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A browser's view of one session: sends its cookie, and follows every new cookie it is sent.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    /// The JSESSIONID cookie, once one was set.
    pub cookie: Option<String>,
}

impl Browser {
    /// A browser that already holds this cookie.
    pub fn with_cookie(cookie: &str) -> Self {
        Browser {
            cookie: Some(cookie.to_owned()),
        }
    }

    /// A GET request to `tomcat`, keeping any new session cookie.
    pub fn get(&mut self, tomcat: &Tomcat, path: &str) -> Response {
        let response = tomcat.get(path, self.cookie.as_deref());
        if let Some(new) = &response.new_session {
            self.cookie = Some(new.clone());
        }
        response
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The JSESSIONID the response set, if any.
    pub new_session: Option<String>,
    /// Every `Set-Cookie` header, whole.
    pub set_cookies: Vec<String>,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The body.
    pub body: String,
}

impl Response {
    /// The value of `key=value` in the one-line body of the demo application.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.body
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    }

    /// The session the body reports.
    pub fn session(&self) -> &str {
        self.field("session").expect("no session field")
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close`; panics when no whole response comes back.
pub fn http_get(port: u16, path: &str, session: Option<&str>) -> Response {
    try_http_get(port, path, session)
        .unwrap_or_else(|e| panic!("GET {path} from Tomcat on port {port}: {e}"))
}

/// A minimal HTTP/1.1 GET with `Connection: close`, for clients that expect failures: an error
/// when the connection is refused (kind `ConnectionRefused`: nothing listens, e.g. a killed
/// Tomcat), fails, or closes before a whole response head arrived (a Tomcat killed meanwhile).
pub fn try_http_get(port: u16, path: &str, session: Option<&str>) -> io::Result<Response> {
    try_http_request(port, "GET", path, session, None)
}

/// A minimal HTTP/1.1 POST of an `application/x-www-form-urlencoded` body with
/// `Connection: close`; panics when no whole response comes back.
pub fn http_post(port: u16, path: &str, session: Option<&str>, form: &str) -> Response {
    try_http_request(port, "POST", path, session, Some(form))
        .unwrap_or_else(|e| panic!("POST {path} to port {port}: {e}"))
}

/// A minimal HTTP/1.1 request with `Connection: close` (see [`try_http_get`]), with a form body
/// when `form` is given.
pub fn try_http_request(
    port: u16,
    method: &str,
    path: &str,
    session: Option<&str>,
    form: Option<&str>,
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let cookie = session.map_or(String::new(), |s| format!("Cookie: JSESSIONID={s}\r\n"));
    let body = form.map_or(String::new(), |form| {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        )
    });
    let end = if form.is_some() { "" } else { "\r\n" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\n{cookie}Connection: close\r\n{body}{end}"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let cut =
        |what: &str| io::Error::new(io::ErrorKind::UnexpectedEof, format!("{what}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| cut("no header end"))?;
    let location = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_owned())
    });
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| cut("no status line"))?;
    let set_cookies: Vec<String> = lines
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("set-cookie")
                .then(|| value.trim().to_owned())
        })
        .collect();
    let new_session = set_cookies.iter().find_map(|c| {
        let value = c.strip_prefix("JSESSIONID=")?;
        Some(value.split(';').next()?.to_owned())
    });
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok(Response {
        status,
        new_session,
        set_cookies,
        location,
        body: body.trim().to_owned(),
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
