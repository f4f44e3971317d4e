//! TLS and memcached's ASCII authentication against Debian's memcached (`-Z`, `-Y`), with
//! certificates made by the test: sessions stored and loaded; a certificate from another
//! authority or for another name refused; TLS against a plain server and plain against a TLS
//! server failing at once with a message saying so; client certificates; wrong or missing
//! credentials naming the node, which is marked down and probed, not hammered.

mod common;

use std::time::{Duration, Instant};

use common::tls::{
    TestCa, authenticated_memcached, credentials_file, secure_memcached, tls_memcached,
};
use common::{Memcached, TempDir, config, eventually, id_on, manager, stat};
use msm::client::{NodeClient, Security};
use msm::runtime::block_on;
use msm::{Error, SessionData, SessionManager};

fn session() -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("user".into(), b"alice".to_vec());
    s
}

/// Stores a session on n1 and reads it back.
fn round_trip(m: &SessionManager) -> Result<(), Error> {
    let id = id_on(m, "n1");
    if let Some(moved) = block_on(m.store(&id, &mut session()))? {
        return Err(Error::Io {
            node: "n1".into(),
            detail: format!("the session moved to {moved:?}: n1 was down"),
        });
    }
    let loaded = block_on(m.load(&id))?.expect("the stored session");
    assert_eq!(loaded.session.attributes["user"], b"alice");
    Ok(())
}

/// What a `set` on `server` fails with, through a client configured with `attributes`.
fn set_error(server: &Memcached, attributes: &[(&str, &str)]) -> Error {
    let config = config(&[server], attributes);
    let security = Security::load(config.tls.as_ref(), config.credentials.as_ref()).unwrap();
    let client = NodeClient::new(
        "n1",
        &server.address(),
        Duration::from_secs(2),
        1,
        Duration::ZERO,
        1 << 20,
    )
    .with_security(security);
    block_on(client.set("probe", b"x", 0)).expect_err("the set should fail")
}

/// Whether the manager sees n1 as down (without sending anything).
fn n1_is_down(m: &SessionManager) -> bool {
    m.stats_text()
        .lines()
        .any(|l| l.starts_with("node_n1 ") && l.ends_with(" down"))
}

fn tls(ca: &str) -> Vec<(&str, &str)> {
    vec![("tls", "true"), ("tlsCaFile", ca)]
}

#[test]
fn sessions_are_stored_and_loaded_over_tls() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(&dir, "ca");
    let server = tls_memcached(&ca.server(&["localhost", "127.0.0.1"]), None);
    let ca_file = ca.file.display().to_string();
    let m = manager(&[&server], &tls(&ca_file));
    round_trip(&m).expect("over TLS");
    assert_eq!(stat(&m, "nodes_marked_down"), 0);
}

#[test]
fn a_certificate_of_another_authority_is_refused_clearly() {
    let dir = TempDir::new("tls-other-ca");
    let (ca, other) = (TestCa::new(&dir, "ca"), TestCa::new(&dir, "other"));
    let server = tls_memcached(&other.server(&["127.0.0.1"]), None);
    let ca_file = ca.file.display().to_string();
    let message = set_error(&server, &tls(&ca_file)).to_string();
    assert!(message.contains("memcached node n1"), "{message}");
    assert!(message.contains("certificate was refused"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");
    let m = manager(&[&server], &tls(&ca_file));
    eventually("the manager marks the node down", || n1_is_down(&m));
}

#[test]
fn the_host_name_is_checked_and_can_be_named() {
    let dir = TempDir::new("tls-name");
    let ca = TestCa::new(&dir, "ca");
    let server = tls_memcached(&ca.server(&["cache.example.com"]), None);
    let ca_file = ca.file.display().to_string();
    let message = set_error(&server, &tls(&ca_file)).to_string();
    assert!(message.contains("certificate was refused"), "{message}");
    assert!(message.contains("not valid for name"), "{message}");

    let mut named = tls(&ca_file);
    named.push(("tlsServerName", "cache.example.com"));
    round_trip(&manager(&[&server], &named)).expect("the certificate's name, configured");
}

#[test]
fn tls_against_a_plain_server_fails_at_once_saying_so() {
    let dir = TempDir::new("tls-plain");
    let ca = TestCa::new(&dir, "ca");
    let server = Memcached::start();
    let ca_file = ca.file.display().to_string();
    let error = set_error(&server, &tls(&ca_file));
    // Not a timeout: the server's plain answer ends the handshake.
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("TLS handshake failed"), "{message}");
    assert!(message.contains("does the server speak TLS"), "{message}");
}

#[test]
fn plain_against_a_tls_server_fails_at_once_saying_so() {
    let dir = TempDir::new("plain-tls");
    let ca = TestCa::new(&dir, "ca");
    let server = tls_memcached(&ca.server(&["127.0.0.1"]), None);
    let error = set_error(&server, &[]);
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("memcached node n1"), "{message}");
    assert!(message.contains("expects TLS"), "{message}");
}

