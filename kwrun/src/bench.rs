//! `kwrun bench`: how fast a request is evaluated, as `kwctl bench` reports it.
//!
//! Each sample is one whole `validate` call on a fresh instance (what policy-server pays per
//! admission request); the module is compiled once before measuring, and a few warm-up calls are
//! discarded.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Latency summary of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Measured evaluations.
    pub samples: usize,
    /// Evaluations per second over the measured run.
    pub evaluations_per_second: f64,
    /// Mean latency in microseconds.
    pub mean_us: f64,
    /// Median latency in microseconds.
    pub p50_us: f64,
    /// 90th percentile in microseconds.
    pub p90_us: f64,
    /// 99th percentile in microseconds.
    pub p99_us: f64,
    /// Slowest evaluation in microseconds.
    pub max_us: f64,
}

/// Runs `evaluate` `warm_up` times unmeasured, then `samples` times measured.
pub fn bench(warm_up: usize, samples: usize, mut evaluate: impl FnMut()) -> BenchReport {
    for _ in 0..warm_up {
        evaluate();
    }
    let mut latencies = Vec::with_capacity(samples);
    let start = Instant::now();
    for _ in 0..samples {
        let one = Instant::now();
        evaluate();
        latencies.push(one.elapsed());
    }
    summarize(&mut latencies, start.elapsed())
}

/// Percentiles (nearest rank) and throughput of measured latencies.
pub fn summarize(latencies: &mut [Duration], total: Duration) -> BenchReport {
    latencies.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        micros(latencies[rank.clamp(1, latencies.len()) - 1])
    };
    let sum: Duration = latencies.iter().sum();
    let samples = latencies.len();
    BenchReport {
        samples,
        evaluations_per_second: if total.is_zero() {
            0.0
        } else {
            samples as f64 / total.as_secs_f64()
        },
        mean_us: if samples == 0 {
            0.0
        } else {
            micros(sum) / samples as f64
        },
        p50_us: percentile(50.0),
        p90_us: percentile(90.0),
        p99_us: percentile(99.0),
        max_us: latencies.last().map_or(0.0, |d| micros(*d)),
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "validate: {} samples", self.samples)?;
        writeln!(
            f,
            "  throughput: {:.1} evaluations/s",
            self.evaluations_per_second
        )?;
        writeln!(f, "  mean: {:.1} µs", self.mean_us)?;
        write!(
            f,
            "  p50: {:.1} µs  p90: {:.1} µs  p99: {:.1} µs  max: {:.1} µs",
            self.p50_us, self.p90_us, self.p99_us, self.max_us
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let report = summarize(&mut latencies, Duration::from_secs(1));
        assert_eq!(report.samples, 100);
        assert_eq!(report.p50_us, 50.0);
        assert_eq!(report.p90_us, 90.0);
        assert_eq!(report.p99_us, 99.0);
        assert_eq!(report.max_us, 100.0);
        assert!((report.mean_us - 50.5).abs() < 1e-9);
        assert!((report.evaluations_per_second - 100.0).abs() < 1e-9);
    }

    #[test]
    fn no_samples_give_zeros() {
        let report = summarize(&mut [], Duration::ZERO);
        assert_eq!(report.samples, 0);
        assert_eq!(report.p99_us, 0.0);
    }

    #[test]
    fn bench_calls_warm_up_plus_samples() {
        let mut calls = 0;
        let report = bench(3, 7, || calls += 1);
        assert_eq!(calls, 10);
        assert_eq!(report.samples, 7);
    }
}
