//! The module's cold compile: what a policy server pays for the policy at boot.

use std::time::{Duration, Instant};

use kwrun::evaluator::{EvalOptions, Policy};

use crate::BenchError;

/// Compiles `module` from scratch, as `kwrun` loads it (epoch interruption on, as under
/// policy-server's timeout protection) but without the on-disk compile cache, and returns how
/// long loading took (parse of the metadata, compile, instance pre-linking).
pub fn cold_compile(module: &[u8]) -> Result<Duration, BenchError> {
    let options = EvalOptions {
        cache_dir: None,
        ..EvalOptions::default()
    };
    let start = Instant::now();
    let policy = Policy::load(module, options)?;
    let elapsed = start.elapsed();
    drop(policy);
    Ok(elapsed)
}

/// Summary of repeated cold compiles, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompileReport {
    /// Compiles measured.
    pub runs: usize,
    /// Median.
    pub median_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// Compiles `module` `runs` times (each with a new engine, so nothing is reused) and summarizes.
pub fn measure(module: &[u8], runs: usize) -> Result<CompileReport, BenchError> {
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| cold_compile(module).map(|d| d.as_secs_f64() * 1e3))
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    Ok(CompileReport {
        runs: times.len(),
        median_ms: median,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_no_module_are_a_load_error() {
        let error = cold_compile(b"not wasm").unwrap_err();
        assert!(matches!(error, BenchError::Load(_)), "{error}");
        assert!(error.to_string().contains("WebAssembly"), "{error}");
    }

    #[test]
    fn a_minimal_module_compiles_every_run() {
        // The smallest valid module: magic and version.
        let module = b"\0asm\x01\0\0\0";
        let report = measure(module, 3).unwrap();
        assert_eq!(report.runs, 3);
        assert!(report.min_ms <= report.median_ms && report.median_ms <= report.max_ms);
    }
}
