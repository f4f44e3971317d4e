//! End to end, non-sticky: two Tomcats serve one session in turns, memcached is the store, and
//! locked requests lose no update.

mod common;

use common::tomcat::{Browser, Options, Tomcat, storage};
use common::{Memcached, command_totals, node_list};
use std::time::Duration;

const PREFIX: &str = "e2e:";

fn tomcat(route: &str, nodes: &str, extra: &[(&str, &str)]) -> Tomcat {
    let mut attributes = vec![
        ("memcachedNodes", nodes),
        ("sticky", "false"),
        ("storageKeyPrefix", PREFIX),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "100"),
        ("lockMaxWait", "20000"),
    ];
    attributes.extend_from_slice(extra);
    Tomcat::start(&Options::msm(route, &attributes))
}

/// Creates sessions on `tomcat` until one lives on node n1: a browser holding it.
fn session_on_n1(tomcat: &Tomcat) -> Browser {
    loop {
        let mut candidate = Browser::default();
        candidate.get(tomcat, "/");
        if storage(candidate.cookie.as_deref().unwrap()).ends_with("-n1") {
            return candidate;
        }
    }
}

#[test]
fn a_session_alternates_between_tomcats_with_a_backup_on_the_next_node() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let (a, b) = (tomcat("a", &nodes, &[]), tomcat("b", &nodes, &[]));
    let mut browser = Browser::default();
    for (i, tomcat) in [&a, &b, &a, &b].into_iter().enumerate() {
        let response = browser.get(tomcat, "/");
        assert_eq!(
            response.field("counter"),
            Some((i + 1).to_string().as_str()),
            "{response:?}"
        );
    }
    let id = browser.cookie.clone().unwrap();
    let (primary, backup) = if storage(&id).ends_with("-n1") {
        (&m1, &m2)
    } else {
        (&m2, &m1)
    };
    assert!(primary.has(&format!("{PREFIX}{}", storage(&id))));
    assert!(backup.has(&format!("bak:{PREFIX}{}", storage(&id))));
    assert_eq!(browser.get(&a, "/read").field("counter"), Some("4"));
}

/// A context reloaded in the middle of a session's requests: its manager is stopped and started
/// again, and the session goes on from memcached, changes included (the request listener that
/// writes them is installed again).
#[test]
fn a_reloaded_context_goes_on_with_its_sessions() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let mut a = tomcat("a", &node_list(&[&m1, &m2]), &[]);
    let mut browser = Browser::default();
    let mut expected = 0;
    for _ in 0..3 {
        for _ in 0..2 {
            expected += 1;
            let response = browser.get(&a, "/");
            assert_eq!(
                response.field("counter"),
                Some(expected.to_string().as_str()),
                "{response:?}"
            );
        }
        a.reload();
    }
    assert_eq!(browser.get(&a, "/read").field("counter"), Some("6"));
}

#[test]
fn locked_concurrent_requests_on_two_tomcats_lose_no_update() {
    concurrent_requests_lose_no_update(&[("lockingMode", "all")]);
}

/// Without the lock, requests that change different attributes of one session lose nothing when
/// the session is stored attribute by attribute.
#[test]
fn unlocked_concurrent_requests_changing_different_attributes_lose_no_update() {
    concurrent_requests_lose_no_update(&[
        ("lockingMode", "none"),
        ("updateGranularity", "attribute"),
    ]);
}

/// 200 requests of one session, 8 at a time, alternating between two Tomcats, each setting an
/// attribute of its own: every one is in the session afterwards.
fn concurrent_requests_lose_no_update(extra: &[(&str, &str)]) {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let tomcats = [tomcat("a", &nodes, extra), tomcat("b", &nodes, extra)];
    let mut browser = Browser::default();
    browser.get(&tomcats[0], "/");
    let id = browser.cookie.clone().unwrap();
    const CLIENTS: usize = 8;
    const REQUESTS: usize = 25;
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (tomcats, id) = (&tomcats, &id);
            scope.spawn(move || {
                for request in 0..REQUESTS {
                    let tomcat = &tomcats[(client + request) % 2];
                    let path = format!("/set?name=c{client}r{request}&value=x");
                    let response = tomcat.get(&path, Some(id));
                    assert_eq!(response.status, 200, "{response:?}");
                }
            });
        }
    });
    let attributes = browser
        .get(&tomcats[1], "/read")
        .field("attributes")
        .unwrap()
        .to_owned();
    let names: Vec<&str> = attributes.split(',').collect();
    for client in 0..CLIENTS {
        for request in 0..REQUESTS {
            let name = format!("c{client}r{request}");
            assert!(
                names.contains(&name.as_str()),
                "{name} was lost; the session holds {}",
                names.len()
            );
        }
    }
}

