//! Per-attribute updates (`updateGranularity="attribute"`) against real memcached: a changed
//! session sends only what changed; concurrent requests that change different attributes lose
//! nothing without the lock; forged, missing and left-over items; failover to the second copy;
//! sessions written whole read by an attribute manager and back.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use common::{
    Memcached, TempDir, command_totals, create_session, eventually, key_file, manager, stat,
    touch_session,
};
use msm::envelope::{Codec, Stored};
use msm::keys::{KeyKind, KeyScheme};
use msm::runtime::{block_on, handle};
use msm::{HostCopy, Lookup, Outcome, RequestStart, SessionData, SessionId, SessionManager};

const ATTRIBUTE: &[(&str, &str)] = &[
    ("sticky", "false"),
    ("lockingMode", "none"),
    ("updateGranularity", "attribute"),
];
const WHOLE: &[(&str, &str)] = &[("sticky", "false"), ("lockingMode", "none")];

/// The keys of the tests' managers (`common::config`).
static KEYS: LazyLock<KeyScheme> = LazyLock::new(|| KeyScheme::with_prefix("test:"));

/// One request that uses the session `id` and changes it with `change`, through the lifecycle
/// a host runs.
async fn request(
    m: Arc<SessionManager>,
    id: String,
    change: impl FnOnce(&mut SessionData),
) -> msm::Result<()> {
    let start = RequestStart {
        session_id: Some(&id),
        uri: "/",
        route: None,
    };
    let mut request = m.begin(start).await?;
    let mut session = match m.lookup(&mut request, &id, HostCopy::None).await {
        Lookup::Found(loaded) => loaded.session,
        other => panic!("session not found: {other:?}"),
    };
    change(&mut session);
    let outcome = Outcome::Used {
        id: &id,
        session,
        previous: None,
    };
    m.end(&mut request, outcome).await?;
    Ok(())
}

/// A new session of `count` attributes of `size` bytes each, stored.
fn stored_session(m: &SessionManager, count: usize, size: usize) -> SessionId {
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut session = SessionData::new(1800);
    for i in 0..count {
        session
            .attributes
            .insert(format!("a{i}"), vec![i as u8; size]);
    }
    block_on(m.store(&id, &mut session)).unwrap();
    id
}

fn load(m: &SessionManager, id: &SessionId) -> SessionData {
    block_on(m.load(id)).unwrap().expect("session").session
}

/// The keys of the attributes' items that the index of the session `id` on `node` (its copy
/// `kind`) names, by attribute name, read with `m`'s keys; none when `node` holds no index (a
/// whole session, or nothing).
fn indexed(
    m: &SessionManager,
    node: &Memcached,
    kind: KeyKind,
    id: &SessionId,
) -> BTreeMap<String, String> {
    let codec = Codec::from_config(m.config()).unwrap();
    let Some(value) = node.get(&KEYS.key(kind, id)) else {
        return BTreeMap::new();
    };
    match codec.decode_stored(id.random(), &value).unwrap() {
        Stored::Index(index) => index
            .names
            .into_iter()
            .map(|(name, version)| {
                let key = KEYS.attribute_key(kind, id, &name, version);
                (name, key)
            })
            .collect(),
        Stored::Session(_) => BTreeMap::new(),
    }
}

/// The key of the item of the attribute `name` of the session `id` that its index on `node`
/// names.
fn item(m: &SessionManager, node: &Memcached, id: &SessionId, name: &str) -> String {
    let mut names = indexed(m, node, KeyKind::Session, id);
    names
        .remove(name)
        .unwrap_or_else(|| panic!("no item of {name} indexed: {names:?}"))
}

/// Bytes the servers received, in total.
fn bytes_received(nodes: &[&Memcached]) -> u64 {
    nodes.iter().map(|n| n.stat("bytes_read")).sum()
}

#[test]
fn a_changed_session_sends_only_the_attribute_that_changed() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let mut sent = Vec::new();
    for extra in [WHOLE, ATTRIBUTE] {
        let m = manager(&[&m1, &m2], extra);
        let id = stored_session(&m, 10, 1024);
        let before = bytes_received(&[&m1, &m2]);
        block_on(request(Arc::clone(&m), id.to_string(), |s| {
            s.attributes.insert("a3".into(), vec![7; 1024]);
        }))
        .unwrap();
        if extra == ATTRIBUTE {
            // The replaced versions' deletions, one per copy, count too.
            eventually("the replaced versions deleted", || {
                stat(&m, "attribute_items_deleted") == 2
            });
        }
        sent.push(bytes_received(&[&m1, &m2]) - before);
        let session = load(&m, &id);
        assert_eq!(session.attributes.len(), 10);
        assert_eq!(session.attributes["a3"], vec![7; 1024]);
        assert_eq!(session.attributes["a4"], vec![4; 1024]);
    }
    let [whole, attribute] = sent[..] else {
        unreachable!()
    };
    println!(
        "bytes sent to memcached by one modifying request: whole {whole}, attribute {attribute}"
    );
    assert!(
        attribute * 3 < whole,
        "per attribute sends {attribute} bytes, whole {whole}"
    );
}

