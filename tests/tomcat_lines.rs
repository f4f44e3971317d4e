//! End to end on every Tomcat line: 9.0 (`javax.*`, `msm-tomcat9.jar`), 10.1 and 11.0
//! (`jakarta.*`, one `msm-tomcat10.jar` for both), each an embedded Tomcat from Maven Central in
//! its own JVM. One harness, parametrised by line: a representative scenario per mode (a sticky
//! session surviving its Tomcat and then its memcached node; a non-sticky session served in turns
//! and surviving its primary node) and Tomcat's own FORM login carried between Tomcats in both
//! modes. The other end-to-end files run on 10.1 alone. Also: the jar of the wrong line fails the
//! context naming the jar to use, and on Java 25 the README's `--enable-native-access` leaves no
//! restricted-method warning.
//!
//! Needs the jars and Tomcat releases of `scripts/build-jar.sh` (the README's test command builds
//! them first).

mod common;

use common::tomcat::{
    Browser, Options, Response, Started, Tomcat, Variant, http_post, java_with_virtual_threads,
    node_of, sticky_attributes, storage,
};
use common::{Memcached, node_list};

const PREFIX: &str = "lines:";

/// The user of the FORM login tests.
const LOGIN: &str = "alice:s3cret:user";

/// Runs `scenario` once per line, as one test each: `scenario::tomcat_9_0`, `..._10_1`, `..._11_0`.
macro_rules! on_every_line {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::Variant;

                #[test]
                fn tomcat_9_0() {
                    super::$scenario(Variant::Tomcat9);
                }

                #[test]
                fn tomcat_10_1() {
                    super::$scenario(Variant::Tomcat10);
                }

                #[test]
                fn tomcat_11_0() {
                    super::$scenario(Variant::Tomcat11);
                }
            }
        )*
    };
}

on_every_line!(
    sticky_session_survives_its_tomcat_then_its_node,
    non_sticky_session_alternates_and_survives_its_primary_node,
    form_login_is_carried_sticky,
    form_login_is_carried_non_sticky,
);

fn sticky(line: Variant, route: &str, nodes: &str, form_login: bool) -> Tomcat {
    Tomcat::start(&Options {
        variant: line,
        form_login: form_login.then(|| LOGIN.to_owned()),
        ..Options::msm(route, &sticky_attributes(PREFIX, nodes, &[]))
    })
}

fn non_sticky(line: Variant, route: &str, nodes: &str, form_login: bool) -> Tomcat {
    let attributes = [
        ("memcachedNodes", nodes),
        ("sticky", "false"),
        ("storageKeyPrefix", PREFIX),
        ("operationTimeout", "300"),
        ("nodeProbeInterval", "100"),
    ];
    Tomcat::start(&Options {
        variant: line,
        form_login: form_login.then(|| LOGIN.to_owned()),
        ..Options::msm(route, &attributes)
    })
}

fn counter(response: &Response) -> Option<&str> {
    response.field("counter")
}

fn sticky_session_survives_its_tomcat_then_its_node(line: Variant) {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let mut servers = [m1, m2];
    let nodes = node_list(&[&servers[0], &servers[1]]);
    let mut a = sticky(line, "a", &nodes, false);
    let b = sticky(line, "b", &nodes, false);
    let mut browser = Browser::default();
    browser.get(&a, "/");
    assert_eq!(counter(&browser.get(&a, "/")), Some("2"));
    let first = browser.cookie.clone().unwrap();
    a.kill();

    let response = browser.get(&b, "/");
    assert_eq!(counter(&response), Some("3"), "{line:?}: {response:?}");
    assert_eq!(
        browser.cookie.as_deref(),
        Some(format!("{}.b", storage(&first)).as_str())
    );
    let held = if node_of(&first) == "n1" { 0 } else { 1 };
    servers[held].kill();
    for expected in 4..=5 {
        let response = browser.get(&b, "/");
        assert_eq!(
            counter(&response),
            Some(expected.to_string().as_str()),
            "{line:?}: {response:?}"
        );
    }
    let moved = browser.cookie.clone().unwrap();
    assert_ne!(node_of(&moved), node_of(&first), "{line:?}: {moved}");
    assert!(servers[1 - held].has(&format!("{PREFIX}{}", storage(&moved))));
}

