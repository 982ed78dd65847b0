//! The policy's logic called natively: the floor of the wasm module's latency.
//!
//! One evaluation does what `kwrun` does per request (build the `validate` payload, read the
//! policy's `ValidationResponse`, turn it into the AdmissionResponse with its JSON patch), with
//! the policy's `validate` called as a Rust function instead of in a fresh wasm instance. The
//! difference between the two is then what running the policy as a module costs.

use std::path::Path;

use kwrun::admission::{
    AdmissionRequest, AdmissionResponse, CLI_POLICY_ID, PolicyMode, ValidationResponse,
};
use oras_cache_policy::host::Host;
use serde_json::Value;

use crate::session::SessionHost;
use crate::{BenchError, read_request, read_settings};

/// A request, its settings and the host answers, ready to be evaluated any number of times.
#[derive(Debug, Clone)]
pub struct NativeEvaluation {
    request: AdmissionRequest,
    settings: Value,
    host: SessionHost,
}

impl NativeEvaluation {
    /// Reads the request (AdmissionRequest or AdmissionReview JSON), the settings (JSON; `{}` when
    /// absent) and the session answering the policy's lookups (none: every lookup fails).
    pub fn load(
        request_path: &Path,
        settings_path: Option<&Path>,
        session_path: Option<&Path>,
    ) -> Result<Self, BenchError> {
        let request = read_request(request_path)?;
        let settings = read_settings(settings_path)?;
        let host = match session_path {
            Some(path) => SessionHost::from_file(path)?,
            None => SessionHost::empty(),
        };
        Ok(NativeEvaluation {
            request,
            settings,
            host,
        })
    }

    /// The whole evaluation, as `kwrun` does it around the module, with the policy native.
    pub fn evaluate(&self) -> Result<AdmissionResponse, BenchError> {
        let uid = self.request.uid();
        let payload = self.request.validate_payload(&self.settings);
        let answer_bytes = validate(payload.as_bytes(), &self.host)?;
        let answer: ValidationResponse = serde_json::from_slice(&answer_bytes)
            .map_err(|e| BenchError::Evaluation(e.to_string()))?;
        let response = AdmissionResponse::from_validation(uid, self.request.object(), &answer)
            .map_err(|e| BenchError::Evaluation(e.to_string()))?;
        Ok(response.apply_policy_mode(PolicyMode::Protect, true, CLI_POLICY_ID))
    }

    /// The policy's `validate` alone (payload in, `ValidationResponse` JSON out), without the
    /// runner's work around it.
    pub fn policy_only(&self, payload: &[u8]) -> Result<Vec<u8>, BenchError> {
        validate(payload, &self.host)
    }

    /// The `validate` payload of this request, as the runner sends it to the module.
    pub fn payload(&self) -> Vec<u8> {
        self.request.validate_payload(&self.settings).into_bytes()
    }
}

/// What the module's `validate` export does (the same function), with the host as a parameter.
fn validate(payload: &[u8], host: &dyn Host) -> Result<Vec<u8>, BenchError> {
    oras_cache_policy::validate_with_host(payload, host)
        .map_err(|e| BenchError::Evaluation(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    fn evaluate_fixture(request: &str, session: Option<&str>) -> AdmissionResponse {
        let session = session.map(fixture);
        NativeEvaluation::load(
            &fixture(request),
            Some(&fixture("settings.json")),
            session.as_deref(),
        )
        .unwrap()
        .evaluate()
        .unwrap()
    }

    #[test]
    fn the_annotated_job_is_mutated_with_the_cache_address() {
        let response = evaluate_fixture("annotated-job.json", Some("cache-ready.yml"));
        assert!(response.allowed);
        assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
        let patched = response
            .patched_object(
                NativeEvaluation::load(&fixture("annotated-job.json"), None, None)
                    .unwrap()
                    .request
                    .object()
                    .unwrap(),
            )
            .unwrap();
        let text = patched.to_string();
        // Three inputs pulled from the cache the session names.
        for input in [
            "10.96.0.50:5000/workflow/genome:v1",
            "10.96.0.50:5000/workflow/reads:run-1",
            "10.96.0.50:5000/workflow/reference:v3",
        ] {
            assert!(text.contains(input), "{input} missing from {text}");
        }
    }

    #[test]
    fn the_plain_pod_is_admitted_untouched() {
        let response = evaluate_fixture("plain-pod.json", None);
        assert!(response.allowed);
        assert!(response.patch.is_none());
    }

    #[test]
    fn the_rejected_pod_is_refused_with_a_message() {
        let response = evaluate_fixture("rejected-pod.json", Some("cache-ready.yml"));
        assert!(!response.allowed);
        let message = response.status.and_then(|s| s.message).unwrap_or_default();
        assert!(message.contains("container"), "{message}");
    }

    #[test]
    fn the_policy_alone_answers_a_validation_response() {
        let evaluation = NativeEvaluation::load(
            &fixture("annotated-job.json"),
            Some(&fixture("settings.json")),
            Some(&fixture("cache-ready.yml")),
        )
        .unwrap();
        let answer: Value =
            serde_json::from_slice(&evaluation.policy_only(&evaluation.payload()).unwrap())
                .unwrap();
        assert_eq!(answer["accepted"], true);
        assert!(answer["mutated_object"].is_object());
    }
}
