//! Sticky-mode operations of the core against real memcached: change detection, the background
//! queue, request routing, id changes, expiry and runtime node lists.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Memcached, eventually, manager, stat};
use msm::envelope::Codec;
use msm::runtime::{block_on, wait};
use msm::{BackupOutcome, SessionData, SessionId, SessionManager};

/// A manager used as the Tomcat shim uses it: backing sessions up after requests.
fn shared(servers: &[&Memcached], extra: &[(&str, &str)]) -> Arc<SessionManager> {
    let m = manager(servers, extra);
    m.track_backups();
    m
}

fn session(value: &[u8]) -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("k".into(), value.to_vec());
    s
}

fn stored(server: &Memcached, id: &SessionId) -> Option<SessionData> {
    let value = server.get(&format!("test:{}", id.storage_part()))?;
    Codec::new(None, 8 << 20, "test:")
        .decode(id.random(), &value)
        .ok()
}

const WAIT: Option<Duration> = Some(Duration::from_secs(5));

#[test]
fn only_changes_are_written() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let sets = server.stat("cmd_set");
    assert_eq!(
        m.sticky()
            .unwrap()
            .backup(&id, &session(b"1"), WAIT)
            .unwrap(),
        BackupOutcome::Written
    );
    let mut accessed = session(b"1");
    accessed.last_accessed += 60_000;
    assert_eq!(
        m.sticky().unwrap().backup(&id, &accessed, WAIT).unwrap(),
        BackupOutcome::Unchanged
    );
    assert_eq!(server.stat("cmd_set"), sets + 1);
    assert_eq!(
        m.sticky()
            .unwrap()
            .backup(&id, &session(b"2"), WAIT)
            .unwrap(),
        BackupOutcome::Written
    );
    assert_eq!(stored(&server, &id).unwrap().version, 2);
    assert_eq!(stat(&m, "session_backups_skipped"), 1);
}

#[test]
fn a_taken_over_session_is_claimed_once_then_written_only_when_changed() {
    let server = Memcached::start();
    let writer = shared(&[&server], &[]);
    let id = block_on(writer.new_session_id(Some("a"))).unwrap();
    let mut old = session(b"v");
    old.last_accessed -= 3_600_000;
    writer.sticky().unwrap().backup(&id, &old, WAIT).unwrap();
    let taker = shared(&[&server], &[]);
    let loaded = block_on(taker.load(&id)).unwrap().unwrap().session;
    let age = msm::session::now_millis() - loaded.last_accessed;
    assert!(
        age < 60_000,
        "a taken-over session is accessed now, not {age} ms ago"
    );
    assert_eq!(
        taker
            .sticky()
            .unwrap()
            .backup_unchanged(&id, 1800, WAIT)
            .unwrap(),
        None
    );
    assert_eq!(
        taker.sticky().unwrap().backup(&id, &loaded, WAIT).unwrap(),
        BackupOutcome::Written
    );
    assert_eq!(
        stored(&server, &id).unwrap().version,
        2,
        "claimed with a newer version"
    );
    assert_eq!(
        taker.sticky().unwrap().backup(&id, &loaded, WAIT).unwrap(),
        BackupOutcome::Unchanged
    );
    let mut changed = loaded.clone();
    changed.attributes.insert("k".into(), b"w".to_vec());
    assert_eq!(
        taker.sticky().unwrap().backup(&id, &changed, WAIT).unwrap(),
        BackupOutcome::Written
    );
    assert_eq!(stored(&server, &id).unwrap().version, 3);
    // The first host's stale copy times out there: the newer one stays.
    block_on(writer.sticky().unwrap().expire(&id)).unwrap();
    assert!(stored(&server, &id).is_some());
}