#[test]
fn concurrent_requests_changing_different_attributes_lose_nothing_without_a_lock() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    // Two hundred requests at once on a loaded machine can outlast the default budget, and a
    // write past it waits in the near cache: this test is about concurrent writers, not that.
    let patient = [ATTRIBUTE, &[("operationTimeout", "3000")]].concat();
    let hosts = [
        manager(&[&m1, &m2], &patient),
        manager(&[&m1, &m2], &patient),
    ];
    let id = stored_session(&hosts[0], 1, 16);
    let requests: Vec<_> = (0..200)
        .map(|i| {
            let host = Arc::clone(&hosts[i % 2]);
            handle().spawn(request(host, id.to_string(), move |s| {
                s.attributes
                    .insert(format!("k{i}"), i.to_string().into_bytes());
            }))
        })
        .collect();
    for r in requests {
        block_on(async { r.await.expect("the request's task") }).unwrap();
    }
    let session = load(&hosts[1], &id);
    let lost: Vec<usize> = (0..200)
        .filter(|i| session.attributes.get(&format!("k{i}")) != Some(&i.to_string().into_bytes()))
        .collect();
    let merges =
        stat(&hosts[0], "attribute_index_merges") + stat(&hosts[1], "attribute_index_merges");
    println!("index merges: {merges}");
    let kept_aside = stat(&hosts[0], "near_cache_stored") + stat(&hosts[1], "near_cache_stored");
    assert_eq!(kept_aside, 0, "writes that missed the budget");
    assert!(lost.is_empty(), "changes lost: {lost:?}");
    assert_eq!(session.attributes.len(), 201);
    let missing =
        stat(&hosts[0], "attribute_items_missing") + stat(&hosts[1], "attribute_items_missing");
    assert_eq!(missing, 0, "reads that left out an attribute");
    let rereads =
        stat(&hosts[0], "attribute_index_rereads") + stat(&hosts[1], "attribute_index_rereads");
    println!("index rereads: {rereads}");
}

/// A host that read a session before fetches only the attributes changed since: the versions
/// its index names that this host's copy holds are taken from the copy.
#[test]
fn a_host_fetches_only_the_attributes_changed_since_its_last_read() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let (a, b) = (manager(&nodes, ATTRIBUTE), manager(&nodes, ATTRIBUTE));
    let id = stored_session(&a, 10, 1024);
    assert_eq!(load(&b, &id).attributes.len(), 10);
    assert_eq!(
        stat(&b, "attribute_items_reused"),
        0,
        "a first read fetches everything"
    );

    let before = command_totals(&nodes);
    let session = load(&b, &id);
    let keys_read = command_totals(&nodes)[0] - before[0];
    assert_eq!(session.attributes["a4"], vec![4; 1024]);
    assert_eq!(stat(&b, "attribute_items_reused"), 10);
    assert_eq!(
        keys_read, 2,
        "the index and the validity record, in one round trip"
    );

    block_on(request(Arc::clone(&a), id.to_string(), |s| {
        s.attributes.insert("a3".into(), vec![7; 1024]);
        s.attributes.remove("a5");
    }))
    .unwrap();
    let before = command_totals(&nodes);
    let session = load(&b, &id);
    let keys_read = command_totals(&nodes)[0] - before[0];
    assert_eq!(
        session.attributes["a3"],
        vec![7; 1024],
        "the changed one fetched"
    );
    assert!(
        !session.attributes.contains_key("a5"),
        "the removed one gone"
    );
    assert_eq!(session.attributes["a4"], vec![4; 1024]);
    assert_eq!(session.attributes.len(), 9);
    assert_eq!(stat(&b, "attribute_items_reused"), 10 + 8);
    assert_eq!(
        keys_read, 3,
        "the index, the validity record and the changed attribute"
    );
}

