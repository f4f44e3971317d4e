//! End to end with keys: two non-sticky Tomcats read their keys from a file, encrypt and
//! compress sessions, and share them through memcached, which never holds them in clear; a
//! value written by someone without the keys is refused before Java deserialization sees it,
//! counted, and the Tomcat's own copy stands in.

mod common;

use common::tomcat::{Browser, Options, Tomcat, storage};
use common::{Memcached, TempDir, key_file, manager, node_list};
use msm::runtime::block_on;
use msm::{SessionData, SessionId};

/// The key that signs and encrypts, and one kept from before a rotation (verifies only).
const KEYS: [&str; 2] = [
    "tomcat-integrity-key-for-tests-0001",
    "tomcat-integrity-key-for-tests-0000",
];
/// A key the Tomcats do not have.
const FORGER_KEY: &str = "someone-elses-key-for-tests-00000";
/// What the application stores; memcached must never hold it in clear.
const SECRET: &str = "the-application-secret-4F2A";

#[test]
fn encrypted_sessions_travel_between_tomcats_and_forged_values_never_reach_java() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let dir = TempDir::new("tomcat-keys");
    let keys = key_file(&dir, &KEYS);
    let attributes = [
        ("memcachedNodes", nodes.as_str()),
        ("sticky", "false"),
        ("storageKeyPrefix", "test:"),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "100"),
        ("integrityKey", keys.as_str()),
        ("encryption", "aes-256-gcm"),
        ("compressionThreshold", "256"),
    ];
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Tomcat::start(&Options::msm("a", &attributes)));
        let b = scope.spawn(|| Tomcat::start(&Options::msm("b", &attributes)));
        (a.join().unwrap(), b.join().unwrap())
    });

    // Written by one Tomcat, read by the other.
    let mut browser = Browser::default();
    browser.get(&a, &format!("/set?name=secret&value={SECRET}"));
    let read = browser.get(&b, "/get?name=secret");
    assert_eq!(read.field("secret"), Some(SECRET), "{read:?}");

    // Memcached holds both copies encrypted (format 2, AES-256-GCM): neither the secret nor
    // the names of the Java classes serialized around it.
    let cookie = browser.cookie.clone().unwrap();
    let key = format!("test:{}", storage(&cookie));
    let (primary, backup) = if storage(&cookie).ends_with("-n1") {
        (&m1, &m2)
    } else {
        (&m2, &m1)
    };
    for value in [
        primary.get(&key).expect("the session"),
        backup.get(&format!("bak:{key}")).expect("its backup"),
    ] {
        assert_eq!(&value[..6], b"MSMS\x02\x03", "format 2, AES-256-GCM");
        for clear in [SECRET.as_bytes(), b"java.lang"] {
            assert!(!value.windows(clear.len()).any(|w| w == clear));
        }
    }

    // Someone who can write to memcached but lacks the keys replaces every copy.
    let forger_dir = TempDir::new("forger-key");
    let forger_keys = key_file(&forger_dir, &[FORGER_KEY]);
    let forger = manager(
        &[&m1, &m2],
        &[("sticky", "false"), ("integrityKey", &forger_keys)],
    );
    let id = SessionId::parse(&cookie).unwrap();
    let mut forged = SessionData::new(1800);
    forged
        .attributes
        .insert("secret".into(), b"not a Java object".to_vec());
    block_on(forger.store(&id, &mut forged)).unwrap();

    // Tomcat a refuses and counts it, never deserializing it, and serves its own copy, which
    // the request writes back over the forgery.
    let deserialization_failures = a.statistic("DeserializationFailures");
    let read = browser.get(&a, "/get?name=secret");
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.field("secret"), Some(SECRET), "{read:?}");
    assert!(a.statistic("CorruptValues") > 0, "the forgery is counted");
    assert_eq!(
        a.statistic("DeserializationFailures"),
        deserialization_failures,
        "nothing forged reached Java deserialization"
    );
    let read = browser.get(&b, "/get?name=secret");
    assert_eq!(read.field("secret"), Some(SECRET), "repaired: {read:?}");

    // The keys appear in no log.
    for tomcat in [&a, &b] {
        let log = tomcat.log();
        for key in KEYS {
            assert!(!log.contains(key), "a key was logged:\n{log}");
        }
    }
}
