//! The host side of `__host_call`: Kubewarden's routing of host-capability calls.
//!
//! As in policy-evaluator (kubewarden-controller monorepo,
//! `crates/policy-evaluator/src/runtimes/callback.rs`), the binding must be `kubewarden`;
//! `tracing/log` is always served; every other call must match the host-capability allow-list,
//! Kubernetes reads must also name a resource the policy was granted (`--allow-context-aware`
//! grants the module's `contextAwareResources`), and the answer then comes from the replayed
//! session. kwrun has no cluster and no live OCI client for capabilities, so anything not
//! replayed is an error, never a made-up answer.
//!
//! Errors reach the guest as policy-evaluator words them: refusals (unknown binding, namespace
//! or operation, a capability or resource not granted, a malformed payload) as they are, and a
//! failure of the answer itself (a recorded `Error`, a replay mismatch, no backend) behind
//! [`CALLBACK_FAILURE`], which `send_request_and_wait_for_response` in that file prepends to
//! every error of its callback handler. The waPC guest then sees `Host error: <that text>`.

use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;

use crate::metadata::ContextAwareResource;
use crate::session::{CallbackRequest, Recorder, Replay, SubjectAccessReview};

/// What policy-evaluator puts before the error of a host call that was dispatched and failed.
pub const CALLBACK_FAILURE: &str = "Callback evaluation failure: ";

/// Kubernetes read requests as the SDK sends them (snake_case JSON).
#[derive(Debug, Deserialize)]
struct KubernetesRead {
    api_version: String,
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    label_selector: Option<String>,
    #[serde(default)]
    field_selector: Option<String>,
    #[serde(default)]
    field_masks: Option<std::collections::BTreeSet<String>>,
    #[serde(default)]
    disable_cache: bool,
}

/// `kubernetes/can_i`'s payload (the SDK's `CanIRequest`).
#[derive(Debug, Deserialize)]
struct CanI {
    subject_access_review: SubjectAccessReview,
    #[serde(default)]
    disable_cache: bool,
}

/// A log record from the guest's `tracing/log` call.
#[derive(Debug, Deserialize)]
struct LogRecord {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
}

/// Everything the host answers calls with.
#[derive(Debug)]
pub struct HostCapabilities {
    allowed_capabilities: Vec<String>,
    context_aware_resources: Vec<ContextAwareResource>,
    replay: Option<Mutex<Replay>>,
    recorder: Option<Mutex<Recorder>>,
    print_logs: bool,
}

impl Default for HostCapabilities {
    fn default() -> Self {
        HostCapabilities {
            allowed_capabilities: vec!["*".to_owned()],
            context_aware_resources: Vec::new(),
            replay: None,
            recorder: None,
            print_logs: true,
        }
    }
}

impl HostCapabilities {
    /// Grants Kubernetes reads of these resources (empty: none, as kwctl without
    /// `--allow-context-aware`).
    pub fn with_context_aware_resources(mut self, resources: Vec<ContextAwareResource>) -> Self {
        self.context_aware_resources = resources;
        self
    }

    /// Restricts host capabilities to these paths (`*`, `oci/*`, `oci/v1/*`, `kubernetes/get_resource`).
    pub fn with_allowed_capabilities(mut self, patterns: Vec<String>) -> Self {
        self.allowed_capabilities = patterns;
        self
    }

    /// Answers from a recorded session.
    pub fn with_replay(mut self, replay: Replay) -> Self {
        self.replay = Some(Mutex::new(replay));
        self
    }

    /// Records every exchange (write them with [`HostCapabilities::recorded_session`]).
    pub fn with_recording(mut self) -> Self {
        self.recorder = Some(Mutex::new(Recorder::default()));
        self
    }

    /// Whether guest log records are printed on stderr.
    pub fn with_logs(mut self, print: bool) -> Self {
        self.print_logs = print;
        self
    }

    /// The recorder, when recording.
    pub fn recorded_session(&self) -> Option<std::sync::MutexGuard<'_, Recorder>> {
        self.recorder
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Exchanges of the replayed session that no call asked for.
    pub fn replay_leftovers(&self) -> usize {
        self.replay.as_ref().map_or(0, |r| {
            r.lock().unwrap_or_else(|p| p.into_inner()).leftovers()
        })
    }

    /// Starts the replayed session over (for repeated evaluations of one request).
    pub fn rewind_replay(&self) {
        if let Some(replay) = &self.replay {
            replay.lock().unwrap_or_else(|p| p.into_inner()).rewind();
        }
    }

