//! End to end: the session cookie attributes of the manager (`sessionCookieDomain`,
//! `sessionCookiePath`, `sessionCookieSameSite`, `sessionCookieSecure`, `sessionCookieHttpOnly`),
//! read from the raw `Set-Cookie` headers of real Tomcats, on the first cookie and on every cookie
//! reissued when the session's id changes (login, memcached failover, Tomcat failover).
//!
//! Needs the jars of `scripts/build-jar.sh` (the README's test command builds them first).

mod common;

use common::tomcat::{
    Browser, Options, Response, Started, Tomcat, Variant, node_of, sticky_attributes,
};
use common::{Memcached, node_list};

const PREFIX: &str = "cookies:";

/// One `Set-Cookie: JSESSIONID=...` header, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionCookie {
    /// The session id.
    id: String,
    /// Every attribute after the value, in the order Tomcat wrote them: `("Path", Some("/"))`,
    /// `("HttpOnly", None)`.
    attributes: Vec<(String, Option<String>)>,
}

impl SessionCookie {
    /// The session cookie a response set; panics when it set none.
    fn of(response: &Response) -> SessionCookie {
        Self::find(response).unwrap_or_else(|| panic!("no session cookie set: {response:?}"))
    }

    fn find(response: &Response) -> Option<SessionCookie> {
        let header = response
            .set_cookies
            .iter()
            .find(|c| c.starts_with("JSESSIONID="))?;
        let mut parts = header.split(';').map(str::trim);
        let id = parts.next()?.strip_prefix("JSESSIONID=")?.to_owned();
        let attributes = parts
            .map(|part| match part.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (part.to_owned(), None),
            })
            .collect();
        Some(SessionCookie { id, attributes })
    }

    /// The attributes as `Name=value` or `Name`, in order.
    fn shown(&self) -> Vec<String> {
        self.attributes
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={value}"),
                None => name.clone(),
            })
            .collect()
    }
}

fn attributes<'a>(nodes: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    sticky_attributes(PREFIX, nodes, extra)
}

fn tomcat(route: &str, nodes: &str, extra: &[(&str, &str)]) -> Tomcat {
    Tomcat::start(&Options::msm(route, &attributes(nodes, extra)))
}

/// Creates sessions until one lives on `node`; returns its first cookie.
fn session_on(tomcat: &Tomcat, node: &str) -> SessionCookie {
    for _ in 0..30 {
        let cookie = SessionCookie::of(&tomcat.get("/", None));
        if node_of(&cookie.id) == node {
            return cookie;
        }
    }
    panic!("no session landed on {node}");
}

/// Increments the session's counter, from `counter`, until a response reissues the session
/// cookie; returns that cookie. Every response must show the counter: nothing is lost.
fn until_reissued(browser: &mut Browser, tomcat: &Tomcat, counter: &mut u32) -> SessionCookie {
    for _ in 0..5 {
        let response = browser.get(tomcat, "/");
        *counter += 1;
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(
            response.field("counter"),
            Some(counter.to_string().as_str()),
            "{response:?}"
        );
        if let Some(cookie) = SessionCookie::find(&response) {
            return cookie;
        }
    }
    panic!("the session cookie was not reissued");
}

const CONFIGURED: [(&str, &str); 5] = [
    ("sessionCookieDomain", "example.com"),
    ("sessionCookiePath", "/shop"),
    ("sessionCookieSameSite", "strict"),
    ("sessionCookieSecure", "true"),
    ("sessionCookieHttpOnly", "false"),
];

const CONFIGURED_SHOWN: [&str; 4] = [
    "Domain=example.com",
    "Path=/shop",
    "Secure",
    "SameSite=Strict",
];

#[test]
fn without_cookie_attributes_tomcat_defaults_are_unchanged() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let plain = tomcat("a", &nodes, &[]);
    let cookie = SessionCookie::of(&plain.get("/", None));
    assert_eq!(cookie.shown(), ["Path=/", "HttpOnly"], "Tomcat's default");

    // Explicitly what Tomcat does by default: the same cookie.
    let explicit = tomcat(
        "a",
        &nodes,
        &[
            ("sessionCookieSameSite", "unset"),
            ("sessionCookieHttpOnly", "true"),
        ],
    );
    let cookie = SessionCookie::of(&explicit.get("/", None));
    assert_eq!(cookie.shown(), ["Path=/", "HttpOnly"]);
}

#[test]
fn configured_attributes_stay_on_the_cookie_after_a_memcached_failover_and_a_login() {
    let (mut m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2, &m3]);
    let mut extra = vec![("failoverNodes", "n2")];
    extra.extend_from_slice(&CONFIGURED);
    let tomcat = tomcat("a", &nodes, &extra);

    let first = session_on(&tomcat, "n1");
    assert_eq!(first.shown(), CONFIGURED_SHOWN, "{first:?}");
    assert!(
        tomcat
            .log()
            .contains("Domain=example.com Path=/shop SameSite=Strict Secure=true HttpOnly=false"),
        "the start logs what it applied:\n{}",
        tomcat.log()
    );

    // The node holding the session dies: the session moves, its id changes, the cookie is sent
    // again with the same attributes.
    let mut browser = Browser::with_cookie(&first.id);
    assert_eq!(browser.get(&tomcat, "/").field("counter"), Some("2"));
    let mut counter = 2;
    m1.kill();
    let moved = until_reissued(&mut browser, &tomcat, &mut counter);
    assert_eq!(node_of(&moved.id), "n3", "{moved:?}");
    assert_eq!(moved.attributes, first.attributes, "{moved:?}");

    // A login changes the id (changeSessionId): same attributes again.
    let response = browser.get(&tomcat, "/login");
    let login = SessionCookie::of(&response);
    assert_ne!(login.id, moved.id);
    assert_eq!(login.attributes, first.attributes, "{login:?}");
    assert_eq!(
        browser.get(&tomcat, "/read").field("counter"),
        Some(counter.to_string().as_str())
    );
}