/// A writer that stored a new version of an attribute and died before storing the index that
/// names it (here: memcached put back as it was between the two, the new version left): its
/// readers get the attribute as the index says, never the version no index names, which
/// expires on its own.
#[test]
fn a_version_stored_without_its_index_is_never_read() {
    let m1 = Memcached::start();
    let m = manager(&[&m1], ATTRIBUTE);
    let id = stored_session(&m, 2, 8);
    let index_key = KEYS.key(KeyKind::Session, &id);
    let index = m1.get(&index_key).unwrap();
    let old_key = item(&m, &m1, &id, "a0");
    let old_value = m1.get(&old_key).unwrap();
    block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes.insert("a0".into(), b"never indexed".to_vec());
    }))
    .unwrap();
    eventually("the replaced version deleted", || {
        stat(&m, "attribute_items_deleted") == 1
    });
    assert!(!m1.has(&old_key));
    let new_key = item(&m, &m1, &id, "a0");
    m1.set(&index_key, &index);
    m1.set(&old_key, &old_value);
    assert!(m1.has(&new_key), "the new version is there too");
    let session = load(&m, &id);
    assert_eq!(session.attributes["a0"], vec![0; 8]);
    assert_eq!(session.attributes["a1"], vec![1; 8]);
    assert_eq!(stat(&m, "attribute_items_missing"), 0);
}

/// A reader that finds a version its index named deleted (a writer stored a newer index in
/// between) reads the index again and gets the newer session whole. The reader goes through a
/// proxy that stores the newer index right after the reader's first read.
#[test]
fn a_reader_that_finds_a_version_deleted_reads_the_newer_index() {
    let m1 = Memcached::start();
    let writer = manager(&[&m1], ATTRIBUTE);
    let id = stored_session(&writer, 2, 8);
    let index_key = KEYS.key(KeyKind::Session, &id);
    let old_index = m1.get(&index_key).unwrap();
    let old_key = item(&writer, &m1, &id, "a0");
    block_on(request(Arc::clone(&writer), id.to_string(), |s| {
        s.attributes.insert("a0".into(), b"newer".to_vec());
    }))
    .unwrap();
    eventually("the replaced version deleted", || !m1.has(&old_key));
    let new_index = m1.get(&index_key).unwrap();
    m1.set(&index_key, &old_index);
    let (address, key) = (m1.address(), index_key.clone());
    let proxy = hook_after_value(&m1, &index_key, move || {
        let client =
            memcache::Client::connect(format!("memcache://{address}?protocol=ascii&timeout=5"))
                .unwrap();
        client.set(&key, new_index.as_slice(), 0).unwrap();
    });
    let nodes = format!("n1:{proxy}");
    let pairs = [
        ("memcachedNodes", nodes.as_str()),
        ("storageKeyPrefix", "test:"),
        ("operationTimeout", "1000"),
        // Its own node list, not the one the writer shares (which names memcached itself).
        ("sharedNodeList", "false"),
    ];
    let pairs = [&pairs[..], ATTRIBUTE].concat();
    let reader = SessionManager::new(msm::Config::from_pairs(pairs).unwrap()).unwrap();
    let session = load(&reader, &id);
    assert_eq!(session.attributes["a0"], b"newer");
    assert_eq!(session.attributes["a1"], vec![1; 8]);
    assert_eq!(stat(&reader, "attribute_index_rereads"), 1);
    assert_eq!(stat(&reader, "attribute_items_missing"), 0);
}