    /// The waPC host callback.
    pub fn call(
        &self,
        binding: &str,
        namespace: &str,
        operation: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        if binding != "kubewarden" {
            return Err(format!("unknown binding: {binding}"));
        }
        if namespace == "tracing" {
            return match operation {
                "log" => {
                    self.log(payload);
                    Ok(Vec::new())
                }
                _ => Err(format!("unknown operation: {operation}")),
            };
        }
        // The allow-list is checked before the payload is read, as policy-evaluator does.
        let path = format!("{namespace}/{operation}");
        if !self.capability_allowed(&path) {
            return Err(format!(
                "Policy has not been granted access to the '{path}' host capability. The violation has been reported."
            ));
        }
        let request = parse_request(namespace, operation, payload)?;
        if let Some((api_version, kind)) = kubernetes_resource(&request)
            && !self
                .context_aware_resources
                .iter()
                .any(|r| r.api_version == api_version && r.kind == kind)
        {
            return Err(format!(
                "Policy has not been granted access to Kubernetes {api_version}/{kind} resources. The violation has been reported."
            ));
        }
        self.answer(&request)
    }

    /// Answers a request that passed the checks, as policy-evaluator's callback handler would:
    /// from the replayed session (kwrun has no live backend), recorded when recording, and a
    /// failure worded as the guest receives it (`Callback evaluation failure: <error>`).
    pub fn answer(&self, request: &CallbackRequest) -> Result<Vec<u8>, String> {
        let answer = match &self.replay {
            Some(replay) => replay
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .answer(request),
            None => {
                let yaml = request.to_session_yaml();
                let tag = yaml.lines().next().unwrap_or_default();
                Err(format!(
                    "kwrun has no live backend for host capability calls ({tag}): record the interaction with kwctl and pass it with --replay-host-capabilities-interactions"
                ))
            }
        };
        // Sessions hold the handler's own error, as kwctl records it; the guest gets it wrapped.
        if let Some(recorder) = &self.recorder {
            recorder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(request, &answer);
        }
        answer.map_err(|error| format!("{CALLBACK_FAILURE}{error}"))
    }

    fn capability_allowed(&self, path: &str) -> bool {
        self.allowed_capabilities.iter().any(|pattern| {
            pattern == "*"
                || pattern == path
                || pattern
                    .strip_suffix('*')
                    .is_some_and(|prefix| prefix.ends_with('/') && path.starts_with(prefix))
        })
    }

    fn log(&self, payload: &[u8]) {
        if !self.print_logs {
            return;
        }
        match serde_json::from_slice::<LogRecord>(payload) {
            Ok(record) => eprintln!("policy log [{}] {}", record.level, record.message),
            Err(_) => eprintln!("policy log {}", String::from_utf8_lossy(payload)),
        }
    }
}

