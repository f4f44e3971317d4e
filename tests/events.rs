//! Distributed expiry events in the core (`sessionEvents="expiry"`), against real memcached:
//! every session that ends by expiry is handed to exactly one of the managers of its context,
//! with its last stored data, whoever held it; renewed sessions are not, invalidated ones never
//! are; a sweeper that dies mid-way is finished by another without duplicates; and what events
//! cost in memcached commands.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Memcached, command_totals, create_session, manager, stat, touch_session};
use msm::runtime::block_on;
use msm::{SessionData, SessionId, SessionManager};

/// Events on, swept every second.
const EVENTS: [(&str, &str); 2] = [("sessionEvents", "expiry"), ("eventSweepInterval", "1")];

fn with_events<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = EVENTS.to_vec();
    pairs.extend_from_slice(extra);
    pairs
}

/// What the managers delivered: for each session id, the managers that delivered it and the
/// data each was given.
type Delivered = BTreeMap<String, Vec<(usize, SessionData)>>;

/// Polls every manager, each on its own thread, every 100 ms for `duration`.
fn poll_all(managers: &[Arc<SessionManager>], duration: Duration) -> Delivered {
    let threads: Vec<_> = managers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let m = Arc::clone(m);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let until = Instant::now() + duration;
                while Instant::now() < until {
                    for expired in block_on(m.expired_sessions()).unwrap() {
                        mine.push((expired.id.storage_part(), i, expired.session));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                mine
            })
        })
        .collect();
    let mut delivered = Delivered::new();
    for thread in threads {
        for (id, i, session) in thread.join().unwrap() {
            delivered.entry(id).or_default().push((i, session));
        }
    }
    delivered
}

/// The sum of one statistic over `managers`.
fn total(managers: &[Arc<SessionManager>], name: &str) -> u64 {
    managers.iter().map(|m| stat(m, name)).sum()
}

/// Asserts that exactly `expected` were delivered, each once, with its own data.
fn assert_each_once(delivered: &Delivered, expected: &BTreeSet<String>) {
    let ids: BTreeSet<String> = delivered.keys().cloned().collect();
    assert_eq!(&ids, expected, "the sessions delivered");
    for (id, deliveries) in delivered {
        assert_eq!(deliveries.len(), 1, "{id} delivered {deliveries:?}");
        let stored = &deliveries[0].1.attributes["id"];
        assert!(
            String::from_utf8_lossy(stored).starts_with(id.as_str()),
            "{id} delivered with another session's data"
        );
    }
}

#[test]
fn non_sticky_sessions_used_on_three_managers_are_each_delivered_once_at_expiry() {
    let (n1, n2) = (Memcached::start(), Memcached::start());
    let nodes = [&n1, &n2];
    let managers: Vec<_> = (0..3)
        .map(|_| manager(&nodes, &with_events(&[("sticky", "false")])))
        .collect();
    let mut expected = BTreeSet::new();
    for i in 0..30 {
        let id = create_session(&managers[i % 3], 1);
        // Used again on another manager, which indexes it too.
        touch_session(&managers[(i + 1) % 3], &id, None, None, b"again");
        expected.insert(id.storage_part());
    }
    let delivered = poll_all(&managers, Duration::from_secs(9));
    assert_each_once(&delivered, &expected);
    for deliveries in delivered.values() {
        assert_eq!(deliveries[0].1.attributes["n"], b"again", "the last data");
    }
    assert_eq!(total(&managers, "expiry_events_delivered"), 30);
    assert_eq!(total(&managers, "expiry_events_undeliverable"), 0);
    assert_eq!(total(&managers, "expiry_index_failures"), 0);
    // Each session was indexed by the two managers that served it, nothing more.
    assert_eq!(total(&managers, "expiry_index_appends"), 60);
    // Delivered sessions are gone: no request brings them back.
    for id in &expected {
        let id = managers[0].parse_id(id).unwrap();
        assert!(block_on(managers[0].load(&id)).unwrap().is_none());
    }
    // Nothing is delivered twice later either.
    assert!(poll_all(&managers, Duration::from_secs(2)).is_empty());
}

