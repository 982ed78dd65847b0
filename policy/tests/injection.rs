//! The shape of the injection: idempotence, fidelity to the incoming object, operations and kinds
//! that are never mutated, and what the settings and the optional keys change.

mod common;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::evaluate;
use serde_json::{Value, json};

fn cache_host() -> FakeHost {
    FakeHost::with_cache(
        "lab",
        "cache",
        "cache.lab.svc.cluster.local:5000",
        Some(true),
    )
}

/// A Pod as the API server sends it: server-populated fields, status, managedFields, and a field
/// k8s-openapi 0.28 does not know.
fn server_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "step-1",
            "namespace": "lab",
            "uid": "2b0b7a8e-0c1f-4c4e-9d5e-6c7a1b2c3d4e",
            "creationTimestamp": "2026-11-23T10:00:00Z",
            "labels": {"app": "workflow"},
            "annotations": {
                "oras.converged-computing.github.io/oras-cache": "cache",
                "oras.converged-computing.github.io/input-uri": "wf/data:v1",
                "oras.converged-computing.github.io/output-uri": "wf/result:v1",
                "oras.converged-computing.github.io/output-path": "/work/out",
                "oras.converged-computing.github.io/container": "main",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"
            },
            "managedFields": [{
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-11-23T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:annotations": {".": {}}}}
            }]
        },
        "spec": {
            "subdomain": "my-headless",
            "hostname": "step-1",
            "restartPolicy": "Never",
            "securityContext": {"fsGroup": 2000},
            "futureSchedulingHint": {"mode": "Packed"},
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}],
            "initContainers": [{"name": "prepare", "image": "busybox", "command": ["mkdir", "-p", "/work"]}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c"],
                    "args": ["mkdir -p /work/out && date > /work/out/when"],
                    "workingDir": "/work",
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    "resources": {"limits": {"cpu": "1"}},
                    "futureContainerField": true
                },
                {"name": "logger", "image": "busybox", "command": ["sleep", "5"]}
            ]
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

#[test]
fn the_mutated_pod_keeps_every_field_it_came_with_and_deserializes() {
    let original = server_pod();
    let (object, warnings) = mutated(run(&original, &cache_host()));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_keeps_fields(
        &original,
        &object,
        &["/spec/containers/0/command", "/spec/containers/0/args"],
    );
    assert_eq!(
        object["spec"]["subdomain"], "my-headless",
        "the subdomain is not clobbered"
    );
    assert_eq!(object["status"], original["status"]);
    assert_eq!(
        object["metadata"]["managedFields"],
        original["metadata"]["managedFields"]
    );
    assert_eq!(
        object["spec"]["futureSchedulingHint"],
        original["spec"]["futureSchedulingHint"]
    );

    // Only the named container is wrapped; the other keeps its command and gets no mount.
    let spec = &object["spec"];
    let main = container(spec, "containers", "main");
    let args = strings(&main["args"]);
    let sep = args.iter().position(|a| a == "--").unwrap();
    assert_eq!(
        &args[sep + 1..],
        ["sh", "-c", "mkdir -p /work/out && date > /work/out/when"]
    );
    assert_eq!(
        main["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"}, {"name": "oras-share", "mountPath": "/mnt/oras"}])
    );
    assert_eq!(
        container(spec, "containers", "logger"),
        &original["spec"]["containers"][1]
    );
    // The user's init container still runs first; the agent's comes last.
    assert_eq!(spec["initContainers"][0]["name"], "prepare");
    assert_eq!(spec["initContainers"][1]["name"], "oras-init");

    let pod: Pod = serde_json::from_value(object).expect("a valid Pod");
    assert_eq!(pod.spec.unwrap().containers.len(), 3);
}

#[test]
fn a_second_evaluation_of_an_injected_object_gives_no_patch() {
    let host = cache_host();
    let (once, _) = mutated(run(&server_pod(), &host));
    let calls = host.calls().len();
    let warnings = accepted_warnings(run(&once, &host));
    assert!(warnings.is_empty());
    assert_eq!(
        host.calls().len(),
        calls,
        "an injected object causes no lookup"
    );
}

#[test]
fn a_second_evaluation_of_an_injected_job_gives_no_patch() {
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "lab", "annotations": {
            "oras.converged-computing.github.io/oras-cache": "cache",
            "oras.converged-computing.github.io/input-uri": "wf/data:v1"}},
        "spec": {"template": {"metadata": {"labels": {"x": "y"}},
                              "spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "c", "image": "busybox", "command": ["ls"]}]}}},
        "status": {}
    });
    let host = cache_host();
    let (once, _) = mutated(run(&job, &host));
    assert_keeps_fields(&job, &once, &["/spec/template/spec/containers/0/command"]);
    assert_eq!(
        once["spec"]["template"]["metadata"]["labels"],
        json!({"x": "y"})
    );
    serde_json::from_value::<Job>(once.clone()).expect("a valid Job");
    assert!(accepted_warnings(run(&once, &host)).is_empty());
}

