//! The examples of the original oras-operator, evaluated as its users wrote them.

mod common;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use oras_cache_api::annotations::INJECTED;
use serde_json::{Value, json};

const CACHE_ADDRESS: &str = "orascache-sample.default.svc.cluster.local:5000";

fn sample_cache() -> FakeHost {
    FakeHost::with_cache("default", "orascache-sample", CACHE_ADDRESS, Some(true))
}

fn agent_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

fn agent_resources() -> Value {
    json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}})
}

/// oras-operator's examples/tests/hello-world/pod-with-storage.yaml
fn hello_world_pod() -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "pumpkin-pod",
            "namespace": "default",
            "annotations": {
                "oras.converged-computing.github.io/oras-entrypoint": "https://raw.githubusercontent.com/converged-computing/oras-operator/add/entrypoints/hack/oras-entrypoint.sh",
                "oras.converged-computing.github.io/entrypoint": "https://raw.githubusercontent.com/converged-computing/oras-operator/add/entrypoints/hack/entrypoint.sh",
                "oras.converged-computing.github.io/oras-cache": "orascache-sample",
                "oras.converged-computing.github.io/output-uri": "dinosaur/hello-world:latest",
                "oras.converged-computing.github.io/output-path": "hello-world.txt",
                "oras.converged-computing.github.io/debug": "true"
            }
        },
        "spec": {
            "containers": [{
                "name": "my-container",
                "image": "ubuntu",
                "command": ["touch", "hello-world.txt"]
            }]
        }
    })
}

#[test]
fn hello_world_pod_gets_the_whole_injection() {
    let host = sample_cache();
    let (object, warnings) = mutated(run(&hello_world_pod(), &host));

    let mut expected = hello_world_pod();
    expected["metadata"]["annotations"][INJECTED] = json!("true");
    expected["spec"] = json!({
        "containers": [
            {
                "name": "my-container",
                "image": "ubuntu",
                "command": ["/mnt/oras/bin/oras-agent"],
                "args": ["launch", "--share=/mnt/oras", "--output-path=hello-world.txt",
                         "--pack-outputs", "--debug", "--", "touch", "hello-world.txt"],
                "volumeMounts": [{"name": "oras-share", "mountPath": "/mnt/oras"}]
            },
            {
                "name": "oras",
                "image": "ghcr.io/oras-cache/oras-agent:v0.1.0",
                "imagePullPolicy": "IfNotPresent",
                "command": ["/oras-agent"],
                "args": ["sidecar", "--share=/mnt/oras",
                         "--output=orascache-sample.default.svc.cluster.local:5000/dinosaur/hello-world:latest",
                         "--start-timeout=1800", "--heartbeat-timeout=30", "--plain-http", "--debug"],
                "env": [{"name": "TMPDIR", "value": "/mnt/oras"}],
                "volumeMounts": [{"name": "oras-share", "mountPath": "/mnt/oras"}],
                "securityContext": agent_security_context(),
                "resources": agent_resources()
            }
        ],
        "initContainers": [{
            "name": "oras-init",
            "image": "ghcr.io/oras-cache/oras-agent:v0.1.0",
            "imagePullPolicy": "IfNotPresent",
            "command": ["/oras-agent"],
            "args": ["init", "--share=/mnt/oras", "--plain-http", "--debug"],
            "env": [{"name": "TMPDIR", "value": "/mnt/oras"}],
            "volumeMounts": [{"name": "oras-share", "mountPath": "/mnt/oras"}],
            "securityContext": agent_security_context(),
            "resources": agent_resources()
        }],
        "volumes": [{"name": "oras-share", "emptyDir": {}}]
    });
    assert_eq!(object, expected);

    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("is ignored")));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("{PREFIX}entrypoint ")))
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("{PREFIX}oras-entrypoint ")))
    );
    assert_eq!(host.calls(), ["get_resource default/orascache-sample"]);
    serde_json::from_value::<Pod>(object).expect("the mutated pod is a valid Pod");
}

/// oras-operator's examples/tests/hello-world/job.yaml, with the annotations on the Job (the original's HEAD).
fn breakfast_job() -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "breakfast",
            "namespace": "default",
            "annotations": {
                "oras.converged-computing.github.io/oras-cache": "orascache-sample",
                "oras.converged-computing.github.io/output-uri": "dinosaur/hello-world:pancakes",
                "oras.converged-computing.github.io/output-path": "pancakes.txt",
                "oras.converged-computing.github.io/output-pipe": "pancakes.txt",
                "oras.converged-computing.github.io/debug": "true"
            }
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "pi", "image": "perl:5.34.0", "command": ["echo", "blueberry"]}],
                    "restartPolicy": "Never"
                }
            },
            "backoffLimit": 4
        }
    })
}