#[test]
fn a_killed_or_hung_primary_node_fails_over_to_the_backup() {
    for hang in [false, true] {
        let (mut m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
        let nodes = node_list(&[&m1, &m2, &m3]);
        let (a, b) = (tomcat("a", &nodes, &[]), tomcat("b", &nodes, &[]));
        let mut browser = session_on_n1(&a);
        browser.get(&b, "/");
        if hang {
            m1.pause();
        } else {
            m1.kill();
        }
        for (expected, tomcat) in [(3, &a), (4, &b), (5, &a)] {
            let response = browser.get(tomcat, "/");
            assert_eq!(
                response.field("counter"),
                Some(expected.to_string().as_str()),
                "hang={hang}: {response:?}"
            );
        }
        let moved = browser.cookie.clone().unwrap();
        assert!(
            storage(&moved).ends_with("-n2"),
            "the second copy's node became primary: {moved}"
        );
        assert!(m2.has(&format!("{PREFIX}{}", storage(&moved))));
        assert!(m3.has(&format!("bak:{PREFIX}{}", storage(&moved))));
        if hang {
            m1.resume();
        }
    }
}

#[test]
fn a_refused_lock_answers_503() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let tomcat = tomcat(
        "a",
        &nodes,
        &[
            ("lockingMode", "all"),
            ("lockFailure", "refuse"),
            ("lockMaxWait", "50"),
        ],
    );
    let mut browser = Browser::default();
    browser.get(&tomcat, "/");
    let id = browser.cookie.clone().unwrap();
    // Another host holds the lock (an `add` of the lock key, as the core does).
    server.set(&format!("lock:{PREFIX}{}", storage(&id)), b"someone else");
    assert_eq!(tomcat.get("/", Some(&id)).status, 503);
    server.raw(
        format!("delete lock:{PREFIX}{}\r\n", storage(&id)).as_bytes(),
        &["DELETED"],
    );
    assert_eq!(tomcat.get("/", Some(&id)).field("counter"), Some("2"));
}

/// Runs two `/slow` requests of one session at once; true when they overlapped in time.
fn overlapped(tomcat: &Tomcat, id: &str, path: &str) -> bool {
    let (first, second) = std::thread::scope(|scope| {
        let one = scope.spawn(|| tomcat.get(path, Some(id)));
        let two = scope.spawn(|| tomcat.get(path, Some(id)));
        (one.join().unwrap(), two.join().unwrap())
    });
    let times = |r: &common::tomcat::Response| -> (u64, u64) {
        let number = |key| {
            r.field(key)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{r:?}"))
        };
        (number("started"), number("ended"))
    };
    let ((s1, e1), (s2, e2)) = (times(&first), times(&second));
    s1 < e2 && s2 < e1
}

#[test]
fn read_only_requests_run_in_parallel_and_locked_ones_do_not() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let pattern = tomcat("a", &nodes, &[("lockingMode", "uriPattern:/cart.*")]);
    let all = tomcat("b", &nodes, &[("lockingMode", "all")]);
    let mut browser = Browser::default();
    browser.get(&pattern, "/");
    let id = browser.cookie.clone().unwrap();
    assert!(
        overlapped(&pattern, &id, "/slow?ms=400"),
        "unlocked reads overlap"
    );
    assert!(
        !overlapped(&all, &id, "/slow?ms=400"),
        "locked requests take turns"
    );

    // auto: a URI locks until one of its requests is seen to change nothing.
    let auto = tomcat("c", &nodes, &[("lockingMode", "auto")]);
    auto.get("/slow?ms=1", Some(&id));
    assert!(
        overlapped(&auto, &id, "/slow?ms=400"),
        "auto learned that /slow only reads"
    );
}

