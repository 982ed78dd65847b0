//! The path a request takes through Kubewarden's real policy-server, step by step, with the same
//! waPC host crates as `kwrun`.
//!
//! `kwrun bench` measures the module with the runner's own light work around it. policy-server
//! does more per request, and this stage repeats each of its steps with the crates it uses, so the
//! figures are what users see (without the HTTP transport itself, which costs the same for every
//! request). Each step, as read in Kubewarden's source (policy-server at 4eb6565, 2026-01-02;
//! policy-evaluator at cc5ef51, 2026-01-02, the last commit before it moved into
//! kubewarden-controller):
//!
//! 1. `parse`: the HTTP body is deserialised into a typed `AdmissionReviewRequest` whose
//!    `request` is policy-evaluator's typed `AdmissionRequest` (`object` a `RawExtension`, user
//!    info a k8s-openapi `UserInfo`): policy-server `src/api/handlers.rs` `validate_handler`
//!    (axum's `Json` extractor), `src/api/admission_review.rs`; policy-evaluator
//!    `src/admission_request.rs`.
//! 2. `clones`: policy-server clones the request for the evaluation
//!    (`src/evaluation/evaluation_environment.rs` `validate_policy`: `evaluator.validate(req.clone(),
//!    ...)`, with the settings cloned by `get_policy_settings`) and three more times for its
//!    metrics (`src/api/service.rs` `evaluate`: `adm_req.clone()` for namespace, kind and
//!    operation).
//! 3. `payload`: policy-evaluator `src/runtimes/wapc/runtime.rs` `validate`:
//!    `serde_json::to_value(request)`, then `json!({"request": request, "settings": settings})`
//!    and `serde_json::to_string`.
//! 4. `validate_call`: a fresh instance (`rehydrate`, policy-server
//!    `evaluation_environment.rs`) running `validate`. policy-server builds its engine from
//!    `wasmtime::Config::new()` (`src/lib.rs`): wasmtime's default on-demand instance allocator,
//!    so this stage uses on-demand instances, not `kwrun`'s pool.
//! 5. `answer`: `serde_json::from_slice` into the SDK's `ValidationResponse` (runtime.rs).
//! 6. `patch_diff` and `patch_encode`: policy-evaluator `src/admission_response.rs`
//!    `from_policy_validation_response`: `mutated_object.clone()` and `json_patch::diff(req_obj,
//!    &mut_obj)` (json-patch 4, index by index in arrays), then `serde_json::to_string` of the
//!    patch and base64 (`general_purpose::STANDARD`).
//! 7. `response`: the `AdmissionReviewResponse` serialised as the HTTP answer (axum's `Json`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kubewarden_policy_sdk::response::ValidationResponse;
use kwrun::admission::{AdmissionResponse, ResponseStatus};
use kwrun::bench::{BenchReport, summarize};
use kwrun::evaluator::{InstanceAllocator, Policy};
use kwrun::host::HostCapabilities;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{BenchError, load_policy, read_json, read_settings};

/// The steps, in the order they run (see the module's documentation).
pub const STEPS: [&str; 8] = [
    "parse",
    "clones",
    "payload",
    "validate_call",
    "answer",
    "patch_diff",
    "patch_encode",
    "response",
];

/// Group, version and kind, as policy-evaluator types them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// Group, version and resource, as policy-evaluator types them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource.
    pub resource: String,
}

/// An `admission/v1` AdmissionRequest with the fields and types policy-evaluator reads it into.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// The request's identifier, copied into the response.
    pub uid: String,
    /// The object's kind.
    pub kind: GroupVersionKind,
    /// The resource asked for.
    pub resource: GroupVersionResource,
    /// Sub-resource, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// Kind of the original request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// Resource of the original request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// Sub-resource of the original request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// Who asks.
    pub user_info: UserInfo,
    /// The object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<RawExtension>,
    /// The object before an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_object: Option<RawExtension>,
    /// Whether nothing is persisted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<RawExtension>,
}

/// The HTTP body the API server sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewRequest {
    /// `AdmissionReview`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `admission.k8s.io/v1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The request.
    pub request: AdmissionRequest,
}

/// The HTTP body policy-server answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewResponse {
    /// `AdmissionReview`.
    pub kind: String,
    /// `admission.k8s.io/v1`.
    pub api_version: String,
    /// The response: kwrun's AdmissionResponse, which has policy-evaluator's shape (`auditAnnotations`
    /// and `warnings` written as `null` when absent, as policy-server answers them).
    pub response: AdmissionResponse,
}

