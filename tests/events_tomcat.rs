//! End to end, distributed session events (`sessionEvents="expiry"`) in real Tomcats against
//! real memcached: every session that ends is announced once in the cluster, with Tomcat's own
//! sequence (`sessionDestroyed`, then the attributes' `valueUnbound` and the attribute
//! listeners' `attributeRemoved`) and the session's last stored attributes. What each Tomcat
//! announced is read from the lines the demo's `SessionEvents` listener prints, which outlive a
//! killed Tomcat.
//!
//! Sessions live 3 s, expiries are swept in buckets of 1 s, and each Tomcat runs its background
//! processing (its own expiry, then the poll for expired sessions) every second.
//!
//! And the events of a session that moves between Tomcats: `sessionCreated` only where it was
//! created, `sessionDidActivate` where it is loaded from memcached, `sessionWillPassivate`
//! before it leaves a Tomcat's memory for memcached (non-sticky: each hand-back; sticky: the
//! Tomcat's stop).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::tomcat::{Browser, Options, Tomcat, sticky_attributes, storage};
use common::{Memcached, node_list};

const PREFIX: &str = "events:";
/// Sessions used across three Tomcats in the first round of the non-sticky test.
const SESSIONS: usize = 50;

/// A Tomcat with expiry events on, short lifetimes and a background run every second.
fn tomcat(route: &str, nodes: &str, sticky: bool) -> Tomcat {
    let events = [
        ("sessionEvents", "expiry"),
        ("eventSweepInterval", "1"),
        ("maxInactiveInterval", "3"),
        ("processExpiresFrequency", "1"),
    ];
    let attributes = if sticky {
        sticky_attributes(PREFIX, nodes, &events)
    } else {
        let mut attributes = vec![
            ("memcachedNodes", nodes),
            ("sticky", "false"),
            ("storageKeyPrefix", PREFIX),
            ("operationTimeout", "300"),
            ("nodeProbeInterval", "100"),
        ];
        attributes.extend_from_slice(&events);
        attributes
    };
    let mut options = Options::msm(route, &attributes);
    options
        .context
        .push(("backgroundProcessorDelay".to_owned(), "1".to_owned()));
    Tomcat::start(&options)
}

/// One line of the demo's `SessionEvents`: what happened, to which session (its storage part),
/// with which tag, on which Tomcat.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    what: String,
    session: String,
    tag: String,
    tomcat: String,
}