#[test]
fn renewed_sessions_wait_for_their_expiry_and_invalidated_ones_are_never_delivered() {
    let server = Memcached::start();
    let managers: Vec<_> = (0..2)
        .map(|_| manager(&[&server], &with_events(&[("sticky", "false")])))
        .collect();
    let renewed = create_session(&managers[0], 2);
    let left = create_session(&managers[0], 2);
    let invalidated = create_session(&managers[1], 2);
    block_on(managers[1].ended(&invalidated, msm::session::now_millis(), 2)).unwrap();

    // For 7 s (three lifetimes) `renewed` is used every half second, on either manager, while
    // both poll: only `left` expires.
    let polling = {
        let managers = managers.clone();
        std::thread::spawn(move || poll_all(&managers, Duration::from_secs(7)))
    };
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(7) {
        touch_session(
            &managers[i % 2],
            &renewed,
            None,
            None,
            format!("{i}").as_bytes(),
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let during = polling.join().unwrap();
    assert_each_once(&during, &BTreeSet::from([left.storage_part()]));

    // Left alone, it expires and is delivered once, with its last data.
    let after = poll_all(&managers, Duration::from_secs(8));
    assert_each_once(&after, &BTreeSet::from([renewed.storage_part()]));
    let last = format!("{}", i - 1);
    assert_eq!(
        after[&renewed.storage_part()][0].1.attributes["n"],
        last.as_bytes()
    );
    assert_eq!(total(&managers, "expiry_events_delivered"), 2);
    assert_eq!(
        total(&managers, "expiry_events_undeliverable"),
        0,
        "the invalidated session is not a miss"
    );
}

/// The buckets (and their listed ids) that `server` holds for sessions of the prefix `test:`
/// expiring around now, with a sweep interval of one second.
fn listed_buckets(server: &Memcached) -> BTreeMap<u64, String> {
    let now = msm::session::now_millis() / 1000;
    (now - 20..now + 20)
        .filter_map(|b| {
            let listed = server.get(&format!("expiring:test:{b}"))?;
            Some((b, String::from_utf8(listed).unwrap()))
        })
        .collect()
}

#[test]
fn a_sweeper_that_dies_mid_way_is_finished_by_another_without_duplicates() {
    let server = Memcached::start();
    let managers: Vec<_> = (0..2)
        .map(|_| manager(&[&server], &with_events(&[("sticky", "false")])))
        .collect();
    let ids: Vec<SessionId> = (0..10).map(|_| create_session(&managers[0], 1)).collect();
    let buckets = listed_buckets(&server);
    assert!(!buckets.is_empty(), "the sessions are indexed");
    let listed: usize = buckets.values().map(|l| l.split_whitespace().count()).sum();
    assert_eq!(listed, 10, "{buckets:?}");

    // A sweeper claimed every bucket and delivered the first four sessions, then died: its
    // claims lapse (after 9 s here, past the buckets' sweep: they would otherwise be swept
    // about 6 s after the sessions' creation); its ended marks stay.
    for b in buckets.keys() {
        let claim = format!("sweep:test:{b}");
        let reply = server.raw(
            format!("set {claim} 0 9 8\r\nsweeping\r\n").as_bytes(),
            &["STORED"],
        );
        assert_eq!(reply.trim_end(), "STORED");
    }
    for id in &ids[..4] {
        server.set(&format!("ended:test:{}", id.storage_part()), b"1");
    }
    let claimed = poll_all(&managers, Duration::from_secs(7));
    assert!(
        claimed.is_empty(),
        "claimed buckets are left alone: {claimed:?}"
    );
    let delivered = poll_all(&managers, Duration::from_secs(7));
    let rest: BTreeSet<String> = ids[4..].iter().map(SessionId::storage_part).collect();
    assert_each_once(&delivered, &rest);
    assert_eq!(total(&managers, "expiry_events_delivered"), 6);
    assert_eq!(total(&managers, "expiry_events_undeliverable"), 0);
    for b in buckets.keys() {
        assert_eq!(
            server.get(&format!("sweep:test:{b}")).as_deref(),
            Some(&b"done"[..]),
            "bucket {b} is marked swept"
        );
    }
}

#[test]
fn sticky_sessions_of_a_host_that_is_gone_are_delivered_by_another() {
    let (n1, n2) = (Memcached::start(), Memcached::start());
    let nodes = [&n1, &n2];
    let holder = manager(&nodes, &with_events(&[]));
    let survivor = manager(&nodes, &with_events(&[]));
    let orphans: BTreeSet<String> = (0..5)
        .map(|_| create_session(&holder, 2).storage_part())
        .collect();
    // The holder expires one session itself (and fires its listeners): not delivered again.
    let expired_by_holder = create_session(&holder, 2);
    assert_eq!(holder.flush(Duration::from_secs(5)), 0);
    std::thread::sleep(Duration::from_millis(2100));
    let last_access = msm::session::now_millis() - 2100;
    block_on(holder.ended(&expired_by_holder, last_access, 2)).unwrap();
    drop(holder);

    // The host alone keeps renewing this one, which the survivor must not deliver.
    let alive = manager(&nodes, &with_events(&[]));
    let kept = create_session(&alive, 2);
    assert_eq!(alive.flush(Duration::from_secs(5)), 0);
    let mut session = block_on(alive.load(&kept)).unwrap().unwrap().session;
    let polling = {
        let survivor = Arc::clone(&survivor);
        std::thread::spawn(move || poll_all(&[survivor], Duration::from_secs(10)))
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        session.last_accessed = msm::session::now_millis();
        touch_session(&alive, &kept, Some(session.clone()), None, b"kept");
        std::thread::sleep(Duration::from_millis(400));
    }
    let delivered = polling.join().unwrap();
    assert_each_once(&delivered, &orphans);
    assert_eq!(stat(&survivor, "expiry_events_delivered"), 5);
    assert_eq!(stat(&survivor, "expiry_events_undeliverable"), 0);
    assert!(
        block_on(alive.load(&kept)).unwrap().is_some(),
        "the held session lives on"
    );
}

#[test]
fn a_node_that_hangs_during_the_sweep_has_its_sessions_delivered_once_it_answers() {
    let (n1, mut n2) = (Memcached::start(), Memcached::start());
    let managers: Vec<_> = (0..2)
        .map(|_| manager(&[&n1, &n2], &with_events(&[("sticky", "false")])))
        .collect();
    let ids: Vec<SessionId> = (0..10)
        .map(|i| create_session(&managers[i % 2], 1))
        .collect();
    assert!(
        ids.iter().any(|id| id.node() == "n2"),
        "some sessions are on n2"
    );
    // n2 hangs past the sweep of its buckets (about 6 s after the sessions' creation).
    n2.pause();
    let hung = poll_all(&managers, Duration::from_secs(8));
    let on_n1: BTreeSet<String> = ids
        .iter()
        .filter(|id| id.node() == "n1")
        .map(SessionId::storage_part)
        .collect();
    assert_each_once(&hung, &on_n1);
    n2.resume();
    let later = poll_all(&managers, Duration::from_secs(4));
    let on_n2: BTreeSet<String> = ids
        .iter()
        .filter(|id| id.node() == "n2")
        .map(SessionId::storage_part)
        .collect();
    assert_each_once(&later, &on_n2);
    assert_eq!(total(&managers, "expiry_events_delivered"), 10);
    assert_eq!(total(&managers, "expiry_events_undeliverable"), 0);
    assert_eq!(total(&managers, "expiry_index_failures"), 0);
}

/// What one sequence of requests sends, with and without events: a session created, then used
/// unchanged and changed five times each.
fn requests_cost(extra: &[(&str, &str)]) -> [u64; 4] {
    let (n1, n2) = (Memcached::start(), Memcached::start());
    let nodes = [&n1, &n2];
    let m = manager(&nodes, extra);
    let before = command_totals(&nodes);
    let id = create_session(&m, 1800);
    let sticky = m.sticky().is_some();
    let mut held = sticky.then(|| block_on(m.load(&id)).unwrap().unwrap().session);
    for i in 0..10u8 {
        // Even requests change the session, odd ones leave it as it was.
        let value = [b'0' + (i / 2) * 2 % 10];
        touch_session(&m, &id, held.clone(), None, &value);
        if let Some(held) = &mut held {
            held.attributes.insert("n".into(), value.to_vec());
        }
    }
    assert_eq!(m.flush(Duration::from_secs(5)), 0);
    let after = command_totals(&nodes);
    [0, 1, 2, 3].map(|i| after[i] - before[i])
}

#[test]
fn events_cost_one_index_per_session_and_host_and_nothing_per_request() {
    for sticky in ["false", "true"] {
        let mode = [("sticky", sticky), ("sessionBackupAsync", "false")];
        let off = requests_cost(&mode);
        let on = requests_cost(&with_events(&mode));
        // [keys read, storage commands, touches, deletes]: the index costs an `add` and an
        // `append` once; a sticky backup also records the session's lifetime with each write
        // (the loads of the sticky test and its writes of the session are the same).
        let writes = if sticky == "true" { off[1] - 1 } else { 0 };
        assert_eq!(
            on,
            [off[0], off[1] + 2 + writes, off[2], off[3]],
            "sticky={sticky}: off {off:?}"
        );
    }
}

/// With events off (the default, or said), events cost nothing: a sequence of requests sends
/// exactly what it sends without them (the figures pinned here), and polling for expired
/// sessions or asking whether a timed-out session's end is announced sends nothing.
#[test]
fn with_events_off_nothing_is_sent_for_them() {
    // [keys read, storage commands, touches, deletes] of `requests_cost`'s sequence.
    for (sticky, expected) in [("false", OFF_NON_STICKY), ("true", OFF_STICKY)] {
        let mode = [("sticky", sticky), ("sessionBackupAsync", "false")];
        let default = requests_cost(&mode);
        assert_eq!(default, expected, "sticky={sticky}, events off by default");
        let off = [("sessionEvents", "off"), mode[0], mode[1]];
        assert_eq!(requests_cost(&off), expected, "sticky={sticky}, events off");
    }
    for sticky in ["false", "true"] {
        let node = Memcached::start();
        let m = manager(
            &[&node],
            &[("sticky", sticky), ("sessionBackupAsync", "false")],
        );
        let id = create_session(&m, 1);
        let long_ago = msm::session::now_millis().saturating_sub(5_000);
        let before = command_totals(&[&node]);
        assert!(block_on(m.expired_sessions()).unwrap().is_empty());
        assert!(block_on(m.next_expired_session()).unwrap().is_none());
        assert!(
            run(m.ending(&id, long_ago, 1)),
            "the host announces its end"
        );
        assert_eq!(command_totals(&[&node]), before, "sticky={sticky}");
    }
}

/// What `requests_cost`'s sequence sends without events, non-sticky over two nodes: creating
/// the session reserves its id and writes its two copies and its validity record (4 stores);
/// each of the ten requests reads the session and its record (2 keys); the five that change it
/// write its two copies and the record, and the five others, each right after a change, find
/// the record renewed less than a second ago and leave it.
const OFF_NON_STICKY: [u64; 4] = [20, 4 + 5 * 3, 0, 0];
/// The same, sticky with synchronous backups: the id reserved and the session backed up at
/// creation, then read once (the host's copy), and one backup per change.
const OFF_STICKY: [u64; 4] = [1, 2 + 5, 0, 0];

/// Runs a future of the core that cannot fail.
fn run<F: std::future::Future>(work: F) -> F::Output {
    msm::runtime::handle().block_on(work)
}

/// The host asks before it fires its end listeners: a session that timed out on one manager is
/// announced there (and marked ended, so no sweep delivers it); one a sweep delivered first is
/// not announced again by a host that still held it; an invalidation is always announced, and
/// costs no command.
#[test]
fn a_host_announces_a_timed_out_session_only_when_no_sweep_delivered_it() {
    let node = Memcached::start();
    let managers: Vec<_> = (0..2)
        .map(|_| manager(&[&node], &with_events(&[("sticky", "false")])))
        .collect();
    let now = msm::session::now_millis();
    // Timed out on manager 0 first: announced there, never delivered.
    let first = create_session(&managers[0], 1);
    let second = create_session(&managers[0], 1);
    let long_ago = now.saturating_sub(5_000);
    assert!(run(managers[0].ending(&first, long_ago, 1)));
    block_on(managers[0].ended(&first, long_ago, 1)).unwrap();
    // The second is left to the sweep, and then times out on a host that held it. Its validity
    // record may outlive its second by one more (memcached's clock), and a sweep that finds it
    // still there lists it under a later bucket: up to about 7 s.
    let delivered = poll_all(&managers, Duration::from_secs(9));
    let expected = BTreeSet::from([second.storage_part()]);
    assert_each_once(&delivered, &expected);
    for m in &managers {
        assert!(!run(m.ending(&second, long_ago, 1)));
    }
    assert_eq!(total(&managers, "expiry_events_ended_elsewhere"), 2);
    // An invalidation (not timed out) is the host's to announce, without a command.
    let third = create_session(&managers[1], 60);
    let before = command_totals(&[&node]);
    assert!(run(managers[1].ending(
        &third,
        msm::session::now_millis(),
        60
    )));
    assert_eq!(command_totals(&[&node]), before);
}