/// A TCP proxy on loopback in front of `server` that runs `hook` once: after a reply carrying
/// the value of `key`, before the next request of that connection is passed on. Returns its
/// address.
fn hook_after_value(server: &Memcached, key: &str, hook: impl FnOnce() + Send + 'static) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    type Hook = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let upstream = server.address();
    let marker = format!("VALUE {key} ").into_bytes();
    let hook: Hook = Arc::new(Mutex::new(Some(Box::new(hook))));
    // Across connections: the next request may leave on another of the pool's.
    let armed = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(&upstream).unwrap();
            let (mut from_server, mut to_client) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            let (marker, seen) = (marker.clone(), Arc::clone(&armed));
            std::thread::spawn(move || {
                let mut buffer = vec![0; 65536];
                while let Ok(n @ 1..) = from_server.read(&mut buffer) {
                    if buffer[..n].windows(marker.len()).any(|w| w == marker) {
                        seen.store(true, Ordering::SeqCst);
                    }
                    if to_client.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
            let (mut from_client, mut to_server) = (client, server);
            let (hook, armed) = (Arc::clone(&hook), Arc::clone(&armed));
            std::thread::spawn(move || {
                let mut buffer = vec![0; 65536];
                while let Ok(n @ 1..) = from_client.read(&mut buffer) {
                    if armed.load(Ordering::SeqCst)
                        && let Some(hook) = hook.lock().unwrap().take()
                    {
                        hook();
                    }
                    if to_server.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// A host whose two requests read a session at different times but use one copy of it (the
/// later read lost a race to the earlier one): the copy handed back carries the earlier read,
/// and is compared with what that read found, so an attribute another host added in between is
/// kept.
#[test]
fn a_copy_handed_back_is_compared_with_the_read_it_derives_from() {
    let m1 = Memcached::start();
    let (a, b) = (manager(&[&m1], ATTRIBUTE), manager(&[&m1], ATTRIBUTE));
    let id = stored_session(&a, 1, 8).to_string();
    let start = RequestStart {
        session_id: Some(&id),
        uri: "/",
        route: None,
    };
    let read = |request: &mut msm::Request| match handle().block_on(a.lookup(
        request,
        &id,
        HostCopy::None,
    )) {
        Lookup::Found(loaded) => loaded.session,
        other => panic!("session not found: {other:?}"),
    };
    let mut first = block_on(a.begin(start)).unwrap();
    let mut copy = read(&mut first);
    block_on(request(Arc::clone(&b), id.clone(), |s| {
        s.attributes.insert("from_b".into(), b"b".to_vec());
    }))
    .unwrap();
    let mut second = block_on(a.begin(start)).unwrap();
    let discarded = read(&mut second);
    assert!(discarded.attributes.contains_key("from_b"));
    assert_ne!(discarded.read, copy.read, "each read is numbered");
    // The first request is done with the copy; the second hands it back with its change.
    block_on(a.end(&mut first, Outcome::NotStored)).unwrap();
    copy.attributes.insert("from_a".into(), b"a".to_vec());
    let outcome = Outcome::Used {
        id: &id,
        session: copy,
        previous: None,
    };
    block_on(a.end(&mut second, outcome)).unwrap();
    let names: Vec<String> = load(&b, &SessionId::parse(&id).unwrap())
        .attributes
        .into_keys()
        .collect();
    assert_eq!(names, ["a0", "from_a", "from_b"]);
}

#[test]
fn items_from_another_session_or_name_are_refused_and_missing_ones_counted() {
    let m1 = Memcached::start();
    let m = manager(&[&m1], ATTRIBUTE);
    let a = stored_session(&m, 2, 8);
    let b = stored_session(&m, 2, 8);
    // Another host: none of the items is in its near cache, each is read.
    let m = manager(&[&m1], ATTRIBUTE);
    let item = |id: &SessionId, name: &str| item(&m, &m1, id, name);
    // Session a's item for a0 copied under b's a0, and a's own a1 under a's a0.
    m1.set(&item(&b, "a0"), &m1.get(&item(&a, "a0")).unwrap());
    m1.set(&item(&a, "a0"), &m1.get(&item(&a, "a1")).unwrap());
    let loaded_b = load(&m, &b);
    let loaded_a = load(&m, &a);
    assert!(
        !loaded_b.attributes.contains_key("a0"),
        "another session's item"
    );
    assert!(
        !loaded_a.attributes.contains_key("a0"),
        "another name's item"
    );
    assert_eq!(loaded_a.attributes["a1"], vec![1; 8]);
    assert_eq!(stat(&m, "corrupt_values"), 2);

    m1.raw(
        format!("delete {}\r\n", item(&b, "a1")).as_bytes(),
        &["DELETED"],
    );
    let m = manager(&[&m1], ATTRIBUTE);
    assert!(load(&m, &b).attributes.is_empty());
    assert_eq!(stat(&m, "attribute_items_missing"), 1);
}

#[test]
fn a_removed_attribute_stays_removed_and_its_item_goes() {
    let m1 = Memcached::start();
    let m = manager(&[&m1], ATTRIBUTE);
    let id = stored_session(&m, 3, 8);
    let removed = item(&m, &m1, &id, "a1");
    block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes.remove("a1");
    }))
    .unwrap();
    eventually("the removed attribute's item deleted", || !m1.has(&removed));
    let session = load(&m, &id);
    assert_eq!(
        session.attributes.keys().collect::<Vec<_>>(),
        ["a0", "a2"],
        "the index no longer names it"
    );
    block_on(m.delete(&id)).unwrap();
    let keys = m1.keys();
    assert_eq!(
        keys.len(),
        2,
        "only the ended validity record and the shared node list are left: {keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with("validity") || k.starts_with("nodes"))
    );
}

#[test]
fn the_second_copy_holds_every_attribute_when_the_primary_dies() {
    let (mut m1, m2) = (Memcached::start(), Memcached::start());
    let m = manager(&[&m1, &m2], ATTRIBUTE);
    let id = common::id_on(&m, "n1");
    let mut session = SessionData::new(1800);
    session.attributes.insert("a".into(), b"1".to_vec());
    session.attributes.insert("b".into(), b"2".to_vec());
    block_on(m.store(&id, &mut session)).unwrap();
    block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes.insert("b".into(), b"3".to_vec());
    }))
    .unwrap();
    m1.kill();
    let loaded = block_on(m.load(&id))
        .unwrap()
        .expect("from the second copy");
    assert_eq!(loaded.relocated.as_ref().map(SessionId::node), Some("n2"));
    assert_eq!(loaded.session.attributes["a"], b"1");
    assert_eq!(loaded.session.attributes["b"], b"3");
    let moved = loaded.relocated.unwrap();
    assert_eq!(
        load(&m, &moved).attributes.len(),
        2,
        "written whole on its new node"
    );
}

#[test]
fn sessions_written_whole_and_attribute_by_attribute_read_each_other() {
    let m1 = Memcached::start();
    let whole = manager(&[&m1], WHOLE);
    let split = manager(&[&m1], ATTRIBUTE);
    let id = stored_session(&whole, 2, 8);
    block_on(request(Arc::clone(&split), id.to_string(), |s| {
        s.attributes.insert("a0".into(), b"split".to_vec());
    }))
    .unwrap();
    let session = load(&whole, &id);
    assert_eq!(session.attributes["a0"], b"split");
    assert_eq!(session.attributes["a1"], vec![1; 8]);
    block_on(request(Arc::clone(&whole), id.to_string(), |s| {
        s.attributes.insert("a1".into(), b"whole".to_vec());
    }))
    .unwrap();
    let session = load(&split, &id);
    assert_eq!(session.attributes["a0"], b"split");
    assert_eq!(session.attributes["a1"], b"whole");
}

/// Sticky: a backup sends only the attributes that changed, and so does the next backup of a
/// Tomcat that took the session over.
#[test]
fn sticky_backups_send_only_what_changed_even_after_a_takeover() {
    let m1 = Memcached::start();
    let sticky = [
        ("updateGranularity", "attribute"),
        ("sessionBackupAsync", "false"),
    ];
    let (a, b) = (manager(&[&m1], &sticky), manager(&[&m1], &sticky));
    let id = block_on(a.new_session_id(None)).unwrap();
    let mut session = SessionData::new(1800);
    for i in 0..10 {
        session.attributes.insert(format!("a{i}"), vec![i; 1024]);
    }
    let backup = |m: &SessionManager, session: &SessionData| {
        let wait = Some(std::time::Duration::from_secs(5));
        m.sticky().unwrap().backup(&id, session, wait).unwrap()
    };
    assert_eq!(backup(&a, &session), msm::BackupOutcome::Written);
    assert_eq!(stat(&a, "attribute_items_written"), 10);
    session.attributes.insert("a3".into(), b"changed".to_vec());
    session.attributes.remove("a4");
    assert_eq!(backup(&a, &session), msm::BackupOutcome::Written);
    assert_eq!(stat(&a, "attribute_items_written"), 11);

    b.track_backups();
    let mut taken = load(&b, &id);
    assert_eq!(taken.attributes.len(), 9);
    assert_eq!(taken.attributes["a3"], b"changed");
    taken.attributes.insert("a5".into(), b"on b".to_vec());
    assert_eq!(backup(&b, &taken), msm::BackupOutcome::Written);
    assert_eq!(stat(&b, "attribute_items_written"), 1, "only the change");
    let fresh = manager(&[&m1], &sticky);
    let read = load(&fresh, &id);
    assert_eq!(read.attributes.len(), 9);
    assert_eq!(read.attributes["a5"], b"on b");
}

/// Non-sticky, no lock: requests of two managers add attributes to one session at once, then
/// the primary node is killed and the session is read from its second copy alone: every
/// attribute is there. The second copy's node is paused while the requests run, so that their
/// writes reach it together and are served in no particular order, as a busy node serves them
/// (the primary's node keeps answering). The second copy's index has as many writers as the
/// primary's: each merges its names with what is there, like the primary's. Written over instead,
/// the last index to arrive wins, and it often lacks the names of requests that were served
/// first. Many sessions, one round each, so that a lost name is all but certain without merges.
#[test]
fn concurrent_writers_lose_nothing_from_the_second_copy() {
    const SESSIONS: usize = 20;
    const REQUESTS: usize = 16;
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    // Patient enough for a paused node that resumes.
    let patient: Vec<(&str, &str)> = [ATTRIBUTE, &[("operationTimeout", "3000")]].concat();
    let hosts = [
        manager(&[&m1, &m2], &patient),
        manager(&[&m1, &m2], &patient),
    ];
    let reader = manager(&[&m1, &m2], &patient);
    let value = |i: usize| vec![i as u8; 64];
    let mut ids = Vec::new();
    for _ in 0..SESSIONS {
        let id = common::id_on(&hosts[0], "n1");
        let mut session = SessionData::new(1800);
        session.attributes.insert("first".into(), b"0".to_vec());
        block_on(hosts[0].store(&id, &mut session)).unwrap();
        m2.pause();
        let requests: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let host = Arc::clone(&hosts[i % 2]);
                handle().spawn(request(host, id.to_string(), move |s| {
                    s.attributes.insert(format!("k{i}"), value(i));
                }))
            })
            .collect();
        // Every request's primary write done: the second copy's writes wait on the paused node.
        eventually("the primary holds every attribute", || {
            load(&reader, &id).attributes.len() == REQUESTS + 1
        });
        m2.resume();
        for r in requests {
            block_on(async { r.await.expect("the request's task") }).unwrap();
        }
        ids.push(id);
    }
    let merges =
        stat(&hosts[0], "attribute_index_merges") + stat(&hosts[1], "attribute_index_merges");
    println!("index merges: {merges}");
    assert_eq!(stat(&hosts[0], "second_copies_failed"), 0);
    assert_eq!(stat(&hosts[1], "second_copies_failed"), 0);
    m1.kill();
    let mut incomplete = Vec::new();
    for id in &ids {
        let loaded = block_on(reader.load(id))
            .unwrap()
            .expect("from the second copy");
        assert_eq!(loaded.relocated.as_ref().map(SessionId::node), Some("n2"));
        let lost: Vec<usize> = (0..REQUESTS)
            .filter(|i| loaded.session.attributes.get(&format!("k{i}")) != Some(&value(*i)))
            .collect();
        if !lost.is_empty() || loaded.session.attributes.get("first") != Some(&b"0".to_vec()) {
            incomplete.push((id.to_string(), lost));
        }
    }
    assert_eq!(stat(&reader, "second_copies_loaded"), SESSIONS as u64);
    assert!(
        incomplete.is_empty(),
        "{} of {SESSIONS} second copies miss attributes (session, lost): {incomplete:?}",
        incomplete.len()
    );
}

