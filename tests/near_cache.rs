//! The near cache against real memcached outages: sessions served and stored locally while the
//! cluster is unreachable or returns garbage, written back (newer copy winning) when it answers,
//! and never used to bring back a session that ended.

mod common;

use std::sync::Arc;

use common::{Memcached, eventually, manager, stat};
use msm::runtime::block_on;
use msm::{Error, SessionData, SessionId, SessionManager};

fn session(value: &[u8]) -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("k".into(), value.to_vec());
    s
}

fn value(m: &SessionManager, id: &SessionId) -> Option<Vec<u8>> {
    block_on(m.load(id))
        .unwrap()
        .map(|l| l.session.attributes["k"].clone())
}

const NON_STICKY: &[(&str, &str)] = &[("sticky", "false")];

#[test]
fn with_every_node_down_sessions_are_served_stored_and_created_locally_then_written_back() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let host = manager(&[&m1, &m2], NON_STICKY);
    let id = block_on(host.new_session_id(None)).unwrap();
    block_on(host.store(&id, &mut session(b"before"))).unwrap();
    assert_eq!(value(&host, &id).as_deref(), Some(&b"before"[..]));

    m1.kill();
    m2.kill();
    // Read and changed during the outage, from this host's copy.
    assert_eq!(value(&host, &id).as_deref(), Some(&b"before"[..]));
    assert_eq!(
        block_on(host.store(&id, &mut session(b"during"))).unwrap(),
        None
    );
    assert_eq!(value(&host, &id).as_deref(), Some(&b"during"[..]));
    // A session created during the outage.
    let new = block_on(host.new_session_id(None)).unwrap();
    block_on(host.store(&new, &mut session(b"new"))).unwrap();
    assert_eq!(value(&host, &new).as_deref(), Some(&b"new"[..]));
    assert!(stat(&host, "near_cache_stored") >= 2);
    assert!(stat(&host, "near_cache_served") >= 2);

    // The nodes come back empty: both sessions are written back without any request.
    m1.restart();
    m2.restart();
    eventually("the near cache is written back", || {
        stat(&host, "near_cache_written_back") >= 2
    });
    // Another host (a Tomcat that never saw the outage) finds both in memcached.
    let other = manager(&[&m1, &m2], NON_STICKY);
    assert_eq!(value(&other, &id).as_deref(), Some(&b"during"[..]));
    assert_eq!(value(&other, &new).as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_sticky_session_created_during_an_outage_survives_a_later_tomcat_failover() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let host = manager(&[&m1, &m2], &[]);
    host.track_backups();
    m1.kill();
    m2.kill();
    let id = block_on(host.new_session_id(None)).unwrap();
    let outcome = host.sticky().unwrap().backup(
        &id,
        &session(b"outage"),
        Some(std::time::Duration::from_secs(2)),
    );
    assert!(outcome.is_err(), "the backup itself fails: {outcome:?}");
    m1.restart();
    m2.restart();
    eventually("the backup is written back", || {
        stat(&host, "near_cache_written_back") >= 1
    });
    // The host dies; another takes the session over from memcached.
    drop(host);
    let other = manager(&[&m1, &m2], &[]);
    assert_eq!(value(&other, &id).as_deref(), Some(&b"outage"[..]));
}

#[test]
fn garbage_in_memcached_falls_back_to_the_local_copy_and_is_repaired() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let host = manager(&[&m1, &m2], NON_STICKY);
    let id = block_on(host.new_session_id(None)).unwrap();
    block_on(host.store(&id, &mut session(b"good"))).unwrap();
    let key = format!("test:{}", id.storage_part());
    let (primary, backup) = if id.node() == "n1" {
        (&m1, &m2)
    } else {
        (&m2, &m1)
    };
    primary.set(&key, b"garbage");
    backup.set(&format!("bak:{key}"), b"more garbage");

    let loaded = block_on(host.load(&id)).unwrap().unwrap();
    assert_eq!(loaded.session.attributes["k"], b"good");
    assert!(stat(&host, "corrupt_values") >= 2);
    // The request's end writes it (served locally, the cluster lacked it).
    let mut s = loaded.session;
    block_on(host.non_sticky().unwrap().finish(&id, &mut s, None, None)).unwrap();
    let other = manager(&[&m1, &m2], NON_STICKY);
    assert_eq!(value(&other, &id).as_deref(), Some(&b"good"[..]));

    // Without a local copy, garbage is still only corrupt, never handed out.
    primary.set(&key, b"garbage");
    backup.set(&format!("bak:{key}"), b"more garbage");
    let third = manager(&[&m1, &m2], NON_STICKY);
    assert!(matches!(block_on(third.load(&id)), Err(Error::Corrupt(_))));
}

