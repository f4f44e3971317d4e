//! End to end, broadcast session events (`sessionEvents="broadcast"`) in real Tomcats against
//! real memcached: what happens to a session on one Tomcat (created, attributes added,
//! replaced and removed, destroyed) reaches the session listeners of every other Tomcat of the
//! context, in order, once, with the attributes' values (`broadcastValues="true"`); a Tomcat
//! that starts later hears only what happens after its start. What each Tomcat heard is read
//! from the lines the demo's `SessionEvents` listener prints.

mod common;

use std::time::{Duration, Instant};

use common::tomcat::{Browser, Options, Tomcat, sticky_attributes, storage};
use common::{Memcached, node_list};

/// A Tomcat broadcasting events with their values, polling every 100 ms.
fn tomcat(route: &str, nodes: &str) -> Tomcat {
    let attributes = sticky_attributes(
        "broadcast:",
        nodes,
        &[
            ("sessionEvents", "broadcast"),
            ("broadcastPollInterval", "100"),
            ("broadcastValues", "true"),
        ],
    );
    Tomcat::start(&Options::msm(route, &attributes))
}

/// The event lines a Tomcat printed for `session`, in its order: `what detail`.
fn lines(tomcat: &Tomcat, session: &str) -> Vec<String> {
    tomcat
        .stdout()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.strip_prefix("EVENT ")?.split(' ').collect();
            assert_eq!(fields.len(), 3, "{line}");
            (storage(fields[1]) == session).then(|| format!("{} {}", fields[0], fields[2]))
        })
        .collect()
}

/// Waits (at most 10 s) until `tomcat` printed `want` for `session`, then asserts it printed
/// exactly that, and nothing more a moment later.
fn assert_heard(tomcat: &Tomcat, route: &str, session: &str, want: &[&str]) {
    let start = Instant::now();
    while lines(tomcat, session).len() < want.len() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        lines(tomcat, session),
        want,
        "what {route} printed of {session}"
    );
}

#[test]
fn every_tomcat_hears_the_others_events_in_order_and_a_late_one_only_later_events() {
    let m1 = Memcached::start();
    let nodes = node_list(&[&m1]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| tomcat("a", &nodes));
        let b = s.spawn(|| tomcat("b", &nodes));
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut browser = Browser::default();
    for value in 1..=5 {
        let set = browser.get(&a, &format!("/set?name=x&value={value}"));
        assert_eq!(set.status, 200, "{set:?}");
    }
    let session = storage(browser.cookie.as_deref().unwrap()).to_owned();
    let before_c = [
        "created -",
        "attribute-added x=1",
        "attribute-replaced x=2",
        "attribute-replaced x=3",
        "attribute-replaced x=4",
        "attribute-replaced x=5",
    ];
    assert_heard(&b, "b", &session, &before_c);

    let c = tomcat("c", &nodes);
    for path in ["/set?name=x&value=6", "/set?name=y&value=7", "/invalidate"] {
        let response = browser.get(&a, path);
        assert_eq!(response.status, 200, "{response:?}");
    }
    // Tomcat fires `attributeRemoved` for each attribute of an invalidated session where it
    // ends; the others hear its end.
    let after_c = [
        "attribute-replaced x=6",
        "attribute-added y=7",
        "destroyed -",
    ];
    let heard_by_b: Vec<&str> = before_c.iter().chain(&after_c).copied().collect();
    assert_heard(&b, "b", &session, &heard_by_b);
    assert_heard(&c, "c", &session, &after_c);
    // A printed its own events once, as they happened, and heard none of them back.
    let on_a = lines(&a, &session);
    assert_eq!(
        on_a[..heard_by_b.len() - 1],
        heard_by_b[..heard_by_b.len() - 1]
    );
    assert_eq!(
        on_a.iter().filter(|l| l.starts_with("created")).count(),
        1,
        "{on_a:?}"
    );
    for (route, tomcat) in [("a", &a), ("b", &b), ("c", &c)] {
        assert_eq!(
            tomcat.statistic("BroadcastRecordsRefused"),
            0,
            "{route}: nothing refused"
        );
    }
    assert!(a.statistic("BroadcastEventsPublished") >= 9);
    assert_eq!(b.statistic("BroadcastEventsHeard"), 9);
    assert_eq!(c.statistic("BroadcastEventsHeard"), 3);
}