/// A session with more attributes than are written attribute by attribute (1,024) is written
/// whole: a request reads one item, not thousands. Back under the limit, it is written
/// attribute by attribute again. A session with more attributes than any session may have
/// (65,536) is refused with a clear error rather than written unreadable.
#[test]
fn sessions_with_thousands_of_attributes_are_written_whole() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let m = manager(&nodes, ATTRIBUTE);
    let id = common::id_on(&m, "n1");
    let mut session = SessionData::new(1800);
    for i in 0..5000 {
        session
            .attributes
            .insert(format!("a{i}"), vec![(i % 251) as u8; 32]);
    }
    block_on(m.store(&id, &mut session)).unwrap();
    assert!(
        indexed(&m, &m1, KeyKind::Session, &id).is_empty(),
        "no item per attribute"
    );
    assert_eq!(stat(&m, "attribute_sessions_written_whole"), 1);

    // A request that changes one attribute reads the session and its record, and writes the
    // session whole, its record and its second copy.
    let before = command_totals(&nodes);
    block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes.insert("a7".into(), b"changed".to_vec());
    }))
    .unwrap();
    let after = command_totals(&nodes);
    let spent: Vec<u64> = (0..4).map(|i| after[i] - before[i]).collect();
    assert_eq!(spent, [2, 3, 0, 0], "[keys read, stores, touches, deletes]");
    let loaded = load(&m, &id);
    assert_eq!(loaded.attributes.len(), 5000);
    assert_eq!(loaded.attributes["a7"], b"changed");
    assert_eq!(loaded.attributes["a4999"], vec![(4999 % 251) as u8; 32]);

    block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes
            .retain(|name, _| name[1..].parse::<usize>().unwrap() < 1000);
    }))
    .unwrap();
    assert!(
        m1.has(&item(&m, &m1, &id, "a0")),
        "attribute by attribute again"
    );
    assert_eq!(stat(&m, "attribute_sessions_written_whole"), 2);
    let loaded = load(&m, &id);
    assert_eq!(loaded.attributes.len(), 1000);
    assert_eq!(loaded.attributes["a7"], b"changed");

    let too_many = common::id_on(&m, "n1");
    let mut session = SessionData::new(1800);
    for i in 0..70_000 {
        session.attributes.insert(format!("a{i}"), Vec::new());
    }
    match block_on(m.store(&too_many, &mut session)) {
        Err(msm::Error::TooLarge { detail, .. }) => {
            assert!(detail.contains("70000 attributes"), "{detail}")
        }
        other => panic!("stored: {other:?}"),
    }
    assert!(block_on(m.load(&too_many)).unwrap().is_none());
}

