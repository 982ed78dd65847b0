//! The admission side of an evaluation: what goes into `validate` and how the policy's answer
//! becomes the `AdmissionResponse` kwctl and policy-server print.
//!
//! The conversion follows policy-evaluator: the patch is the RFC 6902 diff between the request's
//! object and the policy's `mutated_object`, base64 (standard) encoded, and `patchType` is only set
//! when that diff is not empty. `auditAnnotations` and `warnings` are always written (`null` when
//! absent) because that is the shape `kwctl run` prints and tests match on.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the guest's `validate` returns (`kubewarden_policy_sdk::response::ValidationResponse`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ValidationResponse {
    /// Whether the request is admitted.
    pub accepted: bool,
    /// Rejection (or informational) message.
    #[serde(default)]
    pub message: Option<String>,
    /// HTTP-like status code of a rejection.
    #[serde(default)]
    pub code: Option<u16>,
    /// The whole object as the policy wants it, when it mutates.
    #[serde(default)]
    pub mutated_object: Option<Value>,
    /// Annotations for the API server's audit log.
    #[serde(default)]
    pub audit_annotations: Option<BTreeMap<String, String>>,
    /// Warnings shown to the client.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

/// The `status` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResponseStatus {
    /// Human-readable reason of the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// HTTP-like code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

/// `admission.k8s.io/v1` AdmissionResponse, in the field order and shape kwctl prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// Copied from the request.
    pub uid: String,
    /// The verdict.
    pub allowed: bool,
    /// `"JSONPatch"` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of the RFC 6902 patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Why, when the policy said something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Passed through from the policy; `null` when none.
    pub audit_annotations: Option<BTreeMap<String, String>>,
    /// Passed through from the policy; `null` when none.
    pub warnings: Option<Vec<String>>,
}

/// The message policy-evaluator gives a policy that mutates on DELETE.
pub const DELETE_MUTATION_MESSAGE: &str = "Incoming object is null, which happens only with DELETE operations, but the policy is attempting a mutation. This is not allowed";

/// The id `kwctl run` gives the policy it evaluates, which appears in mutation rejections.
pub const CLI_POLICY_ID: &str = "policy-from-cli";

/// Errors of the request file and of the guest's answer.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The request file is not JSON.
    #[error("the request is not valid JSON: {0}")]
    RequestJson(#[source] serde_json::Error),
    /// Neither an AdmissionRequest nor an AdmissionReview.
    #[error(
        "the request must be a JSON object: an AdmissionRequest (with `uid`, `kind`, `operation`, `object`) or an AdmissionReview with a `request` field"
    )]
    RequestShape,
    /// The patch could not be serialized (never expected for JSON values).
    #[error("cannot serialize the JSON patch: {0}")]
    Patch(#[source] serde_json::Error),
}

/// An AdmissionRequest as read from `--request-path`, kept as raw JSON so that every field the
/// file holds reaches the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionRequest(Value);

impl AdmissionRequest {
    /// Parses a request file: a bare AdmissionRequest or an AdmissionReview (whose `request` is
    /// used), like `kwctl run --request-path`.
    pub fn from_json(text: &str) -> Result<Self, AdmissionError> {
        let value: Value = serde_json::from_str(text).map_err(AdmissionError::RequestJson)?;
        Self::from_value(value)
    }

    /// As [`AdmissionRequest::from_json`], from a parsed value.
    pub fn from_value(value: Value) -> Result<Self, AdmissionError> {
        let Value::Object(map) = value else {
            return Err(AdmissionError::RequestShape);
        };
        let is_review = map.get("kind").and_then(Value::as_str) == Some("AdmissionReview")
            || (map.contains_key("request") && !map.contains_key("uid"));
        if is_review {
            match map.get("request") {
                Some(request @ Value::Object(_)) => Ok(Self(request.clone())),
                _ => Err(AdmissionError::RequestShape),
            }
        } else {
            Ok(Self(Value::Object(map)))
        }
    }

    /// The request's `uid` (empty when absent, as policy-evaluator's default).
    pub fn uid(&self) -> String {
        self.0
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// The incoming object; `None` when absent or null (DELETE).
    pub fn object(&self) -> Option<&Value> {
        self.0.get("object").filter(|object| !object.is_null())
    }

    /// The raw request JSON.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The payload of the guest's `validate`: `{"request": .., "settings": ..}`, as JSON text.
    pub fn validate_payload(&self, settings: &Value) -> String {
        #[derive(serde::Serialize)]
        struct Payload<'a> {
            request: &'a Value,
            settings: &'a Value,
        }
        // Serialized from borrows: the request is not copied on every evaluation. A Value always
        // serializes, so the fallback is never taken.
        serde_json::to_string(&Payload {
            request: &self.0,
            settings,
        })
        .unwrap_or_default()
    }
}

