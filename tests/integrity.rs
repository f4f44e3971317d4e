//! Integrity, encryption, key rotation and compression against real memcached servers: values
//! written by anyone without the keys are refused before a host could deserialize them, and
//! counted by kind.

mod common;

use common::{Memcached, TempDir, key_file, manager, stat};
use msm::envelope::{Codec, KeyRing};
use msm::runtime::block_on;
use msm::validity::Validity;
use msm::{Error, SessionData, SessionId, SessionManager};

const NEW_KEY: &str = "new-integrity-key-for-tests-0123";
const OLD_KEY: &str = "old-integrity-key-for-tests-4567";
const REMOVED_KEY: &str = "removed-integrity-key-for-tests-89";

fn session() -> SessionData {
    let mut s = SessionData::new(1800);
    s.attributes.insert("user".into(), b"alice".to_vec());
    s.attributes
        .insert("cart".into(), b"three books and a lamp ".repeat(100));
    s
}

/// What a host would see of a loaded session: its attributes.
fn loaded_attributes(m: &SessionManager, id: &SessionId) -> Vec<(String, Vec<u8>)> {
    let loaded = block_on(m.load(id)).unwrap().expect("a session");
    loaded.session.attributes.into_iter().collect()
}

fn session_key(id: &SessionId) -> String {
    format!("test:{}", id.storage_part())
}

#[test]
fn values_without_a_configured_key_never_reach_the_host() {
    let server = Memcached::start();
    let dir = TempDir::new("integrity");
    let keys = key_file(&dir, &[NEW_KEY, OLD_KEY]);
    let m = manager(&[&server], &[("integrityKey", &keys)]);
    let id = block_on(m.new_session_id(None)).unwrap();
    let key = session_key(&id);
    let mut s = session();
    block_on(m.store(&id, &mut s)).unwrap();
    let good = server.get(&key).unwrap();
    let expected: Vec<_> = s.attributes.clone().into_iter().collect();

    // A value signed with the second key (written before a rotation) is read.
    let by_old_key = Codec::new(
        Some(KeyRing::parse(OLD_KEY.as_bytes()).unwrap()),
        8 << 20,
        "test:",
    )
    .encode(id.random(), &s)
    .unwrap();
    server.set(&key, &by_old_key);
    assert_eq!(loaded_attributes(&m, &id), expected);

    let mut truncated = good.clone();
    truncated.truncate(good.len() - 7);
    let mut future = good.clone();
    future[4] = 99;
    let removed = Codec::new(
        Some(KeyRing::parse(REMOVED_KEY.as_bytes()).unwrap()),
        8 << 20,
        "test:",
    )
    .encode(id.random(), &s)
    .unwrap();
    let unsigned = Codec::new(None, 8 << 20, "test:")
        .encode(id.random(), &s)
        .unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "garbage",
            b"\xac\xed\x00\x05 a serialized Java object",
            "corrupt_malformed",
        ),
        ("signed with a removed key", &removed, "corrupt_unknown_key"),
        ("truncated", &truncated, "corrupt_tag_mismatch"),
        ("format version 99", &future, "corrupt_future_version"),
        ("checksum only", &unsigned, "corrupt_unsigned"),
    ];
    for (n, (what, value, counter)) in cases.iter().enumerate() {
        server.set(&key, value);
        let result = block_on(m.load(&id));
        assert!(
            matches!(result, Err(Error::Corrupt(_))),
            "{what}: {result:?}"
        );
        assert_eq!(stat(&m, counter), 1, "{what}");
        assert_eq!(stat(&m, "corrupt_values"), n as u64 + 1, "{what}");
        assert_eq!(stat(&m, "sessions_loaded"), 1, "{what}: nothing loaded");
    }

    // The manager goes on: the genuine value is read again.
    server.set(&key, &good);
    assert_eq!(loaded_attributes(&m, &id), expected);
}

#[test]
fn encrypted_compressed_non_sticky_sessions_round_trip_and_hide_their_content() {
    let (s1, s2) = (Memcached::start(), Memcached::start());
    let dir = TempDir::new("encryption");
    let keys = key_file(&dir, &[NEW_KEY, OLD_KEY]);
    let attributes = [
        ("sticky", "false"),
        ("integrityKey", keys.as_str()),
        ("encryption", "aes-256-gcm"),
        ("compressionThreshold", "1024"),
    ];
    let m = manager(&[&s1, &s2], &attributes);
    let id = loop {
        let id = block_on(m.new_session_id(None)).unwrap();
        if id.node() == "n1" {
            break id;
        }
    };
    let mut s = session();
    block_on(m.store(&id, &mut s)).unwrap();
    let expected: Vec<_> = s.attributes.clone().into_iter().collect();
    assert_eq!(loaded_attributes(&m, &id), expected);

    let primary = s1.get(&session_key(&id)).unwrap();
    let backup = s2.get(&format!("bak:{}", session_key(&id))).unwrap();
    for value in [&primary, &backup] {
        assert_eq!(&value[..6], b"MSMS\x02\x03", "format 2, AES-256-GCM");
        assert_eq!(value[6] & 1, 1, "compressed");
        assert!(value.len() < 1000, "{} bytes", value.len());
        assert!(!value.windows(5).any(|w| w == b"alice" || w == b"books"));
    }

    // The validity record is signed (it holds nothing secret) and readable by a codec of the
    // same keys.
    let record = s1.get(&format!("validity:{}", session_key(&id))).unwrap();
    assert_eq!(&record[..6], b"MSMV\x02\x02");
    let codec = Codec::from_config(m.config()).unwrap();
    assert!(Validity::decode(&codec, id.random(), &record).is_ok());

    // A manager with the same keys that does not encrypt reads the encrypted session, and one
    // whose keys were rotated away from them does not.
    let reader = manager(&[&s1, &s2], &[("sticky", "false"), ("integrityKey", &keys)]);
    assert_eq!(loaded_attributes(&reader, &id), expected);
    let other_dir = TempDir::new("rotated-away");
    let rotated_away = key_file(&other_dir, &[REMOVED_KEY]);
    let stranger = manager(&[&s1], &[("integrityKey", &rotated_away)]);
    assert!(matches!(
        block_on(stranger.load(&id)),
        Err(Error::Corrupt(_))
    ));
    assert_eq!(stat(&stranger, "corrupt_unknown_key"), 1);
}

#[test]
fn key_sources_are_checked_at_start_and_never_shown() {
    let server = Memcached::start();
    let dir = TempDir::new("bad-keys");
    for (keys, needle) in [
        (&["short-key"][..], "shorter than 16 bytes"),
        (
            &[NEW_KEY, "", NEW_KEY][..],
            "lines 1 and 3 hold the same key",
        ),
    ] {
        let source = key_file(&dir, keys);
        let config = common::config(&[&server], &[("integrityKey", &source)]);
        let message = SessionManager::new(config).unwrap_err().to_string();
        assert!(message.contains("`integrityKey`"), "{message}");
        assert!(message.contains(&source), "{message}");
        assert!(message.contains(needle), "{message}");
        assert!(!message.contains("short-key") && !message.contains(NEW_KEY));
    }
    let source = key_file(&dir, &[NEW_KEY]);
    let m = manager(&[&server], &[("integrityKey", &source)]);
    assert!(!format!("{m:?}").contains(NEW_KEY));
}