/// Maps a waPC call to the request kwctl records for it.
pub fn parse_request(
    namespace: &str,
    operation: &str,
    payload: &[u8],
) -> Result<CallbackRequest, String> {
    let string = || -> Result<String, String> {
        serde_json::from_slice(payload)
            .map_err(|e| format!("{namespace}/{operation}: the payload must be a JSON string: {e}"))
    };
    let kubernetes = || -> Result<KubernetesRead, String> {
        serde_json::from_slice(payload)
            .map_err(|e| format!("{namespace}/{operation}: malformed request: {e}"))
    };
    match (namespace, operation) {
        ("oci", "v1/manifest_digest") => {
            Ok(CallbackRequest::OciManifestDigest { image: string()? })
        }
        ("oci", "v1/oci_manifest") => Ok(CallbackRequest::OciManifest { image: string()? }),
        ("oci", "v1/oci_manifest_config") => {
            Ok(CallbackRequest::OciManifestAndConfig { image: string()? })
        }
        ("oci", "v1/verify") => {
            // The SDK's `SigstoreVerificationInputV1` is externally tagged with the variant
            // names of the session's requests, so it reads as one directly.
            let request: CallbackRequest = serde_json::from_slice(payload)
                .map_err(|e| format!("{namespace}/{operation}: malformed request: {e}"))?;
            match request {
                CallbackRequest::SigstorePubKeyVerify { .. }
                | CallbackRequest::SigstoreKeylessVerify { .. } => Ok(request),
                _ => Err(format!(
                    "{namespace}/{operation}: malformed request: not a SigstorePubKeyVerify or SigstoreKeylessVerify"
                )),
            }
        }
        ("oci", "v2/verify") => {
            // `SigstoreVerificationInputV2` is the same variants, tagged by a `type` field.
            let malformed = |e: &dyn std::fmt::Display| {
                format!("{namespace}/{operation}: malformed request: {e}")
            };
            let mut fields: serde_json::Map<String, Value> =
                serde_json::from_slice(payload).map_err(|e| malformed(&e))?;
            let variant = match fields.remove("type") {
                Some(Value::String(variant)) => variant,
                _ => return Err(malformed(&"missing field `type`")),
            };
            let mut tagged = serde_json::Map::new();
            tagged.insert(variant, Value::Object(fields));
            let request: CallbackRequest =
                serde_json::from_value(Value::Object(tagged)).map_err(|e| malformed(&e))?;
            match request {
                CallbackRequest::SigstorePubKeyVerify { .. }
                | CallbackRequest::SigstoreKeylessVerify { .. }
                | CallbackRequest::SigstoreKeylessPrefixVerify { .. }
                | CallbackRequest::SigstoreGithubActionsVerify { .. }
                | CallbackRequest::SigstoreCertificateVerify { .. } => Ok(request),
                _ => Err(malformed(&"not a Sigstore verification")),
            }
        }
        ("crypto", "v1/is_certificate_trusted") => serde_json::from_slice(payload)
            .map(|request| CallbackRequest::CryptoIsCertificateTrusted { request })
            .map_err(|e| format!("{namespace}/{operation}: malformed request: {e}")),
        ("net", "v1/dns_lookup_host") => Ok(CallbackRequest::DnsLookupHost { host: string()? }),
        ("kubernetes", "get_resource") => {
            let read = kubernetes()?;
            Ok(CallbackRequest::KubernetesGetResource {
                api_version: read.api_version,
                kind: read.kind,
                name: read
                    .name
                    .ok_or_else(|| "kubernetes/get_resource: missing field `name`".to_owned())?,
                namespace: read.namespace,
                disable_cache: read.disable_cache,
                field_masks: read.field_masks,
            })
        }
        ("kubernetes", "list_resources_by_namespace") => {
            let read = kubernetes()?;
            Ok(CallbackRequest::KubernetesListResourceNamespace {
                api_version: read.api_version,
                kind: read.kind,
                namespace: read.namespace.ok_or_else(|| {
                    "kubernetes/list_resources_by_namespace: missing field `namespace`".to_owned()
                })?,
                label_selector: read.label_selector,
                field_selector: read.field_selector,
                field_masks: read.field_masks,
            })
        }
        ("kubernetes", "list_resources_all") => {
            let read = kubernetes()?;
            Ok(CallbackRequest::KubernetesListResourceAll {
                api_version: read.api_version,
                kind: read.kind,
                label_selector: read.label_selector,
                field_selector: read.field_selector,
                field_masks: read.field_masks,
            })
        }
        ("kubernetes", "can_i") => {
            // The SDK's `CanIRequest`; the session holds its SubjectAccessReview alone.
            let request: CanI = serde_json::from_slice(payload)
                .map_err(|e| format!("kubernetes/can_i: malformed request: {e}"))?;
            Ok(CallbackRequest::KubernetesCanI {
                request: request.subject_access_review,
                disable_cache: request.disable_cache,
            })
        }
        ("oci" | "net" | "crypto" | "kubernetes", _) => {
            Err(format!("unknown operation: {operation}"))
        }
        _ => Err(format!("unknown namespace: {namespace}")),
    }
}