#[test]
fn breakfast_job_injects_its_pod_template_and_marks_both() {
    let host = sample_cache();
    let job = breakfast_job();
    let (object, warnings) = mutated(run(&job, &host));
    assert!(warnings.is_empty(), "{warnings:?}");

    assert_eq!(object["metadata"]["annotations"][INJECTED], "true");
    assert_eq!(
        object["spec"]["template"]["metadata"]["annotations"][INJECTED],
        "true"
    );
    let spec = &object["spec"]["template"]["spec"];
    let pi = container(spec, "containers", "pi");
    assert_eq!(
        strings(&pi["args"]),
        [
            "launch",
            "--share=/mnt/oras",
            "--output-path=pancakes.txt",
            "--output-pipe=pancakes.txt",
            "--pack-outputs",
            "--debug",
            "--",
            "echo",
            "blueberry"
        ]
    );
    let sidecar = container(spec, "containers", "oras");
    assert!(strings(&sidecar["args"]).contains(&format!(
        "--output={CACHE_ADDRESS}/dinosaur/hello-world:pancakes"
    )));
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(object["spec"]["backoffLimit"], 4);
    assert_keeps_fields(&job, &object, &["/spec/template/spec/containers/0/command"]);
    serde_json::from_value::<Job>(object.clone()).expect("the mutated job is a valid Job");

    // The Pod the Job controller makes from the template is left alone.
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": object["spec"]["template"]["metadata"].clone(),
        "spec": object["spec"]["template"]["spec"].clone(),
    });
    pod["metadata"]["name"] = json!("breakfast-x7k2p");
    pod["metadata"]["namespace"] = json!("default");
    let warnings = accepted_warnings(run(&pod, &host));
    assert!(warnings.is_empty());
}

#[test]
fn breakfast_job_with_template_annotations_is_injected_at_pod_creation() {
    // The older form of the example annotates the pod template, not the Job: the Job is left
    // alone and each Pod made from it is injected.
    let mut job = breakfast_job();
    let annotations = job["metadata"]["annotations"].take();
    job["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    job["spec"]["template"]["metadata"] = json!({"annotations": annotations});
    let host = sample_cache();
    assert!(accepted_warnings(run(&job, &host)).is_empty());
    assert!(host.calls().is_empty());

    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "breakfast-abcde", "namespace": "default",
                      "annotations": job["spec"]["template"]["metadata"]["annotations"].clone()},
        "spec": job["spec"]["template"]["spec"].clone(),
    });
    let (object, _) = mutated(run(&pod, &host));
    let spec = &object["spec"];
    assert_eq!(
        container(spec, "containers", "pi")["command"],
        json!(["/mnt/oras/bin/oras-agent"])
    );
    container(spec, "containers", "oras");
}

/// oras-operator's examples/tests/multiple-hello-world/pod-2.yaml
#[test]
fn multiple_input_pod_pulls_both_inputs_in_order() {
    let pod = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "hello-world-3",
            "namespace": "default",
            "annotations": {
                "oras.converged-computing.github.io/oras-cache": "orascache-sample",
                "oras.converged-computing.github.io/input-uri_2": "dinosaur/hello-world:two",
                "oras.converged-computing.github.io/input-uri_1": "dinosaur/hello-world:one",
                "oras.converged-computing.github.io/debug": "true"
            }
        },
        "spec": {"containers": [{"name": "my-container", "image": "ubuntu", "command": ["ls", "inputs"]}]}
    });
    let host = sample_cache();
    let (object, warnings) = mutated(run(&pod, &host));
    assert!(warnings.is_empty());
    let spec = &object["spec"];
    let init = container(spec, "initContainers", "oras-init");
    assert_eq!(
        strings(&init["args"]),
        [
            "init",
            "--share=/mnt/oras",
            "--plain-http",
            "--debug",
            &format!("--input={CACHE_ADDRESS}/dinosaur/hello-world:one"),
            &format!("--input={CACHE_ADDRESS}/dinosaur/hello-world:two")
        ]
    );
    // No output: no sidecar, and the launcher packs nothing.
    assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
    let app = container(spec, "containers", "my-container");
    assert_eq!(
        strings(&app["args"]),
        [
            "launch",
            "--share=/mnt/oras",
            "--debug",
            "--",
            "ls",
            "inputs"
        ]
    );
    serde_json::from_value::<Pod>(object).expect("a valid Pod");
}