#[test]
fn a_session_taken_over_by_another_tomcat_gets_a_cookie_with_the_same_attributes() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    let extra = [
        ("sessionCookieDomain", "shop.example.com"),
        ("sessionCookieSameSite", "Lax"),
        ("sessionCookieHttpOnly", "true"),
    ];
    let mut a = tomcat("a", &nodes, &extra);
    let b = tomcat("b", &nodes, &extra);
    let first = SessionCookie::of(&a.get("/", None));
    assert_eq!(
        first.shown(),
        [
            "Domain=shop.example.com",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax"
        ]
    );
    a.kill();
    let response = b.get("/", Some(&first.id));
    assert_eq!(response.field("counter"), Some("2"), "{response:?}");
    let taken_over = SessionCookie::of(&response);
    assert!(taken_over.id.ends_with(".b"), "{taken_over:?}");
    assert_eq!(taken_over.attributes, first.attributes);
}

#[test]
fn non_sticky_failover_to_the_backup_keeps_the_attributes_and_none_without_secure_warns() {
    let (mut m1, m2, m3) = (Memcached::start(), Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2, &m3]);
    let tomcat = tomcat(
        "a",
        &nodes,
        &[
            ("sticky", "false"),
            ("sessionCookieSameSite", "None"),
            ("sessionCookiePath", "/"),
        ],
    );
    let log = tomcat.log();
    assert!(
        log.contains("`sessionCookieSameSite` = `None` without `sessionCookieSecure` = `true`"),
        "SameSite=None without Secure is warned about:\n{log}"
    );
    let first = session_on(&tomcat, "n1");
    assert_eq!(first.shown(), ["Path=/", "HttpOnly", "SameSite=None"]);
    let mut browser = Browser::with_cookie(&first.id);
    assert_eq!(browser.get(&tomcat, "/").field("counter"), Some("2"));
    let mut counter = 2;
    m1.kill();
    let moved = until_reissued(&mut browser, &tomcat, &mut counter);
    assert_eq!(
        node_of(&moved.id),
        "n2",
        "the backup became primary: {moved:?}"
    );
    assert_eq!(moved.attributes, first.attributes);
}

#[test]
fn manager_attributes_win_over_the_context_and_the_others_stay() {
    let server = Memcached::start();
    let mut options = Options::msm(
        "a",
        &attributes(
            &node_list(&[&server]),
            &[("sessionCookieDomain", "example.com")],
        ),
    );
    options.context = [
        ("sessionCookieDomain", "context.example.org"),
        ("sessionCookiePath", "/context"),
        ("useHttpOnly", "false"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let tomcat = Tomcat::start(&options);
    let cookie = SessionCookie::of(&tomcat.get("/", None));
    assert_eq!(cookie.shown(), ["Domain=example.com", "Path=/context"]);
}

#[test]
fn tomcat9_sets_the_attributes_too_and_says_same_site_applies_to_every_cookie() {
    let server = Memcached::start();
    let options = Options {
        variant: Variant::Tomcat9,
        ..Options::msm("a", &attributes(&node_list(&[&server]), &CONFIGURED))
    };
    let tomcat = Tomcat::start(&options);
    let first = SessionCookie::of(&tomcat.get("/", None));
    assert_eq!(first.shown(), CONFIGURED_SHOWN, "{first:?}");
    let login = SessionCookie::of(&tomcat.get("/login", Some(&first.id)));
    assert_ne!(login.id, first.id);
    assert_eq!(login.attributes, first.attributes);
    let log = tomcat.log();
    assert!(
        log.contains("`sessionCookieSameSite` = `Strict` applies to every cookie"),
        "{log}"
    );
}

#[test]
fn a_bad_value_stops_the_context_naming_the_attribute_and_the_value() {
    let server = Memcached::start();
    let nodes = node_list(&[&server]);
    for (attribute, value) in [
        ("sessionCookieSameSite", "sometimes"),
        ("sessionCookieSecure", "yes"),
        ("sessionCookieHttpOnly", "1"),
        ("sessionCookieDomain", ".example.com"),
        ("sessionCookiePath", "shop"),
    ] {
        let options = Options::msm("a", &attributes(&nodes, &[(attribute, value)]));
        match Tomcat::try_start(&options) {
            Started::Failed(log) => {
                assert!(
                    log.contains(&format!(
                        "invalid configuration: attribute `{attribute}` = `{value}`"
                    )),
                    "{log}"
                );
            }
            Started::Ready(_) => panic!("the context started with {attribute}={value}"),
        }
    }
}