fn non_sticky_session_alternates_and_survives_its_primary_node(line: Variant) {
    let (m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let mut servers = [m1, m2, m3];
    let nodes = node_list(&[&servers[0], &servers[1], &servers[2]]);
    let a = non_sticky(line, "a", &nodes, false);
    let b = non_sticky(line, "b", &nodes, false);
    let mut browser = Browser::default();
    for (i, tomcat) in [&a, &b, &a].into_iter().enumerate() {
        let response = browser.get(tomcat, "/");
        assert_eq!(
            counter(&response),
            Some((i + 1).to_string().as_str()),
            "{line:?}: {response:?}"
        );
    }
    let id = browser.cookie.clone().unwrap();
    let primary: usize = node_of(&id)[1..].parse::<usize>().unwrap() - 1;
    servers[primary].kill();
    for (expected, tomcat) in [(4, &b), (5, &a)] {
        let response = browser.get(tomcat, "/");
        assert_eq!(
            counter(&response),
            Some(expected.to_string().as_str()),
            "{line:?}: {response:?}"
        );
    }
    let moved = browser.cookie.clone().unwrap();
    assert_ne!(
        node_of(&moved),
        node_of(&id),
        "{line:?}: moved to its backup"
    );
    assert!(servers[(primary + 1) % 3].has(&format!("{PREFIX}{}", storage(&moved))));
}

/// Logs `LOGIN`'s user in on `tomcat` through Tomcat's FORM authentication: the protected page
/// first (Tomcat answers with the login form and keeps the request in a new session), then the
/// form posted to `j_security_check`, which changes the session id and redirects back.
fn form_login(tomcat: &Tomcat, line: Variant) -> Browser {
    let mut browser = Browser::default();
    let form = browser.get(tomcat, "/secure/whoami");
    assert_eq!(form.field("page"), Some("login-form"), "{line:?}: {form:?}");
    let posted = http_post(
        tomcat.port,
        "/j_security_check",
        browser.cookie.as_deref(),
        "j_username=alice&j_password=s3cret",
    );
    assert!(
        [302, 303].contains(&posted.status),
        "{line:?}: the login redirects back: {posted:?}"
    );
    let renewed = posted
        .new_session
        .expect("the login changes the session id");
    browser.cookie = Some(renewed);
    let me = browser.get(tomcat, "/secure/whoami");
    assert_eq!(me.field("user"), Some("alice"), "{line:?}: {me:?}");
    browser
}

/// What `/secure/whoami` answers `browser` on `tomcat`: the user's name, or the login form's
/// marker when Tomcat does not see a login.
fn who(browser: &mut Browser, tomcat: &Tomcat) -> String {
    let response = browser.get(tomcat, "/secure/whoami");
    match response.field("user") {
        Some(user) => format!("{user} {}", response.field("auth").unwrap_or("-")),
        None => format!("{:?}", response.body),
    }
}

fn form_login_is_carried_sticky(line: Variant) {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let mut a = sticky(line, "a", &nodes, true);
    let b = sticky(line, "b", &nodes, true);
    let mut browser = form_login(&a, line);
    a.kill();
    assert_eq!(who(&mut browser, &b), "alice FORM", "{line:?}");
    assert!(browser.cookie.as_deref().unwrap().ends_with(".b"));
    // Logging out (the session ends) ends the login on every Tomcat.
    browser.get(&b, "/invalidate");
    let c = sticky(line, "c", &nodes, true);
    assert_eq!(who(&mut browser, &c), "\"page=login-form\"", "{line:?}");
}

fn form_login_is_carried_non_sticky(line: Variant) {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let a = non_sticky(line, "a", &nodes, true);
    let b = non_sticky(line, "b", &nodes, true);
    let mut browser = form_login(&a, line);
    for tomcat in [&b, &a, &b] {
        assert_eq!(who(&mut browser, tomcat), "alice FORM", "{line:?}");
    }
    browser.get(&a, "/invalidate");
    assert_eq!(who(&mut browser, &b), "\"page=login-form\"", "{line:?}");
}

/// Tomcat's own `persistAuthentication="false"` keeps the login in the Tomcat that made it.
#[test]
fn persist_authentication_false_keeps_the_login_local() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let options = |route: &str| Options {
        variant: Variant::Tomcat11,
        form_login: Some(LOGIN.to_owned()),
        ..Options::msm(
            route,
            &sticky_attributes(PREFIX, &nodes, &[("persistAuthentication", "false")]),
        )
    };
    let mut a = Tomcat::start(&options("a"));
    let mut browser = form_login(&a, Variant::Tomcat11);
    a.kill();
    let b = Tomcat::start(&options("b"));
    assert_eq!(who(&mut browser, &b), "\"page=login-form\"");
}

/// The jar of another line fails the context with one error naming the jar to use.
#[test]
fn the_jar_of_the_wrong_line_names_the_jar_to_use() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for (line, jar, wanted) in [
        (Variant::Tomcat9, "tomcat10", "msm-tomcat9.jar"),
        (Variant::Tomcat10, "tomcat9", "msm-tomcat10.jar"),
        (Variant::Tomcat11, "tomcat9", "msm-tomcat10.jar"),
    ] {
        let options = Options {
            variant: line,
            jar: Some(jar),
            ..Options::msm("a", &sticky_attributes(PREFIX, &nodes, &[]))
        };
        match Tomcat::try_start(&options) {
            Started::Failed(log) => assert!(
                log.contains(&format!("use {wanted} instead")),
                "{line:?} with msm-{jar}.jar:\n{log}"
            ),
            Started::Ready(_) => panic!("{line:?} started with msm-{jar}.jar"),
        }
    }
}

/// On Java 24 and later, loading the native library is a restricted method: the JVM warns
/// unless native access is enabled. With the README's `--enable-native-access=ALL-UNNAMED` a
/// Tomcat 11 on Java 25 serves sessions without the warning; without it the warning is there
/// (so the check would see it).
#[test]
fn on_java_25_enabled_native_access_leaves_no_restricted_method_warning() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let java = java_with_virtual_threads();
    for enabled in [true, false] {
        let options = Options {
            variant: Variant::Tomcat11,
            java: Some(java.clone()),
            jvm: if enabled {
                vec!["--enable-native-access=ALL-UNNAMED".to_owned()]
            } else {
                Vec::new()
            },
            ..Options::msm("a", &sticky_attributes(PREFIX, &nodes, &[]))
        };
        let tomcat = Tomcat::start(&options);
        assert_eq!(counter(&tomcat.get("/", None)), Some("1"));
        let log = tomcat.log();
        assert_eq!(
            log.contains("restricted method"),
            !enabled,
            "enabled={enabled}:\n{log}"
        );
    }
}
