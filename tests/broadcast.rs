//! Broadcast session events in the core (`sessionEvents="broadcast"`), against real memcached:
//! what one manager publishes every other manager of the context hears, once, in order; its
//! own events and those published before it started are not heard; a record that is not a
//! manager's is refused and counted; the log moves to the next node when its node dies.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Memcached, eventually, hear, manager, stat};
use msm::runtime::block_on;
use msm::{EventKind, SessionEvent, SessionId, SessionManager};

/// Broadcast, with attribute values.
const BROADCAST: [(&str, &str); 2] = [("sessionEvents", "broadcast"), ("broadcastValues", "true")];

/// An attribute event of the session `id`.
fn attribute(kind: EventKind, id: &SessionId, name: &str, value: &[u8]) -> SessionEvent {
    SessionEvent {
        kind,
        id: id.clone(),
        name: Some(name.to_owned()),
        value: Some(value.to_vec()),
    }
}

/// A session event without attribute.
fn session(kind: EventKind, id: &SessionId) -> SessionEvent {
    SessionEvent {
        kind,
        id: id.clone(),
        name: None,
        value: None,
    }
}

/// Publishes `events` from `m`, as a host does at the end of a request.
fn publish(m: &SessionManager, events: &[SessionEvent]) {
    msm::runtime::handle().block_on(m.publish(events));
}

#[test]
fn every_other_manager_hears_each_event_once_in_order() {
    let server = Memcached::start();
    let a = manager(&[&server], &BROADCAST);
    let b = manager(&[&server], &BROADCAST);
    let c = manager(&[&server], &BROADCAST);
    let id = block_on(a.new_session_id(None)).unwrap();
    let mut published = vec![session(EventKind::Created, &id)];
    for n in 0..20u8 {
        let kind = if n == 0 {
            EventKind::AttributeAdded
        } else {
            EventKind::AttributeReplaced
        };
        published.push(attribute(kind, &id, "counter", &[n]));
    }
    // In several publications, as a host publishes at the end of each request.
    for chunk in published.chunks(3) {
        publish(&a, chunk);
    }
    let last = vec![
        attribute(EventKind::AttributeRemoved, &id, "counter", &[]),
        session(EventKind::Destroyed, &id),
    ];
    publish(&a, &last);
    published.extend(last);

    for (name, m) in [("b", &b), ("c", &c)] {
        let heard = hear(m, published.len());
        assert_eq!(heard, published, "{name} hears every event once, in order");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            block_on(m.broadcast_events()).unwrap(),
            Vec::new(),
            "{name} hears nothing twice"
        );
    }
    assert!(
        block_on(a.broadcast_events()).unwrap().is_empty(),
        "a does not hear its own events"
    );
    let count = published.len() as u64;
    assert_eq!(stat(&a, "broadcast_events_published"), count);
    assert_eq!(stat(&b, "broadcast_events_heard"), count);
    assert_eq!(stat(&a, "broadcast_events_unpublished"), 0);
}

#[test]
fn events_of_several_publishers_arrive_in_publication_order() {
    let server = Memcached::start();
    let a = manager(&[&server], &BROADCAST);
    let b = manager(&[&server], &BROADCAST);
    let listener = manager(&[&server], &BROADCAST);
    let id = block_on(a.new_session_id(None)).unwrap();
    let mut published = Vec::new();
    for n in 0..10u8 {
        let event = attribute(EventKind::AttributeReplaced, &id, "n", &[n]);
        let publisher = if n % 2 == 0 { &a } else { &b };
        publish(publisher, std::slice::from_ref(&event));
        published.push(event);
        // Records of one poll are ordered by their publishers' clocks, in milliseconds.
        std::thread::sleep(Duration::from_millis(3));
    }
    assert_eq!(hear(&listener, published.len()), published);
}

