//! A real C host (`examples/c-host/counter.c`: an HTTP server on plain sockets keeping a counter
//! in each session through the C face, non-sticky with locking), two instances of it against
//! two memcached nodes: concurrent increments sent alternately to both are all kept, a killed
//! node loses nothing, and a forged cookie gets a new session; the same with sessions stored
//! attribute by attribute (`updateGranularity=attribute`). The same over TLS with
//! authentication, configured through `msm_config_set` as a C host does.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{TestCa, secure_memcached};
use common::tomcat::{Response, http_get};
use common::{Memcached, TempDir, compile_c, free_port, node_list};

/// One running instance of the example, killed when dropped.
struct Host {
    child: Child,
    port: u16,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Compiles `examples/c-host/counter.c` into `dir`.
fn compile(dir: &TempDir) -> std::path::PathBuf {
    let output = dir.path.join("counter");
    compile_c("examples/c-host/counter.c", &["-D_DEFAULT_SOURCE"], &output);
    output
}

/// Starts the example with more attributes (`name=value` arguments) and environment variables.
fn start_with(
    program: &std::path::Path,
    nodes: &str,
    attributes: &[String],
    env: &[(&str, &str)],
    dir: &TempDir,
) -> Host {
    let port = free_port();
    let stdout = dir.path.join(format!("{port}.out"));
    let child = Command::new(program)
        .args([&port.to_string(), nodes])
        .args(attributes)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(dir.path.join(format!("{port}.err"))).unwrap())
        .spawn()
        .expect("cannot start the C host");
    let started = Instant::now();
    while !std::fs::read_to_string(&stdout)
        .unwrap_or_default()
        .contains("READY")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the C host did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Host { child, port }
}

fn counter(response: &Response) -> u64 {
    assert_eq!(response.status, 200, "{response:?}");
    response.field("counter").unwrap().parse().unwrap()
}

#[test]
fn two_c_hosts_share_sessions_through_the_c_face() {
    share_sessions(&[]);
}

#[test]
fn two_c_hosts_share_sessions_stored_attribute_by_attribute() {
    share_sessions(&["updateGranularity=attribute".to_owned()]);
}

/// Two C hosts configured with `attributes` share a session: 200 concurrent increments kept,
/// the session moved off its node when that node dies, a forged cookie refused.
fn share_sessions(attributes: &[String]) {
    let dir = TempDir::new("c-host");
    let program = compile(&dir);
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let hosts = [
        start_with(&program, &nodes, attributes, &[], &dir),
        start_with(&program, &nodes, attributes, &[], &dir),
    ];

    let first = http_get(hosts[0].port, "/", None);
    assert_eq!(counter(&first), 1);
    let mut cookie = first.new_session.clone().expect("a new session's cookie");

    // 200 concurrent increments, 20 clients of 10 each, alternately to both hosts.
    std::thread::scope(|scope| {
        for client in 0..20 {
            let (hosts, cookie) = (&hosts, &cookie);
            scope.spawn(move || {
                for i in 0..10 {
                    let host = &hosts[(client + i) % 2];
                    let response = http_get(host.port, "/", Some(cookie));
                    assert_eq!(response.status, 200, "{response:?}");
                }
            });
        }
    });
    assert_eq!(
        counter(&http_get(hosts[1].port, "/read", Some(&cookie))),
        201
    );

    // The node holding the session dies: its second copy serves it under a new id.
    if cookie.ends_with("-n1") {
        m1.kill();
    } else {
        m2.kill();
    }
    for (i, host) in hosts.iter().cycle().take(4).enumerate() {
        let response = http_get(host.port, "/", Some(&cookie));
        assert_eq!(counter(&response), 202 + i as u64, "{response:?}");
        if let Some(moved) = response.new_session {
            assert_eq!(
                moved.split('-').next(),
                cookie.split('-').next(),
                "same session"
            );
            cookie = moved;
        }
    }

    // A forged cookie is no session: a new one, with its own cookie.
    let forged = http_get(hosts[0].port, "/", Some("../../etc;flush_all"));
    assert_eq!(counter(&forged), 1);
    assert!(forged.new_session.is_some_and(|id| id != cookie));
}

#[test]
fn c_hosts_share_sessions_over_tls_with_authentication() {
    let dir = TempDir::new("c-host-tls");
    let program = compile(&dir);
    let ca = TestCa::new(&dir, "ca");
    let server = ca.server(&["127.0.0.1"]);
    let (m1, m2) = (
        secure_memcached(&dir, &server, "msm", "c-s3cret"),
        secure_memcached(&dir, &server, "msm", "c-s3cret"),
    );
    let nodes = node_list(&[&m1, &m2]);
    // The credentials come from the environment, as a container would pass them.
    let attributes = [
        "tls=true".to_owned(),
        format!("tlsCaFile={}", ca.file.display()),
        "memcachedCredentials=env:MSM_MEMCACHED_CREDENTIALS".to_owned(),
    ];
    let env = [("MSM_MEMCACHED_CREDENTIALS", "msm:c-s3cret")];
    let hosts = [
        start_with(&program, &nodes, &attributes, &env, &dir),
        start_with(&program, &nodes, &attributes, &env, &dir),
    ];
    let first = http_get(hosts[0].port, "/", None);
    assert_eq!(counter(&first), 1);
    let cookie = first.new_session.clone().expect("a new session's cookie");
    for i in 0..6 {
        let response = http_get(hosts[i % 2].port, "/", Some(&cookie));
        assert_eq!(counter(&response), 2 + i as u64, "{response:?}");
        assert!(
            response.new_session.is_none(),
            "no node failed: {response:?}"
        );
    }

    // Without the credentials the host starts, and the nodes are down: 503, never a new session.
    let without = start_with(&program, &nodes, &attributes[..2], &[], &dir);
    let refused = http_get(without.port, "/", Some(&cookie));
    assert_eq!(refused.status, 503, "{refused:?}");
}