#[test]
fn hostile_cookies_get_new_sessions_in_non_sticky_mode_too() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let a = tomcat("a", &nodes, &[("lockingMode", "all")]);
    for cookie in [
        "0123456789ABCDEF0123456789ABCDEF-n1",
        "0123456789ABCDEF0123456789ABCDEF-n1%0D%0Aflush_all",
        "x",
    ] {
        let response = a.get("/", Some(cookie));
        assert_eq!(response.status, 200);
        assert_eq!(response.field("counter"), Some("1"));
        assert_ne!(response.new_session.as_deref(), Some(cookie));
    }
    assert_eq!(server.stat("cmd_flush"), 0);
    assert!(!server.has(&format!("{PREFIX}0123456789ABCDEF0123456789ABCDEF-n1")));
}

#[test]
fn a_login_and_an_invalidation_leave_no_old_copies() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let (a, b) = (
        tomcat("a", &nodes, &[("lockingMode", "all")]),
        tomcat("b", &nodes, &[("lockingMode", "all")]),
    );
    let mut browser = Browser::default();
    browser.get(&a, "/");
    let before = browser.cookie.clone().unwrap();
    let after = browser
        .get(&b, "/login")
        .new_session
        .expect("a new id after login");
    assert_ne!(storage(&before), storage(&after));
    assert_eq!(browser.get(&a, "/").field("counter"), Some("2"));
    let copies = |id: &str| {
        let key = format!("{PREFIX}{}", storage(id));
        [&m1, &m2]
            .iter()
            .filter(|m| m.has(&key) || m.has(&format!("bak:{key}")))
            .count()
    };
    assert_eq!(copies(&before), 0, "the old id's copies are gone");
    assert_eq!(copies(&after), 2, "session and backup under the new id");
    browser.get(&b, "/invalidate");
    assert_eq!(copies(&after), 0, "invalidation removes both copies");
    assert_eq!(browser.get(&a, "/read").field("session"), Some("none"));
}

#[test]
fn reading_for_longer_than_the_lifetime_keeps_the_session() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let extra = [("maxInactiveInterval", "3"), ("lockingMode", "all")];
    let (a, b) = (tomcat("a", &nodes, &extra), tomcat("b", &nodes, &extra));
    let mut browser = Browser::default();
    browser.get(&a, "/");
    // Read only, for twice the lifetime: each request renews the expiry and counts as access.
    for (i, tomcat) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let response = browser.get(tomcat, "/read");
        assert_eq!(
            response.field("counter"),
            Some("1"),
            "read {i}: {response:?}"
        );
    }
}

#[test]
fn an_unreachable_store_serves_local_copies_and_answers_503_instead_of_a_new_session() {
    let mut server = Memcached::start();
    let nodes = node_list(&[&server]);
    let (a, b) = (tomcat("a", &nodes, &[]), tomcat("b", &nodes, &[]));
    let mut browser = Browser::default();
    browser.get(&a, "/");
    let id = browser.cookie.clone().unwrap();
    server.kill();
    // Tomcat a read the session before: it serves and keeps it from its near cache.
    let response = a.get("/", Some(&id));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.field("counter"), Some("2"), "{response:?}");
    // Tomcat b never had it: 503, not a new session that would orphan the user's.
    let response = b.get("/", Some(&id));
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.new_session.is_none(),
        "the user's session is not replaced"
    );
}

/// Memcached commands of each kind that `requests` requests of one session to `path` sent,
/// `gap` apart, and how many of them left the session's validity record unrenewed.
fn commands(
    tomcat: &Tomcat,
    browser: &mut Browser,
    nodes: &[&Memcached],
    path: &str,
    (requests, gap): (u64, Duration),
) -> ([u64; 4], u64) {
    let skipped = |tomcat: &Tomcat| tomcat.statistic("RenewalsSkipped");
    let (before, skipped_before) = (command_totals(nodes), skipped(tomcat));
    for i in 0..requests {
        std::thread::sleep(gap);
        let response = browser.get(tomcat, &path.replace("{i}", &i.to_string()));
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.new_session.is_none(), "{response:?}");
    }
    let after = command_totals(nodes);
    let totals = std::array::from_fn(|i| after[i] - before[i]);
    (totals, skipped(tomcat) - skipped_before)
}

