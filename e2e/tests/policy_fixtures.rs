//! Every fixture of `e2e/fixtures/requests` through the compiled, annotated policy, evaluated by
//! kwrun's host exactly as `kwrun run` does: the verdict, the message, the warnings, and the
//! object after applying the response's patch, which must equal the policy's `mutated_object`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kwrun::admission::{AdmissionRequest, AdmissionResponse};
use kwrun::cli::load_settings;
use kwrun::evaluator::{EvalOptions, Policy};
use kwrun::host::HostCapabilities;
use kwrun::session::Replay;
use oras_cache_e2e::{annotated_policy, fixtures};
use serde_json::{Value, json};

const AGENT: &str = "/mnt/oras/bin/oras-agent";

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::load(annotated_policy(), EvalOptions::default())
            .expect("the annotated policy loads")
    })
}

/// One evaluation and what it must give.
#[derive(Default)]
struct Case {
    request: &'static str,
    settings: Option<&'static str>,
    allow_context_aware: bool,
    session: Option<&'static str>,
    allowed: bool,
    patched: bool,
    message: Option<&'static str>,
    warnings: &'static [&'static str],
    /// JSON pointers into the patched object and their expected values.
    checks: Vec<(&'static str, Value)>,
}

struct Outcome {
    request: AdmissionRequest,
    response: AdmissionResponse,
    patched: Value,
    leftovers: usize,
}

fn request(name: &str) -> AdmissionRequest {
    let path = fixtures().join("requests").join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    AdmissionRequest::from_json(&text).unwrap()
}

fn host(case: &Case) -> Arc<HostCapabilities> {
    let mut host = HostCapabilities::default().with_logs(false);
    if case.allow_context_aware {
        let declared = policy()
            .metadata()
            .expect("the module is annotated")
            .context_aware_resources
            .clone();
        host = host.with_context_aware_resources(declared);
    }
    if let Some(session) = case.session {
        host = host
            .with_replay(Replay::from_file(&fixtures().join("sessions").join(session)).unwrap());
    }
    Arc::new(host)
}

fn evaluate(case: &Case) -> Outcome {
    let request = request(case.request);
    let settings_path: Option<PathBuf> = case.settings.map(|s| fixtures().join("settings").join(s));
    let settings = load_settings(settings_path.as_deref(), None).unwrap();
    let host = host(case);
    assert!(
        policy().validate_settings(&host, &settings).valid,
        "{}: settings refused",
        case.request
    );
    let (response, answer) = policy().validate_with_answer(&host, &request, &settings);
    let answer = answer
        .unwrap_or_else(|| panic!("{}: the policy did not answer: {response:?}", case.request));
    let original = request.object().cloned().unwrap_or(Value::Null);
    let patched = response.patched_object(&original).unwrap();
    match &answer.mutated_object {
        Some(mutated) => assert_eq!(
            &patched, mutated,
            "{}: the patched object differs from the policy's",
            case.request
        ),
        None => assert_eq!(patched, original),
    }
    Outcome {
        leftovers: host.replay_leftovers(),
        request,
        response,
        patched,
    }
}

