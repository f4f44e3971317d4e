//! Tomcat end to end: this manager against Tomcat's own StandardManager and the original
//! memcached-session-manager 2.3.2, on the same Tomcat, over HTTP with wrk.
//!
//! ```text
//! cargo bench --locked --bench tomcat
//! WARMUP=5 DURATION=5 ROUNDS=1 SESSIONS=8 WRITE_PERCENT=20 cargo bench --locked --bench tomcat  # smoke run
//! MODES="standard msm-sticky-async msm-sticky-sync sticky-async sticky-sync msm-nonsticky \
//!   msm-nonsticky-locked nonsticky nonsticky-locked sticky-async@tomcat10.1 sticky-async@tomcat11 \
//!   nonsticky@tomcat10.1 nonsticky@tomcat11" cargo bench --locked --bench tomcat  # the README's table
//! BASELINE_JAR=/tmp/old/target/java/msm-tomcat9.jar \
//!   MODES="standard nonsticky@baseline nonsticky" cargo bench --locked --bench tomcat  # old build vs this
//! ```
//!
//! Build the jars first (`bash scripts/build-jar.sh`): the Tomcats run them, not this build. The
//! `msm-*` modes run msm 2.3.2's jars from Maven Central, fetched into `target/java/msm-2.3.2/` by
//! `mvn -q -B -f benches/tomcat/msm-2.3.2/pom.xml dependency:copy-dependencies`. The benchmark
//! checks both before it starts, and names the command for what is missing.
//!
//! Environment (defaults in brackets: the workload of the README's comparison with msm 2.3.2):
//! - `WARMUP` [120]: seconds of load on each Tomcat before measuring (its JIT needs 100-200 s),
//!   shared among the mixes, so that every path measured is compiled;
//! - `DURATION` [20]: seconds of each measured wrk run;
//! - `ROUNDS` [3]: rounds per mix; each runs every mode once, in a rotated order;
//! - `THREADS` [2]: wrk threads;
//! - `CONNECTIONS` [16]: wrk connections, a multiple of `THREADS`;
//! - `SESSIONS` [64]: sessions per connection (1024 in all by default): each wrk thread sends the
//!   requests of the sessions of its connections in turn, each session's first request creating
//!   it, and checks every answer (`session.lua`);
//! - `WRITE_PERCENT` [`0 20 100`]: the mixes, each a share of requests that modify the session
//!   (`GET /`, which increments its counter); the rest are `GET /read`. Each mix is measured in
//!   turn, its rounds alternating the modes;
//! - `ATTRIBUTES` [1]: attributes of 1 KiB each session holds (at most 4096), besides its small
//!   counter; each modifying request replaces one of them (`GET /?attributes=N`, everywhere the
//!   benchmark sends `GET /`), so that per-attribute updates (`nonsticky-attribute`,
//!   `sticky-async-attribute`) can be measured against whole sessions: e.g. `ATTRIBUTES=10
//!   MODES="nonsticky nonsticky-attribute"`; 0 is the session of the counter alone;
//! - `NODES` [2]: memcached nodes, shared by every Tomcat (`memcachedNodes="n1:... n2:..."`);
//!   a non-sticky session has a second copy on the other node;
//! - `TOMCAT` [9]: the Tomcat line of every mode without an `@tomcat` suffix: `9` (with
//!   `msm-tomcat9.jar` and `msm-demo-tomcat9.jar`), `10.1` or `11` (with the `tomcat10` jars);
//! - `JVM_OPTS` [`-Xms512m -Xmx512m -XX:+UseParallelGC`]: flags of every Tomcat JVM;
//! - `MODES` [`standard msm-sticky-async sticky-async`]: the Tomcats, the first the baseline of
//!   the ratios. A mode is a manager configuration, a jar and a Tomcat line. Tomcat's own:
//!   `standard`. This manager: `sticky-async`, `sticky-sync` (`sessionBackupAsync=false`,
//!   `sessionBackupTimeout=1000`), `nonsticky` and `nonsticky-locked` (`lockingMode=all`),
//!   `sticky-async-events` and `nonsticky-events` (`sticky-async` and `nonsticky` with expiry
//!   events, `sessionEvents=expiry`, `eventSweepInterval=60`), `sticky-async-attribute` and
//!   `nonsticky-attribute` (`sticky-async` and `nonsticky` writing only the attributes that
//!   changed, `updateGranularity=attribute`, where the others write whole sessions). The
//!   original memcached-session-manager 2.3.2 (`de.javakaffee.web.msm.MemcachedBackupSessionManager`
//!   with its default Java serialization, Tomcat 9 only): `msm-sticky-async`, `msm-sticky-sync`,
//!   `msm-nonsticky` and `msm-nonsticky-locked`, the same attributes as this manager's modes of
//!   the same name. Suffixes, in any order: `@tomcat9`, `@tomcat10.1` or `@tomcat11` runs the
//!   mode on that line instead of `TOMCAT`'s (`sticky-async@tomcat11`); `@baseline`
//!   (`nonsticky@baseline`) runs this manager's configuration from `BASELINE_JAR`;
//! - `BASELINE_JAR` [none]: the manager's jar for the `@baseline` modes, another build's
//!   `msm-tomcat9.jar` for Tomcat 9, `msm-tomcat10.jar` for 10.1 and 11 (`scripts/build-jar.sh`
//!   in a worktree of an older commit); the others run this build's, and every Tomcat this
//!   build's demo application;
//! - `OPS_REQUESTS` [100]: requests per kind when counting memcached commands per request.
//!
//! A run takes about WARMUP + mixes × ROUNDS × (DURATION + 1) seconds per mode plus a minute:
//! some 15 minutes by default, 70 for the README's 13 modes.
//!
//! The memcached nodes and a Tomcat per mode run at once (the test harness: children on free
//! loopback ports, each Tomcat in its own JVM with the same flags, serving the demo application
//! with its manager configured as `context.xml` would). At start each Tomcat must report the
//! manager class of its mode and the valves that manager adds (msm 2.3.2's request tracking
//! valves on the host and the context). Each Tomcat is warmed up under the same load, then for
//! each mix every round runs each mode for `DURATION` seconds, the order rotated from round to
//! round. Figures are only meaningful as ratios between modes of one run; Tomcat's CPU time per
//! request (from `/proc`) is steadier than requests/s when neighbours share the machine.
//!
//! Output, for each mix: a row per mode per round; a table of requests/s and p99 (medians of the
//! rounds), Tomcat CPU µs per request, the ratios of requests/s and CPU to the first mode, the
//! sessions lost and the answers with a wrong counter; a table of memcached's commands per
//! request by kind (get, set, touch, delete, incr/decr, cas, from `stats`, over all nodes) and the
//! bytes memcached received and sent per request. Then the checks (every session kept and every
//! counter as expected under wrk, memcached's stores and reads per request, a browser's requests
//! after the load, no eviction); memcached's commands and the bytes it received per new session,
//! per reading and per modifying request. Exits non-zero when a check fails. Sessions that msm
//! 2.3.2 loses under load (its non-sticky mode does) are reported, in the table and as a `note`
//! line, and fail no check: the benchmark measures it, it does not test it; a session lost by
//! this manager or by StandardManager fails the run.

#[path = "../../tests/common/mod.rs"]
mod common;

mod checks;
mod counters;
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
    if let Err(missing) = requirements::check(&settings) {
        eprintln!("{missing}");
        return ExitCode::FAILURE;
    }
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
        settings.nodes,
        &settings.jvm_flags(),
        settings.baseline_jar.as_deref(),
        &progress,
    );
    measure::warm_up(&fleet, settings, &progress);
    let mut samples = Vec::new();
    for &mix in &settings.mixes {
        samples.extend(measure::rounds(&fleet, settings, mix));
        summary::print(&samples, settings, mix);
    }
    let passed = checks::run(&fleet, &samples, settings);
    ops::print(&fleet, settings);
    progress.say("done");
    passed
}
