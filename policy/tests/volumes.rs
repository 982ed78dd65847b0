//! Artifacts as volumes: the ORAS CSI driver's inline volumes (`../shared/seeds/oras-csi-about.txt`)
//! become emptyDirs filled by the `oras-volumes` init container; the application stays as written.

mod common;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use oras_cache_api::agent::{VolumePull, parse_volume_spec};
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::{Verdict, evaluate};
use serde_json::{Value, json};

/// A pod of the seed: one container mounting the inline CSI volume `oras-inline` read-only.
fn seed_pod(name: &str, container: &str, image: &str, mount: &str, command: Value) -> Value {
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [{
                "name": container, "image": image,
                "volumeMounts": [{"name": "oras-inline", "mountPath": mount, "readOnly": true}],
                "command": command
            }],
            "volumes": [{
                "name": "oras-inline",
                "csi": {"driver": "csi.oras.land", "readOnly": true,
                        "volumeAttributes": {"oras.artifact.reference": "ghcr.io/singularityhub/github-ci:latest"}}
            }]
        }
    })
}

/// The seed's `my-singularity-app`, as written there.
fn singularity_pod() -> Value {
    seed_pod(
        "my-singularity-app",
        "singularity-runner",
        "ubuntu",
        "/mnt/oras",
        json!(["sleep", "1000000"]),
    )
}

/// The seed's `my-csi-app-inline`: a jar mounted at `/app`.
fn java_pod() -> Value {
    let mut pod = seed_pod(
        "my-csi-app-inline",
        "my-frontend",
        "openjdk",
        "/app",
        json!(["java", "-jar", "/app/HelloWorldServer.jar"]),
    );
    pod["spec"]["volumes"][0]["csi"]["volumeAttributes"]["oras.artifact.reference"] =
        json!("ghcr.io/oras-project/hello-world-jar:v1");
    pod
}

/// The namespace's OrasCache `orascache-sample`, reconciled.
fn sample_cache() -> FakeHost {
    FakeHost::with_cache(
        "default",
        "orascache-sample",
        "orascache-sample.default.svc.cluster.local:5000",
        Some(true),
    )
}

fn pulls(init: &Value) -> Vec<VolumePull> {
    let spec = strings(&init["args"])
        .into_iter()
        .find_map(|a| a.strip_prefix("--spec=").map(str::to_string))
        .expect("a --spec argument");
    parse_volume_spec(&spec).unwrap()
}

/// What the restricted Pod Security Standard asks of a container
/// (kubernetes.io/docs/concepts/security/pod-security-standards, "Restricted").
fn assert_restricted(container: &Value) {
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(sc["runAsUser"], 0);
}

#[test]
fn the_singularity_seed_pod_gets_its_artifact_in_an_empty_dir_and_the_app_stays_as_written() {
    let original = singularity_pod();
    let host = FakeHost::default();
    let (object, warnings) = mutated(run(&original, &host));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        host.calls(),
        ["list_resources_by_namespace default"],
        "a full reference asks only whether a mirror serves its registry"
    );
    let spec = &object["spec"];
    // The application container, its command and its read-only mount are untouched.
    assert_eq!(spec["containers"], original["spec"]["containers"]);
    assert_eq!(
        spec["volumes"],
        json!([{"name": "oras-inline", "emptyDir": {}}])
    );
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "oras-volumes");
    assert_eq!(
        init["volumeMounts"],
        json!([{"name": "oras-inline", "mountPath": "/mnt/oras-volumes/oras-inline"}])
    );
    assert_restricted(init);
    assert_eq!(init["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(init.get("envFrom").is_none());
    let pulls = pulls(init);
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].volume, "oras-inline");
    assert_eq!(pulls[0].path, "/mnt/oras-volumes/oras-inline");
    assert_eq!(
        pulls[0].reference,
        "ghcr.io/singularityhub/github-ci:latest"
    );
    assert!(!pulls[0].plain_http);
    assert_eq!(
        object["metadata"]["annotations"]["oras.converged-computing.github.io/injected"],
        "true"
    );
    serde_json::from_value::<Pod>(object.clone()).expect("a valid Pod");
    // Idempotent: the rewritten pod has no artifact volume and is marked.
    assert!(matches!(
        evaluate(&create(&object), &Settings::default(), &host),
        Verdict::Accept { .. }
    ));
}

