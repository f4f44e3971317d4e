//! End to end: real Tomcats in their own JVMs, the demo web application, real memcached, HTTP
//! requests with cookies, and Tomcats and memcached nodes killed in the middle.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use common::tomcat::{
    Browser, Options, Started, Tomcat, Variant, node_of, sticky_attributes, storage,
};
use common::{Memcached, command_counters, eventually, node_list};
use msm::envelope::Codec;

const PREFIX: &str = "e2e:";

fn attributes<'a>(nodes: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    sticky_attributes(PREFIX, nodes, extra)
}

fn tomcat(route: &str, nodes: &str, extra: &[(&str, &str)]) -> Tomcat {
    Tomcat::start(&Options::msm(route, &attributes(nodes, extra)))
}

/// Creates sessions until one lives on `node`; returns its id.
fn session_on(tomcat: &Tomcat, node: &str) -> String {
    for _ in 0..20 {
        let id = tomcat.get("/", None).new_session.expect("a new session");
        if node_of(&id) == node {
            return id;
        }
    }
    panic!("no session landed on {node}");
}

#[test]
fn a_session_survives_its_tomcat_and_takes_the_new_route() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut a = tomcat("a", &nodes, &[]);
    let b = tomcat("b", &nodes, &[]);

    let id = a.get("/", None).new_session.expect("session created on a");
    assert!(id.ends_with(".a"), "{id}");
    a.get("/", Some(&id));
    a.get("/set?name=user&value=alice", Some(&id));
    a.kill();

    let response = b.get("/", Some(&id));
    assert_eq!(response.field("counter"), Some("3"), "{response:?}");
    assert_eq!(response.field("tomcat"), Some("b"));
    let taken_over = response.new_session.expect("a new cookie with b's route");
    assert_eq!(taken_over, format!("{}.b", storage(&id)));
    assert_eq!(
        b.get("/get?name=user", Some(&taken_over)).field("user"),
        Some("alice")
    );
    // The key strips the route: one copy, under the same key, nothing left behind.
    let server = if node_of(&id) == "n1" { &m1 } else { &m2 };
    let key = format!("{PREFIX}{}", storage(&id));
    assert!(server.has(&key));
    assert_eq!(
        m1.item_count() + m2.item_count(),
        4,
        "session and id reservation only, and the shared node list on each node"
    );
}

/// The same with sessions stored attribute by attribute: the Tomcat taking over reads every
/// attribute, and its own changes go on from there.
#[test]
fn a_session_stored_attribute_by_attribute_survives_its_tomcat() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let split = [("updateGranularity", "attribute")];
    let mut a = tomcat("a", &nodes, &split);
    let b = tomcat("b", &nodes, &split);

    let id = a.get("/", None).new_session.expect("session created on a");
    a.get("/", Some(&id));
    a.get("/set?name=user&value=alice", Some(&id));
    a.kill();

    let response = b.get("/", Some(&id));
    assert_eq!(response.field("counter"), Some("3"), "{response:?}");
    let taken_over = response.new_session.expect("a new cookie with b's route");
    b.get("/set?name=cart&value=books", Some(&taken_over));
    let response = b.get("/get?name=user", Some(&taken_over));
    assert_eq!(response.field("user"), Some("alice"));
    assert_eq!(response.field("counter"), Some("3"));
    let response = b.get("/get?name=cart", Some(&taken_over));
    assert_eq!(response.field("cart"), Some("books"));
}

/// A redeployment in place (the context reloaded: its manager stopped and started again in the
/// same JVM, the native library already loaded) logs nobody out: at stop the sessions are
/// written to memcached (asynchronous backups flushed), and after it they are read back under
/// the same id, again and again.
#[test]
fn a_reloaded_context_keeps_every_session() {
    let server = Memcached::start();
    let mut a = tomcat(
        "a",
        &node_list(&[&server]),
        &[("sessionBackupAsync", "true")],
    );
    // Each session with the counter it has reached.
    let mut sessions: Vec<(String, u32)> = (0..20)
        .map(|_| (a.get("/", None).new_session.expect("a new session"), 1))
        .collect();
    let alice = sessions[0].0.clone();
    a.get("/set?name=user&value=alice", Some(&alice));
    for reload in 1..=3 {
        a.reload();
        for (id, counter) in &mut sessions {
            let response = a.get("/", Some(id));
            *counter += 1;
            assert_eq!(
                response.field("counter"),
                Some(counter.to_string().as_str()),
                "reload {reload}: {response:?}"
            );
            assert!(response.new_session.is_none(), "the same id: {response:?}");
        }
        assert_eq!(
            a.get("/get?name=user", Some(&alice)).field("user"),
            Some("alice")
        );
        // The statistics are registered again, with the new native manager's counts.
        assert!(a.statistic("RequestsWithSession") >= 20);
        sessions.push((a.get("/", None).new_session.expect("a new session"), 1));
    }
    assert!(!a.log().contains("SEVERE"), "{}", a.log());
}

