//! Session operations of the core against real memcached servers, with real faults.
//!
//! Tests call the blocking bridge (`runtime::block_on`) as host threads do, so every connection
//! lives on the shared runtime.

mod common;

use std::sync::Mutex;

use common::{Memcached, command_counters, eventually, id_on, manager, stat};
use msm::ids::RandomSource;
use msm::runtime::block_on;
use msm::{Error, SessionData, SessionId, SessionManager};

fn session(attributes: &[(&str, &[u8])]) -> SessionData {
    let mut s = SessionData::new(1800);
    for (name, value) in attributes {
        s.attributes.insert((*name).to_owned(), value.to_vec());
    }
    s
}

/// A session's stored content: everything but its last access, which a load sets to now.
fn content(s: &SessionData) -> SessionData {
    SessionData {
        last_accessed: 0,
        ..s.clone()
    }
}

fn storage(id: &SessionId) -> String {
    id.storage_part()
}

/// A generator that replays a fixed list of random parts.
struct Replay(Mutex<Vec<&'static str>>);

impl RandomSource for Replay {
    fn random_part(&self) -> String {
        let mut parts = self.0.lock().unwrap();
        if parts.len() > 1 {
            parts.remove(0).to_owned()
        } else {
            parts[0].to_owned()
        }
    }
}

const A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

#[test]
fn new_ids_are_spread_reserved_and_routed() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[]);
    let ids: Vec<SessionId> = (0..10)
        .map(|_| block_on(m.new_session_id(Some("tomcat1"))).unwrap())
        .collect();
    assert!(ids.iter().any(|id| id.node() == "n1"));
    assert!(ids.iter().any(|id| id.node() == "n2"));
    for id in &ids {
        assert_eq!(id.random().len(), 32);
        assert_eq!(id.route(), Some("tomcat1"));
        let server = if id.node() == "n1" { &s1 } else { &s2 };
        let reservation = format!("id:test:{}", storage(id));
        assert!(server.has(&reservation), "{reservation} missing");
    }
    let error = block_on(m.new_session_id(Some("bad route"))).unwrap_err();
    assert!(error.to_string().contains("jvmRoute"), "{error}");
}

#[test]
fn a_forced_collision_draws_again() {
    let server = Memcached::start();
    let config = common::config(&[&server], &[]);
    let m = SessionManager::with_random_source(
        config.clone(),
        Box::new(Replay(Mutex::new(vec![A, A, B]))),
    )
    .unwrap();
    let first = block_on(m.new_session_id(None)).unwrap();
    let second = block_on(m.new_session_id(None)).unwrap();
    assert_eq!(first.random(), A);
    assert_eq!(second.random(), B);
    assert_eq!(stat(&m, "id_collisions"), 1);

    // A second manager of the same context with a stuck generator never hands out a live id.
    let stuck =
        SessionManager::with_random_source(config, Box::new(Replay(Mutex::new(vec![A])))).unwrap();
    assert!(matches!(
        block_on(stuck.new_session_id(None)),
        Err(Error::IdExhausted(_))
    ));
}

#[test]
fn store_load_roundtrip_in_sticky_mode() {
    let server = Memcached::start();
    let m = manager(&[&server], &[]);
    let id = block_on(m.new_session_id(Some("a"))).unwrap();
    let mut s = session(&[("user", b"alice"), ("bytes", &[0, 13, 10, 255])]);
    assert_eq!(block_on(m.store(&id, &mut s)).unwrap(), None);
    assert_eq!(s.version, 1);
    let loaded = block_on(m.load(&id)).unwrap().unwrap();
    assert!(
        loaded.session.last_accessed >= s.last_accessed,
        "loading is an access"
    );
    let same_access = SessionData {
        last_accessed: s.last_accessed,
        ..loaded.session.clone()
    };
    assert_eq!(same_access, s);
    assert_eq!(loaded.relocated, None);
    // The route is not part of the key: another Tomcat (route b) finds the same session.
    let taken_over = id.with_route(Some("b")).unwrap();
    let again = block_on(m.load(&taken_over)).unwrap().unwrap().session;
    assert_eq!(again.attributes, s.attributes);
    assert!(server.has(&format!("test:{}", storage(&id))));
    assert!(
        !server.has(&format!("bak:test:{}", storage(&id))),
        "sticky mode writes no backup"
    );
}

#[test]
fn non_sticky_keeps_a_backup_on_the_next_node() {
    let (s1, s2, s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2, &s3], &[("sticky", "false")]);
    let id = id_on(&m, "n3");
    block_on(m.store(&id, &mut session(&[("k", b"v")]))).unwrap();
    let key = storage(&id);
    assert!(s3.has(&format!("test:{key}")));
    assert!(s1.has(&format!("bak:test:{key}")), "the ring wraps to n1");
    assert!(!s2.has(&format!("test:{key}")) && !s2.has(&format!("bak:test:{key}")));
    assert_eq!(stat(&m, "second_copies_written"), 1);
}