/// oras-operator's examples/registry/pod.yaml: a remote registry with credentials.
#[test]
fn remote_registry_pod_uses_tls_and_gives_credentials_to_the_agent_only() {
    let pod = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": "turkey-pod",
            "namespace": "default",
            "annotations": {
                "oras.converged-computing.github.io/oras-cache": "orascache-sample",
                "oras.converged-computing.github.io/output-uri": "manbat/metrics-operator-results:test",
                "oras.converged-computing.github.io/registry": "ghcr.io",
                "oras.converged-computing.github.io/oras-env": "oras-env",
                "oras.converged-computing.github.io/output-path": "hello-world.txt",
                "oras.converged-computing.github.io/debug": "true"
            }
        },
        "spec": {"containers": [{"name": "my-container", "image": "ubuntu", "command": ["touch", "hello-world.txt"]}]}
    });
    let host = FakeHost::default();
    let (object, warnings) = mutated(run(&pod, &host));
    // The registry annotation wins; the cache is not even looked up.
    assert!(host.calls().is_empty());
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains(&format!("{PREFIX}oras-cache is ignored")));

    let spec = &object["spec"];
    let env_from = json!([{"secretRef": {"name": "oras-env"}}]);
    let sidecar = container(spec, "containers", "oras");
    let init = container(spec, "initContainers", "oras-init");
    assert_eq!(sidecar["envFrom"], env_from);
    assert_eq!(init["envFrom"], env_from);
    assert!(
        container(spec, "containers", "my-container")
            .get("envFrom")
            .is_none()
    );
    let sidecar_args = strings(&sidecar["args"]);
    assert!(
        sidecar_args.contains(&"--output=ghcr.io/manbat/metrics-operator-results:test".to_string())
    );
    assert!(!sidecar_args.contains(&"--plain-http".to_string()));
    assert!(!strings(&init["args"]).contains(&"--plain-http".to_string()));
    serde_json::from_value::<Pod>(object).expect("a valid Pod");
}

#[test]
fn the_unannotated_pumpkin_pod_is_left_alone() {
    let pod = json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "pumpkin-pod", "namespace": "default"},
        "spec": {"containers": [{"name": "my-container", "image": "ubuntu", "command": ["touch", "hello-world.txt"]}]}
    });
    let host = sample_cache();
    assert!(accepted_warnings(run(&pod, &host)).is_empty());
    assert!(host.calls().is_empty());
}

/// examples/cache/orascache-remote.yaml as the API server returns it (the YAML's OrasCache with the
/// status the controller writes): a pod naming the cache gets the cache's credentials Secret on
/// its agent containers, so the cache's users need not repeat it; its own `oras-env` replaces it.
#[test]
fn a_remote_cache_gives_the_agent_its_credentials_secret() {
    use serde::Deserialize;
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/cache/orascache-remote.yaml"),
    )
    .unwrap();
    let mut cache: Value = serde_yaml::Deserializer::from_str(&example)
        .map(|doc| Value::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "OrasCache")
        .expect("the example has an OrasCache");
    cache["status"] = json!({"address": "ghcr.io", "plainHttp": false,
                             "conditions": [{"type": "Ready", "status": "True"}]});
    let mut host = FakeHost::default();
    host.add_cache_object("workflows", "remote-cache", cache);

    let pod = |annotations: Value| {
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "workflows", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "ubuntu", "command": ["true"]}]}
        })
    };
    let (object, _) = mutated(run(
        &pod(json!({
            "oras.converged-computing.github.io/oras-cache": "remote-cache",
            "oras.converged-computing.github.io/input-uri": "my-github-user/data:1",
            "oras.converged-computing.github.io/output-uri": "my-github-user/out:1",
            "oras.converged-computing.github.io/output-path": "out.txt"
        })),
        &host,
    ));
    let spec = &object["spec"];
    let from_cache = json!([{"secretRef": {"name": "ghcr-credentials"}}]);
    assert_eq!(
        container(spec, "initContainers", "oras-init")["envFrom"],
        from_cache
    );
    assert_eq!(container(spec, "containers", "oras")["envFrom"], from_cache);
    assert!(
        container(spec, "containers", "app")
            .get("envFrom")
            .is_none()
    );
    assert!(
        strings(&container(spec, "initContainers", "oras-init")["args"])
            .contains(&"--input=ghcr.io/my-github-user/data:1".to_string())
    );

    let (object, _) = mutated(run(
        &pod(json!({
            "oras.converged-computing.github.io/oras-cache": "remote-cache",
            "oras.converged-computing.github.io/oras-env": "my-own-token",
            "oras.converged-computing.github.io/input-uri": "my-github-user/data:1"
        })),
        &host,
    ));
    assert_eq!(
        container(&object["spec"], "initContainers", "oras-init")["envFrom"],
        json!([{"secretRef": {"name": "my-own-token"}}])
    );
}