#[test]
fn only_modified_sessions_are_written() {
    let server = Memcached::start();
    let tomcat = tomcat("a", &node_list(&[&server]), &[]);
    let id = tomcat.get("/", None).new_session.unwrap();
    let sets = server.stat("cmd_set");
    for _ in 0..10 {
        assert_eq!(tomcat.get("/read", Some(&id)).field("counter"), Some("1"));
    }
    assert_eq!(
        server.stat("cmd_set"),
        sets,
        "reading requests wrote to memcached"
    );
    tomcat.get("/", Some(&id));
    assert_eq!(
        server.stat("cmd_set"),
        sets + 1,
        "a modifying request writes once"
    );
}

/// The manager's `SerializationTimeCount`: how many times it serialized a session.
fn serializations(tomcat: &Tomcat) -> u64 {
    let stats = tomcat.get("/stats", None);
    stats
        .field("SerializationTimeCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("SerializationTimeCount in {stats:?}"))
}

/// A value changed in place (a list the application appends to without `setAttribute`) is
/// backed up by the request that changed it, and another Tomcat takes it over; a request that
/// is handed no such value serializes nothing, and one that is handed it unchanged writes
/// nothing.
#[test]
fn a_value_changed_in_place_is_backed_up_and_reads_serialize_nothing() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let mut a = tomcat("a", &nodes, &[]);
    let b = tomcat("b", &nodes, &[]);
    let id = a.get("/append?value=x", None).new_session.unwrap();
    let sets = server.stat("cmd_set");
    a.get("/append?value=y", Some(&id));
    assert_eq!(
        server.stat("cmd_set"),
        sets + 1,
        "the change in place was written"
    );

    let serialized = serializations(&a);
    for _ in 0..5 {
        assert_eq!(a.get("/read", Some(&id)).field("counter"), Some("null"));
    }
    assert_eq!(
        serializations(&a),
        serialized,
        "reads handed no list serialized the session"
    );
    let response = a.get("/get?name=list", Some(&id));
    assert!(response.body.contains("list=[x, y]"), "{response:?}");
    assert_eq!(
        serializations(&a),
        serialized + 1,
        "the list was handed out"
    );
    assert_eq!(server.stat("cmd_set"), sets + 1, "it was not changed");

    a.get("/append?value=z", Some(&id));
    assert_eq!(server.stat("cmd_set"), sets + 2);

    // A request ends while another holds the list it appends to later: the later end still
    // backs the change up.
    std::thread::scope(|scope| {
        let late = scope.spawn(|| a.get("/append?value=late&ms=1500", Some(&id)));
        std::thread::sleep(std::time::Duration::from_millis(500));
        a.get("/read", Some(&id));
        assert_eq!(late.join().unwrap().status, 200);
    });
    a.kill();
    let response = b.get("/get?name=list", Some(&id));
    assert!(
        response.body.contains("list=[x, y, z, late]"),
        "{response:?}"
    );
}

#[test]
fn asynchronous_backups_reach_memcached() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let mut a = tomcat("a", &nodes, &[("sessionBackupAsync", "true")]);
    let id = a.get("/", None).new_session.unwrap();
    for _ in 0..4 {
        a.get("/", Some(&id));
    }
    // Five changes, five versions (a write waiting behind another may be replaced by a newer one,
    // but the last one always lands).
    let key = format!("{PREFIX}{}", storage(&id));
    let random = storage(&id).split('-').next().unwrap().to_owned();
    let codec = Codec::new(None, 8 << 20, PREFIX);
    eventually("the fifth version is in memcached", || {
        server
            .get(&key)
            .and_then(|value| codec.decode(&random, &value).ok())
            .is_some_and(|session| session.version == 5)
    });
    a.kill();
    let b = tomcat("b", &nodes, &[]);
    assert_eq!(b.get("/read", Some(&id)).field("counter"), Some("5"));
}

