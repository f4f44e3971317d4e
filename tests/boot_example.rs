//! End to end with Spring Boot: the example application of `examples/boot-app` (Spring Security's
//! form login, msm through its starter), run as users run it, from its executable jar, two
//! instances against two memcached nodes. A user logs in on A, A is killed, B serves the user
//! logged in (Spring Security's context lives in the session), and logging out on B ends the
//! session everywhere: B and a new instance in A's place both ask for a login again. Sticky on
//! Boot 4.0 (Tomcat 11), non-sticky on Boot 3.5 (Tomcat 10.1), and on Boot 4.0 with virtual
//! threads on Java 25, whose JVM must not warn about native access (the jar's manifest enables
//! it). Also the starter's bad input: an unknown `msm.*` property or a bad value stops the
//! application naming it, and without `msm.memcached-nodes` the starter stays out of the way.
//! The sticky runs back up synchronously (`msm.session-backup-async=false`): with the default
//! background writes, a session changed just before a crash may reach memcached a step behind.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::tomcat::{Browser, Response, built_jar, java_with_virtual_threads, try_http_request};
use common::{Memcached, TempDir, free_port, node_list, signal};

/// One scenario at a time: a Boot application starts with a lot of class loading, and several
/// starting together on a small machine take minutes.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running instance of the example application, killed when dropped.
struct App {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

/// How an instance started.
enum Start {
    Ready(App),
    /// It exited; what it printed.
    Exited(String),
}

fn default_java() -> PathBuf {
    let java = PathBuf::from("/usr/bin/java");
    assert!(
        java.exists(),
        "`java` is not installed: run `apt-get install -y default-jdk-headless`"
    );
    java
}

impl App {
    fn try_start(jar: &Path, java: &Path, args: &[String]) -> Start {
        let port = free_port();
        let dir = TempDir::new("boot");
        let child = Command::new(java)
            .env_remove("LD_LIBRARY_PATH")
            // C1 alone: the JIT costs less at start, which is all these instances do much of.
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(format!("-Djava.io.tmpdir={}", dir.path.display()))
            .arg("-jar")
            .arg(jar)
            .arg(format!("--server.port={port}"))
            .arg("--server.address=127.0.0.1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path.join("out")).unwrap())
            .stderr(std::fs::File::create(dir.path.join("err")).unwrap())
            .spawn()
            .expect("cannot start java");
        let mut app = App {
            child: Some(child),
            port,
            dir,
        };
        let started = Instant::now();
        loop {
            if app.output().contains("Started ExampleApplication") {
                return Start::Ready(app);
            }
            if app.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                return Start::Exited(app.output());
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the example did not start within 300 s:\n{}",
                app.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start(jar: &Path, java: &Path, args: &[String]) -> App {
        match Self::try_start(jar, java, args) {
            Start::Ready(app) => app,
            Start::Exited(output) => panic!("the example exited:\n{output}"),
        }
    }

    /// Everything it printed.
    fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path.join(name)).unwrap_or_default();
        format!("{}{}", read("out"), read("err"))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                signal(&child, libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }

    fn get(&self, browser: &mut Browser, path: &str) -> Response {
        self.send(browser, "GET", path, None)
    }

    fn post(&self, browser: &mut Browser, path: &str, form: &str) -> Response {
        self.send(browser, "POST", path, Some(form))
    }

    fn send(
        &self,
        browser: &mut Browser,
        method: &str,
        path: &str,
        form: Option<&str>,
    ) -> Response {
        let response = try_http_request(self.port, method, path, browser.cookie.as_deref(), form)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.output()));
        if let Some(new) = &response.new_session {
            browser.cookie = Some(new.clone());
        }
        response
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Percent-encodes a form value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of the hidden `_csrf` input of Spring Security's login page.
fn csrf_of_form(html: &str) -> String {
    let input = html
        .split("<input")
        .find(|input| input.contains("name=\"_csrf\""))
        .unwrap_or_else(|| panic!("no _csrf input in the login page:\n{html}"));
    let value = input.split("value=\"").nth(1).expect("no value");
    value[..value.find('"').unwrap()].to_owned()
}

/// Logs alice in through Spring Security's login page.
fn log_in(app: &App) -> Browser {
    let mut browser = Browser::default();
    let first = app.get(&mut browser, "/");
    assert_eq!(first.status, 302, "{first:?}");
    let page = app.get(&mut browser, "/login");
    assert_eq!(page.status, 200, "{page:?}");
    let form = format!(
        "username=alice&password=s3cret&_csrf={}",
        encode(&csrf_of_form(&page.body))
    );
    let posted = app.post(&mut browser, "/login", &form);
    assert_eq!(posted.status, 302, "{posted:?}");
    assert!(
        !posted.location.as_deref().unwrap_or("").contains("error"),
        "the login failed: {posted:?}"
    );
    browser
}

/// What `/` shows `browser`: `alice <visits>`, or `login` when it is sent to the login page.
fn home(app: &App, browser: &mut Browser) -> (String, Response) {
    let response = app.get(browser, "/");
    let shown = match response.field("user") {
        Some(user) => format!("{user} {}", response.field("visits").unwrap_or("-")),
        None if response.status == 302
            && response
                .location
                .as_deref()
                .unwrap_or("")
                .ends_with("/login") =>
        {
            "login".to_owned()
        }
        None => format!("{response:?}"),
    };
    (shown, response)
}

/// The scenario: log in on A, kill A, B serves the user, logout on B ends it everywhere.
fn failover_and_logout(boot: &str, java: &Path, args: &[&str]) -> String {
    let _alone = one_at_a_time();
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let jar = built_jar(&format!("msm-boot-example-{boot}.jar"));
    let mut all = vec![format!("--msm.memcached-nodes={}", node_list(&[&m1, &m2]))];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let mut a = App::start(&jar, java, &all);
    let b = App::start(&jar, java, &all);

    let mut browser = log_in(&a);
    assert_eq!(home(&a, &mut browser).0, "alice 1", "{}", a.output());
    assert_eq!(home(&a, &mut browser).0, "alice 2");
    let output_a = a.output();
    a.kill();

    let (shown, response) = home(&b, &mut browser);
    assert_eq!(
        shown,
        "alice 3",
        "B serves the user logged in:\n{}",
        b.output()
    );
    let csrf = response.field("csrf").unwrap().to_owned();
    let logged_in = browser.clone();
    let out = b.post(&mut browser, "/logout", &format!("_csrf={}", encode(&csrf)));
    assert_eq!(out.status, 302, "{out:?}");
    assert!(
        out.location.as_deref().unwrap_or("").contains("logout"),
        "{out:?}"
    );

    // The session that was logged in is over on B and on a new instance in A's place.
    assert_eq!(home(&b, &mut logged_in.clone()).0, "login");
    let a2 = App::start(&jar, java, &all);
    assert_eq!(
        home(&a2, &mut logged_in.clone()).0,
        "login",
        "{}",
        a2.output()
    );
    let page = response.body.clone();
    format!("{output_a}{}{}\n{page}", b.output(), a2.output())
}

#[test]
fn boot_4_sticky_login_survives_failover_and_logout_ends_it_everywhere() {
    // Synchronous backups: a response means its session is in memcached before A is killed.
    let output = failover_and_logout(
        "4.0",
        &default_java(),
        &["--msm.session-backup-async=false"],
    );
    assert!(output.contains("Apache Tomcat/11.0"), "{output}");
    assert!(
        output.contains("memcached session manager of context"),
        "{output}"
    );
}

#[test]
fn boot_3_5_non_sticky_login_survives_failover_and_logout_ends_it_everywhere() {
    let output = failover_and_logout("3.5", &default_java(), &["--msm.sticky=false"]);
    assert!(output.contains("Apache Tomcat/10.1"), "{output}");
}

#[test]
fn boot_4_on_virtual_threads_and_java_25_without_a_native_access_warning() {
    let output = failover_and_logout(
        "4.0",
        &java_with_virtual_threads(),
        &[
            "--spring.threads.virtual.enabled=true",
            "--msm.session-backup-async=false",
        ],
    );
    assert!(output.contains("thread=virtual"), "{output}");
    assert!(output.contains("runtime=25"), "{output}");
    assert!(!output.contains("restricted method"), "{output}");
}

#[test]
fn an_unknown_property_or_a_bad_value_stops_the_application_naming_it() {
    let _alone = one_at_a_time();
    let server = Memcached::start();
    let nodes = format!("--msm.memcached-nodes={}", node_list(&[&server]));
    let jar = built_jar("msm-boot-example-4.0.jar");
    for (arg, named) in [
        (
            "--msm.memcached-nodez=n1:127.0.0.1:1",
            "msm.memcached-nodez",
        ),
        ("--msm.sticky=maybe", "msm.sticky"),
        ("--msm.locking-mode=sometimes", "lockingMode"),
    ] {
        match App::try_start(&jar, &default_java(), &[nodes.clone(), arg.to_owned()]) {
            Start::Exited(output) => assert!(output.contains(named), "{arg}:\n{output}"),
            Start::Ready(app) => panic!("started with {arg}:\n{}", app.output()),
        }
    }
}

#[test]
fn without_memcached_nodes_the_starter_stays_out_of_the_way() {
    let _alone = one_at_a_time();
    let jar = built_jar("msm-boot-example-4.0.jar");
    // No application.properties: no msm.memcached-nodes.
    let args = ["--spring.config.name=none".to_owned()];
    let mut a = App::start(&jar, &default_java(), &args);
    let b = App::start(&jar, &default_java(), &args);
    let mut browser = log_in(&a);
    assert_eq!(home(&a, &mut browser).0, "alice 1");
    a.kill();
    assert_eq!(home(&b, &mut browser).0, "login");
    assert!(
        !b.output().contains("memcached session manager"),
        "{}",
        b.output()
    );
}
