//! End to end, non-sticky with `lockingMode="all"`: 40 concurrent requests of two sessions, each
//! holding its session 50 ms (as a database call would), sent alternately to two Tomcats. Every
//! request must be answered 200, no update lost, no lock failure: on virtual threads with two
//! carriers (a Java thread waiting inside a native call would pin its carrier, and the holder
//! could not wake from its sleep), and on the connector's platform threads (requests of one
//! session on one Tomcat take the lock handed over instead of polling memcached). The wall time
//! is printed, not asserted: about 1 s if waits cost nothing (20 × 50 ms per session).

mod common;

use std::sync::Barrier;
use std::time::Instant;

use common::tomcat::{Browser, Options, Tomcat, http_get, java_with_virtual_threads};
use common::{Memcached, node_list};

const REQUESTS: usize = 40;
const HOLD_MS: u64 = 50;

/// Log lines that say a request went on without the lock, or lost it.
const LOCK_FAILURES: [&str; 3] = [
    "lock not acquired in time",
    "proceeds without the session lock",
    "lock expired before release",
];

fn tomcat(route: &str, nodes: &str, virtual_threads: bool) -> Tomcat {
    let mut options = Options::msm(
        route,
        &[
            ("memcachedNodes", nodes),
            ("sticky", "false"),
            ("lockingMode", "all"),
            ("storageKeyPrefix", "locks:"),
        ],
    );
    if virtual_threads {
        options.java = Some(java_with_virtual_threads());
        options.connector = vec![("useVirtualThreads".into(), "true".into())];
        options.jvm = vec![
            "-Djdk.virtualThreadScheduler.parallelism=2".into(),
            "-Djdk.virtualThreadScheduler.maxPoolSize=2".into(),
        ];
    }
    Tomcat::start(&options)
}

fn counter(tomcat: &Tomcat, cookie: &str) -> u64 {
    let response = tomcat.get("/read", Some(cookie));
    response
        .field("counter")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no counter: {response:?}"))
}

fn scenario(virtual_threads: bool) {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let nodes = node_list(&[&m1, &m2]);
    let tomcats = [
        tomcat("a", &nodes, virtual_threads),
        tomcat("b", &nodes, virtual_threads),
    ];
    let sessions: Vec<String> = (0..2)
        .map(|_| {
            let mut browser = Browser::default();
            browser.get(&tomcats[0], "/");
            browser.cookie.expect("a session")
        })
        .collect();
    let barrier = Barrier::new(REQUESTS);
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let (session, tomcat) = (&sessions[i % 2], &tomcats[(i / 2) % 2]);
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let path = format!("/hold?ms={HOLD_MS}");
                    http_get(tomcat.port, &path, Some(session)).status
                })
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    let counters: Vec<u64> = sessions.iter().map(|s| counter(&tomcats[1], s)).collect();
    let per_session = (REQUESTS / 2) as u64;
    let lost: u64 = counters
        .iter()
        .map(|c| (1 + per_session).saturating_sub(*c))
        .sum();
    let logs: String = tomcats.iter().map(Tomcat::log).collect();
    let failures: Vec<&str> = logs
        .lines()
        .filter(|line| LOCK_FAILURES.iter().any(|f| line.contains(f)))
        .collect();
    let threads = if virtual_threads {
        "virtual threads, 2 carriers"
    } else {
        "platform threads"
    };
    println!(
        "{threads}: {REQUESTS} requests in {:.2} s (lower bound about {:.2} s), {lost} of \
         {REQUESTS} updates lost, {} lock failures",
        wall.as_secs_f64(),
        (per_session * HOLD_MS) as f64 / 1000.0,
        failures.len()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(lost, 0, "counters {counters:?}");
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn locked_requests_on_virtual_threads_with_two_carriers_lose_nothing() {
    scenario(true);
}

#[test]
fn locked_requests_on_platform_threads_take_the_lock_in_turn_and_lose_nothing() {
    scenario(false);
}
