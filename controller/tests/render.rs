//! `oras-cache-controller render` on every cache example: each prints what the controller would
//! apply, every printed object fits its schema, and no Secret value is printed.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::render;
use support::schema_check::{check_document, parse_documents};

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/cache");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The cache example whose file name is `name`.
fn example(name: &str) -> PathBuf {
    examples()
        .into_iter()
        .find(|f| f.ends_with(name))
        .unwrap_or_else(|| panic!("no example {name}"))
}

/// `kind/name` of each object, in order.
fn kinds_and_names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_cache_example_renders_objects_that_fit_their_schema() {
    let files = examples();
    assert!(files.len() >= 5, "{files:?}");
    for file in &files {
        let (objects, stderr) = render(file);
        assert!(stderr.is_empty(), "{}: {stderr}", file.display());
        let source = std::fs::read_to_string(file).unwrap();
        for object in &objects {
            if object["kind"] == "OrasCache" {
                assert!(object["status"].is_object(), "{object}");
                continue;
            }
            check_document(object).unwrap_or_else(|e| panic!("{}: {e}\n{object}", file.display()));
        }
        let printed = serde_json::to_string(&objects).unwrap();
        for secret in parse_documents(&source)
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "Secret")
        {
            for value in secret["stringData"].as_object().into_iter().flatten() {
                assert!(
                    !printed.contains(&format!("{}", value.1)),
                    "{}: a Secret value was printed",
                    file.display()
                );
            }
        }
    }
}

/// The builder pod mounts exactly the Secret, ConfigMap and keys the controller makes.
#[test]
fn the_builder_pod_mounts_the_client_configs_its_cache_gets() {
    let file = example("builder-pod.yaml");
    let (objects, _) = render(&file);
    let status = &objects.iter().find(|o| o["kind"] == "OrasCache").unwrap()["status"];
    let pod = parse_documents(&std::fs::read_to_string(&file).unwrap())
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "Pod")
        .unwrap();
    let volumes = pod["spec"]["volumes"].to_string();
    for name in [&status["dockerConfigSecret"], &status["clientConfigMap"]] {
        assert!(
            volumes.contains(name.as_str().unwrap()),
            "{name} in {volumes}"
        );
    }
    let map = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let registries = map["data"]["registries.conf"].as_str().unwrap();
    assert!(
        registries.contains("location = \"build-cache.workflows.svc.cluster.local:5000\""),
        "{registries}"
    );
    let pod_text = pod.to_string();
    assert!(pod_text.contains("build-cache.workflows.svc.cluster.local:5000/steps/app:v1"));
    assert!(pod_text.contains("\"subPath\":\"registries.conf\""));
    assert!(pod_text.contains("\"key\":\".dockerconfigjson\""));
}

#[test]
fn the_replicas_example_renders_the_kept_secret_the_budget_and_three_pods() {
    let (objects, _) = render(&example("orascache-replicas-s3.yaml"));
    assert_eq!(
        kinds_and_names(&objects),
        [
            "Secret/shared-cache-http-secret",
            "PodDisruptionBudget/shared-cache",
            "Service/shared-cache",
            "StatefulSet/shared-cache",
            "Secret/shared-cache-docker-config",
            "ConfigMap/shared-cache-client-config",
            "OrasCache/shared-cache",
        ]
    );
    let statefulset = &objects[3];
    assert_eq!(statefulset["spec"]["replicas"], 3);
    let pod = statefulset["spec"]["template"]["spec"].to_string();
    assert!(
        pod.contains("\"secretRef\":{\"name\":\"registry-s3\""),
        "{pod}"
    );
    assert!(pod.contains("shared-cache-http-secret"), "{pod}");
    assert!(pod.contains("topologySpreadConstraints"), "{pod}");
}

#[test]
fn the_ghcr_mirror_example_renders_a_pull_through_registry() {
    let (objects, _) = render(&example("orascache-mirror-ghcr.yaml"));
    assert_eq!(
        kinds_and_names(&objects),
        [
            "Service/ghcr-mirror",
            "StatefulSet/ghcr-mirror",
            "Secret/ghcr-mirror-docker-config",
            "ConfigMap/ghcr-mirror-client-config",
            "OrasCache/ghcr-mirror",
        ]
    );
    let container = &objects[1]["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].to_string();
    assert!(
        env.contains("https://$(REGISTRY_PROXY_USERNAME):$(REGISTRY_PROXY_PASSWORD)@ghcr.io"),
        "{env}"
    );
    // No `image` in the example: distribution v3, which fetches each blob once.
    assert_eq!(
        container["image"],
        "ghcr.io/distribution/distribution:3.1.1"
    );
    assert_eq!(objects[4]["status"]["mirrorOf"], "ghcr.io");
    assert_eq!(
        objects[4]["status"]["address"],
        "ghcr-mirror.workflows.svc.cluster.local:5000"
    );
}