/// What one request costs on the real path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealPathReport {
    /// The whole path, every step summed, per sample.
    #[serde(flatten)]
    pub whole: BenchReport,
    /// Median of each step, in microseconds.
    pub steps_p50_us: BTreeMap<&'static str, f64>,
    /// Median of a fresh on-demand instance answering `protocol_version` (instantiation, the
    /// call, the drop), timed apart on every sample: the part of `validate_call` that is not
    /// the policy's work.
    pub instance_p50_us: f64,
    /// The verdict.
    pub allowed: bool,
    /// Operations in the JSON patch (0 without one).
    pub patch_operations: usize,
    /// Bytes of the JSON patch before base64 (0 without one).
    pub patch_bytes: usize,
    /// Bytes of the `mutated_object` the policy answered (0 without one).
    pub mutated_object_bytes: usize,
    /// Bytes of the AdmissionReview answered.
    pub response_bytes: usize,
}

/// The request as the API server sends it: an AdmissionReview body, whether the file holds an
/// AdmissionReview or a bare AdmissionRequest.
pub fn review_body(path: &Path) -> Result<Vec<u8>, BenchError> {
    let value = read_json(path)?;
    let review = if value.get("request").is_some() {
        value
    } else {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": value})
    };
    Ok(review.to_string().into_bytes())
}

/// One request through every step, each step's time in `times` (in [`STEPS`] order).
struct Evaluation<'a> {
    policy: &'a Policy,
    host: &'a Arc<HostCapabilities>,
    settings: &'a Value,
    body: &'a [u8],
}

/// What a request's evaluation produced, for the report.
struct Outcome {
    allowed: bool,
    patch_operations: usize,
    patch_bytes: usize,
    mutated_object_bytes: usize,
    response_bytes: usize,
}

impl Evaluation<'_> {
    fn run(&self, times: &mut [Duration; STEPS.len()]) -> Result<Outcome, BenchError> {
        let evaluation_error =
            |what: &str, e: &dyn std::fmt::Display| BenchError::Evaluation(format!("{what}: {e}"));
        let mut clock = Instant::now();
        let mut lap = |times: &mut [Duration; STEPS.len()], step: usize| {
            let now = Instant::now();
            times[step] = now - clock;
            clock = now;
        };

        let review: AdmissionReviewRequest = serde_json::from_slice(self.body)
            .map_err(|e| evaluation_error("the AdmissionReview", &e))?;
        lap(times, 0);

        let request = review.request.clone();
        let settings = self.settings.clone();
        let metric_fields = (
            review.request.clone().namespace,
            review.request.clone().request_kind.unwrap_or_default().kind,
            review.request.clone().operation,
        );
        std::hint::black_box(&metric_fields);
        lap(times, 1);

        let request_value = serde_json::to_value(&request)
            .map_err(|e| evaluation_error("the request as a value", &e))?;
        let request_object = request_value.get("object");
        let payload = serde_json::to_string(&json!({"request": request, "settings": settings}))
            .map_err(|e| evaluation_error("the validate payload", &e))?;
        lap(times, 2);

        let answer_bytes = self
            .policy
            .call(self.host, "validate", payload.as_bytes())?;
        lap(times, 3);

        let answer: ValidationResponse = serde_json::from_slice(&answer_bytes)
            .map_err(|e| evaluation_error("the policy's ValidationResponse", &e))?;
        lap(times, 4);

        let diff = match (answer.mutated_object.clone(), request_object) {
            (Some(mutated), Some(object)) => json_patch::diff(object, &mutated),
            _ => json_patch::Patch::default(),
        };
        lap(times, 5);

        let patch_operations = diff.0.len();
        let mut patch_bytes = 0;
        let patch = if diff.0.is_empty() {
            None
        } else {
            let text =
                serde_json::to_string(&diff).map_err(|e| evaluation_error("the JSON patch", &e))?;
            patch_bytes = text.len();
            Some(general_purpose::STANDARD.encode(text))
        };
        lap(times, 6);

        let status = (answer.message.is_some() || answer.code.is_some()).then(|| ResponseStatus {
            message: answer.message.clone(),
            code: answer.code,
        });
        let response = AdmissionReviewResponse {
            kind: "AdmissionReview".into(),
            api_version: "admission.k8s.io/v1".into(),
            response: AdmissionResponse {
                uid: request.uid,
                allowed: answer.accepted,
                patch_type: patch.as_ref().map(|_| "JSONPatch".to_string()),
                patch,
                status,
                audit_annotations: answer
                    .audit_annotations
                    .clone()
                    .map(|annotations| annotations.into_iter().collect()),
                warnings: answer.warnings.clone(),
            },
        };
        let body = serde_json::to_vec(&response)
            .map_err(|e| evaluation_error("the AdmissionReview response", &e))?;
        lap(times, 7);

        Ok(Outcome {
            allowed: answer.accepted,
            patch_operations,
            patch_bytes,
            mutated_object_bytes: answer
                .mutated_object
                .as_ref()
                .map(|o| o.to_string().len())
                .unwrap_or_default(),
            response_bytes: body.len(),
        })
    }
}

