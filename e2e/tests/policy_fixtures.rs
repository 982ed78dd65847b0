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

// ---- the real API server ----------------------------------------------------------------------
//
// What the policy answers is checked above against our reading of Kubernetes; here the API server
// itself (oras_test_support::cluster: kube-apiserver v1.37.2 from scripts/peers.sh) judges it.

const INJECTED: [&str; 3] = ["oras-init", "oras", "oras-volumes"];

/// The examples users copy, with the recorded lookups each needs (the same sessions as the
/// fixtures of their shape): the demo's Jobs are the two workflow steps.
const EXAMPLES: [(&str, &str); 6] = [
    ("examples/workflow/step1-produce.yaml", "cache-ready.yml"),
    ("examples/workflow/step2-consume.yaml", "cache-ready.yml"),
    ("examples/workflow/step3-mount.yaml", "no-mirrors.yml"),
    ("examples/volumes/java-pod.yaml", "no-mirrors.yml"),
    ("examples/volumes/options-pod.yaml", "cache-ready.yml"),
    ("examples/volumes/singularity-pod.yaml", "no-mirrors.yml"),
];

/// One control plane for this test binary, with a namespace that enforces the restricted Pod
/// Security Standard and one that matches the test's ValidatingAdmissionPolicy.
fn api_server() -> &'static oras_test_support::cluster::ControlPlane {
    static PLANE: OnceLock<oras_test_support::cluster::ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let plane = oras_test_support::cluster::ControlPlane::start()
            .expect("a control plane (make peers builds its parts)");
        for (namespace, label) in [
            (
                "restricted",
                "pod-security.kubernetes.io/enforce=restricted",
            ),
            ("matching", "oras-match-test=yes"),
        ] {
            plane
                .kubectl_ok(&["create", "namespace", namespace])
                .unwrap();
            plane
                .kubectl_ok(&["label", "namespace", namespace, label])
                .unwrap();
        }
        plane
    })
}

/// `kubectl create --dry-run=server` of `object`: the API server validates and admits it (Pod
/// Security included) and stores nothing. The server's refusal on failure.
fn dry_run(object: &Value) -> Result<(), String> {
    api_server()
        .kubectl_with_input(
            &["create", "--dry-run=server", "-o", "name", "-f", "-"],
            &object.to_string(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `object` as a client would send it to `namespace`: without what the server fills in.
fn as_sent(object: &Value, namespace: &str) -> Value {
    let mut object = object.clone();
    let metadata = object["metadata"].as_object_mut().unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "generation",
        "selfLink",
    ] {
        metadata.remove(field);
    }
    metadata.insert("namespace".into(), json!(namespace));
    object.as_object_mut().unwrap().remove("status");
    object
}

fn pod_spec_mut(object: &mut Value) -> &mut Value {
    if object["kind"] == "Job" {
        &mut object["spec"]["template"]["spec"]
    } else {
        &mut object["spec"]
    }
}

/// The user's own containers made restricted (what the user would do for a restricted
/// namespace), leaving every container and field the policy injected as the policy wrote it: the
/// Pod Security check then judges what the injection adds.
fn harden_the_users_containers(object: &mut Value) {
    let spec = pod_spec_mut(object);
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            if INJECTED.contains(&container["name"].as_str().unwrap_or_default()) {
                continue;
            }
            let context = container
                .as_object_mut()
                .unwrap()
                .entry("securityContext")
                .or_insert_with(|| json!({}));
            for (key, value) in [
                ("allowPrivilegeEscalation", json!(false)),
                ("runAsNonRoot", json!(true)),
                ("runAsUser", json!(1000)),
                ("capabilities", json!({"drop": ["ALL"]})),
                ("seccompProfile", json!({"type": "RuntimeDefault"})),
            ] {
                context.as_object_mut().unwrap().entry(key).or_insert(value);
            }
        }
    }
}

/// A Job's pod template as the Pod the Job controller would create (Pod Security is enforced
/// on Pods only; on workloads it only warns).
fn template_pod(job: &Value) -> Value {
    let mut metadata = job["spec"]["template"]["metadata"].clone();
    if metadata.is_null() {
        metadata = json!({});
    }
    metadata["name"] = json!(format!(
        "{}-pod",
        job["metadata"]["name"].as_str().unwrap_or("job")
    ));
    metadata["namespace"] = job["metadata"]["namespace"].clone();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": job["spec"]["template"]["spec"]})
}

/// The object of a manifest as an AdmissionRequest of its creation.
fn creation_request(object: &Value) -> AdmissionRequest {
    let (group, version, resource) = match object["kind"].as_str() {
        Some("Job") => ("batch", "v1", "jobs"),
        _ => ("", "v1", "pods"),
    };
    let kind = json!({"group": group, "version": version, "kind": object["kind"]});
    let resource = json!({"group": group, "version": version, "resource": resource});
    AdmissionRequest::from_value(json!({
        "uid": "00000000-0000-4000-8000-00000000e2e0",
        "kind": kind, "requestKind": kind, "resource": resource, "requestResource": resource,
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
        "operation": "CREATE",
        "userInfo": {"username": "e2e", "groups": ["system:authenticated"]},
        "object": object,
    }))
    .unwrap()
}

