//! Where the time of one wasm evaluation goes: `kwrun`'s evaluation of a request cut into its
//! steps, every step timed on every sample, plus the fixed price of any call (a fresh instance
//! answering `protocol_version`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kwrun::admission::{AdmissionResponse, CLI_POLICY_ID, PolicyMode, ValidationResponse};
use kwrun::bench::summarize;
use kwrun::evaluator::InstanceAllocator;
use serde::Serialize;

use crate::{BenchError, load_policy, read_request, read_settings};

/// The steps, in the order they run.
pub const PHASES: [&str; 5] = ["instance", "payload", "validate_call", "answer", "response"];

/// Median (p50) of each step, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseReport {
    /// Measured samples.
    pub samples: usize,
    /// `instance`: a fresh instance, `wapc_init`, `protocol_version` and the instance's drop;
    /// `payload`: the `validate` payload serialized; `validate_call`: a fresh instance running
    /// `validate` (the policy's own work plus what `instance` measures); `answer`: the
    /// ValidationResponse parsed; `response`: the JSON patch and the AdmissionResponse.
    pub p50_us: BTreeMap<&'static str, f64>,
    /// The sum of the steps but `instance` (already inside `validate_call`), per sample.
    pub evaluation_p50_us: f64,
}

/// Loads the module as `kwrun bench` does and times each step of `samples` evaluations.
pub fn measure(
    module: &Path,
    request_path: &Path,
    settings_path: Option<&Path>,
    session: Option<&Path>,
    allocator: InstanceAllocator,
    samples: usize,
) -> Result<PhaseReport, BenchError> {
    let request = read_request(request_path)?;
    let settings = read_settings(settings_path)?;
    let (policy, host) = load_policy(module, allocator, session)?;

    let warm_up = (samples / 20).max(20);
    let mut timings: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); PHASES.len() + 1];
    for sample in 0..warm_up + samples {
        host.rewind_replay();
        let start = Instant::now();
        policy.call(&host, "protocol_version", &[])?;
        let instance = start.elapsed();

        let start = Instant::now();
        let payload = request.validate_payload(&settings);
        let payload_time = start.elapsed();
        let bytes = policy.call(&host, "validate", payload.as_bytes())?;
        let call_time = start.elapsed() - payload_time;
        let answer: ValidationResponse = serde_json::from_slice(&bytes)
            .map_err(|e| BenchError::Evaluation(format!("the policy's answer: {e}")))?;
        let answer_time = start.elapsed() - payload_time - call_time;
        let response = AdmissionResponse::from_validation(request.uid(), request.object(), &answer)
            .map_err(|e| BenchError::Evaluation(e.to_string()))?
            .apply_policy_mode(PolicyMode::Protect, true, CLI_POLICY_ID);
        let total = start.elapsed();
        drop(response);
        if sample >= warm_up {
            let response_time = total - payload_time - call_time - answer_time;
            for (times, took) in timings.iter_mut().zip([
                instance,
                payload_time,
                call_time,
                answer_time,
                response_time,
                total,
            ]) {
                times.push(took);
            }
        }
    }
    let p50 = |times: &mut Vec<Duration>| summarize(times, Duration::ZERO).p50_us;
    let evaluation_p50_us = p50(&mut timings[PHASES.len()]);
    let p50_us = PHASES
        .iter()
        .zip(timings.iter_mut())
        .map(|(name, times)| (*name, p50(times)))
        .collect();
    Ok(PhaseReport {
        samples,
        p50_us,
        evaluation_p50_us,
    })
}
