//! The checks that the sessions really worked: under wrk, what memcached received, and a browser's
//! requests after the load. Each prints an `ok` or `FAIL` line.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::common::tomcat::{Browser, Response, Tomcat};
use crate::fleet::Fleet;
use crate::measure::{Sample, kept, passed};
use crate::mode::Mode;
use crate::settings::Settings;
use crate::summary::of_mode;

/// How long a backup written after the response may take to reach memcached.
const BACKUP_WAIT: Duration = Duration::from_secs(5);

/// memcached counters shown after the checks.
const SHOWN_STATS: [&str; 6] = [
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "get_hits",
    "get_misses",
    "curr_items",
];

/// The outcome of the checks so far.
struct Verdict {
    passed: bool,
}

impl Verdict {
    /// Prints `line` as passed or failed, and remembers a failure.
    fn check(&mut self, passed: bool, line: impl Display) {
        println!("{} {line}", if passed { "ok  " } else { "FAIL" });
        self.passed &= passed;
    }
}

/// Runs every check on every mode; false when one failed.
pub fn run(fleet: &Fleet, samples: &[Sample], settings: &Settings) -> bool {
    println!();
    println!("== checks");
    let mut verdict = Verdict { passed: true };
    for &mode in &settings.modes {
        let runs = of_mode(samples, mode);
        sessions_under_load(&mut verdict, mode, &runs, settings.connections);
        memcached_under_load(&mut verdict, mode, &runs);
    }
    for &mode in &settings.modes {
        browser(&mut verdict, fleet, mode, &settings.modifying_path());
    }
    let stats = fleet.memcached.stats();
    let shown: Vec<String> = SHOWN_STATS
        .iter()
        .map(|name| format!("{name}={}", stats[*name]))
        .collect();
    println!("memcached: {}", shown.join(" "));
    verdict.passed
}

/// Every wrk connection kept its one session and saw the counters it expected, in every round.
fn sessions_under_load(verdict: &mut Verdict, mode: Mode, runs: &[&Sample], connections: u32) {
    let failed: Vec<String> = runs
        .iter()
        .filter(|run| !passed(&run.outcome, connections))
        .map(|run| format!("round {}: {}", run.round, kept(&run.outcome, connections)))
        .collect();
    if failed.is_empty() {
        verdict.check(
            true,
            format_args!(
                "{}: under wrk every connection kept its one session; every counter as expected",
                mode.name()
            ),
        );
    } else {
        verdict.check(
            false,
            format_args!("{}: wrk's sessions: {}", mode.name(), failed.join("; ")),
        );
    }
}

/// What memcached received during the mode's runs: nothing stored for StandardManager (the msm
/// Tomcats are idle then), and stores for msm, shown per modifying request.
fn memcached_under_load(verdict: &mut Verdict, mode: Mode, runs: &[&Sample]) {
    let sets: u64 = runs.iter().map(|run| run.sets).sum();
    let gets: u64 = runs.iter().map(|run| run.gets).sum();
    let writes: u64 = runs.iter().map(|run| run.outcome.sessions.writes).sum();
    let reads: u64 = runs.iter().map(|run| run.outcome.sessions.reads).sum();
    let name = mode.name();
    if !mode.uses_memcached() {
        verdict.check(
            sets == 0,
            format_args!(
                "{name}: memcached cmd_set +{sets}, cmd_get +{gets} during its runs (sessions only in memory)"
            ),
        );
        return;
    }
    let per = |count: u64, requests: u64| count as f64 / requests.max(1) as f64;
    verdict.check(
        sets > 0,
        format_args!(
            "{name}: memcached cmd_set +{sets} during its runs: {:.2} per modifying request, \
             {:.2} per request ({writes} GET /, {reads} GET /read; one id reservation per new \
             session too); cmd_get +{gets}: {:.2} per request",
            per(sets, writes),
            per(sets, writes + reads),
            per(gets, writes + reads),
        ),
    );
}

/// A browser's two `GET /` (at `modifying`, the path of the load's) and a `GET /read` after the
/// load: counter 1, 2, 2 in one session, and for msm a store reaching memcached (none for
/// StandardManager).
fn browser(verdict: &mut Verdict, fleet: &Fleet, mode: Mode, modifying: &str) {
    let sets_before = fleet.memcached.stat("cmd_set");
    let answers = browse(fleet.tomcat(mode), modifying);
    let sets = sets_after(fleet, mode, sets_before) - sets_before;
    counted_in_one_session(verdict, mode, &answers);
    stored(verdict, mode, sets);
}

/// `GET /`, `GET /` (both at `modifying`) and `GET /read` in a new session.
fn browse(tomcat: &Tomcat, modifying: &str) -> [Response; 3] {
    let mut browser = Browser::default();
    [modifying, modifying, "/read"].map(|path| browser.get(tomcat, path))
}

/// The browser's answers show counter 1, 2, 2 in one session.
fn counted_in_one_session(verdict: &mut Verdict, mode: Mode, answers: &[Response; 3]) {
    let name = mode.name();
    let session = answers[0].field("session").filter(|id| *id != "none");
    let one_session = session.is_some() && answers.iter().all(|a| a.field("session") == session);
    let counters = answers.each_ref().map(|answer| answer.field("counter"));
    if one_session && counters == [Some("1"), Some("2"), Some("2")] {
        verdict.check(
            true,
            format_args!(
                "{name}: / twice with a cookie: counter 1 then 2 in session {}; /read shows 2",
                session.unwrap_or_default()
            ),
        );
    } else {
        let bodies: Vec<&str> = answers.iter().map(|answer| answer.body.as_str()).collect();
        verdict.check(
            false,
            format_args!("{name}: / twice, then /read, with a cookie: {bodies:?}"),
        );
    }
}

/// The browser's requests stored `sets` items: some for msm, none for StandardManager.
fn stored(verdict: &mut Verdict, mode: Mode, sets: u64) {
    let name = mode.name();
    if mode.uses_memcached() {
        verdict.check(
            sets > 0,
            format_args!(
                "{name}: memcached cmd_set +{sets} for those requests (the session reached memcached)"
            ),
        );
    } else {
        verdict.check(
            sets == 0,
            format_args!("{name}: memcached cmd_set +{sets} (expected: StandardManager)"),
        );
    }
}

/// memcached's `cmd_set` once the browser's backups had time to land: as soon as it grew for msm,
/// after a second for StandardManager (which must not make it grow).
fn sets_after(fleet: &Fleet, mode: Mode, before: u64) -> u64 {
    if !mode.uses_memcached() {
        std::thread::sleep(Duration::from_secs(1));
        return fleet.memcached.stat("cmd_set");
    }
    let start = Instant::now();
    loop {
        let sets = fleet.memcached.stat("cmd_set");
        if sets > before || start.elapsed() > BACKUP_WAIT {
            return sets;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
