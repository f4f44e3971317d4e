//! End to end: sessions holding an attribute that cannot be serialized
//! (`serializationFailurePolicy`) or deserialized (`deserializationFailurePolicy`), in sticky and
//! non-sticky mode, with real Tomcats, the demo web application and real memcached. What
//! memcached holds is read back and decoded independently of the manager.
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use common::tomcat::{Options, Response, Started, Tomcat, built_jar, storage};
use common::{Memcached, node_list};
use msm::envelope::Codec;

const PREFIX: &str = "ser:";
/// The class of the demo's `/nonserializable` attribute.
const UNSERIALIZABLE: &str = "io.msm.demo.DemoServlet$NotSerializable";
/// The class of the demo's `/extra` attribute, only in `msm-demo-extra.jar`.
const EXTRA: &str = "io.msm.demo.extra.ExtraValue";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Sticky,
    NonSticky,
}

const MODES: [Mode; 2] = [Mode::Sticky, Mode::NonSticky];

/// A Tomcat's options in `mode` (sticky backups are synchronous: a response means the write is
/// done) with extra manager attributes.
fn options(mode: Mode, route: &str, nodes: &str, extra: &[(&str, &str)]) -> Options {
    let mut attributes = vec![
        ("memcachedNodes", nodes),
        ("storageKeyPrefix", PREFIX),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "100"),
    ];
    match mode {
        Mode::Sticky => attributes.extend([
            ("sessionBackupAsync", "false"),
            ("sessionBackupTimeout", "2000"),
        ]),
        Mode::NonSticky => attributes.push(("sticky", "false")),
    }
    attributes.extend_from_slice(extra);
    Options::msm(route, &attributes)
}

fn tomcat(mode: Mode, route: &str, nodes: &str, extra: &[(&str, &str)]) -> Tomcat {
    Tomcat::start(&options(mode, route, nodes, extra))
}

/// The session's copy in memcached, decoded and verified: attribute names and serialized values.
fn stored(server: &Memcached, id: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let value = server.get(&format!("{PREFIX}{}", storage(id)))?;
    let random = storage(id).split('-').next().unwrap();
    let session = Codec::new(None, 8 << 20, PREFIX)
        .decode(random, &value)
        .expect("a valid stored session");
    Some(session.attributes.into_iter().collect())
}

/// The attribute names of the session's copy in memcached, `None` when it holds none.
fn stored_names(server: &Memcached, id: &str) -> Option<Vec<String>> {
    stored(server, id).map(|attributes| attributes.into_iter().map(|(name, _)| name).collect())
}

/// The demo's `counter` in the session's copy in memcached: Java serialization writes an
/// `Integer`'s value as its last four bytes, big-endian.
fn stored_counter(server: &Memcached, id: &str) -> Option<i32> {
    let (_, bytes) = stored(server, id)?
        .into_iter()
        .find(|(name, _)| name == "counter")?;
    Some(i32::from_be_bytes(
        bytes[bytes.len() - 4..].try_into().unwrap(),
    ))
}

/// One value of the manager's JMX statistics, as the demo's `/stats` shows it.
fn jmx(tomcat: &Tomcat, attribute: &str) -> String {
    let stats = tomcat.get("/stats", None);
    stats
        .field(attribute)
        .unwrap_or_else(|| panic!("no {attribute} in {stats:?}"))
        .to_owned()
}

/// Whether Tomcat logged a record at `level` (`WARNING`, `SEVERE`) containing every needle.
fn logged(tomcat: &Tomcat, level: &str, needles: &[&str]) -> bool {
    tomcat.log().lines().any(|line| {
        line.starts_with(&format!("{level}: ")) && needles.iter().all(|n| line.contains(n))
    })
}

fn assert_logged(tomcat: &Tomcat, level: &str, needles: &[&str]) {
    assert!(
        logged(tomcat, level, needles),
        "no {level} record with {needles:?}:\n{}",
        tomcat.log()
    );
}

