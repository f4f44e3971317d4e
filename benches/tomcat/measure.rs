//! The runs under load: each Tomcat warmed up, then for each mix rounds that run every mode once,
//! in an order rotated from round to round so that each mode takes each slot equally often and a
//! noisy neighbour is spread over all modes. Each measured run is printed as a row.

use std::time::Duration;

use crate::counters::{Counters, GET, SET};
use crate::fleet::Fleet;
use crate::mode::Mode;
use crate::progress::Progress;
use crate::settings::Settings;
use crate::{cpu, wrk};

/// Time given to a run's last requests, and the asynchronous backups they started, to finish
/// before counting, so that none of their work is counted in the next run.
const SETTLE: Duration = Duration::from_secs(1);

/// One measured run of one mode.
#[derive(Debug)]
pub struct Sample {
    /// Its mix: the share of modifying requests, in percent.
    pub mix: u32,
    /// Its round, from 1.
    pub round: u32,
    /// The mode run.
    pub mode: Mode,
    /// What wrk measured.
    pub outcome: wrk::Outcome,
    /// CPU time the mode's Tomcat used over the run and the settle time after it.
    pub cpu: Duration,
    /// What memcached's counters grew by over the run and the settle time.
    pub memcached: Counters,
}

impl Sample {
    /// Tomcat CPU time per request, in microseconds.
    pub fn cpu_per_request_us(&self) -> f64 {
        per_request_us(self.cpu, self.outcome.requests)
    }

    /// Whether every session of the run was kept, every counter right, and nothing failed.
    pub fn passed(&self, settings: &Settings) -> bool {
        self.outcome.sessions.kept(settings.total_sessions()) && self.outcome.errors == 0
    }

    /// What wrk saw of the sessions: `1024/1024, writes W, reads R`, and what went wrong if
    /// anything.
    pub fn kept(&self, settings: &Settings) -> String {
        let s = &self.outcome.sessions;
        let mut text = format!(
            "{}/{}, writes {}, reads {}",
            s.created,
            settings.total_sessions(),
            s.writes,
            s.reads
        );
        if !self.passed(settings) {
            text += &format!(
                ", LOST {}, MISMATCHES {}, CHANGED {}, FAILURES {}",
                s.lost, s.mismatches, s.changed, s.failures
            );
        }
        text
    }
}

/// `cpu` spread over `requests`, in microseconds.
pub fn per_request_us(cpu: Duration, requests: u64) -> f64 {
    cpu.as_secs_f64() * 1e6 / requests.max(1) as f64
}

/// Puts each Tomcat under the benchmark's load for the warm-up time, one after the other, the
/// time shared among the mixes (at least a second each) so that every path the measures take is
/// compiled.
pub fn warm_up(fleet: &Fleet, settings: &Settings, progress: &Progress) {
    if settings.warmup.is_zero() {
        return;
    }
    let share = (settings.warmup / settings.mixes.len() as u32).max(Duration::from_secs(1));
    for &mode in &settings.modes {
        progress.say(format_args!(
            "warming up {} for {}s",
            mode.name(),
            settings.warmup.as_secs()
        ));
        for &mix in &settings.mixes {
            let outcome = run_and_settle(fleet.tomcat(mode).port, share, settings, mix);
            progress.say(format_args!(
                "  warm-up {}, {mix}% modifying: {:.2} requests/s, p99 {:.3} ms",
                mode.name(),
                outcome.requests_per_second,
                outcome.p99_ms
            ));
        }
    }
}

/// Runs the rounds of the mix `mix`, printing a row per run; returns the runs in the order they
/// ran.
pub fn rounds(fleet: &Fleet, settings: &Settings, mix: u32) -> Vec<Sample> {
    println!();
    println!("== {mix}% modifying requests: rounds");
    print_header(settings);
    let mut samples = Vec::new();
    for round in 1..=settings.rounds {
        for mode in rotated(&settings.modes, round) {
            let sample = measure(fleet, mode, mix, round, settings);
            print_row(&sample, settings);
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

/// One wrk run of `mode` at `mix`, with its Tomcat's CPU time and memcached's counters around
/// it.
fn measure(fleet: &Fleet, mode: Mode, mix: u32, round: u32, settings: &Settings) -> Sample {
    let tomcat = fleet.tomcat(mode);
    let before = fleet.counters();
    let cpu_before = cpu::used(tomcat.pid());
    let outcome = run_and_settle(tomcat.port, settings.duration, settings, mix);
    let cpu = cpu::used(tomcat.pid()) - cpu_before;
    let memcached = fleet.counters().since(&before);
    Sample {
        mix,
        round,
        mode,
        outcome,
        cpu,
        memcached,
    }
}

/// A wrk run of `length` at `mix` against `port`, then the settle time.
fn run_and_settle(port: u16, length: Duration, settings: &Settings, mix: u32) -> wrk::Outcome {
    let outcome = wrk::run(port, length, settings.load(mix));
    std::thread::sleep(SETTLE);
    outcome
}

fn print_header(settings: &Settings) {
    let width = settings.name_width();
    println!(
        "{:<5}  {:<width$}  {:>12}  {:>11}  {:>9}  {:>9}  {:>6}  {:>9}  {:>9}  sessions kept (wrk)",
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

fn print_row(sample: &Sample, settings: &Settings) {
    let width = settings.name_width();
    let outcome = &sample.outcome;
    println!(
        "{:<5}  {:<width$}  {:>12.2}  {:>11.1}  {:>9.3}  {:>9}  {:>6}  {:>9}  {:>9}  {}",
        sample.round,
        sample.mode.name(),
        outcome.requests_per_second,
        sample.cpu_per_request_us(),
        outcome.p99_ms,
        outcome.requests,
        outcome.errors,
        format!("+{}", sample.memcached.by_kind[GET]),
        format!("+{}", sample.memcached.by_kind[SET]),
        sample.kept(settings)
    );
}