/// Everything the Tomcats announced, in their order.
fn events(tomcats: &[(&str, &Tomcat)]) -> Vec<Event> {
    let mut all = Vec::new();
    for (route, tomcat) in tomcats {
        for line in tomcat.stdout().lines() {
            let Some(rest) = line.strip_prefix("EVENT ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split(' ').collect();
            assert_eq!(fields.len(), 3, "{line}");
            all.push(Event {
                what: fields[0].to_owned(),
                session: storage(fields[1]).to_owned(),
                tag: fields[2].to_owned(),
                tomcat: (*route).to_owned(),
            });
        }
    }
    all
}

/// How many of `sessions` were announced destroyed so far.
fn destroyed(tomcats: &[(&str, &Tomcat)], sessions: &BTreeMap<String, String>) -> usize {
    events(tomcats)
        .iter()
        .filter(|e| e.what == "destroyed" && sessions.contains_key(&e.session))
        .count()
}

/// Waits until every session of `sessions` was announced destroyed (or `limit` passed) and
/// returns how long that took.
fn wait_for_ends(
    tomcats: &[(&str, &Tomcat)],
    sessions: &BTreeMap<String, String>,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    while destroyed(tomcats, sessions) < sessions.len() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// The lines of a session's end (the others, `created`, `activated`, `attribute-added`, ...,
/// come from wherever the session was used).
const END: [&str; 3] = ["destroyed", "unbound", "removed"];

/// Asserts that each session of `sessions` (storage part to tag) ended exactly once in the
/// cluster: one `destroyed` with its tag, one `unbound` and one `removed` of its tag, all on the
/// same Tomcat. Returns the Tomcat that announced each.
fn assert_each_ended_once(
    events: &[Event],
    sessions: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut announced = BTreeMap::new();
    for (session, tag) in sessions {
        let its: Vec<&Event> = events
            .iter()
            .filter(|e| &e.session == session && END.contains(&e.what.as_str()))
            .collect();
        for what in END {
            let seen: Vec<&&Event> = its.iter().filter(|e| e.what == what).collect();
            assert_eq!(
                seen.len(),
                1,
                "session {session} ({tag}): `{what}` heard {} times: {its:?}",
                seen.len()
            );
            assert_eq!(&seen[0].tag, tag, "session {session}: {its:?}");
        }
        let tomcat = &its[0].tomcat;
        assert!(
            its.iter().all(|e| &e.tomcat == tomcat),
            "session {session}: its end announced on several Tomcats: {its:?}"
        );
        announced.insert(session.clone(), tomcat.clone());
    }
    announced
}

/// How many sessions each Tomcat announced.
fn by_tomcat(announced: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for tomcat in announced.values() {
        *counts.entry(tomcat.clone()).or_default() += 1;
    }
    counts
}

/// Creates `count` sessions tagged `<label>-<i>`, each on one Tomcat and read on the next:
/// their storage parts and tags.
fn use_sessions(tomcats: &[&Tomcat], label: &str, count: usize) -> BTreeMap<String, String> {
    let mut sessions = BTreeMap::new();
    for i in 0..count {
        let mut browser = Browser::default();
        let tag = format!("{label}-{i}");
        let first = browser.get(tomcats[i % tomcats.len()], &format!("/tag?value={tag}"));
        assert_eq!(first.status, 200, "{first:?}");
        let read = browser.get(tomcats[(i + 1) % tomcats.len()], "/read");
        assert_eq!(read.status, 200, "{read:?}");
        let id = browser.cookie.expect("a session");
        assert_eq!(
            read.session(),
            id,
            "the session was read on the next Tomcat"
        );
        sessions.insert(storage(&id).to_owned(), tag);
    }
    sessions
}

/// The Tomcats as `events` reads them.
fn view(tomcats: &[(String, Tomcat)]) -> Vec<(&str, &Tomcat)> {
    tomcats.iter().map(|(r, t)| (r.as_str(), t)).collect()
}

#[test]
fn non_sticky_sessions_end_once_in_the_cluster_even_when_a_sweeping_tomcat_dies() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut tomcats: Vec<(String, Tomcat)> = ["a", "b", "c"]
        .into_iter()
        .map(|route| (route.to_owned(), tomcat(route, &nodes, false)))
        .collect();
    let all: Vec<&Tomcat> = tomcats.iter().map(|(_, t)| t).collect();

    // An invalidated session: announced at once, where it was invalidated, and never again.
    let mut browser = Browser::default();
    browser.get(all[0], "/tag?value=invalidated");
    assert_eq!(browser.get(all[1], "/invalidate").status, 200);
    let invalidated = BTreeMap::from([(
        storage(browser.cookie.as_deref().unwrap()).to_owned(),
        "invalidated".to_owned(),
    )]);
    let announced = assert_each_ended_once(&events(&view(&tomcats)), &invalidated);
    assert_eq!(announced.into_values().collect::<Vec<_>>(), ["b"]);

    // Round one: sessions used across the three Tomcats, then left to expire.
    let started = Instant::now();
    let first = use_sessions(&all, "one", SESSIONS);
    let used = started.elapsed();
    let waited = wait_for_ends(&view(&tomcats), &first, Duration::from_secs(60));
    // Further sweeps run, and must announce nothing again.
    std::thread::sleep(Duration::from_secs(4));
    let announced = assert_each_ended_once(&events(&view(&tomcats)), &first);
    println!(
        "round one: {SESSIONS} sessions used in {used:?}; all announced {waited:?} after the \
         last use (lifetime 3 s, sweep interval 1 s); by Tomcat: {:?}",
        by_tomcat(&announced)
    );

    // Round two, in two groups 4 s apart: once the first group's ends are announced, the
    // Tomcat that announced most of them is killed (SIGKILL), before the second group's
    // expiries come due; the two others announce the second group. (A Tomcat killed while it
    // fires the listeners of the sessions its last poll was handed loses those: see the
    // README's limits.)
    let started = Instant::now();
    let early = use_sessions(&all, "two-early", SESSIONS / 2);
    std::thread::sleep(Duration::from_secs(4));
    let late = use_sessions(&all, "two-late", SESSIONS / 2);
    let used = started.elapsed();
    let early_ends = wait_for_ends(&view(&tomcats), &early, Duration::from_secs(60));
    let announced = assert_each_ended_once(&events(&view(&tomcats)), &early);
    let counts = by_tomcat(&announced);
    let sweeper = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(tomcat, _)| tomcat.clone())
        .unwrap();
    let killed_at = started.elapsed();
    tomcats
        .iter_mut()
        .find(|(route, _)| *route == sweeper)
        .unwrap()
        .1
        .kill();
    assert_eq!(
        destroyed(&view(&tomcats), &late),
        0,
        "the second group's expiries came due before the kill"
    );
    let second: BTreeMap<String, String> = early.into_iter().chain(late.clone()).collect();
    let waited = wait_for_ends(&view(&tomcats), &second, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    let announced = assert_each_ended_once(&events(&view(&tomcats)), &second);
    for session in late.keys() {
        assert_ne!(
            announced[session], sweeper,
            "a session of the second group was announced by the killed Tomcat"
        );
    }
    println!(
        "round two: {} sessions used in {used:?}; the first group announced {early_ends:?} after \
         the last use ({counts:?}); Tomcat {sweeper} killed {killed_at:?} after the first use; \
         all announced {waited:?} after the kill; by Tomcat: {:?}",
        second.len(),
        by_tomcat(&announced)
    );
}

#[test]
fn a_sticky_session_whose_tomcat_was_killed_ends_once_on_a_survivor() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut tomcats: Vec<(String, Tomcat)> = ["a", "b", "c"]
        .into_iter()
        .map(|route| (route.to_owned(), tomcat(route, &nodes, true)))
        .collect();
    let session = |tomcat: &Tomcat, tag: &str| {
        let mut browser = Browser::default();
        let response = browser.get(tomcat, &format!("/tag?value={tag}"));
        assert_eq!(response.status, 200, "{response:?}");
        let id = storage(browser.cookie.as_deref().unwrap()).to_owned();
        (browser, id)
    };
    // On A, which dies: a survivor announces its expiry.
    let (_, orphan) = session(&tomcats[0].1, "orphan");
    tomcats[0].1.kill();
    // On B, which holds it until it expires there: announced by B, and not by a sweep.
    let (_, held) = session(&tomcats[1].1, "held");
    // On C, invalidated there: announced at once by C, and not at expiry.
    let (mut browser, invalidated) = session(&tomcats[2].1, "invalidated");
    assert_eq!(browser.get(&tomcats[2].1, "/invalidate").status, 200);
    let expiring = BTreeMap::from([
        (orphan.clone(), "orphan".to_owned()),
        (held.clone(), "held".to_owned()),
    ]);
    let waited = wait_for_ends(&view(&tomcats), &expiring, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    let mut all = expiring.clone();
    all.insert(invalidated.clone(), "invalidated".to_owned());
    let announced = assert_each_ended_once(&events(&view(&tomcats)), &all);
    assert_ne!(announced[&orphan], "a");
    assert_eq!(announced[&held], "b");
    assert_eq!(announced[&invalidated], "c");
    println!(
        "sticky: the killed Tomcat's session announced by {}, the held one by {}, both within \
         {waited:?} of their last use (lifetime 3 s, sweep interval 1 s)",
        announced[&orphan], announced[&held]
    );
}

/// A Tomcat for the events of a session that moves: no expiry events, the default lifetime.
fn moving_tomcat(route: &str, nodes: &str, sticky: bool) -> Tomcat {
    let attributes = if sticky {
        sticky_attributes(PREFIX, nodes, &[])
    } else {
        vec![
            ("memcachedNodes", nodes),
            ("sticky", "false"),
            ("storageKeyPrefix", PREFIX),
            ("operationTimeout", "300"),
            ("nodeProbeInterval", "100"),
        ]
    };
    Tomcat::start(&Options::msm(route, &attributes))
}

/// How many times each kind of line of `session` was printed, by Tomcat: (Tomcat, what) to
/// count.
fn counts(tomcats: &[(&str, &Tomcat)], session: &str) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for event in events(tomcats) {
        if event.session == session {
            *counts.entry((event.tomcat, event.what)).or_default() += 1;
        }
    }
    counts
}

