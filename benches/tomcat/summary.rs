//! The table over all rounds: requests/s (mean), Tomcat CPU per request, p99 (median) and both
//! as ratios to the first mode. Figures are only meaningful as ratios within one run.

use std::time::Duration;

use crate::measure::{Sample, per_request_us};
use crate::mode::{Mode, NAME_WIDTH};
use crate::settings::Settings;

/// One mode's figures over all rounds.
struct Figures {
    /// Mean requests/s.
    rate: f64,
    /// Lowest and highest requests/s of a round.
    rate_range: (f64, f64),
    /// Tomcat CPU time per request over all rounds, in microseconds.
    cpu_us: f64,
    /// Median p99 latency, in milliseconds.
    p99_ms: f64,
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
            rate: rates.iter().sum::<f64>() / rates.len() as f64,
            rate_range: (
                rates.iter().copied().fold(f64::INFINITY, f64::min),
                rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
            cpu_us: per_request_us(cpu, requests),
            p99_ms: median(samples.iter().map(|s| s.outcome.p99_ms).collect()),
        }
    }
}

/// Prints the settings of the run and a row per mode.
pub fn print(samples: &[Sample], settings: &Settings) {
    println!();
    let session = match settings.attributes {
        0 => "holding a counter".to_owned(),
        n => format!("holding a counter and {n} attributes of 1 KiB, one replaced per GET"),
    };
    println!(
        "== summary: {} round(s) of {}s per mode after {}s warm-up each; wrk -t{c} -c{c}, one \
         session per connection ({session}), {}% GET {} (modifying), {}% GET /read; JVM: {}",
        settings.rounds,
        settings.duration.as_secs(),
        settings.warmup.as_secs(),
        settings.write_percent,
        settings.modifying_path(),
        100 - settings.write_percent,
        settings.jvm_opts,
        c = settings.connections,
    );
    if let Some(jar) = &settings.baseline_jar {
        println!("@baseline modes run {}", jar.display());
    }
    let first_mode = settings.modes[0];
    let first = Figures::of(&of_mode(samples, first_mode));
    // The ratio columns as wide as their headings, which name the first mode.
    let ratio = format!("ratio to {}", first_mode.name());
    let cpu_ratio = format!("CPU ratio to {}", first_mode.name());
    let (ratio_width, cpu_ratio_width) = (ratio.len().max(20), cpu_ratio.len().max(20));
    println!(
        "{:<NAME_WIDTH$}  {:>12}  {:>11}  {:>9}  {ratio:>ratio_width$}  \
         {cpu_ratio:>cpu_ratio_width$}  requests/s min-max",
        "mode", "requests/s", "CPU µs/req", "p99 ms",
    );
    for &mode in &settings.modes {
        let figures = Figures::of(&of_mode(samples, mode));
        println!(
            "{:<NAME_WIDTH$}  {:>12.0}  {:>11.1}  {:>9.2}  {:>ratio_width$.2}  \
             {:>cpu_ratio_width$.2}  {:.0}-{:.0}",
            mode.name(),
            figures.rate,
            figures.cpu_us,
            figures.p99_ms,
            figures.rate / first.rate,
            figures.cpu_us / first.cpu_us,
            figures.rate_range.0,
            figures.rate_range.1,
        );
    }
}

/// The samples of `mode`.
pub fn of_mode(samples: &[Sample], mode: Mode) -> Vec<&Sample> {
    samples.iter().filter(|s| s.mode == mode).collect()
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