#[test]
fn a_flushed_cluster_loses_nothing_but_an_ended_session_stays_ended() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let (a, b) = (
        manager(&[&m1, &m2], NON_STICKY),
        manager(&[&m1, &m2], NON_STICKY),
    );
    let kept = block_on(a.new_session_id(None)).unwrap();
    block_on(a.store(&kept, &mut session(b"kept"))).unwrap();
    let ended = block_on(a.new_session_id(None)).unwrap();
    block_on(a.store(&ended, &mut session(b"ended"))).unwrap();
    // Host b reads both (it keeps copies), then host a invalidates one.
    assert!(value(&b, &kept).is_some() && value(&b, &ended).is_some());
    block_on(a.delete(&ended)).unwrap();
    assert_eq!(
        value(&b, &ended),
        None,
        "invalidated elsewhere: not brought back"
    );

    for server in [&m1, &m2] {
        server.raw(b"flush_all\r\n", &["OK"]);
    }
    assert_eq!(
        value(&b, &kept).as_deref(),
        Some(&b"kept"[..]),
        "flushed: served locally"
    );
}

/// An ended session does not come back from another host's copy under another node's id: the
/// record of the id the copy was taken as says it ended, and an id naming no node of the
/// cluster is never served from a copy.
#[test]
fn an_ended_session_does_not_come_back_under_another_nodes_id() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let (a, b) = (
        manager(&[&m1, &m2], NON_STICKY),
        manager(&[&m1, &m2], NON_STICKY),
    );
    let id = common::id_on(&a, "n1");
    block_on(a.store(&id, &mut session(b"ended"))).unwrap();
    assert!(value(&b, &id).is_some(), "host b keeps a copy");
    block_on(a.delete(&id)).unwrap();
    for other in [id.with_node("n2"), id.with_node("n9"), id] {
        assert_eq!(value(&b, &other), None, "{other:?}");
    }
    assert_eq!(stat(&b, "near_cache_served"), 0);
}

/// A live validity record whose session is missing is what a host sees when the session was
/// written between its two reads (another host's write-back after the cluster came back empty),
/// or when memcached evicted the session alone: the session did not end, so the host's copy
/// stands in. Before, any record counted as "ended" and the user was given a new session.
#[test]
fn a_live_record_without_its_session_does_not_end_the_session() {
    let m1 = Memcached::start();
    let host = manager(&[&m1], NON_STICKY);
    let id = block_on(host.new_session_id(None)).unwrap();
    block_on(host.store(&id, &mut session(b"kept"))).unwrap();
    let key = format!("test:{}", id.storage_part());
    assert!(m1.has(&format!("validity:{key}")));
    assert_eq!(
        m1.raw(format!("delete {key}\r\n").as_bytes(), &["DELETED"])
            .trim_end(),
        "DELETED"
    );
    assert_eq!(
        value(&host, &id).as_deref(),
        Some(&b"kept"[..]),
        "served from this host's copy"
    );
    assert_eq!(stat(&host, "near_cache_served"), 1);
}