/// `counts`'s expectation from a list of (Tomcat, what, count), zero counts left out.
fn expected(lines: &[(&str, &str, usize)]) -> BTreeMap<(String, String), usize> {
    lines
        .iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(t, w, n)| (((*t).to_owned(), (*w).to_owned()), *n))
        .collect()
}

/// Waits until the lines of `session` are `want` (a Tomcat prints a non-sticky session's
/// passivation at the request's end, which may come just after the response), for at most
/// 5 s, then asserts that they are, exactly.
fn assert_lines(tomcats: &[(&str, &Tomcat)], session: &str, want: &[(&str, &str, usize)]) {
    let want = expected(want);
    let start = Instant::now();
    while counts(tomcats, session) != want && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts(tomcats, session), want, "session {session}");
}

#[test]
fn takeover_fires_no_second_created_and_the_tag_hears_passivation_and_activation() {
    let m1 = Memcached::start();
    let nodes = node_list(&[&m1]);
    let (mut a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| moving_tomcat("a", &nodes, true));
        let b = s.spawn(|| moving_tomcat("b", &nodes, true));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut browser = Browser::default();
    assert_eq!(browser.get(&a, "/tag?value=moving").status, 200);
    // A request's backup is a copy, not a move: no passivation.
    assert_eq!(browser.get(&a, "/read").status, 200);
    let session = storage(browser.cookie.as_deref().unwrap()).to_owned();
    assert_lines(
        &[("a", &a), ("b", &b)],
        &session,
        &[("a", "created", 1), ("a", "attribute-added", 1)],
    );

    // A stops gracefully: its session leaves its memory for memcached.
    a.stop();
    let passivated = [
        ("a", "created", 1),
        ("a", "attribute-added", 1),
        ("a", "passivated", 1),
    ];
    assert_lines(&[("a", &a), ("b", &b)], &session, &passivated);

    // B takes it over: activated there, not created; used there, it stays active.
    let read = browser.get(&b, "/read");
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(
        storage(read.session()),
        session,
        "the session was taken over"
    );
    assert_eq!(browser.get(&b, "/read").status, 200);
    let mut taken_over = passivated.to_vec();
    taken_over.push(("b", "activated", 1));
    assert_lines(&[("a", &a), ("b", &b)], &session, &taken_over);
    let tag = events(&[("b", &b)])
        .into_iter()
        .find(|e| e.what == "activated")
        .map(|e| e.tag);
    assert_eq!(tag.as_deref(), Some("moving"), "B has the session's tag");
}