/// Every object the compiled policy mutates (every mutating fixture, every example of
/// `examples/workflow/` and `examples/volumes/`) is one the real API server accepts, in a
/// namespace that enforces the restricted Pod Security Standard: its own Pod and Job validation
/// (unique names across init containers and sidecars, mount paths, native sidecar rules,
/// quantities) and Pod Security of everything the policy injected.
#[test]
fn every_mutated_object_is_one_the_api_server_accepts() {
    let mut mutated: Vec<(String, Value)> = Vec::new();
    for case in cases().iter().filter(|c| c.patched) {
        mutated.push((case.request.to_string(), evaluate(case).patched));
    }
    let root = oras_cache_e2e::workspace_root();
    for (file, session) in EXAMPLES {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        // The Pod or Job of the file (some also hold the OrasCache or a Secret it names).
        let object: Value = serde_yaml::Deserializer::from_str(&text)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .find(|o| o["kind"] == "Pod" || o["kind"] == "Job")
            .unwrap_or_else(|| panic!("{file} has a Pod or a Job"));
        let request = creation_request(&object);
        let host = Arc::new(
            HostCapabilities::default()
                .with_logs(false)
                .with_context_aware_resources(
                    policy().metadata().unwrap().context_aware_resources.clone(),
                )
                .with_replay(
                    Replay::from_file(&fixtures().join("sessions").join(session)).unwrap(),
                ),
        );
        let settings = load_settings(None, None).unwrap();
        let response = policy().validate(&host, &request, &settings);
        assert!(response.allowed, "{file}: {response:?}");
        assert!(response.patch.is_some(), "{file} is mutated");
        mutated.push((file.to_string(), response.patched_object(&object).unwrap()));
    }
    // The namespace does enforce: the first fixture as written (its own container has no
    // securityContext) is refused by Pod Security.
    let unhardened = dry_run(&as_sent(&mutated[0].1, "restricted"));
    assert!(
        unhardened
            .as_ref()
            .is_err_and(|e| e.contains("violates PodSecurity \"restricted")),
        "{} without the user's hardening: {unhardened:?}",
        mutated[0].0
    );
    let mut refused = Vec::new();
    for (name, object) in &mutated {
        let mut sent = as_sent(object, "restricted");
        harden_the_users_containers(&mut sent);
        let mut checks = vec![sent.clone()];
        if sent["kind"] == "Job" {
            checks.push(template_pod(&sent));
        }
        for check in checks {
            if let Err(error) = dry_run(&check) {
                refused.push(format!("{name} ({}): {error}", check["kind"]));
            }
        }
    }
    println!(
        "{} mutated objects ({} fixtures, {} examples): {} accepted by the API server",
        mutated.len(),
        mutated.len() - EXAMPLES.len(),
        EXAMPLES.len(),
        mutated.len() - refused.len()
    );
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}

/// The ClusterAdmissionPolicy's `matchConditions` (from `deploy/oras-cache.yaml`) compile on the
/// API server (a MutatingWebhookConfiguration carrying them is accepted), and the server's own
/// evaluation of them, through a ValidatingAdmissionPolicy that denies whatever they match, agrees
/// with the policy on every creation fixture: each object the policy acts on (mutates or refuses)
/// is matched, so no request the policy must see is filtered out.
#[test]
fn the_match_conditions_evaluated_by_the_api_server_agree_with_the_policy() {
    let install =
        std::fs::read_to_string(oras_cache_e2e::workspace_root().join("deploy/oras-cache.yaml"))
            .unwrap();
    let policy_object: Value = serde_yaml::Deserializer::from_str(&install)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .find(|o| o["kind"] == "ClusterAdmissionPolicy")
        .expect("the install has the ClusterAdmissionPolicy");
    let conditions = policy_object["spec"]["matchConditions"].clone();
    assert!(conditions.as_array().is_some_and(|c| !c.is_empty()));
    let rules = json!([
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]},
        {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["jobs"]}
    ]);
    let plane = api_server();
    let apply = |object: Value| {
        plane
            .kubectl_with_input(&["apply", "--server-side", "-f", "-"], &object.to_string())
            .unwrap_or_else(|e| panic!("the API server refused {object}: {e}"));
    };
    // Never called: it matches no namespace, and the server only has to compile its conditions.
    apply(
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "oras-cache-conditions"},
        "webhooks": [{"name": "oras-cache.conditions.test", "admissionReviewVersions": ["v1"],
            "sideEffects": "None", "failurePolicy": "Ignore",
            "clientConfig": {"url": "https://127.0.0.1:1/validate"},
            "namespaceSelector": {"matchLabels": {"oras-webhook-test": "never"}},
            "rules": rules, "matchConditions": conditions}]}),
    );
    apply(
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "oras-cache-conditions"},
        "spec": {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "matchConditions": conditions,
            "validations": [{"expression": "false", "message": "ORAS-MATCHED"}]}}),
    );
    apply(
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "oras-cache-conditions"},
        "spec": {"policyName": "oras-cache-conditions", "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"oras-match-test": "yes"}}}}}),
    );

    let mut compared = 0;
    let mut disagreements = Vec::new();
    for case in cases() {
        let request = request(case.request);
        if request.as_value()["operation"] != "CREATE" {
            continue;
        }
        let object = as_sent(request.object().unwrap(), "matching");
        let acts = case.patched || !case.allowed;
        // The binding is read by the server's informers a moment after it is made.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let matched = loop {
            let outcome = dry_run(&object);
            let matched = outcome
                .as_ref()
                .err()
                .is_some_and(|e| e.contains("ORAS-MATCHED"));
            if let Err(error) = &outcome {
                assert!(
                    matched,
                    "{}: refused for another reason: {error}",
                    case.request
                );
            }
            if matched || !acts || std::time::Instant::now() > deadline {
                break matched;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        };
        compared += 1;
        if acts && !matched {
            disagreements.push(format!(
                "{}: the policy acts, the server's matchConditions filter it out",
                case.request
            ));
        }
    }
    println!(
        "matchConditions: {compared} creation cases (fixture and settings) compared with the server's evaluation"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
