//! A duration's distribution: count, average, extremes and percentiles, cheap enough to record
//! on every request from every thread.
//!
//! Durations are counted in buckets whose width grows with their value (eight per power of
//! two: a percentile is off by at most an eighth of itself), so that recording is two atomic
//! additions and the memory is fixed (2 KiB), whatever the number of measurements.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets per power of two, as a number of bits.
const SUB_BITS: u32 = 3;
/// Values below this have a bucket each.
const EXACT: u64 = 1 << SUB_BITS;
/// Enough buckets for every duration up to 2^32 µs (71 minutes); longer ones share the last.
const BUCKETS: usize = ((32 - SUB_BITS + 1) << SUB_BITS) as usize;

/// The percentiles written, with the suffix of their name.
const PERCENTILES: [(f64, &str); 3] = [(0.50, "p50"), (0.99, "p99"), (0.999, "p999")];

/// The distribution of a duration, in microseconds.
#[derive(Debug)]
pub struct Timing {
    total_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            total_us: AtomicU64::new(0),
            min_us: AtomicU64::new(u64::MAX),
            max_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Timing {
    /// Records one measurement.
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
        self.total_us.fetch_add(us, Relaxed);
        // Read first: the extremes rarely change, and a read shares the cache line.
        if us < self.min_us.load(Relaxed) {
            self.min_us.fetch_min(us, Relaxed);
        }
        if us > self.max_us.load(Relaxed) {
            self.max_us.fetch_max(us, Relaxed);
        }
    }

    /// Number of measurements.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The duration that a fraction `q` of the measurements did not exceed (the top of its
    /// bucket, within the extremes); 0 without measurements.
    pub fn percentile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return 0;
        }
        // The rank of the measurement asked for, from 1.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        let index = counts
            .iter()
            .position(|&n| {
                seen += n;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        let (min, max) = (self.min_us.load(Relaxed), self.max_us.load(Relaxed));
        highest(index).clamp(min.min(max), max)
    }

    /// Writes the lines `<name>_count`, `_min_us`, `_avg_us`, `_p50_us`, `_p99_us`, `_p999_us`
    /// and `_max_us`.
    pub(super) fn write(&self, name: &str, out: &mut String) {
        let count = self.count();
        let (min, avg) = match count {
            0 => (0, 0),
            n => (self.min_us.load(Relaxed), self.total_us.load(Relaxed) / n),
        };
        let _ = writeln!(out, "{name}_count {count}");
        let _ = writeln!(out, "{name}_min_us {min}");
        let _ = writeln!(out, "{name}_avg_us {avg}");
        for (q, suffix) in PERCENTILES {
            let _ = writeln!(out, "{name}_{suffix}_us {}", self.percentile(q));
        }
        let _ = writeln!(out, "{name}_max_us {}", self.max_us.load(Relaxed));
    }
}

/// The bucket of a duration of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    let power = u64::BITS - 1 - us.leading_zeros();
    let sub = (us >> (power - SUB_BITS)) & (EXACT - 1);
    let index = (((power - SUB_BITS + 1) as usize) << SUB_BITS) | sub as usize;
    index.min(BUCKETS - 1)
}

/// The highest duration counted in bucket `index`.
fn highest(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let power = (index >> SUB_BITS) + u64::from(SUB_BITS) - 1;
    let lowest = (EXACT | (index & (EXACT - 1))) << (power - u64::from(SUB_BITS));
    lowest + (1 << (power - u64::from(SUB_BITS))) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_an_eighth() {
        for us in (0..5000).chain([1 << 20, (1 << 32) - 1]) {
            let index = bucket(us);
            assert!(highest(index) >= us, "{us} above its bucket {index}");
            assert!(
                index == 0 || highest(index - 1) < us,
                "{us} belongs below {index}"
            );
            assert!(highest(index) - us <= us / 8, "{us}: bucket too wide");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_follow_the_measurements() {
        let timing = Timing::default();
        assert_eq!(timing.percentile(0.99), 0);
        for us in 1..=1000 {
            timing.record(Duration::from_micros(us));
        }
        let near = |value: u64, expected: u64| value >= expected && value <= expected * 9 / 8;
        assert!(
            near(timing.percentile(0.5), 500),
            "{}",
            timing.percentile(0.5)
        );
        assert!(near(timing.percentile(0.99), 990));
        assert_eq!(timing.percentile(0.999), 1000, "capped at the maximum");
        assert_eq!(timing.percentile(0.0), 1, "at least the minimum");
        timing.record(Duration::from_secs(3));
        assert_eq!(timing.count(), 1001);
        assert_eq!(timing.percentile(1.0), 3_000_000);
        assert!(
            near(timing.percentile(0.99), 990),
            "one outlier moves p99 little"
        );
    }
}