fn check(case: &Case) {
    let outcome = evaluate(case);
    let response = &outcome.response;
    let name = case.request;
    assert_eq!(response.uid, outcome.request.uid(), "{name}");
    assert_eq!(response.allowed, case.allowed, "{name}: {response:?}");
    assert_eq!(
        response.patch.is_some(),
        case.patched,
        "{name}: {response:?}"
    );
    assert_eq!(response.patch_type.is_some(), case.patched, "{name}");
    let message = response.status.as_ref().and_then(|s| s.message.clone());
    match case.message {
        Some(expected) => {
            let message = message.unwrap_or_else(|| panic!("{name}: no message in {response:?}"));
            assert!(
                message.contains(expected),
                "{name}: message {message:?} lacks {expected:?}"
            );
        }
        None => assert_eq!(message, None, "{name}"),
    }
    let warnings = response.warnings.clone().unwrap_or_default();
    assert_eq!(
        warnings.len(),
        case.warnings.len(),
        "{name}: warnings {warnings:?}"
    );
    for expected in case.warnings {
        assert!(
            warnings.iter().any(|w| w.contains(expected)),
            "{name}: no warning with {expected:?} in {warnings:?}"
        );
    }
    for (pointer, expected) in &case.checks {
        let found = outcome
            .patched
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{name}: no {pointer} in {:#}", outcome.patched));
        assert_eq!(found, expected, "{name}: {pointer}");
    }
    assert_eq!(
        outcome.leftovers, 0,
        "{name}: the session has exchanges the policy did not ask for"
    );
    if case.patched {
        assert_the_patch_only_adds(case, &outcome);
        assert_second_evaluation_is_a_no_op(case, &outcome);
    }
}

/// The patch policy-server sends for this mutation (policy-evaluator
/// `src/admission_response.rs` `from_policy_validation_response`: `json_patch::diff` of the
/// request's object and the `mutated_object`, arrays compared index by index) adds what the
/// injection brings and rewrites only what it must: the wrapped container's `command` and `args`
/// and the CSI volumes it turns into emptyDirs. Nothing that was there is moved, so no element is
/// rewritten for being shifted, and the patch stays as small as the injection (issue 15).
fn assert_the_patch_only_adds(case: &Case, outcome: &Outcome) {
    let original = outcome.request.object().cloned().unwrap_or(Value::Null);
    let patch = json_patch::diff(&original, &outcome.patched);
    for operation in &patch.0 {
        let (kind, path) = match operation {
            json_patch::PatchOperation::Add(_) => continue,
            json_patch::PatchOperation::Replace(op) => ("replace", op.path.to_string()),
            json_patch::PatchOperation::Remove(op) => ("remove", op.path.to_string()),
            other => panic!("{}: unexpected operation {other:?}", case.request),
        };
        let segments: Vec<&str> = path.split('/').collect();
        let rewrites_a_command = segments.windows(3).any(|w| {
            w[0] == "containers"
                && w[1].parse::<usize>().is_ok()
                && (w[2] == "command" || w[2] == "args")
        });
        let rewrites_a_csi_volume =
            segments
                .iter()
                .position(|s| *s == "volumes")
                .is_some_and(|at| {
                    let volume = segments[..at + 2.min(segments.len() - at)].join("/");
                    original
                        .pointer(&volume)
                        .is_some_and(|v| v.get("csi").is_some())
                });
        assert!(
            rewrites_a_command || rewrites_a_csi_volume,
            "{}: the patch {kind}s {path}, which the injection should leave alone: {}",
            case.request,
            serde_json::to_string(&patch).unwrap_or_default()
        );
    }
}

/// The injected object, created again (a Pod from an injected Job template, a re-applied Pod),
/// gets no second patch and needs no host call.
fn assert_second_evaluation_is_a_no_op(case: &Case, outcome: &Outcome) {
    let mut again = outcome.request.as_value().clone();
    again["object"] = outcome.patched.clone();
    let again = AdmissionRequest::from_value(again).unwrap();
    let host = Arc::new(HostCapabilities::default().with_logs(false));
    let response = policy().validate(&host, &again, &json!({}));
    assert!(
        response.allowed,
        "{}: second evaluation {response:?}",
        case.request
    );
    assert_eq!(
        response.patch, None,
        "{}: second evaluation patched again",
        case.request
    );
}

fn cases() -> Vec<Case> {
    let ready = Some("cache-ready.yml");
    vec![
        Case {
            request: "hello-world-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            warnings: &["oras-entrypoint is ignored", "/entrypoint is ignored"],
            checks: vec![
                (
                    "/metadata/annotations/oras.converged-computing.github.io~1injected",
                    json!("true"),
                ),
                ("/spec/initContainers/0/name", json!("oras-init")),
                ("/spec/containers/0/name", json!("my-container")),
                ("/spec/containers/0/command/0", json!(AGENT)),
                ("/spec/containers/1/name", json!("oras")),
                // Server-populated fields survive the mutation untouched.
                (
                    "/status",
                    json!({"phase": "Pending", "qosClass": "BestEffort"}),
                ),
                (
                    "/metadata/managedFields/0/manager",
                    json!("kubectl-client-side-apply"),
                ),
                (
                    "/metadata/uid",
                    json!("6a3f0f4e-1111-4c1d-9b9e-7d2a8c7d0001"),
                ),
            ],
            ..Default::default()
        },
        Case {
            request: "breakfast-job",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            checks: vec![
                (
                    "/spec/template/spec/initContainers/0/name",
                    json!("oras-init"),
                ),
                ("/spec/template/spec/containers/0/command/0", json!(AGENT)),
                ("/spec/template/spec/containers/1/name", json!("oras")),
                ("/spec/backoffLimit", json!(4)),
            ],
            ..Default::default()
        },
        Case {
            request: "multiple-input-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            checks: vec![("/spec/initContainers/0/name", json!("oras-init"))],
            ..Default::default()
        },
        Case {
            request: "remote-registry-pod",
            allow_context_aware: true,
            allowed: true,
            patched: true,
            warnings: &["oras-cache is ignored"],
            checks: vec![("/spec/containers/1/name", json!("oras"))],
            ..Default::default()
        },
        Case {
            request: "no-annotation-pod",
            allowed: true,
            ..Default::default()
        },
        Case {
            request: "already-injected-pod",
            allow_context_aware: true,
            allowed: true,
            ..Default::default()
        },
        Case {
            request: "update-pod",
            allow_context_aware: true,
            allowed: true,
            ..Default::default()
        },
        Case {
            request: "delete-pod",
            allow_context_aware: true,
            allowed: true,
            ..Default::default()
        },
        Case {
            request: "missing-command-pod",
            allow_context_aware: true,
            session: Some("image-command.yml"),
            allowed: true,
            patched: true,
            checks: vec![("/spec/containers/0/command/0", json!(AGENT))],
            ..Default::default()
        },
        Case {
            request: "missing-command-pod",
            allow_context_aware: true,
            session: Some("image-unreadable.yml"),
            allowed: false,
            message: Some(
                "has no command and the ENTRYPOINT/CMD of its image \"registry.example.org/team/app:1.0\" could not be read",
            ),
            ..Default::default()
        },
        Case {
            request: "missing-cache-pod",
            allow_context_aware: true,
            session: Some("cache-missing.yml"),
            allowed: false,
            message: Some("OrasCache \"no-such-cache\" in namespace \"default\" could not be read"),
            ..Default::default()
        },
        Case {
            request: "missing-cache-pod",
            settings: Some("missing-cache-warns.json"),
            allow_context_aware: true,
            session: Some("cache-missing.yml"),
            allowed: true,
            patched: true,
            warnings: &["no-such-cache.default.svc.cluster.local:5000"],
            ..Default::default()
        },
        Case {
            request: "hello-world-pod",
            allowed: false,
            message: Some(
                "Policy has not been granted access to Kubernetes cache.converged-computing.github.io/v1alpha1/OrasCache resources",
            ),
            warnings: &["oras-entrypoint is ignored", "/entrypoint is ignored"],
            ..Default::default()
        },
        Case {
            request: "hello-world-pod",
            settings: Some("no-context-aware.json"),
            allowed: true,
            patched: true,
            warnings: &["oras-entrypoint is ignored", "/entrypoint is ignored"],
            ..Default::default()
        },
        Case {
            request: "empty-value-pod",
            allow_context_aware: true,
            allowed: false,
            message: Some("output-uri is empty"),
            ..Default::default()
        },
        Case {
            request: "output-path-flag-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/output-path: \"--push-on-failure\" starts with '-' and would read as a flag",
            ),
            ..Default::default()
        },
        Case {
            request: "output-path-separator-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/output-path: \"--\" starts with '-' and would read as a flag",
            ),
            ..Default::default()
        },
        Case {
            request: "input-path-flag-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/input-path: \"--no-unpack\" starts with '-' and would read as a flag",
            ),
            ..Default::default()
        },
        Case {
            request: "output-path-root-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/output-path: \"/\" is the whole filesystem",
            ),
            ..Default::default()
        },
        Case {
            request: "output-path-share-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/output-path: \"/mnt/oras/state\" is inside /mnt/oras, the agent's own volume",
            ),
            ..Default::default()
        },
        Case {
            request: "input-path-share-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/input-path: \"/mnt//oras\" is inside /mnt/oras, the agent's own volume",
            ),
            ..Default::default()
        },
        Case {
            request: "output-pipe-share-pod",
            allowed: false,
            message: Some(
                "annotation oras.converged-computing.github.io/output-pipe: \"/mnt/oras/state/status.json\" is inside /mnt/oras, the agent's own volume",
            ),
            ..Default::default()
        },
        // Artifacts as volumes: the seed's two pods, as written there.
        Case {
            request: "singularity-volume-pod",
            allow_context_aware: true,
            session: Some("no-mirrors.yml"),
            allowed: true,
            patched: true,
            checks: vec![
                (
                    "/spec/volumes/0",
                    json!({"name": "oras-inline", "emptyDir": {}}),
                ),
                ("/spec/initContainers/0/name", json!("oras-volumes")),
                (
                    "/spec/initContainers/0/volumeMounts/0/mountPath",
                    json!("/mnt/oras-volumes/oras-inline"),
                ),
                ("/spec/containers/0/command", json!(["sleep", "1000000"])),
                ("/spec/containers/0/volumeMounts/0/readOnly", json!(true)),
            ],
            ..Default::default()
        },
        Case {
            request: "java-volume-pod",
            allow_context_aware: true,
            session: Some("no-mirrors.yml"),
            allowed: true,
            patched: true,
            checks: vec![
                (
                    "/spec/containers/0/command",
                    json!(["java", "-jar", "/app/HelloWorldServer.jar"]),
                ),
                ("/spec/initContainers/0/name", json!("oras-volumes")),
            ],
            ..Default::default()
        },
        Case {
            request: "volume-job",
            allow_context_aware: true,
            session: Some("no-mirrors.yml"),
            allowed: true,
            patched: true,
            checks: vec![
                (
                    "/spec/template/spec/initContainers/0/name",
                    json!("oras-volumes"),
                ),
                (
                    "/spec/template/metadata/annotations/oras.converged-computing.github.io~1injected",
                    json!("true"),
                ),
            ],
            ..Default::default()
        },
        Case {
            request: "volume-options-pod",
            allow_context_aware: true,
            session: Some("no-mirrors.yml"),
            allowed: true,
            patched: true,
            warnings: &[
                "oras.options.pullalways=\"true\" has no effect",
                "oras.options.insecure=\"true\" is ignored",
                "attribute \"oras.options.surprise\" is not known",
            ],
            checks: vec![
                ("/spec/volumes/0/emptyDir", json!({"sizeLimit": "1Gi"})),
                (
                    "/spec/initContainers/0/envFrom",
                    json!([{"prefix": "ORAS_VOLUME_0_", "secretRef": {"name": "ghcr-pull"}}]),
                ),
            ],
            ..Default::default()
        },
        Case {
            request: "volume-relative-to-cache-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            checks: vec![("/spec/initContainers/0/name", json!("oras-volumes"))],
            ..Default::default()
        },
        Case {
            request: "singularity-volume-pod",
            settings: Some("allowed-registries.json"),
            allowed: false,
            message: Some(
                "oras.artifact.reference names registry \"ghcr.io\", which the policy does not allow",
            ),
            ..Default::default()
        },
        Case {
            request: "singularity-volume-pod",
            settings: Some("no-volume-drivers.json"),
            allowed: true,
            patched: false,
            ..Default::default()
        },
        // Pulls through the namespace's mirror of ghcr.io (a replayed OrasCache list).
        Case {
            request: "mirrored-volume-pod",
            allow_context_aware: true,
            session: Some("ghcr-mirror.yml"),
            allowed: true,
            patched: true,
            warnings: &[
                "volume \"oras-inline\" from ghcr.io goes through the mirror OrasCache \"ghcr-mirror\"",
            ],
            checks: vec![("/spec/initContainers/0/name", json!("oras-volumes"))],
            ..Default::default()
        },
        Case {
            request: "mirrored-input-pod",
            allow_context_aware: true,
            session: Some("ghcr-mirror.yml"),
            allowed: true,
            patched: true,
            warnings: &[
                "pulling the inputs from ghcr.io goes through the mirror OrasCache \"ghcr-mirror\"",
            ],
            checks: vec![
                (
                    "/spec/initContainers/0/args/3",
                    json!("--input=ghcr-mirror.default.svc.cluster.local:5000/org/data:1"),
                ),
                (
                    "/spec/containers/1/args/2",
                    json!("--output=ghcr.io/org/result:1"),
                ),
            ],
            ..Default::default()
        },
        Case {
            request: "volume-missing-reference-pod",
            allowed: false,
            message: Some("volume \"oras-inline\": oras.artifact.reference is missing"),
            ..Default::default()
        },
        Case {
            request: "volume-malformed-reference-pod",
            allowed: false,
            message: Some(
                "volume \"oras-inline\": oras.artifact.reference is not a full reference",
            ),
            ..Default::default()
        },
        Case {
            request: "volume-share-name-pod",
            allowed: false,
            message: Some("volume \"oras-share\": name is the name of oras-cache's own volume"),
            ..Default::default()
        },
        Case {
            request: "several-containers-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            warnings: &[
                "the pod has several containers and oras.converged-computing.github.io/container is not set: oras-cache wraps the first, \"app\"",
            ],
            checks: vec![("/spec/containers/0/command/0", json!(AGENT))],
            ..Default::default()
        },
        Case {
            request: "unknown-container-pod",
            allow_context_aware: true,
            allowed: false,
            message: Some("names container \"nope\""),
            ..Default::default()
        },
        Case {
            request: "chosen-container-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            checks: vec![
                ("/spec/containers/0/command", json!(["sleep", "3600"])),
                ("/spec/containers/1/command/0", json!(AGENT)),
            ],
            ..Default::default()
        },
        Case {
            request: "malformed-reference-pod",
            allow_context_aware: true,
            allowed: false,
            message: Some("input-uri"),
            ..Default::default()
        },
        Case {
            request: "unknown-key-pod",
            allow_context_aware: true,
            session: ready,
            allowed: true,
            patched: true,
            warnings: &["inputuri is not known to oras-cache"],
            ..Default::default()
        },
        Case {
            request: "no-work-pod",
            allow_context_aware: true,
            allowed: true,
            warnings: &["nothing to pull or push"],
            ..Default::default()
        },
        Case {
            request: "remote-registry-pod",
            settings: Some("allowed-registries.json"),
            allowed: false,
            message: Some("registry \"ghcr.io\" is not allowed by the policy"),
            warnings: &["oras-cache is ignored"],
            ..Default::default()
        },
    ]
}