impl AdmissionResponse {
    /// A rejection with a message and a code.
    pub fn reject(uid: String, message: String, code: u16) -> Self {
        AdmissionResponse {
            uid,
            allowed: false,
            status: Some(ResponseStatus {
                message: Some(message),
                code: Some(code),
            }),
            ..Default::default()
        }
    }

    /// What a guest error, a trap or an unreadable answer becomes: a 500 rejection.
    pub fn internal_server_error(uid: String, error: impl std::fmt::Display) -> Self {
        Self::reject(uid, format!("internal server error: {error}"), 500)
    }

    /// Builds the response from the policy's answer, as policy-evaluator does.
    pub fn from_validation(
        uid: String,
        object: Option<&Value>,
        response: &ValidationResponse,
    ) -> Result<Self, AdmissionError> {
        if response.mutated_object.is_some() && object.is_none() {
            return Ok(AdmissionResponse {
                uid,
                allowed: false,
                status: Some(ResponseStatus {
                    message: Some(DELETE_MUTATION_MESSAGE.to_owned()),
                    code: None,
                }),
                ..Default::default()
            });
        }
        let patch = match (object, &response.mutated_object) {
            (Some(object), Some(mutated)) => crate::patch::diff(object, mutated)
                .map_err(AdmissionError::Patch)?
                .map(|json| STANDARD.encode(json)),
            _ => None,
        };
        let status =
            (response.message.is_some() || response.code.is_some()).then(|| ResponseStatus {
                message: response.message.clone(),
                code: response.code,
            });
        Ok(AdmissionResponse {
            uid,
            allowed: response.accepted,
            patch_type: patch.as_ref().map(|_| "JSONPatch".to_owned()),
            patch,
            status,
            audit_annotations: response.audit_annotations.clone(),
            warnings: response.warnings.clone(),
        })
    }

    /// Applies the policy's deployment settings, as policy-server's response handler does: monitor
    /// mode admits everything without a patch; a policy not allowed to mutate that returns a patch
    /// is rejected.
    pub fn apply_policy_mode(
        self,
        mode: PolicyMode,
        allowed_to_mutate: bool,
        policy_id: &str,
    ) -> Self {
        match mode {
            PolicyMode::Monitor => AdmissionResponse {
                allowed: true,
                patch_type: None,
                patch: None,
                status: None,
                ..self
            },
            PolicyMode::Protect if !allowed_to_mutate && self.patch.is_some() => {
                AdmissionResponse {
                    allowed: false,
                    patch_type: None,
                    patch: None,
                    status: Some(ResponseStatus {
                        message: Some(format!(
                            "Request rejected by policy {policy_id}. The policy attempted to mutate the request, but it is currently configured to not allow mutations."
                        )),
                        code: None,
                    }),
                    ..self
                }
            }
            PolicyMode::Protect => self,
        }
    }

    /// Decodes `patch` back into a JSON patch (for tests and for `--show-mutated-object` style use).
    pub fn decoded_patch(&self) -> Option<Result<json_patch::Patch, String>> {
        let patch = self.patch.as_ref()?;
        Some(
            STANDARD
                .decode(patch)
                .map_err(|e| format!("patch is not base64: {e}"))
                .and_then(|bytes| {
                    serde_json::from_slice(&bytes)
                        .map_err(|e| format!("patch is not a JSON patch: {e}"))
                }),
        )
    }

    /// The object after applying this response's patch to `object` (`object` itself without one).
    pub fn patched_object(&self, object: &Value) -> Result<Value, String> {
        let mut patched = object.clone();
        if let Some(patch) = self.decoded_patch() {
            json_patch::patch(&mut patched, &patch?)
                .map_err(|e| format!("patch does not apply: {e}"))?;
        }
        Ok(patched)
    }
}

