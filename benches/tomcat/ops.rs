//! memcached's work per request: every command memcached counts (`cmd_get` counts each key of a
//! get, `cmd_set` each store) and every byte it received (`bytes_read`: commands, keys and the
//! values stored), over all nodes (a non-sticky mode's second copies included), for the request
//! that creates a session (over [`NEW_SESSIONS`] sessions), and over a number of requests of one
//! session for a reading request and a modifying one. Modes with expiry events index a session on
//! its first request; their background sweeps (one a minute) may land in a count, and add a few
//! commands to it.

use std::time::Duration;

use crate::common::tomcat::Browser;
use crate::counters::Counters;
use crate::fleet::Fleet;
use crate::mode::Mode;
use crate::settings::Settings;

/// Time given to the asynchronous backups of the last requests to land before counting.
const SETTLE: Duration = Duration::from_millis(500);

/// Sessions created to count what creating one costs.
const NEW_SESSIONS: u32 = 10;

/// Width of a commands column.
const COMMANDS_WIDTH: usize = 8;

/// Width of a bytes column.
const BYTES_WIDTH: usize = 10;

/// Width of the heading over a commands and a bytes column.
const GROUP_WIDTH: usize = COMMANDS_WIDTH + 2 + BYTES_WIDTH;

/// What memcached did for requests, per request.
#[derive(Clone, Copy, Debug)]
struct Cost {
    /// Commands counted (keys read, stores, touches, deletes, ...).
    commands: f64,
    /// Bytes received (`bytes_read`).
    bytes: f64,
}

impl Cost {
    /// What memcached did since `before`, per request over `requests`.
    fn since(before: &Counters, fleet: &Fleet, requests: u32) -> Cost {
        let growth = fleet.counters().since(before);
        Cost {
            commands: growth.commands() as f64 / f64::from(requests),
            bytes: growth.received as f64 / f64::from(requests),
        }
    }
}

/// Prints a row per mode of `settings`: commands and bytes memcached received per `GET /`
/// creating a session (over [`NEW_SESSIONS`]), and per `GET /read` and per `GET /` of one
/// session, over `OPS_REQUESTS` each; `GET /` at the load's path, so that the sessions hold the
/// load's attributes.
pub fn print(fleet: &Fleet, settings: &Settings) {
    let requests = settings.ops_requests;
    let width = settings.name_width();
    let modifying = settings.modifying_path();
    println!();
    println!(
        "== memcached per request: commands, and bytes it received ({NEW_SESSIONS} new sessions; \
         {requests} requests each, one session; GET / is GET {modifying})"
    );
    println!(
        "{:<width$}  {:>GROUP_WIDTH$}    {:>GROUP_WIDTH$}    {:>GROUP_WIDTH$}",
        "", "new session", "GET /read", "GET / (changes)"
    );
    let columns = format!("{:>COMMANDS_WIDTH$}  {:>BYTES_WIDTH$}", "commands", "bytes");
    println!("{:<width$}  {columns}    {columns}    {columns}", "mode");
    for &mode in &settings.modes {
        let creating = per_new_session(fleet, mode, &modifying);
        let [reading, changing] = per_request(fleet, mode, &modifying, requests);
        println!(
            "{:<width$}  {}    {}    {}",
            mode.name(),
            cells(creating),
            cells(reading),
            cells(changing)
        );
    }
}

/// A cost's two columns.
fn cells(cost: Cost) -> String {
    format!(
        "{:>COMMANDS_WIDTH$.2}  {:>BYTES_WIDTH$.0}",
        cost.commands, cost.bytes
    )
}

/// What a `GET` of `modifying` that creates a session of `mode` costs memcached.
fn per_new_session(fleet: &Fleet, mode: Mode, modifying: &str) -> Cost {
    let tomcat = fleet.tomcat(mode);
    let before = fleet.counters();
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
    Cost::since(&before, fleet, NEW_SESSIONS)
}

/// What a `GET /read` and a `GET` of `modifying` of one new session of `mode`, created by
/// `modifying` too, cost memcached.
fn per_request(fleet: &Fleet, mode: Mode, modifying: &str, requests: u32) -> [Cost; 2] {
    let tomcat = fleet.tomcat(mode);
    let mut browser = Browser::default();
    browser.get(tomcat, modifying);
    std::thread::sleep(SETTLE);
    ["/read", modifying].map(|path| {
        let before = fleet.counters();
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
        Cost::since(&before, fleet, requests)
    })
}
