//! The tables of a mix over all its rounds: requests/s and p99 (medians of the rounds), Tomcat
//! CPU per request (over all rounds), both as ratios to the first mode, and the sessions lost; then memcached's commands
//! of each kind and bytes per request. Figures are only meaningful as ratios within one run.

use std::time::Duration;

use crate::counters::{Counters, KINDS};
use crate::measure::{Sample, per_request_us};
use crate::mode::{Mode, line_name};
use crate::settings::Settings;

/// Width of a column of memcached commands per request.
const KIND_WIDTH: usize = 9;

/// One mode's figures over all rounds of a mix.
struct Figures {
    /// Median requests/s.
    rate: f64,
    /// Lowest and highest requests/s of a round.
    rate_range: (f64, f64),
    /// Tomcat CPU time per request over all rounds, in microseconds.
    cpu_us: f64,
    /// Median p99 latency, in milliseconds.
    p99_ms: f64,
    /// Requests over all rounds.
    requests: u64,
    /// Sessions lost over all rounds.
    lost: u64,
    /// Answers with a counter other than the one expected, over all rounds.
    mismatches: u64,
    /// memcached's work over all rounds.
    memcached: Counters,
}

impl Figures {
    fn of(samples: &[&Sample]) -> Figures {
        let rates: Vec<f64> = samples
            .iter()
            .map(|s| s.outcome.requests_per_second)
            .collect();
        let cpu: Duration = samples.iter().map(|s| s.cpu).sum();
        let requests = samples.iter().map(|s| s.outcome.requests).sum();
        Figures {
            rate: median(rates.clone()),
            rate_range: (
                rates.iter().copied().fold(f64::INFINITY, f64::min),
                rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            cpu_us: per_request_us(cpu, requests),
            p99_ms: median(samples.iter().map(|s| s.outcome.p99_ms).collect()),
            requests,
            lost: samples.iter().map(|s| s.outcome.sessions.lost).sum(),
            mismatches: samples.iter().map(|s| s.outcome.sessions.mismatches).sum(),
            memcached: Counters::sum(samples.iter().map(|s| &s.memcached)),
        }
    }

    /// `count` per request.
    fn per_request(&self, count: u64) -> f64 {
        count as f64 / self.requests.max(1) as f64
    }
}

/// Prints the settings of the run and the tables of the mix `mix`.
pub fn print(samples: &[Sample], settings: &Settings, mix: u32) {
    println!();
    let session = match settings.attributes {
        0 => "holding a counter".to_owned(),
        n => format!("holding a counter and {n} attribute(s) of 1 KiB, one replaced per GET /"),
    };
    println!(
        "== {mix}% modifying requests: summary of {} round(s) of {}s per mode after {}s warm-up \
         each; Tomcat {} unless named; {} memcached node(s); wrk -t{} -c{}, {} sessions per \
         connection ({} in all, {session}), {mix}% GET {} (modifying), {}% GET /read; JVM: {}",
        settings.rounds,
        settings.duration.as_secs(),
        settings.warmup.as_secs(),
        line_name(settings.line),
        settings.nodes,
        settings.threads,
        settings.connections,
        settings.sessions,
        settings.total_sessions(),
        settings.modifying_path(),
        100 - mix,
        settings.jvm_opts,
    );
    if let Some(jar) = &settings.baseline_jar {
        println!("@baseline modes run {}", jar.display());
    }
    let figures: Vec<(Mode, Figures)> = settings
        .modes
        .iter()
        .map(|&mode| (mode, Figures::of(&of(samples, mix, mode))))
        .collect();
    print_throughput(&figures, settings);
    println!();
    print_memcached(&figures, settings, mix);
}

/// Requests/s, CPU per request, p99, their ratios to the first mode, and the sessions lost.
fn print_throughput(figures: &[(Mode, Figures)], settings: &Settings) {
    let width = settings.name_width();
    let (first_mode, first) = &figures[0];
    // The ratio columns as wide as their headings, which name the first mode.
    let ratio = format!("ratio to {}", first_mode.name());
    let cpu_ratio = format!("CPU ratio to {}", first_mode.name());
    let (ratio_width, cpu_ratio_width) = (ratio.len().max(20), cpu_ratio.len().max(20));
    println!(
        "{:<width$}  {:>12}  {:>11}  {:>9}  {ratio:>ratio_width$}  \
         {cpu_ratio:>cpu_ratio_width$}  {:>13}  {:>14}  requests/s min-max",
        "mode", "requests/s", "CPU µs/req", "p99 ms", "sessions lost", "counters wrong",
    );
    for (mode, figures) in figures {
        println!(
            "{:<width$}  {:>12.0}  {:>11.1}  {:>9.2}  {:>ratio_width$.2}  \
             {:>cpu_ratio_width$.2}  {:>13}  {:>14}  {:.0}-{:.0}",
            mode.name(),
            figures.rate,
            figures.cpu_us,
            figures.p99_ms,
            figures.rate / first.rate,
            figures.cpu_us / first.cpu_us,
            figures.lost,
            figures.mismatches,
            figures.rate_range.0,
            figures.rate_range.1,
        );
    }
}

/// memcached's commands of each kind and bytes (received and sent) per request.
fn print_memcached(figures: &[(Mode, Figures)], settings: &Settings, mix: u32) {
    let width = settings.name_width();
    println!(
        "memcached per request at {mix}% modifying ({} node(s); set counts every store: set, \
         add, cas, ...; cas is also shown alone; bytes both ways)",
        settings.nodes
    );
    let mut heading = format!("{:<width$}", "mode");
    for (kind, _) in KINDS {
        heading += &format!("  {kind:>KIND_WIDTH$}");
    }
    println!("{heading}  {:>9}  {:>10}", "commands", "bytes");
    for (mode, figures) in figures {
        let mut row = format!("{:<width$}", mode.name());
        for count in figures.memcached.by_kind {
            row += &format!("  {:>KIND_WIDTH$.2}", figures.per_request(count));
        }
        println!(
            "{row}  {:>9.2}  {:>10.0}",
            figures.per_request(figures.memcached.commands()),
            figures.per_request(figures.memcached.bytes())
        );
    }
}

/// The samples of `mode` at `mix`.
pub fn of(samples: &[Sample], mix: u32, mode: Mode) -> Vec<&Sample> {
    samples
        .iter()
        .filter(|s| s.mix == mix && s.mode == mode)
        .collect()
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}
