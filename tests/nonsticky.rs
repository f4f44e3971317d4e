//! Non-sticky requests in the core: which requests lock, and a request's end writing only what
//! changed, against real memcached.

mod common;

use std::time::{Duration, Instant};

use common::{Memcached, command_totals, id_on, manager, stat};
use msm::SessionData;
use msm::runtime::block_on;

fn session(value: &[u8]) -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("k".into(), value.to_vec());
    s
}

#[test]
fn locking_modes_decide_which_requests_lock() {
    let server = Memcached::start();
    for (mode, locked, unlocked) in [
        ("none", vec![], vec!["/cart", "/"]),
        ("all", vec!["/cart", "/"], vec![]),
        (
            "uriPattern:/cart/.*",
            vec!["/cart/add"],
            vec!["/", "/carts"],
        ),
    ] {
        let m = manager(&[&server], &[("sticky", "false"), ("lockingMode", mode)]);
        for uri in locked {
            assert!(
                m.non_sticky().unwrap().locks_request(uri),
                "{mode} should lock {uri}"
            );
        }
        for uri in unlocked {
            assert!(
                !m.non_sticky().unwrap().locks_request(uri),
                "{mode} should not lock {uri}"
            );
        }
    }
}

#[test]
fn auto_locking_learns_read_only_uris() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&m1, &m2], &[("sticky", "false"), ("lockingMode", "auto")]);
    m.track_backups();
    let id = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&id, &mut session(b"1"))).unwrap();

    assert!(
        m.non_sticky().unwrap().locks_request("/show"),
        "unknown URIs lock"
    );
    let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
    let mut s = loaded.unwrap().session;
    block_on(
        m.non_sticky()
            .unwrap()
            .finish(&id, &mut s, Some(lock), Some("/show")),
    )
    .unwrap();
    assert!(
        !m.non_sticky().unwrap().locks_request("/show"),
        "it changed nothing: read-only now"
    );

    // A request to that URI that does change the session makes it lock again.
    let mut s = block_on(m.load(&id)).unwrap().unwrap().session;
    s.attributes.insert("k".into(), b"2".to_vec());
    block_on(
        m.non_sticky()
            .unwrap()
            .finish(&id, &mut s, None, Some("/show")),
    )
    .unwrap();
    assert!(m.non_sticky().unwrap().locks_request("/show"));

    // A request that never used its session changed nothing either.
    assert!(m.non_sticky().unwrap().locks_request("/logo.png"));
    let lock = block_on(m.lock(&id)).unwrap();
    assert!(
        block_on(
            m.non_sticky()
                .unwrap()
                .accessed(&id, Some(lock), Some("/logo.png"))
        )
        .unwrap()
    );
    assert!(!m.non_sticky().unwrap().locks_request("/logo.png"));
}

fn since(before: [u64; 4], nodes: &[&Memcached]) -> [u64; 4] {
    let now = command_totals(nodes);
    std::array::from_fn(|i| now[i] - before[i])
}

/// A manager that locks every request, and a session it stored (`k` = `1`), by id.
fn locking_every_request(nodes: &[&Memcached]) -> (std::sync::Arc<msm::SessionManager>, String) {
    let m = manager(nodes, &[("sticky", "false"), ("lockingMode", "all")]);
    let id = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&id, &mut session(b"1"))).unwrap();
    (m, id.to_string())
}

/// Begins a request for the session `id`.
fn begin(m: &msm::SessionManager, id: &str) -> msm::Request {
    let start = msm::RequestStart {
        session_id: Some(id),
        uri: "/",
        route: None,
    };
    block_on(m.begin(start)).unwrap()
}