#[test]
fn a_killed_primary_fails_over_to_the_backup_which_becomes_primary() {
    let (mut s1, s2, s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2, &s3], &[("sticky", "false")]);
    let id = id_on(&m, "n1");
    let mut s = session(&[("cart", b"3 items")]);
    block_on(m.store(&id, &mut s)).unwrap();
    s1.kill();

    let loaded = block_on(m.load(&id)).unwrap().unwrap();
    assert_eq!(content(&loaded.session), content(&s));
    let moved = loaded.relocated.expect("relocated");
    assert_eq!(moved.node(), "n2");
    assert_eq!(moved.random(), id.random());
    assert!(s2.has(&format!("test:{}", storage(&moved))));
    assert!(s3.has(&format!("bak:test:{}", storage(&moved))));
    assert!(
        !s2.has(&format!("bak:test:{}", storage(&id))),
        "old backup removed"
    );

    let again = block_on(m.load(&moved)).unwrap().unwrap();
    assert_eq!(content(&again.session), content(&s));
    assert_eq!(again.relocated, None);
    assert_eq!(stat(&m, "sessions_relocated"), 1);
}

#[test]
fn a_hung_node_costs_one_timeout_once() {
    let (mut s1, s2, s3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let m = manager(
        &[&s1, &s2, &s3],
        &[("sticky", "false"), ("nodeProbeInterval", "100")],
    );
    let id = id_on(&m, "n1");
    let mut s = session(&[("k", b"v")]);
    block_on(m.store(&id, &mut s)).unwrap();
    s1.pause();

    let moved = block_on(m.load(&id)).unwrap().unwrap().relocated.unwrap();
    assert_eq!(moved.node(), "n2");
    assert_eq!(stat(&m, "timeouts"), 1);
    assert!(m.stats_text().contains("node_n1 127.0.0.1"));
    assert!(
        m.stats_text()
            .lines()
            .any(|l| l.starts_with("node_n1 ") && l.ends_with(" down"))
    );

    // While n1 is down nothing waits on it: new sessions avoid it, and no further timeout occurs.
    for _ in 0..30 {
        let id = block_on(m.new_session_id(None)).unwrap();
        assert_ne!(id.node(), "n1");
        block_on(m.store(&id, &mut session(&[("k", b"v")]))).unwrap();
        block_on(m.load(&id)).unwrap().unwrap();
    }
    block_on(m.load(&moved)).unwrap().unwrap();
    assert_eq!(stat(&m, "timeouts"), 1);

    s1.resume();
    eventually("n1 is probed back up", || stat(&m, "nodes_recovered") == 1);
    assert!(
        m.stats_text()
            .lines()
            .any(|l| l.starts_with("node_n1 ") && l.ends_with(" up"))
    );
}

#[test]
fn sticky_store_on_a_dead_node_moves_the_session() {
    let (mut s1, s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[]);
    let id = id_on(&m, "n1");
    s1.kill();
    let moved = block_on(m.store(&id, &mut session(&[("k", b"v")])))
        .unwrap()
        .unwrap();
    assert_eq!(moved.node(), "n2");
    assert!(s2.has(&format!("test:{}", storage(&moved))));
    assert!(block_on(m.load(&moved)).unwrap().is_some());
}

#[test]
fn garbage_under_a_session_key_is_reported_corrupt() {
    let server = Memcached::start();
    let m = manager(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    server.set(
        &format!("test:{}", storage(&id)),
        b"\xac\xed\x00\x05garbage, not an envelope",
    );
    assert!(matches!(block_on(m.load(&id)), Err(Error::Corrupt(_))));
    assert_eq!(stat(&m, "corrupt_values"), 1);

    // A valid envelope of another session copied under this key is refused too.
    let other = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&other, &mut session(&[("k", b"v")]))).unwrap();
    let copied = server.get(&format!("test:{}", storage(&other))).unwrap();
    server.set(&format!("test:{}", storage(&id)), &copied);
    assert!(matches!(block_on(m.load(&id)), Err(Error::Corrupt(_))));
}

#[test]
fn a_corrupt_or_lost_primary_copy_is_repaired_from_the_backup() {
    let (mut s1, s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[("sticky", "false")]);
    let id = id_on(&m, "n1");
    let mut s = session(&[("k", b"v")]);
    block_on(m.store(&id, &mut s)).unwrap();
    let key = format!("test:{}", storage(&id));

    s1.set(&key, b"garbage");
    let loaded = block_on(m.load(&id)).unwrap().unwrap();
    assert_eq!(content(&loaded.session), content(&s));
    assert_eq!(loaded.relocated, None);
    assert_ne!(
        s1.get(&key).as_deref(),
        Some(&b"garbage"[..]),
        "primary repaired"
    );

    // The restart closes the manager's connections: n1 is marked down at once, and probed back.
    s1.restart();
    eventually("n1 is probed back", || stat(&m, "nodes_recovered") == 1);
    let loaded = block_on(m.load(&id)).unwrap().unwrap();
    assert_eq!(content(&loaded.session), content(&s));
    assert_eq!(loaded.relocated, None);
    assert!(s1.has(&key), "primary restored after restart");
}