#[test]
fn every_fixture_gives_the_expected_verdict_message_and_object() {
    for case in cases() {
        check(&case);
    }
}

#[test]
fn every_request_fixture_is_covered_by_a_case() {
    let covered: BTreeSet<String> = cases().iter().map(|c| c.request.to_owned()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures().join("requests"))
        .unwrap()
        .map(|entry| {
            entry
                .unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(on_disk, covered);
}

#[test]
fn the_annotated_module_carries_the_metadata_of_metadata_yml() {
    let metadata = policy().metadata().expect("io.kubewarden.metadata section");
    assert_eq!(metadata.protocol_version.as_deref(), Some("v1"));
    assert!(metadata.mutating);
    assert_eq!(metadata.context_aware_resources[0].kind, "OrasCache");
    let annotations = metadata.annotations.as_ref().unwrap();
    assert!(annotations.contains_key("io.kubewarden.policy.usage"));
    assert!(annotations.contains_key("io.kubewarden.kwctl"));
    assert_eq!(annotations["io.kubewarden.policy.title"], "oras-cache");
}

#[test]
fn invalid_settings_are_refused_by_validate_settings() {
    let settings = load_settings(
        Some(&fixtures().join("settings/invalid-pull-policy.json")),
        None,
    )
    .unwrap();
    let verdict = policy().validate_settings(&Arc::new(HostCapabilities::default()), &settings);
    assert!(!verdict.valid);
    assert!(verdict.message.unwrap().contains("agentImagePullPolicy"));
}