/// The `(apiVersion, kind)` a Kubernetes read targets; `can_i` is not gated by the resource list.
fn kubernetes_resource(request: &CallbackRequest) -> Option<(&str, &str)> {
    match request {
        CallbackRequest::KubernetesGetResource {
            api_version, kind, ..
        }
        | CallbackRequest::KubernetesListResourceNamespace {
            api_version, kind, ..
        }
        | CallbackRequest::KubernetesListResourceAll {
            api_version, kind, ..
        } => Some((api_version, kind)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::session_yaml;
    use serde_json::json;

    fn oras_cache() -> ContextAwareResource {
        ContextAwareResource {
            api_version: "cache.converged-computing.github.io/v1alpha1".into(),
            kind: "OrasCache".into(),
        }
    }

    fn get_cache_payload() -> Vec<u8> {
        json!({"api_version": "cache.converged-computing.github.io/v1alpha1", "kind": "OrasCache", "name": "c", "namespace": "ns", "disable_cache": false})
            .to_string()
            .into_bytes()
    }

    fn get_cache_request() -> CallbackRequest {
        parse_request("kubernetes", "get_resource", &get_cache_payload()).unwrap()
    }

    #[test]
    fn only_the_kubewarden_binding_is_served() {
        let host = HostCapabilities::default();
        assert_eq!(
            host.call("other", "tracing", "log", b"{}").unwrap_err(),
            "unknown binding: other"
        );
        assert_eq!(
            host.with_logs(false)
                .call("kubewarden", "tracing", "log", b"{}")
                .unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn a_kubernetes_read_of_a_resource_not_granted_is_refused() {
        let host = HostCapabilities::default();
        let err = host
            .call(
                "kubewarden",
                "kubernetes",
                "get_resource",
                &get_cache_payload(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            "Policy has not been granted access to Kubernetes cache.converged-computing.github.io/v1alpha1/OrasCache resources. The violation has been reported."
        );
    }

    #[test]
    fn a_granted_read_is_answered_from_the_session_and_never_without_one() {
        let without = HostCapabilities::default().with_context_aware_resources(vec![oras_cache()]);
        let err = without
            .call(
                "kubewarden",
                "kubernetes",
                "get_resource",
                &get_cache_payload(),
            )
            .unwrap_err();
        assert!(
            err.contains("--replay-host-capabilities-interactions"),
            "{err}"
        );

        let yaml = session_yaml(&[(
            get_cache_request(),
            Ok(json!({"status": {"address": "r:5000"}})),
        )]);
        let host = HostCapabilities::default()
            .with_context_aware_resources(vec![oras_cache()])
            .with_replay(Replay::from_yaml(&yaml, "t").unwrap())
            .with_recording();
        let answer = host
            .call(
                "kubewarden",
                "kubernetes",
                "get_resource",
                &get_cache_payload(),
            )
            .unwrap();
        assert_eq!(answer, br#"{"status":{"address":"r:5000"}}"#);
        assert_eq!(host.replay_leftovers(), 0);
        let recorded = host.recorded_session().unwrap().to_yaml();
        assert!(recorded.contains("!KubernetesGetResource"), "{recorded}");
    }

    #[test]
    fn failed_answers_reach_the_guest_as_policy_evaluator_words_them_and_refusals_do_not() {
        // policy-evaluator, crates/policy-evaluator/src/runtimes/callback.rs,
        // send_request_and_wait_for_response: `Callback evaluation failure: {e:?}`.
        let yaml = session_yaml(&[(
            get_cache_request(),
            Err("orascaches \"c\" not found".into()),
        )]);
        let replayed = HostCapabilities::default()
            .with_context_aware_resources(vec![oras_cache()])
            .with_replay(Replay::from_yaml(&yaml, "t").unwrap())
            .with_recording();
        let call = |host: &HostCapabilities| {
            host.call(
                "kubewarden",
                "kubernetes",
                "get_resource",
                &get_cache_payload(),
            )
            .unwrap_err()
        };
        assert_eq!(
            call(&replayed),
            "Callback evaluation failure: orascaches \"c\" not found"
        );
        // The session keeps the handler's own words, as kwctl records them.
        let recorded = replayed.recorded_session().unwrap().to_yaml();
        assert!(recorded.contains("message: orascaches"), "{recorded}");
        assert!(!recorded.contains(CALLBACK_FAILURE), "{recorded}");
        // Past the end of the session and with no session at all: the same wrapping.
        assert_eq!(
            call(&replayed),
            "Callback evaluation failure: the list of recorded responses is empty"
        );
        let live = HostCapabilities::default().with_context_aware_resources(vec![oras_cache()]);
        assert!(call(&live).starts_with(CALLBACK_FAILURE), "{}", call(&live));
        // Refused before any answer is looked for: not wrapped.
        let refused = call(&HostCapabilities::default());
        assert!(
            refused.starts_with("Policy has not been granted access"),
            "{refused}"
        );
    }

    #[test]
    fn the_capability_allow_list_takes_exact_paths_and_prefix_patterns() {
        let yaml = session_yaml(&[(
            CallbackRequest::OciManifestDigest { image: "i".into() },
            Ok(json!({"digest": "d"})),
        )]);
        let host = HostCapabilities::default()
            .with_allowed_capabilities(vec!["oci/v1/*".into()])
            .with_replay(Replay::from_yaml(&yaml, "t").unwrap());
        assert!(
            host.call("kubewarden", "oci", "v1/manifest_digest", br#""i""#)
                .is_ok()
        );
        let err = host
            .call("kubewarden", "net", "v1/dns_lookup_host", br#""h""#)
            .unwrap_err();
        assert!(
            err.contains("'net/v1/dns_lookup_host' host capability"),
            "{err}"
        );
    }

    #[test]
    fn unknown_namespaces_operations_and_payloads_are_errors() {
        let host = HostCapabilities::default();
        assert_eq!(
            host.call("kubewarden", "nope", "x", b"").unwrap_err(),
            "unknown namespace: nope"
        );
        assert_eq!(
            host.call("kubewarden", "oci", "v9/x", b"").unwrap_err(),
            "unknown operation: v9/x"
        );
        assert!(
            host.call("kubewarden", "oci", "v1/oci_manifest_config", b"{")
                .unwrap_err()
                .contains("JSON string")
        );
    }

    #[test]
    fn oci_manifest_config_maps_to_the_session_tag() {
        let request = parse_request("oci", "v1/oci_manifest_config", br#""busybox:1.36""#).unwrap();
        assert_eq!(
            request,
            CallbackRequest::OciManifestAndConfig {
                image: "busybox:1.36".into()
            }
        );
        assert!(
            request
                .to_session_yaml()
                .starts_with("!OciManifestAndConfig")
        );
    }
}
