//! The `kwrun` binary as users and e2e.bats call it, on small hand-written guests (the policy's own
//! runs through kwrun are in `e2e/`).

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use kwrun::admission::AdmissionResponse;
use kwrun::kubeconfig::SERVICE_ACCOUNT_NAMESPACE;
use kwrun::metadata::Metadata;
use kwrun::wasm_sections::read_custom_section;
use serde_json::{Value, json};
use support::{
    ORAS_CACHE_API_VERSION, Validate, annotated, get_cache_call, get_cache_session, guest, pod,
};

const UID: &str = "1299d386-525b-4032-98ae-1949f69f9cfc";

/// A directory holding the files of one command line.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Self {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// An AdmissionRequest creating [`pod`].
    fn request(&self) -> String {
        let request = json!({
            "uid": UID, "operation": "CREATE", "object": pod(),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "ns"
        });
        self.write("request.json", request.to_string())
    }
}

fn kwrun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwrun"))
        .args(args)
        .output()
        .expect("run kwrun")
}

fn kwrun_run(args: &[&str]) -> Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    kwrun(&all)
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kwrun failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A guest that adds an annotation to the pod and warns.
fn mutating_guest() -> Vec<u8> {
    let mut mutated = pod();
    mutated["metadata"]["annotations"] = json!({"done": "yes"});
    guest(Validate::Answer(
        json!({"accepted": true, "mutated_object": mutated, "warnings": ["w1"]}).to_string(),
    ))
}

