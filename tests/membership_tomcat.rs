//! End to end: a Tomcat started before a memcached node existed serves the sessions another
//! Tomcat stored on that node, through the node list shared in the cluster; then the node is
//! removed through JMX and its sessions move as on a node failure.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use common::Memcached;
use common::tomcat::{Options, Tomcat, node_of, storage};

const PREFIX: &str = "members:";

fn tomcat(route: &str, nodes: &str) -> Tomcat {
    Tomcat::start(&Options::msm(
        route,
        &[
            ("memcachedNodes", nodes),
            ("storageKeyPrefix", PREFIX),
            ("operationTimeout", "500"),
            ("nodeProbeInterval", "100"),
            // A response means the session is in memcached.
            ("sessionBackupAsync", "false"),
            ("sessionBackupTimeout", "2000"),
        ],
    ))
}

#[test]
fn a_tomcat_older_than_a_node_serves_the_sessions_stored_there() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let two = format!("n1:{} n2:{}", m1.address(), m2.address());
    let t1 = tomcat("t1", &two);

    let m3 = Memcached::start();
    let three = format!("{two} n3:{}", m3.address());
    let mut t2 = tomcat("t2", &three);
    let mut sessions: Vec<(String, String)> = Vec::new();
    while sessions
        .iter()
        .filter(|(id, _)| node_of(id) == "n3")
        .count()
        < 3
    {
        assert!(sessions.len() < 60, "too few sessions on n3: {sessions:?}");
        let id = t2.get("/", None).new_session.expect("a new session");
        let user = format!("user{}", sessions.len());
        let response = t2.get(&format!("/set?name=user&value={user}"), Some(&id));
        assert_eq!(response.field("user"), Some(user.as_str()), "{response:?}");
        sessions.push((id, user));
    }
    for (id, _) in sessions.iter().filter(|(id, _)| node_of(id) == "n3") {
        assert!(m3.has(&format!("{PREFIX}{}", storage(id))), "{id} on n3");
    }
    t2.kill();

    let mut taken_over = Vec::new();
    for (id, user) in &sessions {
        let response = t1.get("/get?name=user", Some(id));
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.field("user"),
            Some(user.as_str()),
            "{id}: {response:?}"
        );
        assert_eq!(response.field("counter"), Some("1"), "{response:?}");
        let taken = response.new_session.expect("a new cookie with t1's route");
        assert_eq!(taken, format!("{}.t1", storage(id)), "it stays on its node");
        let response = t1.get("/", Some(&taken));
        assert_eq!(response.field("counter"), Some("2"), "{response:?}");
        taken_over.push(taken);
    }
    let stats = t1.get("/stats", None);
    assert!(
        stats.field("NodeStates").unwrap().contains("node_n3"),
        "{stats:?}"
    );
    assert_eq!(stats.field("NodeListVersion"), Some("2"), "{stats:?}");

    // n3 is removed through JMX: its sessions move to the next node, as on a failure.
    let listed = two.replace(' ', ",");
    assert_eq!(
        t1.get(&format!("/nodes?value={listed}"), None)
            .field("nodes"),
        Some(listed.as_str())
    );
    let stats = t1.get("/stats", None);
    assert_eq!(stats.field("NodeListVersion"), Some("3"), "{stats:?}");
    assert!(!stats.field("NodeStates").unwrap().contains("node_n3"));
    for id in taken_over.iter().filter(|id| node_of(id) == "n3") {
        let response = t1.get("/", Some(id));
        assert_eq!(response.field("counter"), Some("3"), "{response:?}");
        let moved = response
            .new_session
            .expect("a new cookie: the node changed");
        assert_ne!(node_of(&moved), "n3");
        let server = if node_of(&moved) == "n1" { &m1 } else { &m2 };
        assert!(server.has(&format!("{PREFIX}{}", storage(&moved))));
    }
}
