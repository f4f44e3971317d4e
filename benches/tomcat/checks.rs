//! The checks that the sessions really worked: under wrk, what memcached received, and a browser's
//! requests after the load. Each prints an `ok` or `FAIL` line; what the original msm lost under
//! load is a `note`, reported and not checked.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::common::tomcat::{Browser, Response, Tomcat};
use crate::counters::{Counters, GET, SET};
use crate::fleet::Fleet;
use crate::measure::Sample;
use crate::mode::Mode;
use crate::settings::Settings;
use crate::summary::of;

/// How long a backup written after the response may take to reach memcached.
const BACKUP_WAIT: Duration = Duration::from_secs(5);

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

    /// Prints `line` as a figure reported, whatever it says.
    fn note(&self, line: impl Display) {
        println!("note {line}");
    }
}

/// Runs every check on every mode; false when one failed.
pub fn run(fleet: &Fleet, samples: &[Sample], settings: &Settings) -> bool {
    println!();
    println!("== checks");
    let mut verdict = Verdict { passed: true };
    for &mix in &settings.mixes {
        for &mode in &settings.modes {
            let runs = of(samples, mix, mode);
            sessions_under_load(&mut verdict, mode, mix, &runs, settings);
            memcached_under_load(&mut verdict, mode, mix, &runs);
        }
    }
    for &mode in &settings.modes {
        browser(&mut verdict, fleet, mode, &settings.modifying_path());
    }
    let counters = fleet.counters();
    verdict.check(
        counters.evictions == 0,
        format_args!(
            "memcached evicted {} item(s) over the run ({} node(s); an eviction would lose a \
             session for want of memory, not by a manager)",
            counters.evictions, settings.nodes
        ),
    );
    verdict.passed
}

/// Every wrk run kept each of its sessions and saw the counters it expected; for the original
/// msm, what it lost is reported instead.
fn sessions_under_load(
    verdict: &mut Verdict,
    mode: Mode,
    mix: u32,
    runs: &[&Sample],
    settings: &Settings,
) {
    let name = mode.name();
    let failed: Vec<String> = runs
        .iter()
        .filter(|run| !run.passed(settings))
        .map(|run| format!("round {}: {}", run.round, run.kept(settings)))
        .collect();
    if failed.is_empty() {
        verdict.check(
            true,
            format_args!(
                "{name}, {mix}% modifying: under wrk every session was kept; every counter as \
                 expected"
            ),
        );
    } else if mode.may_lose_sessions() {
        verdict.note(format_args!(
            "{name}, {mix}% modifying: wrk's sessions (the original msm: reported, not checked): \
             {}",
            failed.join("; ")
        ));
    } else {
        verdict.check(
            false,
            format_args!(
                "{name}, {mix}% modifying: wrk's sessions: {}",
                failed.join("; ")
            ),
        );
    }
}

/// What memcached received during the mode's runs: nothing stored for StandardManager (the other
/// Tomcats are idle then), and stores for the others, shown per modifying request.
fn memcached_under_load(verdict: &mut Verdict, mode: Mode, mix: u32, runs: &[&Sample]) {
    let counters = Counters::sum(runs.iter().map(|run| &run.memcached));
    let (gets, sets) = (counters.by_kind[GET], counters.by_kind[SET]);
    let writes: u64 = runs.iter().map(|run| run.outcome.sessions.writes).sum();
    let reads: u64 = runs.iter().map(|run| run.outcome.sessions.reads).sum();
    let name = mode.name();
    if !mode.uses_memcached() {
        verdict.check(
            sets == 0,
            format_args!(
                "{name}, {mix}% modifying: memcached cmd_set +{sets}, cmd_get +{gets} during its \
                 runs (sessions only in memory)"
            ),
        );
        return;
    }
    let per = |count: u64, requests: u64| count as f64 / requests.max(1) as f64;
    verdict.check(
        sets > 0,
        format_args!(
            "{name}, {mix}% modifying: memcached cmd_set +{sets} during its runs: {:.2} per \
             modifying request, {:.2} per request ({writes} GET /, {reads} GET /read, the first \
             of each session a GET /); cmd_get +{gets}: {:.2} per request",
            per(sets, writes),
            per(sets, writes + reads),
            per(gets, writes + reads),
        ),
    );
}

/// A browser's two `GET /` (at `modifying`, the path of the load's) and a `GET /read` after the
/// load: counter 1, 2, 2 in one session, and for a memcached manager a store reaching memcached
/// (none for StandardManager). The original msm is checked too: one browser's requests, one
/// after the other, are what it must keep.
fn browser(verdict: &mut Verdict, fleet: &Fleet, mode: Mode, modifying: &str) {
    let sets_before = sets(fleet);
    let answers = browse(fleet.tomcat(mode), modifying);
    let sets = sets_after(fleet, mode, sets_before) - sets_before;
    counted_in_one_session(verdict, mode, &answers);
    stored(verdict, mode, sets);
}

/// memcached's `cmd_set` now, over all nodes.
fn sets(fleet: &Fleet) -> u64 {
    fleet.counters().by_kind[SET]
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

/// The browser's requests stored `sets` items: some for a memcached manager, none for
/// StandardManager.
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

/// memcached's `cmd_set` once the browser's backups had time to land: as soon as it grew for a
/// memcached manager, after a second for StandardManager (which must not make it grow).
fn sets_after(fleet: &Fleet, mode: Mode, before: u64) -> u64 {
    if !mode.uses_memcached() {
        std::thread::sleep(Duration::from_secs(1));
        return sets(fleet);
    }
    let start = Instant::now();
    loop {
        let sets = sets(fleet);
        if sets > before || start.elapsed() > BACKUP_WAIT {
            return sets;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