#[test]
fn the_java_seed_pod_keeps_its_command_and_mount() {
    let original = java_pod();
    let (object, _) = mutated(run(&original, &FakeHost::default()));
    assert_eq!(object["spec"]["containers"], original["spec"]["containers"]);
    assert_eq!(
        pulls(&object["spec"]["initContainers"][0])[0].reference,
        "ghcr.io/oras-project/hello-world-jar:v1"
    );
    serde_json::from_value::<Pod>(object).expect("a valid Pod");
}

#[test]
fn options_credentials_and_size_limit_reach_the_volume_and_the_agent() {
    let mut pod = singularity_pod();
    pod["spec"]["volumes"] = json!([
        {"name": "sif", "csi": {"driver": "csi.oras.land",
            "nodePublishSecretRef": {"name": "ghcr-pull"},
            "volumeAttributes": {
                "oras.artifact.reference": "registry.local:5000/org/sif@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "oras.artifact.layers.mediatype": "application/vnd.sylabs.sif.layer.v1.sif",
                "oras.options.plainhttp": "true",
                "oras.options.concurrency": "2",
                "oras.options.sizelimit": "2Gi",
                "oras.options.pullalways": "true"
            }}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "config", "csi": {"driver": "csi.oras.land",
            "volumeAttributes": {"oras.artifact.reference": "ghcr.io/org/config:1", "oras.options.insecure": "true"}}}
    ]);
    let (object, warnings) = mutated(run(&pod, &FakeHost::default()));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("volume \"sif\": oras.options.pullalways"));
    assert!(warnings[1].contains("volume \"config\": oras.options.insecure"));
    let spec = &object["spec"];
    assert_eq!(
        spec["volumes"],
        json!([
            {"name": "sif", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "config", "emptyDir": {}}
        ])
    );
    let init = &spec["initContainers"][0];
    assert_eq!(
        init["envFrom"],
        json!([{"prefix": "ORAS_VOLUME_0_", "secretRef": {"name": "ghcr-pull"}}])
    );
    let pulls = pulls(init);
    assert_eq!(
        pulls[0].media_types,
        ["application/vnd.sylabs.sif.layer.v1.sif"]
    );
    assert!(pulls[0].plain_http);
    assert_eq!(pulls[0].concurrency, Some(2));
    assert_eq!(
        pulls[0].credentials_env_prefix.as_deref(),
        Some("ORAS_VOLUME_0_")
    );
    assert_eq!(pulls[1].volume, "config");
    assert_eq!(pulls[1].credentials_env_prefix, None);
    // The application container never gets the credentials.
    assert!(spec["containers"][0].get("envFrom").is_none());
    serde_json::from_value::<Pod>(object).expect("a valid Pod");
}

#[test]
fn a_pod_naming_a_cache_may_mount_artifacts_relative_to_it_next_to_its_annotations() {
    let mut pod = singularity_pod();
    pod["metadata"]["annotations"] = json!({
        "oras.converged-computing.github.io/oras-cache": "orascache-sample",
        "oras.converged-computing.github.io/input-uri": "workflow/results:step1"
    });
    pod["spec"]["volumes"][0]["csi"]["volumeAttributes"]["oras.artifact.reference"] =
        json!("workflow/summary:step2");
    let host = sample_cache();
    let (object, _) = mutated(run(&pod, &host));
    assert_eq!(
        host.calls().len(),
        1,
        "one lookup serves both: {:?}",
        host.calls()
    );
    let spec = &object["spec"];
    let names: Vec<&str> = spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["oras-volumes", "oras-init"]);
    let pulls = pulls(&spec["initContainers"][0]);
    assert_eq!(
        pulls[0].reference,
        "orascache-sample.default.svc.cluster.local:5000/workflow/summary:step2"
    );
    assert!(pulls[0].plain_http, "the cache's transport");
    serde_json::from_value::<Pod>(object).expect("a valid Pod");
}

#[test]
fn a_job_template_is_served_like_a_pod() {
    let pod = singularity_pod();
    let job = json!({
        "kind": "Job", "apiVersion": "batch/v1",
        "metadata": {"name": "sif-job", "namespace": "default"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": pod["spec"]["containers"],
            "volumes": pod["spec"]["volumes"]
        }}}
    });
    let (object, _) = mutated(run(&job, &FakeHost::default()));
    let spec = &object["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["name"], "oras-volumes");
    assert_eq!(
        spec["volumes"][0],
        json!({"name": "oras-inline", "emptyDir": {}})
    );
    assert_eq!(
        object["spec"]["template"]["metadata"]["annotations"]["oras.converged-computing.github.io/injected"],
        "true"
    );
    serde_json::from_value::<Job>(object).expect("a valid Job");
}

