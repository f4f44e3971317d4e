//! memcached commands per request: every command memcached counts (`cmd_get` counts each key of a
//! get, `cmd_set` each store), for the request that creates a session (over [`NEW_SESSIONS`]
//! sessions), and over a number of requests of one session for a reading request and a modifying
//! one. One memcached node, so no second copies. Modes with expiry events index a session on its
//! first request; their background sweeps (one a minute) may land in a count, and add a few
//! commands to it.

use std::time::Duration;

use crate::common::command_counters;
use crate::common::tomcat::Browser;
use crate::fleet::Fleet;
use crate::mode::{Mode, NAME_WIDTH};
use crate::settings::Settings;

/// Time given to the asynchronous backups of the last requests to land before counting.
const SETTLE: Duration = Duration::from_millis(500);

/// Sessions created to count what creating one costs.
const NEW_SESSIONS: u32 = 10;

/// Prints a row per mode of `settings`: commands per `GET /` creating a session (over
/// [`NEW_SESSIONS`]), and per `GET /read` and per `GET /` of one session, over `OPS_REQUESTS`
/// each; `GET /` at the load's path, so that the sessions hold the load's attributes.
pub fn print(fleet: &Fleet, settings: &Settings) {
    let requests = settings.ops_requests;
    let modifying = settings.modifying_path();
    println!();
    println!(
        "== memcached operations per request ({NEW_SESSIONS} new sessions; {requests} requests \
         each, one session; GET / is GET {modifying})"
    );
    println!(
        "{:<NAME_WIDTH$}  {:>14}  {:>14}  {:>16}",
        "mode", "new session", "GET /read", "GET / (changes)"
    );
    for &mode in &settings.modes {
        let creating = per_new_session(fleet, mode, &modifying);
        let [reading, changing] = per_request(fleet, mode, &modifying, requests);
        println!(
            "{:<NAME_WIDTH$}  {creating:>14.2}  {reading:>14.2}  {changing:>16.2}",
            mode.name()
        );
    }
}

/// Commands per `GET` of `modifying` that creates a session of `mode`.
fn per_new_session(fleet: &Fleet, mode: Mode, modifying: &str) -> f64 {
    let tomcat = fleet.tomcat(mode);
    let before = commands(fleet);
    for _ in 0..NEW_SESSIONS {
        let answer = Browser::default().get(tomcat, modifying);
        assert_eq!(
            answer.status,
            200,
            "{modifying} of {}: {}",
            mode.name(),
            answer.body
        );
    }
    std::thread::sleep(SETTLE);
    (commands(fleet) - before) as f64 / f64::from(NEW_SESSIONS)
}

/// Commands per `GET /read` and per `GET` of `modifying` of one new session of `mode`, created
/// by `modifying` too.
fn per_request(fleet: &Fleet, mode: Mode, modifying: &str, requests: u32) -> [f64; 2] {
    let tomcat = fleet.tomcat(mode);
    let mut browser = Browser::default();
    browser.get(tomcat, modifying);
    std::thread::sleep(SETTLE);
    ["/read", modifying].map(|path| {
        let before = commands(fleet);
        for _ in 0..requests {
            let answer = browser.get(tomcat, path);
            assert_eq!(
                answer.status,
                200,
                "{path} of {}: {}",
                mode.name(),
                answer.body
            );
        }
        std::thread::sleep(SETTLE);
        (commands(fleet) - before) as f64 / f64::from(requests)
    })
}

/// Every command memcached has counted so far.
fn commands(fleet: &Fleet) -> u64 {
    command_counters(&fleet.memcached.stats())
        .iter()
        .map(|(_, count)| count)
        .sum()
}
