//! Pulls through the namespace's mirror: every pull the policy sets up from a registry that a
//! Ready OrasCache mirrors goes to that cache instead, with no credentials; pushes stay.

mod common;

use common::*;
use oras_cache_api::cache::OrasCacheView;
use oras_cache_api::settings::Settings;
use oras_cache_policy::evaluate::evaluate;
use serde_json::{Value, json};

const MIRROR: &str = "ghcr-mirror.default.svc.cluster.local:5000";

fn mirror_of(upstream: &str, ready: &str) -> OrasCacheView {
    serde_json::from_value(json!({
        "metadata": {"name": "ghcr-mirror", "namespace": "default"},
        "spec": {"mirror": {"address": upstream}},
        "status": {"address": MIRROR, "plainHttp": true, "mirrorOf": upstream,
                   "conditions": [{"type": "Ready", "status": ready}]}
    }))
    .unwrap()
}

fn host_with(caches: Vec<OrasCacheView>) -> FakeHost {
    FakeHost {
        listed: Some(Ok(caches)),
        ..FakeHost::default()
    }
}

fn volume_pod(reference: &str, secret: bool) -> Value {
    let mut csi = json!({"driver": "csi.oras.land",
        "volumeAttributes": {"oras.artifact.reference": reference}});
    if secret {
        csi["nodePublishSecretRef"] = json!({"name": "ghcr-pull"});
    }
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "sif", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["true"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]}],
                 "volumes": [{"name": "data", "csi": csi}]}
    })
}

/// A pod whose annotations name ghcr.io as its registry, with `extra` annotations (after the
/// prefix).
fn ghcr_pod(extra: &[(&str, &str)]) -> Value {
    let mut annotations = serde_json::Map::new();
    for (key, value) in [("registry", "ghcr.io"), ("output-path", "out.txt")]
        .iter()
        .chain(extra)
    {
        annotations.insert(format!("{PREFIX}{key}"), json!(value));
    }
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "step", "namespace": "default", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["true"]}]}
    })
}

fn volume_spec(object: &Value) -> Value {
    let init = container(&object["spec"], "initContainers", "oras-volumes");
    let spec = strings(&init["args"])
        .into_iter()
        .find_map(|a| a.strip_prefix("--spec=").map(str::to_string))
        .unwrap();
    serde_json::from_str(&spec).unwrap()
}

#[test]
fn a_volume_from_a_mirrored_registry_is_pulled_through_the_mirror_without_credentials() {
    let host = host_with(vec![mirror_of("ghcr.io", "True")]);
    let (object, warnings) = mutated(run(&volume_pod("GHCR.io/org/sif:1", true), &host));
    let pulls = volume_spec(&object);
    assert_eq!(pulls[0]["reference"], format!("{MIRROR}/org/sif:1"));
    assert_eq!(pulls[0]["plainHttp"], true);
    assert!(pulls[0].get("credentialsEnvPrefix").is_none());
    let init = container(&object["spec"], "initContainers", "oras-volumes");
    assert!(init.get("envFrom").is_none(), "no credentials in the pod");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(
            "volume \"data\" from ghcr.io goes through the mirror OrasCache \"ghcr-mirror\""
        ),
        "{warnings:?}"
    );
    assert_eq!(host.calls(), ["list_resources_by_namespace default"]);
}

#[test]
fn inputs_from_a_mirrored_registry_go_to_the_mirror_and_the_output_is_pushed_upstream() {
    let host = host_with(vec![mirror_of("ghcr.io", "True")]);
    let pod = ghcr_pod(&[
        ("oras-env", "ghcr-creds"),
        ("input-uri", "org/data:1"),
        ("output-uri", "org/result:1"),
    ]);
    let (object, warnings) = mutated(run(&pod, &host));
    let spec = &object["spec"];
    let init = strings(&container(spec, "initContainers", "oras-init")["args"]);
    assert!(
        init.contains(&format!("--input={MIRROR}/org/data:1")),
        "{init:?}"
    );
    assert!(
        init.contains(&"--plain-http".to_string()),
        "the mirror's transport"
    );
    let sidecar = strings(&container(spec, "containers", "oras")["args"]);
    assert!(
        sidecar.contains(&"--output=ghcr.io/org/result:1".to_string()),
        "{sidecar:?}"
    );
    assert!(!sidecar.contains(&"--plain-http".to_string()));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("pulling the inputs from ghcr.io goes through the mirror"))
    );
}