#[test]
fn a_dead_memcached_node_moves_the_session_and_reissues_the_cookie() {
    let (mut m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2, &m3]);
    let tomcat = tomcat("a", &nodes, &[("failoverNodes", "n2")]);
    let old = session_on(&tomcat, "n1");
    let mut browser = Browser::with_cookie(&old);
    browser.get(&tomcat, "/");
    m1.kill();

    // memcached closed every connection as it died, and the manager's watch of the node saw it
    // (within milliseconds; waited for, as other Tomcats of the suite may hold the cores): the
    // next request moves the session and sends the new cookie. Nothing is lost.
    let down = format!("node_n1_{}_down", m1.address());
    eventually("n1 reported down", || {
        let stats = tomcat.get("/stats", None);
        stats.field("NodeStates").is_some_and(|s| s.contains(&down))
    });
    let first = browser.get(&tomcat, "/");
    let moved = first
        .new_session
        .clone()
        .expect("the first response after the kill moves the session");
    assert_eq!(
        storage(&moved).split('-').next(),
        storage(&old).split('-').next()
    );
    assert_eq!(node_of(&moved), "n3");
    assert_eq!(first.field("counter"), Some("3"));
    for expected in 4..=5 {
        let response = browser.get(&tomcat, "/");
        assert_eq!(
            response.field("counter"),
            Some(expected.to_string().as_str())
        );
    }
    let moved = browser.cookie.clone().unwrap();
    assert_eq!(node_of(&moved), "n3", "the failover node n2 is used last");
    assert!(moved.ends_with(".a"));
    assert!(m3.has(&format!("{PREFIX}{}", storage(&moved))));
    assert!(
        tomcat.log().contains("memcached node marked down"),
        "core records reach JULI"
    );
}

/// A reload, then the death of the node holding a session (the soak's order): the session,
/// read back from memcached after the reload, moves with the very next request, a reading one,
/// which sends the new cookie; nothing is lost.
#[test]
fn after_a_reload_a_dead_node_still_moves_the_session_with_the_next_request() {
    let (mut m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut tomcat = tomcat("a", &nodes, &[("sessionBackupAsync", "true")]);
    let old = session_on(&tomcat, "n1");
    let mut browser = Browser::with_cookie(&old);
    browser.get(&tomcat, "/");
    tomcat.reload();
    assert_eq!(browser.get(&tomcat, "/read").field("counter"), Some("2"));
    browser.get(&tomcat, "/");
    m1.kill();

    let first = browser.get(&tomcat, "/read");
    assert_eq!(first.field("counter"), Some("3"), "{first:?}");
    let moved = first.new_session.clone().unwrap_or_else(|| {
        panic!("the first response after the kill moves the session: {first:?}")
    });
    assert_eq!(node_of(&moved), "n2");
    for expected in 4..=5 {
        let response = browser.get(&tomcat, "/");
        assert_eq!(
            response.field("counter"),
            Some(expected.to_string().as_str()),
            "{response:?}"
        );
    }
}

/// With every memcached node down, a sticky Tomcat serves its sessions from memory and still
/// creates new ones; when the nodes come back empty it writes them back by itself, so both the
/// old session (with the changes made during the outage) and the one created during it survive
/// the Tomcat's death afterwards.
#[test]
fn with_every_node_down_sessions_work_from_memory_and_survive_a_later_failover() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut a = tomcat("a", &nodes, &[]);
    let b = tomcat("b", &nodes, &[]);
    let mut before = Browser::default();
    before.get(&a, "/");
    m1.kill();
    m2.kill();
    for expected in 2..=6 {
        let response = before.get(&a, "/");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.field("counter"),
            Some(expected.to_string().as_str())
        );
    }
    let mut during = Browser::default();
    assert_eq!(during.get(&a, "/").status, 200);
    assert!(during.cookie.is_some(), "new sessions are still created");
    assert_eq!(during.get(&a, "/").field("counter"), Some("2"));

    m1.restart();
    m2.restart();
    let keys: Vec<String> = [&before, &during]
        .iter()
        .map(|browser| format!("{PREFIX}{}", storage(browser.cookie.as_deref().unwrap())))
        .collect();
    eventually(
        "Tomcat a writes both sessions back, requests or not",
        || keys.iter().all(|key| m1.has(key) || m2.has(key)),
    );
    a.kill();
    for (browser, counter) in [(&mut before, "7"), (&mut during, "3")] {
        let response = browser.get(&b, "/");
        assert_eq!(response.field("tomcat"), Some("b"), "{response:?}");
        assert_eq!(response.field("counter"), Some(counter), "{response:?}");
    }
}