/// Encrypted and compressed: every item (index and attribute) is an AES-256-GCM envelope that
/// hides names and values, large values are compressed, and an item moved to another name is
/// refused.
#[test]
fn encrypted_compressed_attribute_items_round_trip_and_hide_their_content() {
    let m1 = Memcached::start();
    let dir = TempDir::new("attribute-encryption");
    let keys = key_file(&dir, &["attribute-items-key-of-the-test-0001"]);
    let secure = [
        ATTRIBUTE,
        &[
            ("integrityKey", keys.as_str()),
            ("encryption", "aes-256-gcm"),
            ("compressionThreshold", "256"),
        ],
    ]
    .concat();
    let m = manager(&[&m1], &secure);
    let id = block_on(m.new_session_id(None)).unwrap();
    let mut session = SessionData::new(1800);
    let cart = b"alice-buys-books;".repeat(64);
    session.attributes.insert("cart".into(), cart.clone());
    session.attributes.insert("user".into(), b"alice".to_vec());
    block_on(m.store(&id, &mut session)).unwrap();

    let reader = manager(&[&m1], &secure);
    let loaded = load(&reader, &id);
    assert_eq!(loaded.attributes["cart"], cart);
    assert_eq!(loaded.attributes["user"], b"alice");

    let index_key = KEYS.key(KeyKind::Session, &id);
    let index = m1.get(&index_key).unwrap();
    let (cart_item, user_item) = (
        m1.get(&item(&m, &m1, &id, "cart")).unwrap(),
        m1.get(&item(&m, &m1, &id, "user")).unwrap(),
    );
    for value in [&index, &cart_item, &user_item] {
        assert_eq!(&value[..6], b"MSMS\x02\x03", "format 2, AES-256-GCM");
        assert!(!value.windows(5).any(|w| w == b"alice" || w == b"books"));
        assert!(!value.windows(4).any(|w| w == b"cart" || w == b"user"));
    }
    assert_eq!(cart_item[6] & 1, 1, "the large attribute is compressed");
    assert!(
        cart_item.len() < cart.len() / 4,
        "{} bytes",
        cart_item.len()
    );

    // The user's item under the cart's key: refused, counted, left out.
    m1.set(&item(&m, &m1, &id, "cart"), &user_item);
    let other = manager(&[&m1], &secure);
    let loaded = load(&other, &id);
    assert!(!loaded.attributes.contains_key("cart"));
    assert_eq!(loaded.attributes["user"], b"alice");
    assert_eq!(stat(&other, "corrupt_tag_mismatch"), 1);
}