/// The session's attribute names the demo's answer shows, sorted.
fn attributes(response: &Response) -> Vec<&str> {
    let mut names: Vec<&str> = response
        .field("attributes")
        .unwrap_or_else(|| panic!("no attributes in {response:?}"))
        .split(',')
        .collect();
    names.sort_unstable();
    names
}

fn new_session(response: &Response) -> String {
    response
        .new_session
        .clone()
        .unwrap_or_else(|| panic!("no new session: {response:?}"))
}

#[test]
fn fail_answers_500_naming_the_attribute_and_stores_nothing_of_the_request() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        // `fail` is the default.
        let a = tomcat(mode, "a", &nodes, &[]);
        let id = new_session(&a.get("/", None));
        let response = a.get("/nonserializable", Some(&id));
        assert_eq!(response.status, 500, "{mode:?}: {response:?}");
        assert!(
            response.body.contains("[unserializable]") && response.body.contains(UNSERIALIZABLE),
            "{mode:?}: the error names the attribute and its class: {}",
            response.body
        );
        assert_logged(
            &a,
            "WARNING",
            &[
                "[unserializable]",
                UNSERIALIZABLE,
                "serializationFailurePolicy=fail",
            ],
        );
        assert_eq!(stored_names(&server, &id), Some(vec!["counter".to_owned()]));
        assert_eq!(jmx(&a, "SerializationFailures"), "1");
        assert_eq!(jmx(&a, "BackupsFailed"), "1");
        let next = a.get("/read", Some(&id));
        match mode {
            // Tomcat's memory holds the session as the application left it: every request that
            // ends with the attribute in it fails the same way.
            Mode::Sticky => assert_eq!(next.status, 500, "{next:?}"),
            // The failed request's changes were not kept: memcached's copy is the session.
            Mode::NonSticky => {
                assert_eq!(next.status, 200, "{next:?}");
                assert_eq!(attributes(&next), ["counter"]);
            }
        }

        // A response already committed cannot fail any more: an error in the log instead.
        let response = a.get("/nonserializable?commit=true", None);
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        let committed = new_session(&response);
        assert_logged(
            &a,
            "SEVERE",
            &["[unserializable]", UNSERIALIZABLE, "already committed"],
        );
        assert_eq!(stored_names(&server, &committed), None);
    }
}

#[test]
fn local_session_stays_in_its_tomcat_and_the_others_keep_distributing() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        let policy = [("serializationFailurePolicy", "localSession")];
        let a = tomcat(mode, "a", &nodes, &policy);
        let b = tomcat(mode, "b", &nodes, &policy);
        let other = new_session(&a.get("/", None));
        let local = new_session(&a.get("/", None));
        assert!(stored(&server, &local).is_some());

        let response = a.get("/nonserializable", Some(&local));
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        assert_logged(
            &a,
            "WARNING",
            &[
                "[unserializable]",
                UNSERIALIZABLE,
                "localSession",
                "memory only",
            ],
        );
        // Its copies are gone from memcached; this Tomcat keeps serving it from memory.
        assert_eq!(stored(&server, &local), None, "{mode:?}");
        // Non-sticky, the validity record stays, saying the session ended, so that no near
        // cache brings the old copy back.
        assert_eq!(
            server.has(&format!("validity:{PREFIX}{}", storage(&local))),
            matches!(mode, Mode::NonSticky),
            "{mode:?}"
        );
        let again = a.get("/", Some(&local));
        assert_eq!(again.field("counter"), Some("2"), "{mode:?}: {again:?}");
        assert_eq!(attributes(&again), ["counter", "unserializable"]);
        assert_eq!(jmx(&a, "LocalSessions"), "1");
        assert_eq!(stored(&server, &local), None, "never written again");

        // Other sessions are still distributed: the other Tomcat reads the change.
        assert_eq!(a.get("/", Some(&other)).field("counter"), Some("2"));
        assert_eq!(stored_counter(&server, &other), Some(2));
        assert_eq!(b.get("/read", Some(&other)).field("counter"), Some("2"));

        // On another Tomcat the local session does not exist: the request gets a new one.
        let elsewhere = b.get("/", Some(&local));
        assert_eq!(elsewhere.status, 200);
        assert_ne!(storage(&new_session(&elsewhere)), storage(&local));
        assert_eq!(elsewhere.field("counter"), Some("1"));
        assert_eq!(a.get("/read", Some(&local)).field("counter"), Some("2"));
    }
}