#[test]
fn ignored_uris_never_touch_memcached() {
    let server = Memcached::start();
    let tomcat = tomcat(
        "a",
        &node_list(&[&server]),
        &[("requestUriIgnorePattern", r".*\.(css|png|js)")],
    );
    let id = tomcat.get("/", None).new_session.unwrap();
    let before = command_counters(&server.stats());
    // This URI changes the session in the demo application, but it is ignored.
    for _ in 0..5 {
        assert_eq!(tomcat.get("/static/site.css", Some(&id)).status, 200);
    }
    assert_eq!(command_counters(&server.stats()), before);
}

#[test]
fn invalidation_removes_the_keys() {
    let server = Memcached::start();
    let tomcat = tomcat("a", &node_list(&[&server]), &[]);
    let id = tomcat.get("/", None).new_session.unwrap();
    let key = format!("{PREFIX}{}", storage(&id));
    assert!(server.has(&key));
    assert!(server.has(&format!("id:{key}")));
    tomcat.get("/invalidate", Some(&id));
    assert!(!server.has(&key));
    assert!(!server.has(&format!("id:{key}")));
}

#[test]
fn a_login_changes_the_id_and_removes_the_old_copy() {
    let server = Memcached::start();
    let tomcat = tomcat("a", &node_list(&[&server]), &[]);
    let id = tomcat.get("/", None).new_session.unwrap();
    let response = tomcat.get("/login", Some(&id));
    let new_id = response.new_session.expect("a new id after login");
    assert_ne!(storage(&new_id), storage(&id));
    assert_eq!(tomcat.get("/", Some(&new_id)).field("counter"), Some("2"));
    assert!(!server.has(&format!("{PREFIX}{}", storage(&id))));
    assert!(server.has(&format!("{PREFIX}{}", storage(&new_id))));
}

#[test]
fn forged_cookies_get_a_new_session_and_never_become_keys() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let tomcat = tomcat("a", &nodes, &[]);
    let other = Tomcat::start(&Options::msm(
        "a",
        &[
            ("memcachedNodes", nodes.as_str()),
            ("storageKeyPrefix", "othercontext:"),
        ],
    ));
    let foreign = other.get("/", None).new_session.unwrap();
    let forged = [
        "0123456789ABCDEF0123456789ABCDEF-n1.a".to_owned(),
        foreign.clone(),
        "0123456789ABCDEF0123456789ABCDEF-n1%0D%0Aflush_all".to_owned(),
        format!("{}-n1", "A".repeat(300)),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
    ];
    for cookie in &forged {
        let response = tomcat.get("/", Some(cookie));
        assert_eq!(response.status, 200);
        let issued = response.new_session.as_deref().expect("a new session");
        assert_ne!(issued, cookie);
        assert_eq!(
            response.field("counter"),
            Some("1"),
            "nothing of the forged session"
        );
    }
    assert_eq!(server.stat("cmd_flush"), 0);
    assert!(!server.has(&format!("{PREFIX}0123456789ABCDEF0123456789ABCDEF-n1")));
    assert!(!server.has(&format!("{PREFIX}{}", storage(&foreign))));
}

#[test]
fn misconfiguration_stops_the_context_naming_the_attribute() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for (attribute, value) in [
        ("colour", "blue"),
        ("operationTimeout", "soon"),
        ("failoverNodes", "n7"),
        ("lockFailure", "sometimes"),
    ] {
        let options = Options::msm("a", &attributes(&nodes, &[(attribute, value)]));
        match Tomcat::try_start(&options) {
            Started::Failed(log) => {
                assert!(log.contains(&format!("`{attribute}`")), "{log}");
                assert!(log.contains(&format!("`{value}`")), "{log}");
            }
            Started::Ready(_) => panic!("the context started with {attribute}={value}"),
        }
    }
}

#[test]
fn a_missing_native_library_is_one_clear_error_naming_the_path() {
    let server = Memcached::start();
    let mut options = Options::msm("a", &attributes(&node_list(&[&server]), &[]));
    options
        .jvm
        .push("-Dmsm.native.library=/nonexistent/libmsm.so".to_owned());
    match Tomcat::try_start(&options) {
        Started::Failed(log) => {
            assert!(log.contains("/nonexistent/libmsm.so"), "{log}");
            assert!(log.contains("cannot load the msm native library"), "{log}");
        }
        Started::Ready(_) => panic!("started without its native library"),
    }
}