/// With every node down, a session stored attribute by attribute is changed in the near cache,
/// then written back attribute by attribute when the nodes come back empty.
#[test]
fn a_session_changed_during_an_outage_is_written_back_attribute_by_attribute() {
    let (mut m1, mut m2) = (Memcached::start(), Memcached::start());
    let host = manager(&[&m1, &m2], ATTRIBUTE);
    let id = stored_session(&host, 3, 8);
    m1.kill();
    m2.kill();
    let mut session = load(&host, &id);
    session.attributes.insert("a1".into(), b"during".to_vec());
    session.attributes.remove("a2");
    assert_eq!(block_on(host.store(&id, &mut session)).unwrap(), None);
    assert_eq!(stat(&host, "near_cache_stored"), 1);

    m1.restart();
    m2.restart();
    eventually("the near cache is written back", || {
        stat(&host, "near_cache_written_back") >= 1
    });
    let primary = if id.node() == "n1" { &m1 } else { &m2 };
    assert!(
        primary.has(&item(&host, primary, &id, "a1")),
        "an item per attribute"
    );
    let other = manager(&[&m1, &m2], ATTRIBUTE);
    let loaded = load(&other, &id);
    assert_eq!(loaded.attributes["a0"], vec![0; 8]);
    assert_eq!(loaded.attributes["a1"], b"during");
    assert!(!loaded.attributes.contains_key("a2"));
}