#[test]
fn an_empty_volume_drivers_setting_leaves_csi_volumes_to_a_real_driver() {
    let settings = Settings {
        volume_drivers: Vec::new(),
        ..Settings::default()
    };
    let verdict = evaluate(&create(&singularity_pod()), &settings, &FakeHost::default());
    assert_eq!(verdict, Verdict::Accept { warnings: vec![] });
    // Another driver stays untouched with the default setting too.
    let mut pod = singularity_pod();
    pod["spec"]["volumes"][0]["csi"]["driver"] = json!("secrets-store.csi.k8s.io");
    assert!(accepted_warnings(run(&pod, &FakeHost::default())).is_empty());
}

#[test]
fn every_rejection_names_the_volume_the_attribute_and_the_fix() {
    let with_attributes = |attributes: Value| {
        let mut pod = singularity_pod();
        pod["spec"]["volumes"][0]["csi"]["volumeAttributes"] = attributes;
        pod
    };
    for (pod, expected) in [
        (
            with_attributes(json!({})),
            "volume \"oras-inline\": oras.artifact.reference is missing",
        ),
        (
            with_attributes(json!({"oras.artifact.reference": "ubuntu:22.04"})),
            "volume \"oras-inline\": oras.artifact.reference is not a full reference",
        ),
        (
            with_attributes(
                json!({"oras.artifact.reference": "ghcr.io/a:1", "oras.options.concurrency": "many"}),
            ),
            "volume \"oras-inline\": oras.options.concurrency",
        ),
        (
            with_attributes(
                json!({"oras.artifact.reference": "ghcr.io/a:1", "oras.options.sizelimit": "lots"}),
            ),
            "volume \"oras-inline\": oras.options.sizelimit",
        ),
    ] {
        let message = rejection(run(&pod, &FakeHost::default()));
        assert!(message.starts_with(expected), "{message}");
    }
    // A registry outside allowedRegistries.
    let settings = Settings {
        allowed_registries: vec!["registry.local:5000".into()],
        ..Settings::default()
    };
    let message = match evaluate(&create(&singularity_pod()), &settings, &FakeHost::default()) {
        Verdict::Reject { message, .. } => message,
        other => panic!("{other:?}"),
    };
    assert!(message.contains("volume \"oras-inline\": oras.artifact.reference names registry \"ghcr.io\", which the policy does not allow"), "{message}");
    // A volume named like oras-cache's own.
    let mut pod = singularity_pod();
    pod["spec"]["volumes"][0]["name"] = json!("oras-share");
    let message = rejection(run(&pod, &FakeHost::default()));
    assert!(
        message.contains("volume \"oras-share\": name is the name of oras-cache's own volume"),
        "{message}"
    );
    // An init container already called oras-volumes.
    let mut pod = singularity_pod();
    pod["spec"]["initContainers"] = json!([{"name": "oras-volumes", "image": "busybox"}]);
    let message = rejection(run(&pod, &FakeHost::default()));
    assert!(message.contains("oras-volumes"), "{message}");
}

/// Every Pod of `examples/volumes/` goes through the policy as a user would apply it: each artifact
/// volume becomes an emptyDir filled by `oras-volumes`.
#[test]
fn every_volume_example_is_served() {
    use serde::Deserialize;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/volumes");
    let mut pods = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let mut object = Value::deserialize(document).unwrap();
            if object["kind"] != "Pod" {
                continue;
            }
            object["metadata"]["namespace"] = json!("default");
            let host = sample_cache();
            let (mutated_pod, _) = mutated(run(&object, &host));
            let spec = &mutated_pod["spec"];
            assert_eq!(
                spec["initContainers"][0]["name"], "oras-volumes",
                "{path:?}"
            );
            assert!(
                spec["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|v| v.get("csi").is_none()),
                "{path:?}"
            );
            serde_json::from_value::<Pod>(mutated_pod).expect("a valid Pod");
            pods += 1;
        }
    }
    assert_eq!(pods, 3, "the three example pods");
}