#[test]
fn a_renewal_never_replaces_a_waiting_write_and_a_deletion_is_not_overtaken() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut s = session(b"1");
    s.max_inactive = 4;
    m.sticky().unwrap().backup(&id, &s, WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    // A write, then a renewal due at the same time, both queued at once: the write lands.
    s.attributes.insert("k".into(), b"2".to_vec());
    m.sticky().unwrap().backup(&id, &s, None).unwrap();
    m.sticky().unwrap().backup_unchanged(&id, 4, None).unwrap();
    assert_eq!(m.flush(Duration::from_secs(5)), 0);
    assert_eq!(stored(&server, &id).unwrap().attributes["k"], b"2");
    // Writes queued right before a deletion never bring the session back.
    for i in 0..50u32 {
        m.sticky()
            .unwrap()
            .backup(&id, &session(&i.to_le_bytes()), None)
            .unwrap();
    }
    block_on(m.delete(&id)).unwrap();
    assert_eq!(m.flush(Duration::from_secs(5)), 0);
    assert!(stored(&server, &id).is_none());
}

#[test]
fn background_writes_of_one_session_keep_their_order() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    for i in 0..200u32 {
        assert!(matches!(
            m.sticky()
                .unwrap()
                .backup(&id, &session(&i.to_le_bytes()), None)
                .unwrap(),
            BackupOutcome::Queued
        ));
    }
    assert_eq!(m.flush(Duration::from_secs(10)), 0);
    let last = stored(&server, &id).unwrap();
    assert_eq!(
        last.attributes["k"],
        199u32.to_le_bytes(),
        "the newest content wins"
    );
    assert_eq!(last.version, 200);
    assert!(stat(&m, "session_backups") <= 200);
    assert_eq!(
        stat(&m, "session_backups") + stat(&m, "session_backups_coalesced"),
        200,
        "every change either written or replaced by a newer one"
    );
}

#[test]
fn a_full_queue_writes_on_the_callers_thread() {
    let server = Memcached::start();
    let m = shared(&[&server], &[("backupQueueSize", "1")]);
    let ids: Vec<SessionId> = (0..20)
        .map(|_| block_on(m.new_session_id(None)).unwrap())
        .collect();
    for id in &ids {
        m.sticky()
            .unwrap()
            .backup(id, &session(b"v"), None)
            .unwrap();
    }
    assert_eq!(m.flush(Duration::from_secs(10)), 0);
    assert!(
        ids.iter().all(|id| stored(&server, id).is_some()),
        "none lost"
    );
    assert!(stat(&m, "session_backups_queue_full") > 0);
}

#[test]
fn an_evicted_session_is_written_again_when_its_expiry_is_renewed() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut s = session(b"v");
    s.max_inactive = 4;
    m.sticky().unwrap().backup(&id, &s, WAIT).unwrap();
    server.raw(
        format!("delete test:{}\r\n", id.storage_part()).as_bytes(),
        &["DELETED"],
    );
    std::thread::sleep(Duration::from_millis(1100));
    // A quarter of the lifetime has passed: renew; the item is gone, so write it.
    assert_eq!(
        m.sticky().unwrap().backup(&id, &s, WAIT).unwrap(),
        BackupOutcome::Written
    );
    assert!(stored(&server, &id).is_some());
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        m.sticky().unwrap().backup(&id, &s, WAIT).unwrap(),
        BackupOutcome::Refreshed
    );
}

#[test]
fn requests_are_routed_to_this_host_and_to_a_live_node() {
    let (mut m1, m2) = (Memcached::start(), Memcached::start());
    let m = shared(&[&m1, &m2], &[]);
    let id = SessionId::parse("0123456789ABCDEF0123456789ABCDEF-n1.a").unwrap();
    assert_eq!(wait(m.route_request(&id, Some("a"))).unwrap(), None);
    assert_eq!(
        wait(m.route_request(&id, Some("b")))
            .unwrap()
            .unwrap()
            .to_string(),
        "0123456789ABCDEF0123456789ABCDEF-n1.b"
    );
    m1.kill();
    // The node's death is learnt from a failed operation.
    let _ = m.sticky().unwrap().backup(&id, &session(b"v"), WAIT);
    assert_eq!(
        wait(m.route_request(&id, Some("a")))
            .unwrap()
            .unwrap()
            .to_string(),
        "0123456789ABCDEF0123456789ABCDEF-n2.a"
    );
    drop(m2);
}