#[test]
fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let dir = TempDir::new("tls-client");
    let ca = TestCa::new(&dir, "ca");
    let server = tls_memcached(&ca.server(&["127.0.0.1"]), Some(&ca));
    let ca_file = ca.file.display().to_string();
    let message = set_error(&server, &tls(&ca_file)).to_string();
    assert!(message.contains("refused the TLS connection"), "{message}");
    assert!(message.contains("client certificate"), "{message}");

    let client = ca.client("tomcat1");
    let (cert, key) = (
        client.cert.display().to_string(),
        format!("file:{}", client.key.display()),
    );
    let mut with = tls(&ca_file);
    with.extend([
        ("tlsClientCertificateFile", cert.as_str()),
        ("tlsClientKey", key.as_str()),
    ]);
    round_trip(&manager(&[&server], &with)).expect("with a client certificate");
}

#[test]
fn a_tls_node_that_dies_is_marked_down_at_once() {
    let dir = TempDir::new("tls-dies");
    let ca = TestCa::new(&dir, "ca");
    let mut server = tls_memcached(&ca.server(&["127.0.0.1"]), None);
    let ca_file = ca.file.display().to_string();
    let m = manager(&[&server], &tls(&ca_file));
    round_trip(&m).expect("over TLS");
    server.kill();
    eventually("the node is marked down without a request", || {
        stat(&m, "nodes_marked_down") == 1
    });
    assert_eq!(stat(&m, "failed_operations"), 0, "no request met it");
    server.restart();
    eventually("the node is probed back", || {
        stat(&m, "nodes_recovered") == 1
    });
    round_trip(&m).expect("over TLS again");
}

#[test]
fn sessions_are_stored_with_memcached_authentication() {
    let dir = TempDir::new("auth");
    let server = authenticated_memcached(&dir, "msm", "s3cret-pw");
    let credentials = credentials_file(&dir, "msm", "s3cret-pw");
    let m = manager(&[&server], &[("memcachedCredentials", &credentials)]);
    round_trip(&m).expect("authenticated");
    assert_eq!(stat(&m, "nodes_marked_down"), 0);
}

#[test]
fn wrong_credentials_name_the_node_which_is_down_and_probed_not_hammered() {
    let dir = TempDir::new("auth-wrong");
    let server = authenticated_memcached(&dir, "msm", "s3cret-pw");
    let credentials = credentials_file(&dir, "msm", "wrong-pw");
    let attributes = [("memcachedCredentials", credentials.as_str())];
    let message = set_error(&server, &attributes).to_string();
    assert!(message.contains("memcached node n1"), "{message}");
    assert!(message.contains("authentication refused"), "{message}");
    assert!(message.contains("memcachedCredentials"), "{message}");
    assert!(!message.contains("pw"), "no password in {message}");
    let m = manager(&[&server], &attributes);
    eventually("the manager marks the node down", || n1_is_down(&m));

    // Requests meanwhile do not reach it; only the probe does, once per nodeProbeInterval
    // (50 ms here).
    let before = server.stat_authenticated("msm", "s3cret-pw", "total_connections");
    let start = Instant::now();
    for _ in 0..200 {
        let _ = block_on(m.store(&id_on(&m, "n1"), &mut session()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let probes = start.elapsed().as_millis() as u64 / 50 + 1;
    let after = server.stat_authenticated("msm", "s3cret-pw", "total_connections");
    assert!(
        after - before <= probes + 2,
        "{} connections for {probes} probes",
        after - before
    );
    assert_eq!(stat(&m, "nodes_marked_down"), 1);
}

#[test]
fn a_node_requiring_authentication_without_credentials_says_so() {
    let dir = TempDir::new("auth-missing");
    let server = authenticated_memcached(&dir, "msm", "s3cret-pw");
    let message = set_error(&server, &[]).to_string();
    assert!(message.contains("memcached node n1"), "{message}");
    assert!(message.contains("requires authentication"), "{message}");
    let m = manager(&[&server], &[]);
    eventually("the manager marks the node down", || n1_is_down(&m));
}

#[test]
fn tls_and_authentication_together() {
    let dir = TempDir::new("tls-auth");
    let ca = TestCa::new(&dir, "ca");
    let server = ca.server(&["127.0.0.1"]);
    let server = secure_memcached(&dir, &server, "msm", "s3cret-pw");
    let credentials = credentials_file(&dir, "msm", "s3cret-pw");
    let ca_file = ca.file.display().to_string();
    let mut attributes = tls(&ca_file);
    attributes.push(("memcachedCredentials", &credentials));
    round_trip(&manager(&[&server], &attributes)).expect("TLS and authentication");
}