/// A request that takes its session's lock reads the session in the same round trip, behind the
/// lock's `add`: its lookup sends nothing more, and finds what the previous holder wrote.
#[test]
fn a_locked_request_reads_its_session_in_the_round_trip_that_takes_the_lock() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let (m, id) = locking_every_request(&nodes);
    for (previous, value) in [(b"1", b"2"), (b"2", b"3")] {
        let before = command_totals(&nodes);
        let mut request = begin(&m, &id);
        assert!(request.locked());
        assert_eq!(
            since(before, &nodes),
            [2, 1, 0, 0],
            "the lock's add and the read"
        );
        let found =
            msm::runtime::handle().block_on(m.lookup(&mut request, &id, msm::HostCopy::None));
        assert_eq!(
            since(before, &nodes),
            [2, 1, 0, 0],
            "the lookup sent nothing"
        );
        let msm::Lookup::Found(mut loaded) = found else {
            panic!("session not found: {found:?}");
        };
        assert_eq!(loaded.session.attributes["k"], previous);
        loaded.session.attributes.insert("k".into(), value.to_vec());
        let outcome = msm::Outcome::Used {
            id: &id,
            session: loaded.session,
            previous: None,
        };
        block_on(m.end(&mut request, outcome)).unwrap();
    }
    assert_eq!(stat(&m, "loads_with_lock"), 2);
    let id = m.parse_id(&id).unwrap();
    assert_eq!(
        block_on(m.load(&id)).unwrap().unwrap().session.attributes["k"],
        b"3"
    );
}

/// A host that knows its copy unchanged since the read it came from ends the request without
/// the content: the core renews the session as that read found it. A read it cannot vouch for
/// (forgotten, or of another session) asks for the content, which the same request then hands
/// back under the lock it still holds.
#[test]
fn an_unchanged_copy_is_renewed_as_read_and_an_unknown_read_asks_for_the_content() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let (m, id) = locking_every_request(&nodes);
    std::thread::sleep(Duration::from_millis(1050));
    for forged in [false, true] {
        let mut request = begin(&m, &id);
        let found =
            msm::runtime::handle().block_on(m.lookup(&mut request, &id, msm::HostCopy::None));
        let msm::Lookup::Found(loaded) = found else {
            panic!("session not found: {found:?}");
        };
        let read = loaded
            .session
            .read
            .map(|read| if forged { read + 1000 } else { read });
        assert!(read.is_some(), "a read from the cluster is numbered");
        let before = command_totals(&nodes);
        let unchanged = msm::Outcome::Unchanged {
            id: &id,
            max_inactive: loaded.session.max_inactive,
            read,
        };
        let ended = block_on(m.end(&mut request, unchanged)).unwrap();
        if !forged {
            // The record rewritten and the lock deleted in one round trip; no copy written.
            assert_eq!(since(before, &nodes), [0, 1, 0, 1]);
            assert!(
                matches!(ended, msm::Ended::Done { moved: None, .. }),
                "{ended:?}"
            );
            continue;
        }
        assert_eq!(ended, msm::Ended::NeedsContent);
        assert_eq!(
            since(before, &nodes),
            [0, 0, 0, 0],
            "nothing sent, the lock held"
        );
        assert!(request.locked());
        let mut session = loaded.session;
        session.attributes.insert("k".into(), b"2".to_vec());
        let used = msm::Outcome::Used {
            id: &id,
            session,
            previous: None,
        };
        block_on(m.end(&mut request, used)).unwrap();
        // Both copies and the record written, the lock deleted.
        assert_eq!(since(before, &nodes), [0, 3, 0, 1]);
    }
    let id = m.parse_id(&id).unwrap();
    assert_eq!(
        block_on(m.load(&id)).unwrap().unwrap().session.attributes["k"],
        b"2"
    );
    let lock = block_on(m.lock(&id)).unwrap();
    block_on(m.unlock(lock)).unwrap();
}