#[test]
fn stop_distribution_stops_every_write_until_resumed_through_jmx() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        let a = tomcat(
            mode,
            "a",
            &nodes,
            &[("serializationFailurePolicy", "stopDistribution")],
        );
        let other = new_session(&a.get("/", None));
        let broken = new_session(&a.get("/", None));
        assert_eq!(jmx(&a, "DistributionStopped"), "false");

        let response = a.get("/nonserializable", Some(&broken));
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        assert_eq!(jmx(&a, "DistributionStopped"), "true");
        assert_logged(
            &a,
            "WARNING",
            &["[unserializable]", UNSERIALIZABLE, "distribution stopped"],
        );

        // Nothing is written any more; sessions go on in this Tomcat's memory.
        let before = server.get(&format!("{PREFIX}{}", storage(&other)));
        assert_eq!(a.get("/", Some(&other)).field("counter"), Some("2"));
        assert_eq!(a.get("/", Some(&other)).field("counter"), Some("3"));
        let fresh = new_session(&a.get("/", None));
        assert_eq!(a.get("/", Some(&fresh)).field("counter"), Some("2"));
        assert_eq!(server.get(&format!("{PREFIX}{}", storage(&other))), before);
        assert_eq!(stored(&server, &fresh), None);
        assert_eq!(
            stored_names(&server, &broken),
            Some(vec!["counter".to_owned()])
        );

        // Resumed: each session's next request writes it, with what happened meanwhile.
        assert_eq!(a.get("/resume", None).field("resumed"), Some("true"));
        assert_eq!(jmx(&a, "DistributionStopped"), "false");
        assert_eq!(a.get("/", Some(&other)).field("counter"), Some("4"));
        assert_eq!(stored_counter(&server, &other), Some(4), "{mode:?}");
        assert_eq!(a.get("/", Some(&fresh)).field("counter"), Some("3"));
        assert_eq!(stored_counter(&server, &fresh), Some(3), "{mode:?}");

        // A session still holding the attribute stops it again at its next request.
        a.get("/read", Some(&broken));
        assert_eq!(jmx(&a, "DistributionStopped"), "true", "{mode:?}");
    }
}

#[test]
fn drop_attribute_stores_the_rest_and_blacklists_the_attribute() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        let a = tomcat(
            mode,
            "a",
            &nodes,
            &[("serializationFailurePolicy", "dropAttribute")],
        );
        let id = new_session(&a.get("/", None));
        let response = a.get("/nonserializable", Some(&id));
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        let next = a.get("/", Some(&id));
        assert_eq!(next.field("counter"), Some("2"));
        assert_eq!(stored_names(&server, &id), Some(vec!["counter".to_owned()]));
        assert_eq!(stored_counter(&server, &id), Some(2));
        match mode {
            // Memory keeps the attribute; only memcached's copy lacks it.
            Mode::Sticky => {
                assert_eq!(attributes(&next), ["counter", "unserializable"]);
                assert_eq!(jmx(&a, "SerializationFailures"), "2");
            }
            // The session is read from memcached at each request: the attribute is gone.
            Mode::NonSticky => {
                assert_eq!(attributes(&next), ["counter"]);
                assert_eq!(jmx(&a, "SerializationFailures"), "1");
            }
        }
        assert_eq!(
            jmx(&a, "SerializationBlacklist"),
            format!("unserializable_{UNSERIALIZABLE}")
        );
        assert_eq!(jmx(&a, "BackupsFailed"), "0");
        let warnings = a
            .log()
            .lines()
            .filter(|l| l.starts_with("WARNING: ") && l.contains("[unserializable]"))
            .count();
        assert_eq!(
            warnings,
            1,
            "one warning per attribute and class:\n{}",
            a.log()
        );
        assert_logged(
            &a,
            "WARNING",
            &[
                "[unserializable]",
                UNSERIALIZABLE,
                "dropAttribute",
                "blacklisted",
            ],
        );
    }
}

