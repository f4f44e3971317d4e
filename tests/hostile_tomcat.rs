//! Tomcat in hostile conditions: memcached over TLS with authentication, and concurrent load
//! on a JVM that just started.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use common::tls::{TestCa, credentials_file, secure_memcached};
use common::tomcat::{Browser, Options, Tomcat, sticky_attributes};
use common::{Memcached, TempDir, node_list};

#[test]
fn tomcats_share_sessions_over_tls_with_authentication() {
    let dir = TempDir::new("tomcat-tls");
    let ca = TestCa::new(&dir, "ca");
    let server = ca.server(&["127.0.0.1"]);
    let (m1, m2) = (
        secure_memcached(&dir, &server, "msm", "tomcat-s3cret"),
        secure_memcached(&dir, &server, "msm", "tomcat-s3cret"),
    );
    let nodes = node_list(&[&m1, &m2]);
    let (ca_file, credentials) = (
        ca.file.display().to_string(),
        credentials_file(&dir, "msm", "tomcat-s3cret"),
    );
    let attributes = sticky_attributes(
        "tls:",
        &nodes,
        &[
            ("tls", "true"),
            ("tlsCaFile", &ca_file),
            ("memcachedCredentials", &credentials),
        ],
    );
    let mut a = Tomcat::start(&Options::msm("a", &attributes));
    let b = Tomcat::start(&Options::msm("b", &attributes));

    let mut browser = Browser::default();
    for expected in 1..=3 {
        assert_eq!(
            browser.get(&a, "/").field("counter"),
            Some(expected.to_string().as_str())
        );
    }
    a.kill();
    // Tomcat b has the session only from memcached, read over TLS.
    let response = browser.get(&b, "/");
    assert_eq!(response.field("counter"), Some("4"), "{response:?}");
    assert!(browser.cookie.as_deref().unwrap().ends_with(".b"));
    assert_eq!(b.statistic("BackupsFailed"), 0);
    let log = b.log();
    assert!(!log.contains("marked down"), "{log}");
    assert!(!log.contains("tomcat-s3cret"), "no password in the log");
}

/// A Tomcat that just started (cold JVM: nothing compiled, classes loading) takes concurrent
/// load at once: no node is marked down, no session is lost, and no backup runs past its
/// budget (synchronous backups, `sessionBackupTimeout` = one and a half `operationTimeout`,
/// the budget of one store: a backup past it counts in `BackupsFailed`).
#[test]
fn concurrent_load_on_a_cold_jvm_marks_no_node_down_and_loses_nothing() {
    const CLIENTS: usize = 16;
    const REQUESTS: u64 = 40;
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let attributes = [
        ("memcachedNodes", nodes.as_str()),
        ("storageKeyPrefix", "cold:"),
        ("sessionBackupAsync", "false"),
        ("sessionBackupTimeout", "1500"),
    ];
    let tomcat = Tomcat::start(&Options::msm("a", &attributes));
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            let tomcat = &tomcat;
            scope.spawn(move || {
                let mut browser = Browser::default();
                let mut first: Option<String> = None;
                for expected in 1..=REQUESTS {
                    let response = browser.get(tomcat, "/");
                    assert_eq!(response.status, 200, "{response:?}");
                    assert_eq!(
                        response.field("counter"),
                        Some(expected.to_string().as_str()),
                        "the session lost a change: {response:?}"
                    );
                    let random = response.session().split('-').next().unwrap().to_owned();
                    assert_eq!(
                        first.get_or_insert_with(|| random.clone()),
                        &random,
                        "the session was lost"
                    );
                }
            });
        }
    });
    assert_eq!(tomcat.statistic("BackupsFailed"), 0, "{}", tomcat.log());
    assert_eq!(tomcat.statistic("MemcachedFailovers"), 0);
    let states = tomcat.get("/stats", None);
    let states = states.field("NodeStates").unwrap();
    assert_eq!(states.matches("_up").count(), 2, "{states}");
    let log = tomcat.log();
    assert!(!log.contains("marked down"), "{log}");
}