/// Loads the module with on-demand instances (policy-server's wasmtime configuration) and runs
/// `warm_up` then `samples` requests through every step.
pub fn measure(
    module: &Path,
    request_path: &Path,
    settings_path: Option<&Path>,
    session: Option<&Path>,
    warm_up: usize,
    samples: usize,
) -> Result<RealPathReport, BenchError> {
    let body = review_body(request_path)?;
    let settings = read_settings(settings_path)?;
    let (policy, host) = load_policy(module, InstanceAllocator::OnDemand, session)?;
    let evaluation = Evaluation {
        policy: &policy,
        host: &host,
        settings: &settings,
        body: &body,
    };

    let mut steps: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); STEPS.len()];
    let mut wholes = Vec::with_capacity(samples);
    let mut instances = Vec::with_capacity(samples);
    let mut outcome = None;
    for sample in 0..warm_up + samples {
        host.rewind_replay();
        let instance_start = Instant::now();
        policy.call(&host, "protocol_version", &[])?;
        let instance = instance_start.elapsed();
        let mut times = [Duration::ZERO; STEPS.len()];
        let this = evaluation.run(&mut times)?;
        if sample >= warm_up {
            for (step, took) in steps.iter_mut().zip(times) {
                step.push(took);
            }
            wholes.push(times.iter().sum());
            instances.push(instance);
        }
        outcome.get_or_insert(this);
    }
    // Throughput over the measured steps only: the instance timed apart is left out.
    let elapsed: Duration = wholes.iter().sum();
    let outcome = outcome.ok_or_else(|| BenchError::Evaluation("no sample was taken".into()))?;
    let steps_p50_us = STEPS
        .iter()
        .zip(steps.iter_mut())
        .map(|(name, times)| (*name, summarize(times, Duration::ZERO).p50_us))
        .collect();
    Ok(RealPathReport {
        whole: summarize(&mut wholes, elapsed),
        steps_p50_us,
        instance_p50_us: summarize(&mut instances, Duration::ZERO).p50_us,
        allowed: outcome.allowed,
        patch_operations: outcome.patch_operations,
        patch_bytes: outcome.patch_bytes,
        mutated_object_bytes: outcome.mutated_object_bytes,
        response_bytes: outcome.response_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn a_bare_request_is_sent_as_an_admission_review() {
        let body = review_body(&fixture("plain-pod.json")).unwrap();
        let review: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(
            review["request"]["uid"],
            "5a3c1f7e-0b6d-4b1e-9d51-7b0c2f9a1002"
        );
    }

    #[test]
    fn the_answer_is_written_as_policy_server_writes_it() {
        // policy-server 4eb6565 (src/api/admission_review.rs AdmissionReviewResponse, with
        // policy-evaluator's AdmissionResponse), run by hand beside the project, answered the
        // plain Pod with exactly this body.
        let answer = AdmissionReviewResponse {
            kind: "AdmissionReview".into(),
            api_version: "admission.k8s.io/v1".into(),
            response: AdmissionResponse {
                uid: "5a3c1f7e-0b6d-4b1e-9d51-7b0c2f9a1002".into(),
                allowed: true,
                ..AdmissionResponse::default()
            },
        };
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"5a3c1f7e-0b6d-4b1e-9d51-7b0c2f9a1002","allowed":true,"auditAnnotations":null,"warnings":null}}"#
        );
    }

    #[test]
    fn every_request_of_the_stage_fits_policy_evaluators_types() {
        // A fixture policy-server could not parse would measure an error path, not a request.
        let breakfast = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../e2e/fixtures/requests/breakfast-job.json");
        for path in [
            fixture("plain-pod.json"),
            fixture("annotated-pod.json"),
            breakfast,
        ] {
            let body = review_body(&path).unwrap();
            let review: AdmissionReviewRequest =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(review.request.operation, "CREATE");
            assert!(review.request.object.is_some());
        }
    }
}