/// A Tomcat whose web application has the extra class, and the session it wrote there holding
/// `counter` = 1 and `extra`.
fn session_with_extra(a: &Tomcat, server: &Memcached) -> String {
    let id = new_session(&a.get("/extra", None));
    assert_eq!(a.get("/", Some(&id)).field("counter"), Some("1"));
    assert_eq!(
        stored_names(server, &id),
        Some(vec!["counter".to_owned(), "extra".to_owned()])
    );
    id
}

fn with_extra_class(mode: Mode, nodes: &str) -> Tomcat {
    Tomcat::start(&Options {
        webapp_jars: vec![built_jar("msm-demo-extra.jar")],
        ..options(mode, "a", nodes, &[])
    })
}

#[test]
fn an_attribute_whose_class_is_missing_is_dropped_by_default() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        let a = with_extra_class(mode, &nodes);
        let id = session_with_extra(&a, &server);
        // Tomcat b's web application lacks the class, as after a redeploy that removed it.
        let b = tomcat(mode, "b", &nodes, &[]);
        let response = b.get("/", Some(&id));
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        assert_eq!(response.field("counter"), Some("2"));
        assert_eq!(attributes(&response), ["counter"]);
        assert_eq!(
            storage(response.session()),
            storage(&id),
            "the same session"
        );
        assert_logged(
            &b,
            "WARNING",
            &["[extra]", EXTRA, "ClassNotFoundException", "dropAttribute"],
        );
        assert_eq!(jmx(&b, "DeserializationFailures"), "1");
        // Its next write stores it without the attribute.
        assert_eq!(stored_names(&server, &id), Some(vec!["counter".to_owned()]));
    }
}

#[test]
fn drop_session_gives_the_request_a_new_session() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for mode in MODES {
        let a = with_extra_class(mode, &nodes);
        let id = session_with_extra(&a, &server);
        let b = tomcat(
            mode,
            "b",
            &nodes,
            &[("deserializationFailurePolicy", "dropSession")],
        );
        let response = b.get("/", Some(&id));
        assert_eq!(response.status, 200, "{mode:?}: {response:?}");
        assert_ne!(storage(&new_session(&response)), storage(&id));
        assert_eq!(response.field("counter"), Some("1"));
        assert_logged(
            &b,
            "WARNING",
            &["[extra]", EXTRA, "ClassNotFoundException", "dropSession"],
        );
        // The old copy is left to expire: a Tomcat that has the class still reads it.
        assert_eq!(
            stored_names(&server, &id),
            Some(vec!["counter".to_owned(), "extra".to_owned()])
        );
    }
}

#[test]
fn a_bad_policy_value_stops_the_context_naming_the_attribute_and_the_value() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for (attribute, value) in [
        ("serializationFailurePolicy", "ignore"),
        ("deserializationFailurePolicy", "dropAttributes"),
    ] {
        match Tomcat::try_start(&options(Mode::Sticky, "a", &nodes, &[(attribute, value)])) {
            Started::Failed(log) => assert!(
                log.contains(&format!(
                    "invalid configuration: attribute `{attribute}` = `{value}`"
                )),
                "{log}"
            ),
            Started::Ready(_) => panic!("the context started with {attribute}={value}"),
        }
    }
}