/// How the policy is deployed (`ClusterAdmissionPolicy.spec.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PolicyMode {
    /// Verdicts and patches are enforced.
    #[default]
    Protect,
    /// Everything is admitted untouched; verdicts are only reported.
    Monitor,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    }

    #[test]
    fn a_bare_request_and_a_review_give_the_same_request() {
        let bare = json!({"uid": "u1", "operation": "CREATE", "object": pod()});
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": bare});
        let from_bare = AdmissionRequest::from_value(bare.clone()).unwrap();
        let from_review = AdmissionRequest::from_value(review).unwrap();
        assert_eq!(from_bare, from_review);
        assert_eq!(from_bare.uid(), "u1");
        assert_eq!(from_bare.object(), Some(&pod()));
    }

    #[test]
    fn a_request_that_is_not_an_object_is_refused_with_the_expected_shape() {
        let err = AdmissionRequest::from_json("[1]").unwrap_err();
        assert!(err.to_string().contains("AdmissionReview"), "{err}");
        assert!(matches!(
            AdmissionRequest::from_json("{"),
            Err(AdmissionError::RequestJson(_))
        ));
        let review_without_request = json!({"kind": "AdmissionReview"});
        assert!(AdmissionRequest::from_value(review_without_request).is_err());
    }

    #[test]
    fn a_delete_request_has_no_object() {
        let request = AdmissionRequest::from_value(
            json!({"uid": "d", "operation": "DELETE", "object": null}),
        )
        .unwrap();
        assert_eq!(request.object(), None);
    }

    #[test]
    fn a_mutation_becomes_a_base64_json_patch_that_rebuilds_the_mutated_object() {
        let mut mutated = pod();
        mutated["metadata"]["annotations"] = json!({"injected": "true"});
        let answer = ValidationResponse {
            accepted: true,
            mutated_object: Some(mutated.clone()),
            ..Default::default()
        };
        let response =
            AdmissionResponse::from_validation("u".into(), Some(&pod()), &answer).unwrap();
        assert!(response.allowed);
        assert_eq!(response.patch_type.as_deref(), Some("JSONPatch"));
        assert_eq!(response.status, None);
        assert_eq!(response.patched_object(&pod()).unwrap(), mutated);
        let patch = response.decoded_patch().unwrap().unwrap();
        assert_eq!(patch, json_patch::diff(&pod(), &mutated));
    }

    #[test]
    fn an_unchanged_mutated_object_gives_no_patch_and_no_patch_type() {
        let answer = ValidationResponse {
            accepted: true,
            mutated_object: Some(pod()),
            ..Default::default()
        };
        let response =
            AdmissionResponse::from_validation("u".into(), Some(&pod()), &answer).unwrap();
        assert_eq!(response.patch, None);
        assert_eq!(response.patch_type, None);
        let printed = serde_json::to_string(&response).unwrap();
        assert_eq!(
            printed,
            r#"{"uid":"u","allowed":true,"auditAnnotations":null,"warnings":null}"#
        );
    }

    #[test]
    fn a_rejection_keeps_message_code_warnings_and_audit_annotations() {
        let answer = ValidationResponse {
            accepted: false,
            message: Some("no".into()),
            code: Some(400),
            warnings: Some(vec!["w".into()]),
            audit_annotations: Some([("k".to_owned(), "v".to_owned())].into()),
            ..Default::default()
        };
        let response =
            AdmissionResponse::from_validation("u".into(), Some(&pod()), &answer).unwrap();
        let printed = serde_json::to_string(&response).unwrap();
        assert_eq!(
            printed,
            r#"{"uid":"u","allowed":false,"status":{"message":"no","code":400},"auditAnnotations":{"k":"v"},"warnings":["w"]}"#
        );
    }

    #[test]
    fn a_mutation_on_delete_is_rejected() {
        let answer = ValidationResponse {
            accepted: true,
            mutated_object: Some(pod()),
            ..Default::default()
        };
        let response = AdmissionResponse::from_validation("u".into(), None, &answer).unwrap();
        assert!(!response.allowed);
        assert_eq!(response.patch, None);
        assert_eq!(
            response.status.unwrap().message.as_deref(),
            Some(DELETE_MUTATION_MESSAGE)
        );
    }

    #[test]
    fn a_policy_not_allowed_to_mutate_is_rejected_only_when_it_patches() {
        let mut mutated = pod();
        mutated["metadata"]["labels"] = json!({"a": "b"});
        let patching = AdmissionResponse::from_validation(
            "u".into(),
            Some(&pod()),
            &ValidationResponse {
                accepted: true,
                mutated_object: Some(mutated),
                ..Default::default()
            },
        )
        .unwrap();
        let rejected =
            patching
                .clone()
                .apply_policy_mode(PolicyMode::Protect, false, CLI_POLICY_ID);
        assert!(!rejected.allowed);
        assert!(rejected.patch.is_none());
        assert!(
            rejected
                .status
                .unwrap()
                .message
                .unwrap()
                .contains("policy-from-cli")
        );
        let kept = patching
            .clone()
            .apply_policy_mode(PolicyMode::Protect, true, CLI_POLICY_ID);
        assert_eq!(kept, patching);
        let plain = AdmissionResponse {
            uid: "u".into(),
            allowed: true,
            ..Default::default()
        };
        assert_eq!(
            plain
                .clone()
                .apply_policy_mode(PolicyMode::Protect, false, CLI_POLICY_ID),
            plain
        );
    }

    #[test]
    fn monitor_mode_admits_without_patch_or_status() {
        let rejection = AdmissionResponse::reject("u".into(), "no".into(), 400);
        let monitored = rejection.apply_policy_mode(PolicyMode::Monitor, true, CLI_POLICY_ID);
        assert!(monitored.allowed);
        assert_eq!(monitored.status, None);
    }

    #[test]
    fn internal_errors_are_500_rejections() {
        let response =
            AdmissionResponse::internal_server_error("u".into(), "Guest call failure: boom");
        let status = response.status.unwrap();
        assert_eq!(status.code, Some(500));
        assert_eq!(
            status.message.as_deref(),
            Some("internal server error: Guest call failure: boom")
        );
    }
}