#[test]
fn a_manager_that_starts_later_hears_only_later_events() {
    let server = Memcached::start();
    let a = manager(&[&server], &BROADCAST);
    let id = block_on(a.new_session_id(None)).unwrap();
    publish(&a, &[session(EventKind::Created, &id)]);
    std::thread::sleep(Duration::from_millis(5));
    let late = manager(&[&server], &BROADCAST);
    let after = attribute(EventKind::AttributeAdded, &id, "cart", b"1");
    publish(&a, std::slice::from_ref(&after));
    assert_eq!(hear(&late, 1), vec![after]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(block_on(late.broadcast_events()).unwrap().is_empty());
}

#[test]
fn values_are_published_only_when_asked_for() {
    let server = Memcached::start();
    let names_only = manager(&[&server], &[("sessionEvents", "broadcast")]);
    let listener = manager(&[&server], &BROADCAST);
    let id = block_on(names_only.new_session_id(None)).unwrap();
    let event = attribute(EventKind::AttributeAdded, &id, "cart", b"secret");
    publish(&names_only, std::slice::from_ref(&event));
    let heard = hear(&listener, 1);
    assert_eq!(
        heard,
        vec![SessionEvent {
            value: None,
            ..event
        }]
    );
}

#[test]
fn without_broadcast_nothing_is_published_or_heard() {
    let server = Memcached::start();
    for events in ["off", "expiry"] {
        let a = manager(&[&server], &[("sessionEvents", events)]);
        let b = manager(&[&server], &BROADCAST);
        let id = block_on(a.new_session_id(None)).unwrap();
        let before = server.stat("cmd_set") + server.stat("cmd_get");
        publish(&a, &[session(EventKind::Created, &id)]);
        assert!(block_on(a.broadcast_events()).unwrap().is_empty());
        assert_eq!(
            server.stat("cmd_set") + server.stat("cmd_get"),
            before,
            "{events}: no command sent"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            block_on(b.broadcast_events()).unwrap().is_empty(),
            "{events}"
        );
    }
}

#[test]
fn records_not_written_by_a_manager_of_the_context_are_refused() {
    let server = Memcached::start();
    let a = manager(&[&server], &BROADCAST);
    let b = manager(&[&server], &BROADCAST);
    let other_context = manager(
        &[&server],
        &[
            ("sessionEvents", "broadcast"),
            ("storageKeyPrefix", "other:"),
        ],
    );
    let id = block_on(a.new_session_id(None)).unwrap();
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Garbage framed as a record, then a truncated frame (which ends the reading of its
    // item: nothing after it can be framed), in the previous second's log item.
    let key = format!("broadcast:test:{}", second - 1);
    let mut garbage = 7u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"garbage");
    garbage.extend_from_slice(&100u32.to_le_bytes());
    garbage.extend_from_slice(b"short");
    server.set(&key, &garbage);
    // A genuine record of another context, copied into this context's log.
    publish(&other_context, &[session(EventKind::Created, &id)]);
    let foreign = (second..second + 3)
        .find_map(|s| server.get(&format!("broadcast:other:{s}")))
        .expect("the other context's log item");
    server.set(&format!("broadcast:test:{}", second + 1), &foreign);

    let genuine = session(EventKind::Destroyed, &id);
    publish(&a, std::slice::from_ref(&genuine));
    let heard = hear(&b, 1);
    assert_eq!(heard, vec![genuine], "only the genuine record is heard");
    assert!(
        stat(&b, "broadcast_records_refused") >= 2,
        "garbage and the foreign record refused: {}",
        b.stats_text()
    );
}

#[test]
fn the_log_moves_to_the_next_node_when_its_node_dies() {
    let mut first = Memcached::start();
    let second = Memcached::start();
    let a = manager(&[&first, &second], &BROADCAST);
    let b = manager(&[&first, &second], &BROADCAST);
    let id = block_on(a.new_session_id(None)).unwrap();
    let before = session(EventKind::Created, &id);
    publish(&a, std::slice::from_ref(&before));
    assert_eq!(hear(&b, 1), vec![before]);

    first.kill();
    // The first publication after the kill may find the node down only by failing on it.
    let after = attribute(EventKind::AttributeAdded, &id, "cart", b"1");
    eventually("published on the second node", || {
        publish(&a, std::slice::from_ref(&after));
        stat(&a, "broadcast_events_published") == 2
    });
    assert_eq!(hear(&b, 1), vec![after]);
}

#[test]
fn a_log_item_written_anew_after_a_restart_is_read_from_its_start() {
    let mut server = Memcached::start();
    let a = manager(&[&server], &BROADCAST);
    let b = manager(&[&server], &BROADCAST);
    let id = block_on(a.new_session_id(None)).unwrap();
    // Records of the same size, so the new item is as long as the one `b` read.
    let before = attribute(EventKind::AttributeReplaced, &id, "n", b"1");
    publish(&a, std::slice::from_ref(&before));
    assert_eq!(hear(&b, 1), vec![before]);

    server.restart();
    let after = attribute(EventKind::AttributeReplaced, &id, "n", b"2");
    eventually("published on the restarted node", || {
        publish(&a, std::slice::from_ref(&after));
        stat(&a, "broadcast_events_published") == 2
    });
    assert_eq!(hear(&b, 1), vec![after]);
}