#[test]
fn a_request_end_writes_only_a_changed_session_and_always_unlocks() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let m = manager(&nodes, &[("sticky", "false"), ("lockMaxWait", "100")]);
    m.track_backups();
    let id = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&id, &mut session(b"1"))).unwrap();

    let nonsticky = m.non_sticky().unwrap();
    let unchanged = || {
        let before = command_totals(&nodes);
        let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
        let mut s = loaded.unwrap().session;
        block_on(nonsticky.finish(&id, &mut s, Some(lock), None)).unwrap();
        since(before, &nodes)
    };
    let unused = || {
        let before = command_totals(&nodes);
        let lock = block_on(m.lock(&id)).unwrap();
        assert!(block_on(nonsticky.accessed(&id, Some(lock), None)).unwrap());
        since(before, &nodes)
    };
    let lag = Duration::from_millis(1050);
    // [gets, sets, touches, deletes]. Unchanged, a second after the last write: the lock's
    // `add`, one get of session and validity record, then the record rewritten and the lock
    // deleted; the copies are neither written nor touched.
    std::thread::sleep(lag);
    assert_eq!(unchanged(), [2, 2, 0, 1], "unchanged");
    // Right after that renewal: the record is left as it is.
    assert_eq!(unchanged(), [2, 1, 0, 1], "unchanged, renewed lately");
    assert_eq!(stat(&m, "renewals_skipped"), 1);

    // Changed: both copies and the record written, the lock deleted.
    let before = command_totals(&nodes);
    let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
    let mut s = loaded.unwrap().session;
    s.attributes.insert("k".into(), b"2".to_vec());
    block_on(nonsticky.finish(&id, &mut s, Some(lock), None)).unwrap();
    assert_eq!(
        since(before, &nodes),
        [2, 4, 0, 1],
        "[gets, sets, touches, deletes]"
    );
    let again = block_on(m.load(&id)).unwrap().unwrap().session;
    assert_eq!(again.attributes["k"], b"2");

    // A request that never used the session: the record read, left as the change wrote it,
    // then, a second later, read and rewritten; nothing else.
    assert_eq!(unused(), [1, 1, 0, 1], "unused, renewed lately");
    std::thread::sleep(lag);
    assert_eq!(unused(), [1, 2, 0, 1], "unused");
    assert_eq!(stat(&m, "renewals_skipped"), 2);

    // The lock is free: a new one is granted at once.
    let lock = block_on(m.lock(&id)).unwrap();
    block_on(m.unlock(lock)).unwrap();
    assert_eq!(stat(&m, "lock_timeouts"), 0);
}

#[test]
fn sessions_expire_without_any_host_and_every_access_renews_them() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let m = manager(&nodes, &[("sticky", "false"), ("storageKeyPrefix", "t:")]);
    m.track_backups();
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut s = SessionData::new(3);
    block_on(m.store(&id, &mut s)).unwrap();
    let key = format!("t:{}", id.storage_part());
    let primary = if id.node() == "n1" { &m1 } else { &m2 };
    let backup = if id.node() == "n1" { &m2 } else { &m1 };
    // The record lives exactly the session's lifetime, the copies a quarter longer.
    assert_eq!(primary.ttl(&format!("validity:{key}")), Some(3));
    assert_eq!(primary.ttl(&key), Some(4));
    assert_eq!(backup.ttl(&format!("bak:{key}")), Some(4));

    // Accessed every second for twice its lifetime, by requests that never load it: the
    // copies' expiry is renewed along the way, so it is alive at the end.
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        assert!(block_on(m.non_sticky().unwrap().accessed(&id, None, None)).unwrap());
    }
    assert!(
        primary.ttl(&key).unwrap() >= 3,
        "the copy outlives the session"
    );
    assert!(backup.ttl(&format!("bak:{key}")).unwrap() >= 3);
    assert!(block_on(m.load(&id)).unwrap().is_some());
    let loaded = block_on(m.load(&id)).unwrap().unwrap();
    assert_eq!(loaded.session.max_inactive, 3);

    // Left alone longer than its lifetime, it is gone, with no host expiring it.
    std::thread::sleep(std::time::Duration::from_millis(4200));
    assert!(block_on(m.load(&id)).unwrap().is_none());
    assert!(!block_on(m.non_sticky().unwrap().accessed(&id, None, None)).unwrap());
}