#[test]
fn an_id_change_removes_old_copies_only_when_the_key_changes() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(Some("a"))).unwrap();
    m.sticky()
        .unwrap()
        .backup(&id, &session(b"v"), WAIT)
        .unwrap();
    let rerouted = id.with_route(Some("b")).unwrap();
    block_on(m.id_changed(&id, &rerouted)).unwrap();
    assert!(stored(&server, &id).is_some(), "same key: kept");

    let renewed = block_on(m.new_session_id(Some("b"))).unwrap();
    block_on(m.id_changed(&rerouted, &renewed)).unwrap();
    assert!(
        stored(&server, &id).is_none(),
        "new key: the old copy is gone"
    );
}

#[test]
fn expiry_keeps_a_copy_another_host_wrote_since() {
    let server = Memcached::start();
    let first = shared(&[&server], &[]);
    let second = shared(&[&server], &[]);
    let id = block_on(first.new_session_id(None)).unwrap();
    first
        .sticky()
        .unwrap()
        .backup(&id, &session(b"v1"), WAIT)
        .unwrap();
    // The second host takes the session over and changes it.
    let mut taken = block_on(second.load(&id)).unwrap().unwrap().session;
    taken.attributes.insert("k".into(), b"v2".to_vec());
    second.sticky().unwrap().backup(&id, &taken, WAIT).unwrap();
    // The first host's stale copy times out: the newer one stays.
    block_on(first.sticky().unwrap().expire(&id)).unwrap();
    assert_eq!(stored(&server, &id).unwrap().attributes["k"], b"v2");
    assert_eq!(stat(&first, "expired_newer_kept"), 1);
    // When the host that wrote last expires it, it goes.
    block_on(second.sticky().unwrap().expire(&id)).unwrap();
    assert!(stored(&server, &id).is_none());
}

#[test]
fn the_node_list_can_grow_and_shrink_at_runtime() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let m = shared(&[&m1], &[]);
    let error = block_on(m.set_nodes("n1:127.0.0.1:1 n1:127.0.0.1:2")).unwrap_err();
    assert!(error.to_string().contains("duplicate node id"), "{error}");
    block_on(m.set_nodes(&format!("n1:{} n2:{}", m1.address(), m2.address()))).unwrap();
    let ids: Vec<SessionId> = (0..4)
        .map(|_| block_on(m.new_session_id(None)).unwrap())
        .collect();
    assert!(ids.iter().any(|id| id.node() == "n2"));
    let on_n2 = ids.iter().find(|id| id.node() == "n2").unwrap();
    m.sticky()
        .unwrap()
        .backup(on_n2, &session(b"v"), WAIT)
        .unwrap();
    // Removing n2 moves its sessions as a failure would.
    block_on(m.set_nodes(&format!("n1:{}", m1.address()))).unwrap();
    assert_eq!(
        wait(m.route_request(on_n2, None)).unwrap().unwrap().node(),
        "n1"
    );
    eventually("stats list only n1", || !m.stats_text().contains("node_n2"));
}

#[test]
fn an_unchanged_session_is_backed_up_without_its_content() {
    let server = Memcached::start();
    let m = shared(&[&server], &[]);
    let id = block_on(m.new_session_id(None)).unwrap();
    assert_eq!(
        m.sticky().unwrap().backup_unchanged(&id, 4, WAIT).unwrap(),
        None,
        "nothing confirmed yet"
    );
    let mut s = session(b"v");
    s.max_inactive = 4;
    m.sticky().unwrap().backup(&id, &s, WAIT).unwrap();
    assert_eq!(
        m.sticky().unwrap().backup_unchanged(&id, 4, WAIT).unwrap(),
        Some(BackupOutcome::Unchanged)
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        m.sticky().unwrap().backup_unchanged(&id, 4, WAIT).unwrap(),
        Some(BackupOutcome::Refreshed)
    );
    // memcached loses the item: the renewal misses, so the next backup must carry the content.
    server.raw(
        format!("delete test:{}\r\n", id.storage_part()).as_bytes(),
        &["DELETED"],
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        m.sticky().unwrap().backup_unchanged(&id, 4, WAIT).unwrap(),
        Some(BackupOutcome::Unchanged)
    );
    assert_eq!(
        m.sticky().unwrap().backup_unchanged(&id, 4, WAIT).unwrap(),
        None
    );
    assert_eq!(
        m.sticky().unwrap().backup(&id, &s, WAIT).unwrap(),
        BackupOutcome::Written
    );
    assert!(stored(&server, &id).is_some());
}