/// Host a keeps a copy of a session it served on node 1; host b moves the session to node 2
/// (node 1 died); then the cluster goes away. Host a serves the session's new id from the copy
/// it has under the old one: copies are kept by session, not by storage key.
#[test]
fn a_session_moved_by_another_host_is_still_served_from_this_hosts_copy() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let a = manager(&[&m1, &m2], NON_STICKY);
    let b = manager(&[&m1, &m2], NON_STICKY);
    let id = common::id_on(&a, "n1");
    block_on(a.store(&id, &mut session(b"kept"))).unwrap();
    assert_eq!(value(&a, &id).as_deref(), Some(&b"kept"[..]));

    m1.kill();
    let moved = block_on(b.load(&id))
        .unwrap()
        .and_then(|loaded| loaded.relocated)
        .expect("moved to its second copy's node");
    assert_eq!(moved.node(), "n2");
    m2.kill();
    assert_eq!(
        value(&a, &moved).as_deref(),
        Some(&b"kept"[..]),
        "served from host a's copy"
    );
    assert_eq!(stat(&a, "near_cache_served"), 1);
}

/// A node, host a holding a change of a session that the node missed while frozen (a notices
/// the node's return late, so host b acts first), and host b.
struct PendingWriteBack {
    node: Memcached,
    a: Arc<SessionManager>,
    b: Arc<SessionManager>,
    id: SessionId,
}

impl PendingWriteBack {
    fn new() -> Self {
        let mut node = Memcached::start();
        let a = manager(
            &[&node],
            &[("sticky", "false"), ("nodeProbeInterval", "3000")],
        );
        let b = manager(&[&node], NON_STICKY);
        let id = block_on(a.new_session_id(None)).unwrap();
        block_on(a.store(&id, &mut session(b"first"))).unwrap();
        let key = msm::keys::KeyScheme::with_prefix("test:").key(msm::keys::KeyKind::Session, &id);
        let first = node.get(&key).expect("the first write");
        node.pause();
        block_on(a.store(&id, &mut session(b"older"))).unwrap();
        assert_eq!(stat(&a, "near_cache_stored"), 1);
        node.resume();
        // The write that timed out reached memcached's socket before the pause: memcached
        // applies it when it runs again (a timeout cannot take a write back). Waiting for it
        // keeps it from landing after what the test does next, which would bring a deleted
        // session back by itself.
        eventually("the write that timed out lands", || {
            node.get(&key).is_some_and(|now| now != first)
        });
        PendingWriteBack { node, a, b, id }
    }

    /// Waits until host a gave up writing its copy back: after its next probe of the node,
    /// which a loaded machine can put off (a write-back that times out right after the node
    /// came back makes host a probe it less often), so up to 30 s.
    fn superseded(&self) {
        let start = std::time::Instant::now();
        while stat(&self.a, "near_cache_superseded") != 1 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "host a never tried its write-back; its statistics:\n{}",
                self.a.stats_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(stat(&self.a, "near_cache_written_back"), 0);
    }
}

#[test]
fn at_write_back_a_newer_copy_in_the_cluster_wins() {
    let pending = PendingWriteBack::new();
    block_on(pending.b.store(&pending.id, &mut session(b"newer"))).unwrap();
    pending.superseded();
    let fresh = manager(&[&pending.node], NON_STICKY);
    assert_eq!(value(&fresh, &pending.id).as_deref(), Some(&b"newer"[..]));
}

/// Before host a writes its change back, the user logs out on host b: the write-back must not
/// bring the session back.
#[test]
fn a_session_ended_in_the_cluster_is_not_brought_back_by_a_write_back() {
    let pending = PendingWriteBack::new();
    block_on(pending.b.delete(&pending.id)).unwrap();
    pending.superseded();
    assert_eq!(
        value(&pending.b, &pending.id),
        None,
        "the session stays ended"
    );
    assert_eq!(
        value(&pending.a, &pending.id),
        None,
        "and host a forgot its copy"
    );
}

#[test]
fn the_near_cache_keeps_to_its_bounds_and_counts_what_it_drops() {
    let mut m1 = Memcached::start();
    let host = manager(
        &[&m1],
        &[("sticky", "false"), ("nearCacheMaxSessions", "2")],
    );
    let ids: Vec<_> = (0..3)
        .map(|_| block_on(host.new_session_id(None)).unwrap())
        .collect();
    m1.kill();
    for id in &ids {
        block_on(host.store(id, &mut session(b"x"))).unwrap();
    }
    assert_eq!(stat(&host, "near_cache_sessions"), 2);
    assert_eq!(stat(&host, "near_cache_evicted"), 1);
}