/// Distributed expiry events: a session stored attribute by attribute and changed on another
/// host is handed, at its expiry, to exactly one host with its last attributes, and its items
/// go with it.
#[test]
fn an_expired_session_stored_attribute_by_attribute_is_delivered_once_with_its_attributes() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = [&m1, &m2];
    let events = [
        ATTRIBUTE,
        &[("sessionEvents", "expiry"), ("eventSweepInterval", "1")],
    ]
    .concat();
    let hosts = [manager(&nodes, &events), manager(&nodes, &events)];
    let id = create_session(&hosts[0], 1);
    touch_session(&hosts[1], &id, None, None, b"changed on the other host");
    let second = if id.node() == "n1" { &m2 } else { &m1 };
    let primary = if id.node() == "n1" { &m1 } else { &m2 };
    let items: Vec<(&Memcached, String)> =
        [(primary, KeyKind::Session), (second, KeyKind::SecondCopy)]
            .into_iter()
            .flat_map(|(node, kind)| {
                let keys = indexed(&hosts[0], node, kind, &id).into_values();
                keys.map(move |key| (node, key))
            })
            .collect();
    assert_eq!(items.len(), 4, "two attributes, two copies");
    let mut delivered = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(9);
    while std::time::Instant::now() < until {
        for host in &hosts {
            delivered.extend(block_on(host.expired_sessions()).unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let session = &delivered[0].session;
    assert_eq!(session.attributes["id"], id.to_string().into_bytes());
    assert_eq!(session.attributes["n"], b"changed on the other host");
    for (node, key) in items {
        assert!(!node.has(&key), "{key} left");
    }
}

/// Live membership: a node removed from the list moves its sessions as a failure does; a session
/// stored attribute by attribute moves whole, its second copy's attributes written anew on the
/// node that becomes its primary.
#[test]
fn removing_a_node_moves_a_session_stored_attribute_by_attribute() {
    let (m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let all = [&m1, &m2, &m3];
    // Managers started with n2 in their configuration, before it is removed (a manager's start
    // adds the nodes of its configuration to the shared list).
    let [remover, follower, reader] = [0, 1, 2].map(|_| manager(&all, ATTRIBUTE));
    let id = common::id_on(&remover, "n2");
    let mut session = SessionData::new(1800);
    session.attributes.insert("user".into(), b"alice".to_vec());
    session.attributes.insert("cart".into(), b"books".to_vec());
    block_on(remover.store(&id, &mut session)).unwrap();
    block_on(request(Arc::clone(&remover), id.to_string(), |s| {
        s.attributes.insert("cart".into(), b"books, pens".to_vec());
    }))
    .unwrap();

    let without_n2 = format!("n1:{} n3:{}", m1.address(), m3.address());
    block_on(remover.set_nodes(&without_n2)).unwrap();
    msm::runtime::wait(follower.refresh_nodes()).unwrap();
    let loaded = block_on(follower.load(&id))
        .unwrap()
        .expect("read from its second copy");
    let moved = loaded.relocated.expect("a new id");
    assert_eq!(moved.node(), "n3");
    assert_eq!(loaded.session.attributes["user"], b"alice");
    assert_eq!(loaded.session.attributes["cart"], b"books, pens");

    block_on(request(Arc::clone(&follower), moved.to_string(), |s| {
        s.attributes.insert("user".into(), b"bob".to_vec());
    }))
    .unwrap();
    msm::runtime::wait(reader.refresh_nodes()).unwrap();
    let session = load(&reader, &moved);
    assert_eq!(session.attributes["user"], b"bob");
    assert_eq!(session.attributes["cart"], b"books, pens");
    assert_eq!(indexed(&reader, &m3, KeyKind::Session, &moved).len(), 2);
}

/// An attribute memcached refuses (larger than its item size limit) leaves the session as it
/// was: the index written in the same round trip names the attribute's previous version again.
#[test]
fn an_attribute_memcached_refuses_leaves_its_previous_value() {
    let m1 = Memcached::start_with(&["-I", "512k"]);
    let m = manager(&[&m1], ATTRIBUTE);
    let id = stored_session(&m, 2, 8);
    let stored = block_on(request(Arc::clone(&m), id.to_string(), |s| {
        s.attributes
            .insert("a1".into(), common::random_bytes(768 * 1024));
        s.attributes
            .insert("new".into(), common::random_bytes(768 * 1024));
    }));
    println!("the request's end: {stored:?}");
    let other = manager(&[&m1], ATTRIBUTE);
    let session = load(&other, &id);
    assert_eq!(session.attributes["a0"], vec![0; 8]);
    assert_eq!(session.attributes["a1"], vec![1; 8], "the previous value");
    assert!(!session.attributes.contains_key("new"));
    assert_eq!(stat(&other, "attribute_items_missing"), 0);
}