#[test]
fn other_registries_unready_mirrors_and_pushes_only_are_left_alone() {
    for caches in [
        vec![mirror_of("docker.io", "True")],
        vec![mirror_of("ghcr.io", "False")],
        vec![],
    ] {
        let (object, warnings) = mutated(run(
            &volume_pod("ghcr.io/org/sif:1", false),
            &host_with(caches),
        ));
        assert_eq!(volume_spec(&object)[0]["reference"], "ghcr.io/org/sif:1");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    // A pod that only pushes to a remote registry lists nothing.
    let host = host_with(vec![mirror_of("ghcr.io", "True")]);
    let pod = ghcr_pod(&[("output-uri", "org/result:1")]);
    mutated(run(&pod, &host));
    assert!(host.calls().is_empty(), "{:?}", host.calls());
}

#[test]
fn a_failed_listing_leaves_pulls_where_they_were_with_a_warning() {
    let host = FakeHost {
        listed: Some(Err("Callback evaluation failure: forbidden".into())),
        ..FakeHost::default()
    };
    let (object, warnings) = mutated(run(&volume_pod("ghcr.io/org/sif:1", false), &host));
    assert_eq!(volume_spec(&object)[0]["reference"], "ghcr.io/org/sif:1");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("could not be listed (Callback evaluation failure: forbidden)"));
    // Without context-aware reads the policy asks nothing.
    let settings = Settings {
        context_aware: false,
        ..Settings::default()
    };
    let host = host_with(vec![mirror_of("ghcr.io", "True")]);
    let verdict = evaluate(
        &create(&volume_pod("ghcr.io/org/sif:1", false)),
        &settings,
        &host,
    );
    let (object, _) = mutated(verdict);
    assert_eq!(volume_spec(&object)[0]["reference"], "ghcr.io/org/sif:1");
    assert!(host.calls().is_empty());
}

/// A mirror serves pulls only (distribution answers writes `405 UNSUPPORTED`): a pod that names a
/// mirror as its cache may pull from it, but an output to push is refused at admission, naming the
/// cache and the fix, instead of failing in the sidecar.
#[test]
fn an_output_pushed_to_a_mirror_cache_is_refused_at_admission() {
    let mut host = FakeHost::default();
    host.add_cache_object(
        "default",
        "ghcr-mirror",
        json!({"status": {"address": MIRROR, "plainHttp": true, "mirrorOf": "ghcr.io",
                          "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let pod = |annotations: Value| {
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "step", "namespace": "default", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["true"]}]}
        })
    };
    let message = rejection(run(
        &pod(json!({
            format!("{PREFIX}oras-cache"): "ghcr-mirror",
            format!("{PREFIX}output-uri"): "org/result:1",
            format!("{PREFIX}output-path"): "out.txt"
        })),
        &host,
    ));
    assert!(
        message.contains("OrasCache \"ghcr-mirror\" is a mirror of ghcr.io and serves pulls only"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{PREFIX}output-uri")),
        "{message}"
    );
    // Pulling from it is fine.
    let (object, _) = mutated(run(
        &pod(json!({
            format!("{PREFIX}oras-cache"): "ghcr-mirror",
            format!("{PREFIX}input-uri"): "org/data:1"
        })),
        &host,
    ));
    let init = strings(&container(&object["spec"], "initContainers", "oras-init")["args"]);
    assert!(
        init.contains(&format!("--input={MIRROR}/org/data:1")),
        "{init:?}"
    );
}