#[test]
fn run_prints_one_json_line_with_kwctl_shape() {
    let files = Files::new();
    let policy = files.write("policy.wasm", mutating_guest());
    let out = stdout(&kwrun_run(&["--request-path", &files.request(), &policy]));
    assert_eq!(out.lines().count(), 1, "{out}");
    // kwctl's field order: uid, allowed, patchType, patch, (status,) auditAnnotations, warnings.
    let positions: Vec<usize> = [
        "uid",
        "allowed",
        "patchType",
        "patch",
        "auditAnnotations",
        "warnings",
    ]
    .iter()
    .map(|key| {
        out.find(&format!("\"{key}\":"))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
    })
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert!(!out.contains(r#""status""#), "{out}");
    assert!(out.contains(r#""allowed":true"#) && out.contains(r#""patchType":"JSONPatch""#));
    let response: AdmissionResponse = serde_json::from_str(&out).unwrap();
    assert_eq!(response.uid, UID);
}

#[test]
fn an_admission_review_and_a_file_uri_give_the_same_answer() {
    let files = Files::new();
    let policy = files.write("policy.wasm", mutating_guest());
    let request = files.request();
    let bare = stdout(&kwrun_run(&["--request-path", &request, &policy]));

    let inner: Value = serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let review =
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": inner});
    let review_path = files.write("review.json", review.to_string());
    let file_uri = format!("file://{policy}");
    let wrapped = stdout(&kwrun_run(&["--request-path", &review_path, &file_uri]));
    assert_eq!(bare, wrapped);
}

#[test]
fn invalid_settings_exit_non_zero_with_kwctl_message() {
    let files = Files::new();
    let policy = files.write("policy.wasm", mutating_guest());
    let output = kwrun_run(&[
        "--request-path",
        &files.request(),
        "--settings-json",
        r#"{"x": 1}"#,
        &policy,
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("Provided settings are not valid: ")),
        "{stderr}"
    );
    // The guest's own reason follows kwctl's prefix.
    assert!(stderr.contains("only {} is accepted"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_recorded_session_replays_to_the_same_answer() {
    let files = Files::new();
    let policy = files.write("policy.wasm", cache_reading_guest());
    let session = files.write(
        "session.yml",
        get_cache_session(Ok(
            json!({"accepted": false, "message": "answered by the session"}),
        )),
    );
    let recorded = files.path("recorded.yml");
    let request = files.request();
    let first = stdout(&kwrun_run(&[
        "--request-path",
        &request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &session,
        "--record-host-capabilities-interactions",
        recorded.to_str().unwrap(),
        &policy,
    ]));
    assert!(first.contains("answered by the session"), "{first}");
    let text = std::fs::read_to_string(&recorded).unwrap();
    assert!(text.contains("!KubernetesGetResource"), "{text}");
    let second = stdout(&kwrun_run(&[
        "--request-path",
        &request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        recorded.to_str().unwrap(),
        &policy,
    ]));
    assert_eq!(first, second);
}

#[test]
fn annotate_writes_one_metadata_section_with_the_protocol_version() {
    let files = Files::new();
    let plain = files.write("plain.wasm", guest(Validate::Trap));
    let metadata_yml = files.write(
        "metadata.yml",
        format!(
            "rules:\n  - apiGroups: [\"\"]\n    apiVersions: [v1]\n    resources: [pods]\n    operations: [CREATE]\nmutating: true\ncontextAwareResources:\n  - apiVersion: {ORAS_CACHE_API_VERSION}\n    kind: OrasCache\n"
        ),
    );
    let readme_text = "# A policy\n\nIts usage, on\nseveral lines.\n";
    let readme = files.write("README.md", readme_text);
    let out = files.path("annotated.wasm");
    let annotate = |input: &str| {
        let output = kwrun(&[
            "annotate",
            "-m",
            &metadata_yml,
            "-u",
            &readme,
            "-o",
            out.to_str().unwrap(),
            input,
        ]);
        stdout(&output);
        std::fs::read(&out).unwrap()
    };
    // Annotating an annotated module replaces its section rather than adding a second one.
    let once = annotate(&plain);
    let again = files.write("once.wasm", &once);
    let module = annotate(&again);
    assert_eq!(module, once);
    let metadata = Metadata::from_module(&module)
        .unwrap()
        .expect("metadata section");
    assert_eq!(metadata.protocol_version.as_deref(), Some("v1"));
    assert_eq!(
        metadata.annotations.unwrap()["io.kubewarden.policy.usage"],
        readme_text
    );
    let json = read_custom_section(&module, "io.kubewarden.metadata")
        .unwrap()
        .unwrap();
    let raw: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(raw["contextAwareResources"][0]["kind"], "OrasCache");
}

#[test]
fn bench_reports_throughput_and_percentiles() {
    let files = Files::new();
    let policy = files.write(
        "policy.wasm",
        guest(Validate::Answer(json!({"accepted": true}).to_string())),
    );
    let output = kwrun(&[
        "bench",
        "--samples",
        "5",
        "--warm-up",
        "1",
        "--json",
        "--request-path",
        &files.request(),
        &policy,
    ]);
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["samples"], 5);
    assert!(report["evaluations_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["p99_us"].as_f64().unwrap() >= report["p50_us"].as_f64().unwrap());
}

#[test]
fn deployment_modes_apply_after_the_policy_answered() {
    let files = Files::new();
    let policy = files.write("policy.wasm", mutating_guest());
    let request = files.request();
    let refused: AdmissionResponse = serde_json::from_str(&stdout(&kwrun_run(&[
        "--disallow-mutation",
        "--request-path",
        &request,
        &policy,
    ])))
    .unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.patch, None);
    let message = refused.status.unwrap().message.unwrap();
    assert!(
        message.contains("policy-from-cli") && message.contains("not allow mutations"),
        "{message}"
    );

    let rejecting = files.write(
        "rejecting.wasm",
        guest(Validate::Answer(
            json!({"accepted": false, "message": "no way"}).to_string(),
        )),
    );
    let monitored: AdmissionResponse = serde_json::from_str(&stdout(&kwrun_run(&[
        "--mode",
        "monitor",
        "--request-path",
        &request,
        &rejecting,
    ])))
    .unwrap();
    assert!(monitored.allowed);
    assert_eq!(monitored.status, None);
}

/// A context-aware guest that reads the OrasCache `c` in `ns` and answers what the host said.
fn cache_reading_guest() -> Vec<u8> {
    annotated(&guest(get_cache_call()))
}

#[test]
fn allow_context_aware_without_a_session_or_a_kubeconfig_stops_as_kwctl_does() {
    // kwctl builds a Kubernetes client when the policy is granted resources and no session is
    // replayed (kubewarden-controller monorepo, crates/kwctl/src/command/run/evaluator.rs:
    // build_callback_handler, build_kube_client), and kube-rs's Config::infer fails without a
    // kubeconfig and outside a cluster.
    if std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE).exists() {
        eprintln!(
            "running inside a cluster: kwctl would find its service account, nothing to refuse"
        );
        return;
    }
    let files = Files::new();
    let policy = files.write("policy.wasm", cache_reading_guest());
    let request = files.request();
    let home = files.path("home");
    std::fs::create_dir(&home).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kwrun"))
            .env_remove("KUBECONFIG")
            .env("HOME", &home)
            .args(["run", "--request-path", &request])
            .args(extra)
            .arg(&policy)
            .output()
            .expect("run kwrun")
    };

    let refused = run(&["--allow-context-aware"]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let config = home.join(".kube").join("config");
    assert!(
        stderr.starts_with(
            "failed to infer config: in-cluster: (failed to read the default namespace: "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "kubeconfig: (failed to read kubeconfig from '{config:?}': "
        )),
        "{stderr}"
    );

    // With a session, or without the grant, no client is needed.
    let session = files.write(
        "session.yml",
        get_cache_session(Ok(json!({"accepted": true}))),
    );
    let replayed = stdout(&run(&[
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &session,
    ]));
    assert!(replayed.contains(r#""allowed":true"#), "{replayed}");
    let not_granted = stdout(&run(&[]));
    assert!(
        not_granted.contains("Policy has not been granted access to Kubernetes"),
        "{not_granted}"
    );

    // With a kubeconfig kwctl would query the cluster; kwrun has no client, so the read fails
    // the way a failed lookup reaches the guest.
    std::fs::create_dir(home.join(".kube")).unwrap();
    std::fs::write(&config, "apiVersion: v1\nkind: Config\n").unwrap();
    let live = run(&["--allow-context-aware"]);
    let answer = stdout(&live);
    assert!(
        answer.contains("Callback evaluation failure: kwrun has no live backend"),
        "{answer}"
    );
    let stderr = String::from_utf8_lossy(&live.stderr);
    assert!(stderr.contains("kwrun has no live client"), "{stderr}");
}

#[test]
fn replayed_and_live_failures_reach_the_guest_the_same_way() {
    // policy-evaluator (kubewarden-controller monorepo,
    // crates/policy-evaluator/src/runtimes/callback.rs, send_request_and_wait_for_response)
    // hands the guest `Callback evaluation failure: <error>` for every failed host call.
    let files = Files::new();
    let policy = files.write("policy.wasm", cache_reading_guest());
    let request = files.request();
    let session = files.write(
        "session.yml",
        get_cache_session(
            Err("Cannot find cache.converged-computing.github.io/v1alpha1/OrasCache named 'c' inside of namespace 'Some(\"ns\")'".into()),
        ),
    );
    let response: AdmissionResponse = serde_json::from_str(&stdout(&kwrun_run(&[
        "--request-path",
        &request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &session,
        &policy,
    ])))
    .unwrap();
    // The test guest fails with the host's error as it received it.
    assert_eq!(
        response.status.unwrap().message.as_deref(),
        Some(
            "internal server error: Guest call failure: Callback evaluation failure: Cannot find cache.converged-computing.github.io/v1alpha1/OrasCache named 'c' inside of namespace 'Some(\"ns\")'"
        )
    );
}
