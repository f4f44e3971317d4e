//! Tomcat end to end: msm against Tomcat's own StandardManager, over HTTP with wrk.
//!
//! ```text
//! cargo bench --bench tomcat
//! WARMUP=10 DURATION=5 ROUNDS=1 cargo bench --bench tomcat      # smoke run, about a minute
//! MODES="standard nonsticky nonsticky-locked" cargo bench --bench tomcat
//! BASELINE_JAR=/tmp/old/target/java/msm-tomcat10.jar \
//!   MODES="standard nonsticky@baseline nonsticky" cargo bench --bench tomcat  # old build vs this
//! ```
//!
//! Build the jars first (`bash scripts/build-jar.sh`): the Tomcats run them, not this build.
//!
//! Environment (defaults in brackets):
//! - `WARMUP` [120]: seconds of load on each Tomcat before measuring (its JIT needs 100-200 s);
//! - `DURATION` [30]: seconds of each measured wrk run;
//! - `ROUNDS` [3]: rounds; each runs every mode once, in a rotated order;
//! - `CONNECTIONS` [8]: wrk connections, and as many wrk threads (one session each);
//! - `WRITE_PERCENT` [20]: share of requests that modify the session (`GET /`); the rest are
//!   `GET /read`;
//! - `ATTRIBUTES` [0]: attributes of 1 KiB each session holds (at most 4096), besides its small
//!   counter; each modifying request replaces one of them (`GET /?attributes=N`, everywhere the
//!   benchmark sends `GET /`), so that per-attribute updates (`nonsticky-attribute`,
//!   `sticky-async-attribute`) can be measured against whole sessions: e.g. `ATTRIBUTES=10
//!   MODES="nonsticky nonsticky-attribute"`; 0 is the session of the counter alone;
//! - `JVM_OPTS` [`-Xms512m -Xmx512m -XX:+UseParallelGC`]: flags of every Tomcat JVM;
//! - `MODES` [`standard sticky-async sticky-sync`]: the Tomcats, the first the baseline of the
//!   ratios; also `nonsticky` and `nonsticky-locked` (`lockingMode=all`),
//!   `sticky-async-events` and `nonsticky-events` (`sticky-async` and `nonsticky` with expiry
//!   events, `sessionEvents=expiry`, `eventSweepInterval=60`), and `sticky-async-attribute` and
//!   `nonsticky-attribute` (`sticky-async` and `nonsticky` writing only the attributes that
//!   changed, `updateGranularity=attribute`, where the others write whole sessions); a mode is a
//!   manager configuration and a jar: suffixed `@baseline` (`nonsticky@baseline`), its Tomcat
//!   runs the same configuration from `BASELINE_JAR`;
//! - `BASELINE_JAR` [none]: the manager's jar for the `@baseline` modes, e.g. another build's
//!   `msm-tomcat10.jar` (`scripts/build-jar.sh` in a worktree of an older commit); the others run
//!   this build's, and every Tomcat this build's demo application;
//! - `OPS_REQUESTS` [100]: requests per kind when counting memcached commands per request.
//!
//! A run takes about WARMUP + ROUNDS × DURATION seconds per mode plus half a minute.
//!
//! One memcached and a Tomcat per mode run at once (the test harness: children on free loopback
//! ports, each Tomcat in its own JVM with the same flags, serving the demo application). Each
//! Tomcat is warmed up under the same load, then every round runs each mode for `DURATION`
//! seconds, the order rotated from round to round. Figures are only meaningful as ratios between
//! modes of one run; Tomcat's CPU time per request (from `/proc`) is steadier than requests/s
//! when neighbours share the machine.
//!
//! Output: a row per mode per round; a table of requests/s (mean), CPU per request, p99 (median)
//! and ratios to the first mode; the checks (every wrk connection kept its session and saw the
//! counters it expected, memcached's stores and reads per request, a browser's requests after
//! the load); memcached's commands and the bytes it received per new session, per reading and
//! per modifying request. Exits non-zero when a check fails.

#[path = "../../tests/common/mod.rs"]
mod common;

mod checks;
mod cpu;
mod fleet;
mod measure;
mod mode;
mod ops;
mod progress;
mod requirements;
mod settings;
mod summary;
mod wrk;

use std::process::ExitCode;

use fleet::Fleet;
use progress::Progress;
use settings::Settings;

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    requirements::check();
    if run(&settings) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The whole benchmark; false when a check failed. Every server stops when it returns.
fn run(settings: &Settings) -> bool {
    let progress = Progress::start();
    let fleet = Fleet::start(
        &settings.modes,
        &settings.jvm_flags(),
        settings.baseline_jar.as_deref(),
        &progress,
    );
    measure::warm_up(&fleet, settings, &progress);
    let samples = measure::rounds(&fleet, settings);
    summary::print(&samples, settings);
    let passed = checks::run(&fleet, &samples, settings);
    ops::print(&fleet, settings);
    progress.say("done");
    passed
}