#[test]
fn update_and_delete_are_never_mutated() {
    let host = cache_host();
    for operation in ["UPDATE", "DELETE", "CONNECT"] {
        let mut request = admission(&server_pod(), operation);
        if operation == "DELETE" {
            request.old_object = request.object.take();
        }
        let verdict = evaluate(&request, &Settings::default(), &host);
        assert!(accepted_warnings(verdict).is_empty(), "{operation}");
    }
    assert!(host.calls().is_empty());
}

#[test]
fn other_kinds_are_never_mutated() {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "lab", "annotations": {
            "oras.converged-computing.github.io/oras-cache": "cache"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    });
    let mut request = create(&deployment);
    request.kind.group = "apps".into();
    assert!(accepted_warnings(evaluate(&request, &Settings::default(), &cache_host())).is_empty());
}

#[test]
fn settings_choose_image_pull_policy_resources_and_user() {
    let settings: Settings = serde_json::from_value(json!({
        "agentImage": "localhost/oras-agent:dev",
        "agentImagePullPolicy": "Never",
        "resources": {"requests": {"cpu": "5m"}, "limits": {}},
        "securityContext": {"runAsUser": 1001, "runAsGroup": 1002},
        "sidecarStartTimeoutSeconds": 60,
        "sidecarHeartbeatTimeoutSeconds": 9
    }))
    .unwrap();
    let (object, _) = mutated(evaluate(&create(&server_pod()), &settings, &cache_host()));
    let spec = &object["spec"];
    for c in [
        container(spec, "initContainers", "oras-init"),
        container(spec, "containers", "oras"),
    ] {
        assert_eq!(c["image"], "localhost/oras-agent:dev");
        assert_eq!(c["imagePullPolicy"], "Never");
        assert_eq!(c["resources"], json!({"requests": {"cpu": "5m"}}));
        assert_eq!(c["securityContext"]["runAsUser"], 1001);
        assert_eq!(c["securityContext"]["runAsGroup"], 1002);
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(
            c["securityContext"]["capabilities"],
            json!({"drop": ["ALL"]})
        );
    }
    let sidecar = strings(&container(spec, "containers", "oras")["args"]);
    assert!(sidecar.iter().any(|a| a == "--start-timeout=60"));
    assert!(sidecar.iter().any(|a| a == "--heartbeat-timeout=9"));
}

#[test]
fn optional_keys_reach_the_agent_command_line() {
    let mut pod = server_pod();
    let annotations = pod["metadata"]["annotations"].as_object_mut().unwrap();
    for (key, value) in [
        ("input-path", "/data/in"),
        ("output-pipe", "/work/log.txt"),
        ("unpack", "false"),
        ("push-on-failure", "true"),
        ("oras-container", "registry.local/agent:pinned"),
        ("max-unpacked-size", "20Gi"),
    ] {
        annotations.insert(format!("{PREFIX}{key}"), json!(value));
    }
    let (object, _) = mutated(run(&pod, &cache_host()));
    let spec = &object["spec"];
    let args = strings(&container(spec, "containers", "main")["args"]);
    let sep = args.iter().position(|a| a == "--").unwrap();
    assert_eq!(
        &args[..sep],
        [
            "launch",
            "--share=/mnt/oras",
            "--input-path=/data/in",
            "--output-path=/work/out",
            "--output-pipe=/work/log.txt",
            "--max-unpacked-size=21474836480",
            "--no-unpack",
            "--push-on-failure",
            "--pack-outputs"
        ]
    );
    assert_eq!(
        container(spec, "initContainers", "oras-init")["image"],
        "registry.local/agent:pinned"
    );
    assert_eq!(
        container(spec, "containers", "oras")["image"],
        "registry.local/agent:pinned"
    );
}

#[test]
fn a_remote_registry_with_plain_http_says_so() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "lab", "annotations": {
            "oras.converged-computing.github.io/registry": "127.0.0.1:5000",
            "oras.converged-computing.github.io/plain-http": "true",
            "oras.converged-computing.github.io/input-uri": "a/b:1"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["ls"]}]}
    });
    let (object, _) = mutated(run(&pod, &FakeHost::default()));
    assert_eq!(
        strings(&container(&object["spec"], "initContainers", "oras-init")["args"]),
        [
            "init",
            "--share=/mnt/oras",
            "--plain-http",
            "--input=127.0.0.1:5000/a/b:1"
        ]
    );
}

#[test]
fn the_response_carries_the_whole_mutated_object() {
    let verdict = run(&server_pod(), &cache_host());
    let response = serde_json::to_value(verdict.into_response()).unwrap();
    assert_eq!(response["accepted"], true);
    assert_eq!(response["mutated_object"]["status"]["phase"], "Pending");
    assert!(response["warnings"].is_null());
}
