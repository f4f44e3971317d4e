//! Non-sticky requests in the core: which requests lock, and a request's end writing only what
//! changed, against real memcached.

mod common;

use common::{Memcached, manager, stat};
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
            assert!(m.locks_request(uri), "{mode} should lock {uri}");
        }
        for uri in unlocked {
            assert!(!m.locks_request(uri), "{mode} should not lock {uri}");
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

    assert!(m.locks_request("/show"), "unknown URIs lock");
    let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
    let mut s = loaded.unwrap().session;
    block_on(m.finish(&id, &mut s, Some(lock), Some("/show"))).unwrap();
    assert!(
        !m.locks_request("/show"),
        "it changed nothing: read-only now"
    );

    // A request to that URI that does change the session makes it lock again.
    let mut s = block_on(m.load(&id)).unwrap().unwrap().session;
    s.attributes.insert("k".into(), b"2".to_vec());
    block_on(m.finish(&id, &mut s, None, Some("/show"))).unwrap();
    assert!(m.locks_request("/show"));
}

#[test]
fn a_request_end_writes_only_a_changed_session_and_always_unlocks() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&m1, &m2], &[("sticky", "false"), ("lockMaxWait", "100")]);
    m.track_backups();
    let id = block_on(m.new_session_id(None)).unwrap();
    block_on(m.store(&id, &mut session(b"1"))).unwrap();
    let sets = m1.stat("cmd_set") + m2.stat("cmd_set");
    let touches = m1.stat("cmd_touch") + m2.stat("cmd_touch");

    // Unchanged: both copies pinged, nothing written (the one storage command is the lock's
    // `add`), the lock released.
    let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
    let mut s = loaded.unwrap().session;
    block_on(m.finish(&id, &mut s, Some(lock), None)).unwrap();
    assert_eq!(m1.stat("cmd_set") + m2.stat("cmd_set"), sets + 1);
    assert_eq!(m1.stat("cmd_touch") + m2.stat("cmd_touch"), touches + 2);

    // Changed: both copies written.
    let (loaded, lock) = block_on(m.load_locked(&id)).unwrap();
    let mut s = loaded.unwrap().session;
    s.attributes.insert("k".into(), b"2".to_vec());
    block_on(m.finish(&id, &mut s, Some(lock), None)).unwrap();
    assert_eq!(
        m1.stat("cmd_set") + m2.stat("cmd_set"),
        sets + 1 + 3,
        "lock, lock, two copies"
    );
    let again = block_on(m.load(&id)).unwrap().unwrap().session;
    assert_eq!(again.attributes["k"], b"2");

    // The lock is free: a new one is granted at once.
    let lock = block_on(m.lock(&id)).unwrap();
    block_on(m.unlock(lock)).unwrap();
    assert_eq!(stat(&m, "lock_timeouts"), 0);
}