#[test]
fn hostile_ids_never_reach_memcached() {
    let server = Memcached::start();
    let m = manager(&[&server], &[]);
    let before = command_counters(&server.stats());
    let long = format!("{}-n1", "A".repeat(300));
    let hostile = [
        "",
        " ",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-n1\r\nflush_all",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-n1 x",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-nö",
        "ÄAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-n1",
        long.as_str(),
        "../../etc/passwd",
    ];
    for raw in hostile {
        assert!(matches!(m.parse_id(raw), Err(Error::InvalidId)), "{raw:?}");
    }
    assert_eq!(stat(&m, "invalid_ids"), hostile.len() as u64);
    assert_eq!(command_counters(&server.stats()), before);
    assert_eq!(server.item_count(), 1, "only the shared node list");
}

#[test]
fn an_oversized_session_is_a_clear_error() {
    let server = Memcached::start();
    let m = manager(&[&server], &[("operationTimeout", "5000")]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut big = session(&[("blob", &vec![7u8; 2 << 20])]);
    let error = block_on(m.store(&id, &mut big)).unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    assert!(error.to_string().contains("item size limit"), "{error}");
    assert_eq!(block_on(m.load(&id)).unwrap(), None);
    assert_eq!(stat(&m, "too_large"), 1);
    // The manager goes on normally.
    block_on(m.store(&id, &mut session(&[("k", b"v")]))).unwrap();
    assert!(block_on(m.load(&id)).unwrap().is_some());
}

#[test]
fn touch_renews_expiry_without_rewriting() {
    let server = Memcached::start();
    let m = manager(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut s = session(&[("k", b"v")]);
    s.max_inactive = 100;
    block_on(m.store(&id, &mut s)).unwrap();
    let key = format!("test:{}", storage(&id));
    assert!(server.ttl(&key).unwrap() <= 100);
    let sets = server.stat("cmd_set");
    assert!(block_on(m.touch(&id, 5000)).unwrap());
    assert!(server.ttl(&key).unwrap() > 4000);
    assert_eq!(server.stat("cmd_set"), sets, "touch rewrote the session");
    let absent = SessionId::parse("0123456789ABCDEF0123456789ABCDEF-n1").unwrap();
    assert!(!block_on(m.touch(&absent, 100)).unwrap());
}

#[test]
fn delete_removes_every_copy() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[("sticky", "false")]);
    let id = id_on(&m, "n1");
    block_on(m.store(&id, &mut session(&[("k", b"v")]))).unwrap();
    let lock = block_on(m.lock(&id)).unwrap();
    // Session, validity record, reservation and lock on n1; backup on n2; the shared node list
    // on both.
    assert_eq!((s1.item_count(), s2.item_count()), (5, 2));
    block_on(m.delete(&id)).unwrap();
    let key = storage(&id);
    // Left: the shared node list on both, and on n1 the record saying the session ended (so
    // copies kept for outages never bring it back).
    assert_eq!(
        (s1.item_count(), s2.item_count()),
        (2, 1),
        "copies of {key} left"
    );
    assert!(s1.has(&format!("validity:test:{key}")));
    drop(lock);
}

#[test]
fn locks_exclude_back_off_and_release() {
    let server = Memcached::start();
    let settings = [("sticky", "false"), ("lockMaxWait", "150")];
    // Another host: requests of one host queue without polling memcached.
    let (m, other) = (
        manager(&[&server], &settings),
        manager(&[&server], &settings),
    );
    let id = block_on(m.new_session_id(None)).unwrap();
    let held = block_on(m.lock(&id)).unwrap();
    std::thread::scope(|scope| {
        let contender = scope.spawn(|| block_on(other.lock(&id)));
        assert!(matches!(
            contender.join().unwrap(),
            Err(Error::LockTimeout(_))
        ));
    });
    assert_eq!(stat(&other, "lock_timeouts"), 1);
    assert!(stat(&other, "lock_retries") >= 2, "backed off and retried");
    block_on(m.unlock(held)).unwrap();
    let next = block_on(other.lock(&id)).unwrap();
    block_on(other.unlock(next)).unwrap();
    assert_eq!(
        stat(&m, "locks_acquired") + stat(&other, "locks_acquired"),
        2
    );
}

