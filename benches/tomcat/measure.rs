//! The runs under load: each Tomcat warmed up, then rounds that run every mode once, in an order
//! rotated from round to round so that each mode takes each slot equally often and a noisy
//! neighbour is spread over all modes. Each measured run is printed as a row.

use std::time::Duration;

use crate::fleet::Fleet;
use crate::mode::{Mode, NAME_WIDTH};
use crate::progress::Progress;
use crate::settings::Settings;
use crate::{cpu, wrk};

/// Time given to a run's last requests, and the asynchronous backups they started, to finish
/// before counting, so that none of their work is counted in the next run.
const SETTLE: Duration = Duration::from_secs(1);

/// One measured run of one mode.
#[derive(Debug)]
pub struct Sample {
    /// Its round, from 1.
    pub round: u32,
    /// The mode run.
    pub mode: Mode,
    /// What wrk measured.
    pub outcome: wrk::Outcome,
    /// CPU time the mode's Tomcat used over the run and the settle time after it.
    pub cpu: Duration,
    /// Growth of memcached's `cmd_get` (keys read) over the run.
    pub gets: u64,
    /// Growth of memcached's `cmd_set` (items stored) over the run.
    pub sets: u64,
}

impl Sample {
    /// Tomcat CPU time per request, in microseconds.
    pub fn cpu_per_request_us(&self) -> f64 {
        per_request_us(self.cpu, self.outcome.requests)
    }
}

/// `cpu` spread over `requests`, in microseconds.
pub fn per_request_us(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// Puts each Tomcat under the benchmark's load for the warm-up time, one after the other.
pub fn warm_up(fleet: &Fleet, settings: &Settings, progress: &Progress) {
    if settings.warmup.is_zero() {
        return;
    }
    for &mode in &settings.modes {
        progress.say(format_args!(
            "warming up {} for {}s",
            mode.name(),
            settings.warmup.as_secs()
        ));
        let outcome = run_and_settle(fleet.tomcat(mode).port, settings.warmup, settings);
        progress.say(format_args!(
            "  warm-up {}: {:.2} requests/s, p99 {:.3} ms",
            mode.name(),
            outcome.requests_per_second,
            outcome.p99_ms
        ));
    }
}

/// Runs every round, printing a row per run; returns the runs in the order they ran.
pub fn rounds(fleet: &Fleet, settings: &Settings) -> Vec<Sample> {
    println!();
    print_header();
    let mut samples = Vec::new();
    for round in 1..=settings.rounds {
        for mode in rotated(&settings.modes, round) {
            let sample = measure(fleet, mode, round, settings);
            print_row(&sample, settings.connections);
            samples.push(sample);
        }
    }
    samples
}

/// `modes` starting at the one of slot `round - 1`: s,a,y / a,y,s / y,s,a ...
fn rotated(modes: &[Mode], round: u32) -> Vec<Mode> {
    let mut order = modes.to_vec();
    order.rotate_left((round as usize - 1) % modes.len());
    order
}

/// One wrk run of `mode`, with its Tomcat's CPU time and memcached's counters around it.
fn measure(fleet: &Fleet, mode: Mode, round: u32, settings: &Settings) -> Sample {
    let tomcat = fleet.tomcat(mode);
    let before = fleet.memcached.stats();
    let cpu_before = cpu::used(tomcat.pid());
    let outcome = run_and_settle(tomcat.port, settings.duration, settings);
    let cpu = cpu::used(tomcat.pid()) - cpu_before;
    let after = fleet.memcached.stats();
    let growth = |name: &str| after[name] - before[name];
    Sample {
        round,
        mode,
        outcome,
        cpu,
        gets: growth("cmd_get"),
        sets: growth("cmd_set"),
    }
}

/// A wrk run of `length` against `port`, then the settle time.
fn run_and_settle(port: u16, length: Duration, settings: &Settings) -> wrk::Outcome {
    let outcome = wrk::run(port, length, settings.load());
    std::thread::sleep(SETTLE);
    outcome
}

fn print_header() {
    println!(
        "{:<5}  {:<NAME_WIDTH$}  {:>12}  {:>11}  {:>9}  {:>9}  {:>6}  {:>9}  {:>9}  sessions kept (wrk)",
        "round",
        "mode",
        "requests/s",
        "CPU µs/req",
        "p99 ms",
        "requests",
        "errors",
        "mc gets",
        "mc sets"
    );
}

fn print_row(sample: &Sample, connections: u32) {
    let outcome = &sample.outcome;
    println!(
        "{:<5}  {:<NAME_WIDTH$}  {:>12.2}  {:>11.1}  {:>9.3}  {:>9}  {:>6}  {:>9}  {:>9}  {}",
        sample.round,
        sample.mode.name(),
        outcome.requests_per_second,
        sample.cpu_per_request_us(),
        outcome.p99_ms,
        outcome.requests,
        outcome.errors,
        format!("+{}", sample.gets),
        format!("+{}", sample.sets),
        kept(outcome, connections)
    );
}

/// What wrk saw of the sessions: `8/8, writes W, reads R`, and what went wrong if anything.
pub fn kept(outcome: &wrk::Outcome, connections: u32) -> String {
    let s = &outcome.sessions;
    let mut text = format!(
        "{}/{connections}, writes {}, reads {}",
        s.created, s.writes, s.reads
    );
    if !passed(outcome, connections) {
        text += &format!(
            ", LOST {}, MISMATCHES {}, CHANGED {}, FAILURES {}",
            s.lost, s.mismatches, s.changed, s.failures
        );
    }
    text
}

/// Whether every connection kept its session, every counter was right, and nothing failed.
pub fn passed(outcome: &wrk::Outcome, connections: u32) -> bool {
    outcome.sessions.kept(connections) && outcome.errors == 0
}