#[test]
fn each_request_costs_the_fewest_memcached_commands() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let list = node_list(&nodes);
    // Requests a second apart, each after the last renewal's lag; and one after the other.
    let (spaced, close) = ((2, Duration::from_millis(1050)), (20, Duration::ZERO));
    // Expiry events off (the default), then on: once a session's first request indexed it,
    // they cost no command per request. (Tomcat's background poll for expired sessions is held
    // off here, `processExpiresFrequency` being far beyond the test.)
    let events: [(&str, &str); 3] = [
        ("sessionEvents", "expiry"),
        ("eventSweepInterval", "3600"),
        ("processExpiresFrequency", "100000"),
    ];
    for (locking, with_events) in [("none", false), ("all", false), ("none", true)] {
        // A lock adds its `add` and `delete`; a request that never uses its session reads it
        // all the same, in the round trip of the `add` (taking the record from that read).
        let (lock, lock_unused) = ([0, 1, 0, 1], [1, 1, 0, 1]);
        let mut extra = vec![("lockingMode", locking)];
        if with_events {
            extra.extend_from_slice(&events);
        }
        let a = tomcat("a", &list, &extra);
        let mut browser = Browser::default();
        browser.get(&a, "/");
        let locking = if with_events { "none, events" } else { locking };
        let with = |lock: [u64; 4]| {
            move |base: [u64; 4]| -> [u64; 4] {
                if locking != "all" {
                    base
                } else {
                    std::array::from_fn(|i| base[i] + lock[i])
                }
            }
        };
        let (locked, locked_unused) = (with(lock), with(lock_unused));
        let mut per_request = |path, (requests, gap)| {
            let (totals, skipped) = commands(&a, &mut browser, &nodes, path, (requests, gap));
            let per: [u64; 4] = std::array::from_fn(|i| totals[i] / requests);
            assert_eq!(
                per.map(|n| n * requests),
                totals,
                "{locking}: {path}: {totals:?}"
            );
            (per, skipped)
        };
        // [get keys, sets, touches, deletes]. Reading: session and validity record in one
        // get, the record rewritten. Modifying: both copies and the record written. Not using
        // the session: only the record, read and rewritten. The lock's delete goes with the
        // last write.
        assert_eq!(
            per_request("/read", spaced),
            (locked([2, 1, 0, 0]), 0),
            "{locking}: reading"
        );
        assert_eq!(
            per_request("/set?name=k&value={i}", close),
            (locked([2, 3, 0, 0]), 0),
            "{locking}: modifying"
        );
        assert_eq!(
            per_request("/plain", spaced),
            (locked_unused([1, 1, 0, 0]), 0),
            "{locking}: not using the session"
        );
        // One after the other, most requests find the record renewed less than a second ago
        // and leave it: each request renews it or counts as skipped.
        for (path, gets) in [("/read", 2), ("/plain", 1)] {
            let (requests, _) = close;
            let (totals, skipped) = commands(&a, &mut browser, &nodes, path, close);
            let locks = if locking == "all" { requests } else { 0 };
            let gets = if locking == "all" { 2 } else { gets };
            assert_eq!(
                totals,
                [gets * requests, requests - skipped + locks, 0, locks],
                "{locking}: {path}, one after the other ({skipped} skipped)"
            );
            assert!(
                skipped >= requests / 2,
                "{locking}: {path}: only {skipped} of {requests} renewals skipped"
            );
        }
        assert_eq!(browser.get(&a, "/get?name=k").field("k"), Some("19"));
    }
}

