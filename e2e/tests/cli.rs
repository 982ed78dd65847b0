//! The `kwrun` binary as users and e2e.bats call it, on the compiled policy.

mod support;

use std::process::{Command, Output};

use kwrun::admission::AdmissionResponse;
use kwrun::metadata::Metadata;
use kwrun::wasm_sections::read_custom_section;
use serde_json::Value;
use support::{annotated_policy_path, fixtures, kwrun, workspace_root};

fn kwrun_run(args: &[&str]) -> Output {
    Command::new(kwrun())
        .arg("run")
        .args(args)
        .output()
        .expect("run kwrun")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kwrun failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn fixture(path: &str) -> String {
    fixtures().join(path).display().to_string()
}

fn hello_world_args<'a>(request: &'a str, session: &'a str, policy: &'a str) -> Vec<&'a str> {
    vec![
        "--request-path",
        request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        session,
        policy,
    ]
}

#[test]
fn run_prints_one_json_line_with_kwctl_shape() {
    let policy = annotated_policy_path().display().to_string();
    let (request, session) = (
        fixture("requests/hello-world-pod.json"),
        fixture("sessions/cache-ready.yml"),
    );
    let out = stdout(&kwrun_run(&hello_world_args(&request, &session, &policy)));
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
    assert_eq!(response.uid, "1299d386-525b-4032-98ae-1949f69f9cfc");
}

#[test]
fn an_admission_review_and_a_file_uri_give_the_same_answer() {
    let policy = annotated_policy_path().display().to_string();
    let (request, session) = (
        fixture("requests/hello-world-pod.json"),
        fixture("sessions/cache-ready.yml"),
    );
    let bare = stdout(&kwrun_run(&hello_world_args(&request, &session, &policy)));

    let dir = tempfile::tempdir().unwrap();
    let inner: Value = serde_json::from_str(&std::fs::read_to_string(&request).unwrap()).unwrap();
    let review = serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": inner});
    let review_path = dir.path().join("review.json");
    std::fs::write(&review_path, review.to_string()).unwrap();
    let file_uri = format!("file://{policy}");
    let wrapped = stdout(&kwrun_run(&hello_world_args(
        review_path.to_str().unwrap(),
        &session,
        &file_uri,
    )));
    assert_eq!(bare, wrapped);
}

#[test]
fn invalid_settings_exit_non_zero_with_kwctl_message() {
    let policy = annotated_policy_path().display().to_string();
    let output = kwrun_run(&[
        "--request-path",
        &fixture("requests/no-annotation-pod.json"),
        "--settings-path",
        &fixture("settings/invalid-pull-policy.json"),
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
    assert!(stderr.contains("agentImagePullPolicy"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn a_recorded_session_replays_to_the_same_answer() {
    let policy = annotated_policy_path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("recorded.yml");
    let request = fixture("requests/missing-command-pod.json");
    let first = stdout(&kwrun_run(&[
        "--request-path",
        &request,
        "--allow-context-aware",
        "--replay-host-capabilities-interactions",
        &fixture("sessions/image-command.yml"),
        "--record-host-capabilities-interactions",
        recorded.to_str().unwrap(),
        &policy,
    ]));
    let text = std::fs::read_to_string(&recorded).unwrap();
    assert!(
        text.contains("!KubernetesGetResource") && text.contains("!OciManifestAndConfig"),
        "{text}"
    );
    let second = stdout(&kwrun_run(&hello_world_args(
        &request,
        recorded.to_str().unwrap(),
        &policy,
    )));
    assert_eq!(first, second);
}

#[test]
fn annotate_writes_one_metadata_section_with_the_protocol_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reannotated.wasm");
    let root = workspace_root();
    let status = Command::new(kwrun())
        .args(["annotate", "-m"])
        .arg(root.join("metadata.yml"))
        .arg("-u")
        .arg(root.join("README.md"))
        .arg("-o")
        .arg(&out)
        .arg(annotated_policy_path())
        .status()
        .unwrap();
    assert!(status.success());
    let module = std::fs::read(&out).unwrap();
    let metadata = Metadata::from_module(&module)
        .unwrap()
        .expect("metadata section");
    assert_eq!(metadata.protocol_version.as_deref(), Some("v1"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert_eq!(
        metadata.annotations.unwrap()["io.kubewarden.policy.usage"],
        readme
    );
    let json = read_custom_section(&module, "io.kubewarden.metadata")
        .unwrap()
        .unwrap();
    let raw: Value = serde_json::from_slice(json).unwrap();
    assert_eq!(raw["contextAwareResources"][0]["kind"], "OrasCache");
}

#[test]
fn bench_reports_throughput_and_percentiles() {
    let policy = annotated_policy_path().display().to_string();
    let output = Command::new(kwrun())
        .args([
            "bench",
            "--samples",
            "5",
            "--warm-up",
            "1",
            "--json",
            "--request-path",
        ])
        .arg(fixture("requests/no-annotation-pod.json"))
        .arg(&policy)
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["samples"], 5);
    assert!(report["evaluations_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["p99_us"].as_f64().unwrap() >= report["p50_us"].as_f64().unwrap());
}

#[test]
fn deployment_modes_apply_after_the_policy_answered() {
    let policy = annotated_policy_path().display().to_string();
    let (request, session) = (
        fixture("requests/hello-world-pod.json"),
        fixture("sessions/cache-ready.yml"),
    );
    let mut args = hello_world_args(&request, &session, &policy);
    args.insert(0, "--disallow-mutation");
    let refused: AdmissionResponse = serde_json::from_str(&stdout(&kwrun_run(&args))).unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.patch, None);
    let message = refused.status.unwrap().message.unwrap();
    assert!(
        message.contains("policy-from-cli") && message.contains("not allow mutations"),
        "{message}"
    );

    let rejected = fixture("requests/empty-value-pod.json");
    let monitored: AdmissionResponse = serde_json::from_str(&stdout(&kwrun_run(&[
        "--mode",
        "monitor",
        "--request-path",
        &rejected,
        &policy,
    ])))
    .unwrap();
    assert!(monitored.allowed);
    assert_eq!(monitored.status, None);
}