#[test]
fn tomcat9_takes_over_sessions_too() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let options = |route: &str| Options {
        variant: Variant::Tomcat9,
        ..Options::msm(route, &attributes(&nodes, &[]))
    };
    let mut a = Tomcat::start(&options("a"));
    let id = a.get("/", None).new_session.unwrap();
    a.get("/", Some(&id));
    a.kill();
    let b = Tomcat::start(&options("b"));
    let response = b.get("/", Some(&id));
    assert_eq!(response.field("counter"), Some("3"));
    assert_eq!(response.new_session, Some(format!("{}.b", storage(&id))));
}

#[test]
fn an_unmodified_session_has_its_memcached_expiry_renewed() {
    let server = Memcached::start();
    // Tomcat keeps the session 8 s; memcached a quarter longer, renewed after a quarter of it.
    let tomcat = tomcat("a", &node_list(&[&server]), &[("maxInactiveInterval", "8")]);
    let id = tomcat.get("/", None).new_session.unwrap();
    let key = format!("{PREFIX}{}", storage(&id));
    assert!(server.ttl(&key).unwrap() <= 10);
    let (sets, touches) = (server.stat("cmd_set"), server.stat("cmd_touch"));
    tomcat.get("/read", Some(&id));
    assert_eq!(server.stat("cmd_touch"), touches, "too early to renew");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(server.ttl(&key).unwrap() <= 8);
    tomcat.get("/read", Some(&id));
    assert_eq!(server.stat("cmd_touch"), touches + 1, "renewed");
    assert!(server.ttl(&key).unwrap() >= 9, "expiry pushed back");
    assert_eq!(server.stat("cmd_set"), sets, "renewed without rewriting");
}

#[test]
fn jmx_shows_statistics_and_replaces_the_node_list() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let tomcat = tomcat("a", &node_list(&[&m1]), &[]);
    let mut browser = Browser::default();
    browser.get(&tomcat, "/");
    browser.get(&tomcat, "/read");
    browser.get(&tomcat, "/");
    let stats = tomcat.get("/stats", None);
    let number = |name: &str| -> u64 {
        stats
            .field(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {stats:?}"))
    };
    assert_eq!(number("RequestsWithSession"), 3);
    assert_eq!(number("BackupsWritten"), 2);
    assert_eq!(number("BackupsSkipped"), 1);
    assert_eq!(number("BackupTimeCount"), 2);
    assert_eq!(
        number("SerializationTimeCount"),
        2,
        "the unchanged request sent no content"
    );
    assert!(number("BackupTimeMax") >= number("BackupTimeMin"));
    assert_eq!(
        number("RequestTimeCount"),
        3,
        "every request ended is timed"
    );
    for timing in [
        "RequestTime",
        "BackupTime",
        "LoadTime",
        "StoreTime",
        "LockWaitTime",
    ] {
        let percentiles =
            ["Min", "P50", "P99", "P999", "Max"].map(|p| number(&format!("{timing}{p}")));
        assert!(percentiles.is_sorted(), "{timing}: {percentiles:?}");
    }
    for name in [
        "TomcatFailovers",
        "MemcachedFailovers",
        "LoadTimeAvg",
        "BackupsFailed",
        "CorruptValues",
    ] {
        number(name);
    }
    assert!(stats.field("NodeStates").unwrap().contains("node_n1"));

    let both = format!("n1:{},n2:{}", m1.address(), m2.address());
    assert_eq!(
        tomcat
            .get(&format!("/nodes?value={both}"), None)
            .field("nodes"),
        Some(both.as_str())
    );
    let states = tomcat.get("/stats", None);
    assert!(
        states.field("NodeStates").unwrap().contains("node_n2"),
        "{states:?}"
    );
    let on_n2 = (0..6)
        .filter_map(|_| tomcat.get("/", None).new_session)
        .filter(|id| node_of(id) == "n2")
        .count();
    assert!(on_n2 > 0, "new sessions use the added node");
    assert!(m2.item_count() > 0);
}

#[test]
fn a_session_read_for_longer_than_its_lifetime_is_still_taken_over() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let extra = [("maxInactiveInterval", "3")];
    let mut a = tomcat("a", &nodes, &extra);
    // Started now, so that the takeover below does not wait for a JVM to start: on a slow
    // machine that can take longer than the session's lifetime.
    let b = tomcat("b", &nodes, &extra);
    let id = a.get("/", None).new_session.unwrap();
    // Read, never changed, for twice its lifetime: memcached's copy is renewed, not rewritten.
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert_eq!(a.get("/read", Some(&id)).field("counter"), Some("1"));
    }
    a.kill();
    let response = b.get("/", Some(&id));
    assert_eq!(
        response.field("counter"),
        Some("2"),
        "taken over alive: {response:?}"
    );
}