/// A request that changed its session through no method and was handed no value that can
/// change in place hands nothing back: the core renews the session as it was read. A value
/// changed in place (a list appended to without `setAttribute`) is still stored, from either
/// Tomcat.
#[test]
fn unchanged_sessions_are_not_serialized_and_values_changed_in_place_are_stored() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let (a, b) = (tomcat("a", &nodes, &[]), tomcat("b", &nodes, &[]));
    let mut browser = Browser::default();
    browser.get(&a, "/append?value=x");
    browser.get(&b, "/append?value=y");
    let serializations = || [&a, &b].map(|t| t.statistic("SerializationTimeCount"));
    let serialized = serializations();
    for tomcat in [&a, &b, &a, &b] {
        let response = browser.get(tomcat, "/read");
        assert_eq!(response.status, 200, "{response:?}");
    }
    assert_eq!(
        serializations(),
        serialized,
        "reads that handed out no list serialized nothing"
    );
    browser.get(&a, "/append?value=z");
    let response = browser.get(&b, "/get?name=list");
    assert!(response.body.contains("list=[x, y, z]"), "{response:?}");
    assert_eq!(serializations()[0], serialized[0] + 1, "the append");
}

#[test]
fn sessions_expire_in_memcached_and_requests_not_using_them_keep_them_alive() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let extra = [("maxInactiveInterval", "3")];
    let (a, b) = (tomcat("a", &nodes, &extra), tomcat("b", &nodes, &extra));
    let mut browser = Browser::default();
    browser.get(&a, "/");
    // For twice its lifetime, only requests that never look at the session: each renews it.
    for tomcat in [&a, &b, &a, &b, &a, &b] {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert_eq!(browser.get(tomcat, "/plain").body.trim(), "plain");
    }
    let response = browser.get(&a, "/read");
    assert_eq!(response.field("counter"), Some("1"), "{response:?}");
    // Then idle for longer than its lifetime: memcached no longer serves it, though no Tomcat
    // held it to expire it.
    std::thread::sleep(std::time::Duration::from_millis(4200));
    let response = browser.get(&b, "/read");
    assert_eq!(response.field("session"), Some("none"), "{response:?}");
}

#[test]
fn a_hung_or_killed_backup_node_is_skipped_and_counted() {
    for hang in [true, false] {
        let (m1, mut m2) = (Memcached::start(), Memcached::start());
        let nodes = node_list(&[&m1, &m2]);
        let a = tomcat("a", &nodes, &[]);
        let mut browser = session_on_n1(&a);
        if hang {
            m2.pause();
        } else {
            m2.kill();
        }
        for expected in 2..=4 {
            let response = browser.get(&a, "/");
            assert_eq!(
                response.field("counter"),
                Some(expected.to_string().as_str()),
                "hang={hang}: {response:?}"
            );
        }
        let stats = a.get("/stats", None);
        let down = format!("node_n2_{}_down", m2.address());
        assert!(
            stats.field("NodeStates").unwrap().contains(&down),
            "hang={hang}: {stats:?}"
        );
        let missed: u64 = stats.field("SecondCopiesMissed").unwrap().parse().unwrap();
        assert!(missed >= 3, "hang={hang}: {stats:?}");
        if hang {
            m2.resume();
        }
    }
}

#[test]
fn error_pages_and_asynchronous_requests_use_the_session_too() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    for locking in ["none", "all"] {
        let extra = [("lockingMode", locking)];
        let (a, b) = (tomcat("a", &nodes, &extra), tomcat("b", &nodes, &extra));
        let mut browser = Browser::default();
        browser.get(&a, "/");
        let id = browser.cookie.clone().unwrap();

        // The error page runs after the request's servlet and valve: it finds the user's
        // session (no new one), and what it changes is stored.
        let response = browser.get(&a, "/missing");
        assert_eq!(response.status, 404, "{response:?}");
        assert_eq!(
            response.field("errors"),
            Some("1"),
            "{locking}: {response:?}"
        );
        assert!(response.new_session.is_none(), "{locking}: {response:?}");
        let response = browser.get(&b, "/get?name=errors");
        assert_eq!(
            response.field("errors"),
            Some("1"),
            "{locking}: {response:?}"
        );

        // An asynchronous request changes its session on another thread, after the valve:
        // stored when the request completes, and its lock held until then.
        let response = browser.get(&a, "/async");
        assert_eq!(
            response.field("async"),
            Some("done"),
            "{locking}: {response:?}"
        );
        let response = browser.get(&b, "/get?name=async");
        assert_eq!(
            response.field("async"),
            Some("done"),
            "{locking}: {response:?}"
        );
        assert_eq!(response.field("counter"), Some("1"));
        assert_eq!(browser.cookie.as_deref(), Some(id.as_str()));
    }
}
