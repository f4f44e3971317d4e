//! The node list shared in the cluster, against real memcached: managers started at different
//! times find each other's nodes, versions and concurrent publishers, forged records, the rate
//! limit of reads caused by unknown nodes, and removed nodes whose sessions move as on a failure.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{Memcached, TempDir, eventually, id_on, stat};
use msm::config::{NodeConfig, parse_node_list};
use msm::envelope::{Codec, KeyRing};
use msm::membership::NodeList;
use msm::runtime::{block_on, wait};
use msm::{Config, SessionData, SessionId, SessionManager};

const KEY: &str = "nodes:test:";

/// A manager of the context `test:` over `nodes` (`memcachedNodes` syntax).
fn manager(nodes: &str, extra: &[(&str, &str)]) -> Arc<SessionManager> {
    let mut pairs = vec![
        ("memcachedNodes", nodes),
        ("storageKeyPrefix", "test:"),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "50"),
    ];
    pairs.extend_from_slice(extra);
    SessionManager::new(Config::from_pairs(pairs).expect("config")).expect("manager")
}

/// `n<i>:<address>` for each (i, server).
fn nodes(servers: &[(usize, &Memcached)]) -> String {
    servers
        .iter()
        .map(|(i, s)| format!("n{i}:{}", s.address()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ids(list: &NodeList) -> Vec<&str> {
    list.nodes.iter().map(|n| n.id.as_str()).collect()
}

/// The record a server holds, as a manager without integrity key reads it.
fn record(server: &Memcached) -> NodeList {
    let value = server
        .get(KEY)
        .expect("the server holds the shared node list");
    NodeList::decode(&Codec::new(None, 8 << 20, "test:"), &value).expect("a valid record")
}

fn session(value: &[u8]) -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("user".into(), value.to_vec());
    s
}

#[test]
fn a_manager_started_before_a_node_finds_the_sessions_stored_there() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let early = manager(&nodes(&[(1, &m1), (2, &m2)]), &[]);
    assert_eq!(early.node_list().version, 1, "the first manager publishes");
    assert_eq!(record(&m1), early.node_list());

    let m3 = Memcached::start();
    let late = manager(&nodes(&[(1, &m1), (2, &m2), (3, &m3)]), &[]);
    let shared = late.node_list();
    assert_eq!((shared.version, ids(&shared)), (2, vec!["n1", "n2", "n3"]));
    for server in [&m1, &m2, &m3] {
        assert_eq!(record(server), shared, "written on every node");
    }

    let id = id_on(&late, "n3");
    block_on(late.store(&id, &mut session(b"alice"))).unwrap();
    // The early manager read the list at its start, a moment ago: that does not hold back a
    // read for an unknown node (only such reads are limited, see the rate limit test).
    // The early manager meets a session id naming a node it does not know: it reads the
    // shared list, adopts n3 and finds the session where it is.
    let loaded = block_on(early.load(&id)).unwrap().expect("found on n3");
    assert_eq!(loaded.session.attributes["user"], b"alice");
    assert_eq!(loaded.relocated, None);
    assert_eq!(early.node_list(), shared);
    assert_eq!(stat(&early, "shared_list_adopted"), 1);
    assert_eq!(wait(early.route_request(&id, None)).unwrap(), None);
    assert!(early.stats_text().contains("\nshared_list_version 2\n"));
}

#[test]
fn a_replacement_is_the_next_version_and_reaches_removed_nodes_too() {
    let (m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let a = manager(&nodes(&[(1, &m1), (2, &m2)]), &[]);
    let b = manager(&nodes(&[(1, &m1), (2, &m2)]), &[]);
    assert_eq!(
        b.node_list().version,
        1,
        "nothing to add: the list is adopted"
    );
    assert_eq!(stat(&b, "shared_list_published"), 0);

    block_on(a.set_nodes(&nodes(&[(1, &m1), (3, &m3)]))).unwrap();
    let replaced = a.node_list();
    assert_eq!((replaced.version, ids(&replaced)), (2, vec!["n1", "n3"]));
    for server in [&m1, &m2, &m3] {
        assert_eq!(record(server), replaced, "new and removed nodes tell");
    }

    // Another manager follows (here on request; also periodically and for unknown nodes).
    wait(b.refresh_nodes()).unwrap();
    assert_eq!(b.node_list(), replaced);
    assert!(!b.stats_text().contains("node_n2 "), "n2 is no longer used");

    // An older version never wins over a newer one.
    m3.set(
        KEY,
        &NodeList {
            version: 1,
            ..replaced.clone()
        }
        .encode(&Codec::new(None, 8 << 20, "test:")),
    );
    wait(b.refresh_nodes()).unwrap();
    assert_eq!(b.node_list().version, 2);
    assert_eq!(
        record(&m3),
        replaced,
        "the stale node is given the newest list"
    );
}

#[test]
fn concurrent_publishers_lose_no_node() {
    const MANAGERS: usize = 4;
    let shared = Memcached::start();
    let own: Vec<Memcached> = (0..MANAGERS).map(|_| Memcached::start()).collect();
    let barrier = Arc::new(Barrier::new(MANAGERS));
    let managers: Vec<Arc<SessionManager>> = std::thread::scope(|scope| {
        let started: Vec<_> = own
            .iter()
            .enumerate()
            .map(|(i, server)| {
                let list = nodes(&[(1, &shared), (i + 2, server)]);
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    barrier.wait();
                    manager(&list, &[])
                })
            })
            .collect();
        started.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let final_list = record(&shared);
    let mut all: Vec<String> = (1..=MANAGERS + 1).map(|i| format!("n{i}")).collect();
    let mut got: Vec<String> = ids(&final_list).into_iter().map(String::from).collect();
    got.sort();
    all.sort();
    assert_eq!(got, all, "every manager's node is in the shared list");
    for m in &managers {
        wait(m.refresh_nodes()).unwrap();
        assert_eq!(m.node_list(), final_list);
    }
    for server in &own {
        assert_eq!(record(server), final_list);
    }
    let conflicts: u64 = managers
        .iter()
        .map(|m| stat(m, "shared_list_conflicts"))
        .sum();
    println!("lost races redone: {conflicts}");
}

/// The list of a manager over `server` as n1, with an intruder n9 added.
fn with_intruder(server: &Memcached, intruder: &Memcached) -> NodeList {
    NodeList {
        version: 100,
        nodes: parse_node_list(&nodes(&[(1, server), (9, intruder)]), None).unwrap(),
    }
}

#[test]
fn forged_and_corrupt_records_are_refused_counted_and_replaced() {
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    let (server, intruder) = (Memcached::start(), Memcached::start());
    let dir = TempDir::new("membership-key");
    let key_file = dir.path.join("key");
    std::fs::write(&key_file, [SECRET, b"\n"].concat()).unwrap();
    let key_source = format!("file:{}", key_file.display());
    let signed = manager(&nodes(&[(1, &server)]), &[("integrityKey", &key_source)]);
    let forged = with_intruder(&server, &intruder);
    let forgeries: [(&str, Vec<u8>); 3] = [
        (
            "checksum only",
            forged.encode(&Codec::new(None, 8 << 20, "test:")),
        ),
        (
            "another key",
            forged.encode(&Codec::new(
                Some(KeyRing::parse(b"not the key at all").unwrap()),
                8 << 20,
                "test:",
            )),
        ),
        ("garbage", b"garbage".to_vec()),
    ];
    let codec = Codec::new(Some(KeyRing::parse(SECRET).unwrap()), 8 << 20, "test:");
    for (i, (what, value)) in forgeries.iter().enumerate() {
        server.set(KEY, value);
        wait(signed.refresh_nodes()).unwrap();
        assert_eq!(ids(&signed.node_list()), ["n1"], "{what}: n9 not adopted");
        assert_eq!(
            stat(&signed, "shared_lists_refused"),
            i as u64 + 1,
            "{what}"
        );
        let repaired = NodeList::decode(&codec, &server.get(KEY).unwrap()).unwrap();
        assert_eq!(
            ids(&repaired),
            ["n1"],
            "{what}: overwritten with the manager's list"
        );
    }
    assert_eq!(intruder.stat("cmd_get") + intruder.stat("cmd_set"), 0);

    // Without a key the checksum is all there is: a well-formed record is trusted (the README
    // says so), but its nodes are still held to the configuration's grammar.
    let other = Memcached::start();
    let unsigned = manager(&nodes(&[(1, &other)]), &[]);
    let bad_host = NodeList {
        version: 200,
        nodes: vec![NodeConfig {
            host: "bad\u{7}host".into(),
            ..unsigned.node_list().nodes[0].clone()
        }],
    };
    let crc = Codec::new(None, 8 << 20, "test:");
    other.set(KEY, &bad_host.encode(&crc));
    wait(unsigned.refresh_nodes()).unwrap();
    assert_eq!(stat(&unsigned, "shared_lists_refused"), 1);
    assert_eq!(ids(&unsigned.node_list()), ["n1"]);
    other.set(KEY, &with_intruder(&other, &intruder).encode(&crc));
    wait(unsigned.refresh_nodes()).unwrap();
    assert_eq!(ids(&unsigned.node_list()), ["n1", "n9"]);
}

#[test]
fn reads_for_unknown_nodes_are_rate_limited() {
    let server = Memcached::start();
    let m = manager(&nodes(&[(1, &server)]), &[]);
    assert_eq!(stat(&m, "shared_list_reads"), 1, "read at start");
    let gets = server.stat("cmd_get");
    for i in 0..50 {
        let forged = SessionId::parse(&format!("{i:032X}-zz")).unwrap();
        assert_eq!(block_on(m.load(&forged)).unwrap(), None);
    }
    assert_eq!(
        stat(&m, "shared_list_reads"),
        2,
        "one read for fifty forged ids"
    );
    assert_eq!(stat(&m, "shared_list_reads_limited"), 49);
    assert_eq!(server.stat("cmd_get"), gets + 1, "one gets of the list");
    std::thread::sleep(Duration::from_millis(1100));
    let forged = SessionId::parse("0123456789ABCDEF0123456789ABCDEF-zz.a").unwrap();
    assert!(wait(m.route_request(&forged, Some("a"))).unwrap().is_some());
    assert_eq!(
        stat(&m, "shared_list_reads"),
        3,
        "a second later it reads again"
    );
}

#[test]
fn removing_a_node_moves_its_sessions_as_a_failure_does() {
    let (m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let all = nodes(&[(1, &m1), (2, &m2), (3, &m3)]);
    let without_n2 = nodes(&[(1, &m1), (3, &m3)]);

    // Non-sticky: the second copy on the next node (n3) becomes the primary, on the manager
    // that removed n2 and on one that followed the shared list.
    let remover = manager(&all, &[("sticky", "false")]);
    let follower = manager(&all, &[("sticky", "false")]);
    let first = id_on(&remover, "n2");
    let second = id_on(&remover, "n2");
    block_on(remover.store(&first, &mut session(b"first"))).unwrap();
    block_on(remover.store(&second, &mut session(b"second"))).unwrap();
    block_on(remover.set_nodes(&without_n2)).unwrap();
    wait(follower.refresh_nodes()).unwrap();
    assert_eq!(follower.node_list(), remover.node_list());
    for (m, id, value) in [
        (&remover, &first, &b"first"[..]),
        (&follower, &second, &b"second"[..]),
    ] {
        let loaded = block_on(m.load(id))
            .unwrap()
            .expect("read from its second copy");
        assert_eq!(loaded.session.attributes["user"], value);
        let moved = loaded.relocated.expect("a new id");
        assert_eq!(moved.node(), "n3");
        assert_eq!(stat(m, "sessions_relocated"), 1);
        assert!(block_on(m.load(&moved)).unwrap().is_some());
    }

    // Sticky: the next write goes to the next node, under a new id. (This manager's start
    // added n2 back to the shared list, last: its configuration names it.)
    let sticky = manager(&all, &[]);
    let id = id_on(&sticky, "n2");
    block_on(sticky.store(&id, &mut session(b"v"))).unwrap();
    block_on(sticky.set_nodes(&without_n2)).unwrap();
    let routed = wait(sticky.route_request(&id, None))
        .unwrap()
        .expect("a new id");
    assert_ne!(routed.node(), "n2");
    let moved = block_on(sticky.store(&id, &mut session(b"v"))).unwrap();
    assert_eq!(moved.expect("relocated"), routed);
    // Listed again, the node is used again.
    block_on(sticky.set_nodes(&all)).unwrap();
    assert_eq!(wait(sticky.route_request(&id, None)).unwrap(), None);
}

#[test]
fn nodes_not_shared_at_start_are_added_by_a_later_read() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let first = manager(&nodes(&[(1, &m1)]), &[]);
    assert_eq!(first.node_list().version, 1);
    // Every node of the second manager hangs while it starts: nothing is read or written.
    m1.pause();
    m2.pause();
    let second = manager(&nodes(&[(1, &m1), (2, &m2)]), &[]);
    assert_eq!(second.node_list().version, 0);
    m1.resume();
    m2.resume();
    eventually("both nodes are up again", || {
        second.stats_text().matches(" up\n").count() == 2
    });
    // Its next read adds n2 rather than adopting the older list that lacks it.
    wait(second.refresh_nodes()).unwrap();
    let shared = second.node_list();
    assert_eq!((shared.version, ids(&shared)), (2, vec!["n1", "n2"]));
    assert_eq!(record(&m1), shared);
}

#[test]
fn without_a_shared_list_nothing_is_read_or_written() {
    let server = Memcached::start();
    let m = manager(&nodes(&[(1, &server)]), &[("sharedNodeList", "false")]);
    block_on(m.set_nodes(&nodes(&[(1, &server)]))).unwrap();
    wait(m.refresh_nodes()).unwrap();
    assert_eq!(server.item_count(), 0);
    assert_eq!(stat(&m, "shared_list_reads"), 0);
    assert_eq!(m.node_list().version, 0);
}