#[test]
fn a_non_sticky_session_is_created_once_and_passivated_and_activated_at_each_move() {
    let m1 = Memcached::start();
    let nodes = node_list(&[&m1]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| moving_tomcat("a", &nodes, false));
        let b = s.spawn(|| moving_tomcat("b", &nodes, false));
        (a.join().unwrap(), b.join().unwrap())
    });
    let tomcats = [("a", &a), ("b", &b)];
    let mut browser = Browser::default();
    // Created on A, then used on B, A, B, A: five requests, each handing the session back.
    assert_eq!(browser.get(&a, "/tag?value=moving").status, 200);
    let session = storage(browser.cookie.as_deref().unwrap()).to_owned();
    for tomcat in [&b, &a, &b, &a] {
        let read = browser.get(tomcat, "/read");
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(storage(read.session()), session);
    }
    // A: created once, passivated at each of its three hand-backs, activated at each of its
    // two loads; B: two loads, two hand-backs; nothing else.
    assert_lines(
        &tomcats,
        &session,
        &[
            ("a", "created", 1),
            ("a", "attribute-added", 1),
            ("a", "passivated", 3),
            ("a", "activated", 2),
            ("b", "passivated", 2),
            ("b", "activated", 2),
        ],
    );
    // Each load is activated before the request uses it, each hand-back passivated after:
    // on each Tomcat, the lines alternate, starting with the first use there.
    for (route, tomcat) in tomcats {
        let moves: Vec<String> = events(&[(route, tomcat)])
            .into_iter()
            .filter(|e| {
                e.session == session && ["activated", "passivated"].contains(&e.what.as_str())
            })
            .map(|e| e.what)
            .collect();
        let first = if route == "a" {
            "passivated"
        } else {
            "activated"
        };
        let alternating: Vec<String> = (0..moves.len())
            .map(|i| {
                let second = if first == "activated" {
                    "passivated"
                } else {
                    "activated"
                };
                (if i % 2 == 0 { first } else { second }).to_owned()
            })
            .collect();
        assert_eq!(moves, alternating, "Tomcat {route}");
    }
}