/// `lockFailure`: a request that cannot take the session lock within `lockMaxWait` goes on
/// without it (`proceed`, the default) or fails (`refuse`); both are counted.
#[test]
fn a_lock_not_taken_in_time_lets_the_request_proceed_unless_refused() {
    let server = Memcached::start();
    let holder = manager(&[&server], &[("sticky", "false")]);
    let id = block_on(holder.new_session_id(None)).unwrap();
    let held = block_on(holder.lock(&id)).unwrap();

    let proceeding = manager(&[&server], &[("sticky", "false"), ("lockMaxWait", "100")]);
    assert!(
        block_on(proceeding.non_sticky().unwrap().lock_for_request(&id))
            .unwrap()
            .is_none()
    );
    assert_eq!(stat(&proceeding, "lock_timeouts"), 1);
    let refusing = manager(
        &[&server],
        &[
            ("sticky", "false"),
            ("lockMaxWait", "100"),
            ("lockFailure", "refuse"),
        ],
    );
    assert!(matches!(
        block_on(refusing.non_sticky().unwrap().lock_for_request(&id)),
        Err(msm::Error::LockTimeout(_))
    ));
    assert_eq!(stat(&refusing, "lock_timeouts"), 1);

    block_on(holder.unlock(held)).unwrap();
    let lock = block_on(proceeding.non_sticky().unwrap().lock_for_request(&id)).unwrap();
    assert!(lock.is_some(), "a free lock is taken");
}

/// A login changes the session's id and nothing else: the request's end finds the session
/// unchanged since its read, yet memcached holds nothing under the new id, so it is written
/// there, and the copies under the old id go.
#[test]
fn an_unchanged_session_handed_back_under_a_new_id_is_written_under_it() {
    let server = Memcached::start();
    let m = manager(&[&server], &[("sticky", "false")]);
    let old = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&old, &mut session(b"kept"))).unwrap();
    let old = old.to_string();
    let start = msm::RequestStart {
        session_id: Some(&old),
        uri: "/login",
        route: None,
    };
    let mut request = block_on(m.begin(start)).unwrap();
    let found = msm::runtime::handle().block_on(m.lookup(&mut request, &old, msm::HostCopy::None));
    let msm::Lookup::Found(loaded) = found else {
        panic!("session not found: {found:?}");
    };
    let new = block_on(m.new_session_id(None)).unwrap();
    let outcome = msm::Outcome::Used {
        id: &new.to_string(),
        session: loaded.session,
        previous: Some(&old),
    };
    block_on(m.end(&mut request, outcome)).unwrap();
    let moved = block_on(m.load(&new))
        .unwrap()
        .expect("the session under its new id");
    assert_eq!(moved.session.attributes, session(b"kept").attributes);
    let old = m.parse_id(&old).unwrap();
    assert!(
        block_on(m.load(&old)).unwrap().is_none(),
        "old copies removed"
    );
}

/// A request holding the lock lets it go only once both copies of its write are acknowledged:
/// the next holder's writes come after all of its own, so that a late second copy of the older
/// version never overwrites the newer one (which would be lost if the primary node then died).
#[test]
fn the_lock_is_released_only_after_the_second_copy_is_written() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    // Operations wait longer than the second copy's node pauses: its write is late, not failed.
    let locking = [
        ("sticky", "false"),
        ("lockingMode", "all"),
        ("operationTimeout", "3000"),
    ];
    let (a, b) = (
        manager(&[&m1, &m2], &locking),
        manager(&[&m1, &m2], &locking),
    );
    let id = id_on(&a, "n1");
    block_on(a.store(&id, &mut session(b"1"))).unwrap();
    let (loaded, lock) = block_on(a.load_locked(&id)).unwrap();
    let mut changed = loaded.unwrap().session;
    changed.attributes.insert("k".into(), b"2".to_vec());

    // The second copy's node answers nothing for a while: the write waits for it.
    m2.pause();
    let writer = {
        let id = id.clone();
        std::thread::spawn(move || {
            let finished = a
                .non_sticky()
                .unwrap()
                .finish(&id, &mut changed, Some(lock), None);
            block_on(finished).unwrap();
        })
    };
    let next = {
        let (b, id) = (std::sync::Arc::clone(&b), id.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let lock = block_on(b.lock(&id)).unwrap();
            (Instant::now(), lock)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let resumed = Instant::now();
    m2.resume();
    writer.join().unwrap();
    let (locked, lock) = next.join().unwrap();
    assert!(
        locked >= resumed,
        "the next holder took the lock {:?} before the second copy was written",
        resumed - locked
    );
    block_on(b.unlock(lock)).unwrap();
    // The primary's node dies: the second copy has the change.
    m1.kill();
    let loaded = block_on(b.load(&id))
        .unwrap()
        .expect("read from the second copy");
    assert_eq!(loaded.session.attributes["k"], b"2");
}