#[test]
fn requests_of_one_host_take_the_lock_in_turn_without_polling() {
    let server = Memcached::start();
    let m = manager(&[&server], &[("sticky", "false")]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let held = block_on(m.lock(&id)).unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| block_on(m.lock(&id)));
        std::thread::sleep(std::time::Duration::from_millis(200));
        block_on(m.unlock(held)).unwrap();
        let next = waiter.join().unwrap().expect("handed over");
        assert_eq!(server.stat("touch_hits"), 1, "renewed for the next request");
        assert_eq!(server.stat("delete_hits"), 0, "never released in between");
        block_on(m.unlock(next)).unwrap();
    });
    assert_eq!(stat(&m, "locks_handed_over"), 1);
    assert_eq!(
        stat(&m, "lock_retries"),
        0,
        "the waiter never polled memcached"
    );
    assert_eq!(server.stat("delete_hits"), 1, "released by the last one");
    assert!(block_on(m.lock(&id)).is_ok(), "free again");
}

#[test]
fn an_expired_lock_is_never_released_by_its_old_holder() {
    let server = Memcached::start();
    let settings = [
        ("sticky", "false"),
        ("lockMaxWait", "50"),
        ("lockExpiration", "2"),
    ];
    let (m, other) = (
        manager(&[&server], &settings),
        manager(&[&server], &settings),
    );
    let id = block_on(m.new_session_id(None)).unwrap();
    let stale = block_on(m.lock(&id)).unwrap();
    // The lock expires in memcached and a request on another host takes it.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let current = block_on(other.lock(&id)).unwrap();
    block_on(m.unlock(stale)).unwrap();
    assert_eq!(stat(&m, "locks_lost"), 1);
    assert!(
        matches!(block_on(m.lock(&id)), Err(Error::LockTimeout(_))),
        "still held"
    );
    block_on(other.unlock(current)).unwrap();
}

#[test]
fn a_young_lock_is_released_without_reading_it_first() {
    let server = Memcached::start();
    let m = manager(&[&server], &[("sticky", "false")]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let lock = block_on(m.lock(&id)).unwrap();
    let gets = server.stat("cmd_get");
    block_on(m.unlock(lock)).unwrap();
    assert_eq!(server.stat("cmd_get"), gets, "no read of the lock");
    assert_eq!(server.stat("delete_hits"), 1);
    assert!(block_on(m.lock(&id)).is_ok(), "released");
}

#[test]
fn with_every_node_down_ids_are_still_issued() {
    let (mut s1, mut s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[]);
    s1.kill();
    s2.kill();
    // memcached closed the manager's connections as it died: both are down before any request.
    eventually("both nodes are marked down", || {
        stat(&m, "nodes_marked_down") == 2
    });
    let id = block_on(m.new_session_id(None)).unwrap();
    assert_eq!(stat(&m, "ids_unreserved"), 1);
    // Kept in the near cache until the cluster answers again.
    assert_eq!(block_on(m.store(&id, &mut session(&[]))).unwrap(), None);
    assert_eq!(stat(&m, "near_cache_stored"), 1);
    // No operation ever met a dead node, so none failed or waited.
    block_on(m.new_session_id(None)).unwrap();
    assert_eq!(stat(&m, "failed_operations"), 0);
    // Without a near cache, the store says the cluster is unavailable.
    let bare = manager(&[&s1, &s2], &[("nearCacheMaxSessions", "0")]);
    assert!(matches!(
        block_on(bare.store(&id, &mut session(&[]))),
        Err(Error::Unavailable)
    ));
}

#[test]
fn failover_nodes_are_used_last() {
    let (mut s1, s2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&s1, &s2], &[("failoverNodes", "n2")]);
    for _ in 0..6 {
        assert_eq!(block_on(m.new_session_id(None)).unwrap().node(), "n1");
    }
    s1.kill();
    // The first draw meets the dead node; from then on the failover node takes new sessions.
    let id = block_on(m.new_session_id(None)).unwrap();
    assert_eq!(id.node(), "n2");
    assert_eq!(block_on(m.new_session_id(None)).unwrap().node(), "n2");
}

#[test]
fn an_id_naming_an_unknown_node_is_no_session() {
    let server = Memcached::start();
    let m = manager(&[&server], &[]);
    let id = SessionId::parse("0123456789ABCDEF0123456789ABCDEF-n9").unwrap();
    let gets = server.stat("cmd_get");
    assert_eq!(block_on(m.load(&id)).unwrap(), None);
    // Only the shared node list is read (is n9 new?), and no key of the session.
    assert_eq!(server.stat("cmd_get"), gets + 1);
    let again = SessionId::parse("FEDCBA9876543210FEDCBA9876543210-n9").unwrap();
    assert_eq!(block_on(m.load(&again)).unwrap(), None);
    assert_eq!(
        server.stat("cmd_get"),
        gets + 1,
        "at most one such read a second"
    );
}
