//! A C host hears the expiry of a session a Tomcat created: a real Tomcat with expiry events
//! (`sessionEvents="expiry"`) creates a session holding the demo's tag and is killed; two C hosts
//! (`tests/c/msm_test.c` in its `poll-expired` mode, through `msm_manager_poll_expired`) of the
//! same context (the same nodes and storage key prefix) poll while the session expires: exactly
//! one of them is handed that session, once, with its attribute.
//!
//! Tomcat's attributes are Java-serialized: the C host sees opaque bytes under each attribute's
//! name, and the tag's text among them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tomcat::{Browser, Options, Tomcat, sticky_attributes, storage};
use common::{Memcached, TempDir, compile_c, node_list};

/// The context's storage key prefix, which the Tomcat and the C hosts share.
const PREFIX: &str = "events-c:";
/// Seconds each C host polls: the session lives 3 s (its sticky copy a quarter more), and its
/// bucket of 1 s is swept 2 s after it ends; the rest shows that nothing is delivered again.
const POLL_SECONDS: u64 = 16;

/// Compiles `tests/c/msm_test.c` into `dir`.
fn compile(dir: &TempDir) -> PathBuf {
    let output = dir.path.join("msm_test");
    compile_c("tests/c/msm_test.c", &[], &output);
    output
}

/// A C host polling for expired sessions, killed when dropped (it ends by itself after
/// [`POLL_SECONDS`]).
struct Poller {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Poller {
    /// Starts `program` in its `poll-expired` mode over `nodes` with `attributes`
    /// (`name=value`), and waits until its manager is made.
    fn start(program: &Path, nodes: &str, attributes: &[&str], dir: &TempDir, n: usize) -> Self {
        let stdout = dir.path.join(format!("poller-{n}.out"));
        let stderr = dir.path.join(format!("poller-{n}.err"));
        let child = Command::new(program)
            .args(["poll-expired", &POLL_SECONDS.to_string(), nodes])
            .args(attributes)
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("cannot start the C host");
        let poller = Poller {
            child,
            stdout,
            stderr,
        };
        let started = Instant::now();
        while !poller.output().contains("READY") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the C host did not start: {}{}",
                poller.output(),
                std::fs::read_to_string(&poller.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        poller
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits for the end of its polling; its output, which must end with `POLLED`.
    fn finish(mut self) -> String {
        let limit = Instant::now() + Duration::from_secs(POLL_SECONDS + 30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < limit, "the C host hung: {}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = self.output();
        let errors = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert!(
            status.success() && output.lines().any(|l| l.starts_with("POLLED ")),
            "the C host ended with {status}:\n{output}{errors}"
        );
        output
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An expired session as a C host printed it: its id and its attributes (name, value bytes).
#[derive(Debug)]
struct Expired {
    host: usize,
    id: String,
    attributes: Vec<(String, Vec<u8>)>,
}

/// The expired sessions in the output of the C host `host`.
fn expired(host: usize, output: &str) -> Vec<Expired> {
    let mut all: Vec<Expired> = Vec::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["EXPIRED", id, count] => {
                count.parse::<usize>().expect(line);
                all.push(Expired {
                    host,
                    id: (*id).to_owned(),
                    attributes: Vec::new(),
                });
            }
            ["ATTRIBUTE", id, name, hex] => {
                let session = all.last_mut().expect(line);
                assert_eq!(&session.id, id, "{line}");
                let value = match *hex {
                    "-" => Vec::new(),
                    hex => (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect(line))
                        .collect(),
                };
                session.attributes.push(((*name).to_owned(), value));
            }
            _ => {}
        }
    }
    for line in output.lines().filter(|l| l.starts_with("EXPIRED ")) {
        let count: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        let id = line.split(' ').nth(1).unwrap();
        let session = all.iter().find(|s| s.id == id).unwrap();
        assert_eq!(session.attributes.len(), count, "{output}");
    }
    all
}

#[test]
fn a_c_host_hears_the_expiry_of_a_session_a_killed_tomcat_created() {
    let dir = TempDir::new("events-c-host");
    let program = compile(&dir);
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);

    // A sticky Tomcat with expiry events, sessions of 3 s swept in buckets of 1 s.
    let events = [
        ("sessionEvents", "expiry"),
        ("eventSweepInterval", "1"),
        ("maxInactiveInterval", "3"),
        ("processExpiresFrequency", "1"),
    ];
    let mut options = Options::msm("a", &sticky_attributes(PREFIX, &nodes, &events));
    options
        .context
        .push(("backgroundProcessorDelay".to_owned(), "1".to_owned()));
    let mut tomcat = Tomcat::start(&options);
    let tag = "from-tomcat-7f3a";
    let mut browser = Browser::default();
    let response = browser.get(&tomcat, &format!("/tag?value={tag}"));
    assert_eq!(response.status, 200, "{response:?}");
    let cookie = browser.cookie.clone().expect("a session");
    let id = storage(&cookie).to_owned();
    // Killed at once, long before the session expires: no Tomcat is left to announce it.
    tomcat.kill();
    assert!(
        !tomcat.stdout().contains("EVENT destroyed"),
        "the Tomcat announced an end before it was killed:\n{}",
        tomcat.stdout()
    );

    // Two C hosts of the same context poll while it expires.
    let attributes = [
        format!("storageKeyPrefix={PREFIX}"),
        "eventSweepInterval=1".to_owned(),
        "operationTimeout=300".to_owned(),
    ];
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let pollers: Vec<Poller> = (0..2)
        .map(|n| Poller::start(&program, &nodes, &attributes, &dir, n))
        .collect();
    let outputs: Vec<String> = pollers.into_iter().map(Poller::finish).collect();
    let delivered: Vec<Expired> = outputs
        .iter()
        .enumerate()
        .flat_map(|(host, output)| expired(host, output))
        .collect();

    assert_eq!(
        delivered.len(),
        1,
        "exactly one delivery in the context: {delivered:?}\n{outputs:?}"
    );
    let session = &delivered[0];
    assert_eq!(session.id, id, "the Tomcat's session, without its route");
    let names: Vec<&str> = session.attributes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["tag"], "its attributes: {session:?}");
    let value = &session.attributes[0].1;
    assert!(
        value.windows(tag.len()).any(|w| w == tag.as_bytes()),
        "the serialized tag holds its text: {:?}",
        String::from_utf8_lossy(value)
    );
    println!(
        "the session {id} of the killed Tomcat was delivered to C host {} of 2, once",
        session.host
    );
}
