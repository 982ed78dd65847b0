//! Replicas of a cache as real processes: two registry processes (distribution v3, what a cache
//! runs in a cluster, and again Debian's 2.8) on one storage directory, each started with the registry container's environment that `render` prints for a
//! three-replica cache on a ReadWriteMany claim (the kept `<cache>-http-secret` resolved to one
//! value). A chunked upload started on one finishes on the other and both serve the blob; with
//! the secret resolved differently per process (what replicas without the shared Secret would
//! have) the upload cannot move, so the test can fail.

mod support;

use std::collections::BTreeMap;

use oras_test_support::http::{Client, sha256_digest};
use oras_test_support::{Distribution, Registry};
use serde_json::Value;

const REPOSITORY: &str = "steps/out";
const CACHE: &str = "\
apiVersion: cache.converged-computing.github.io/v1alpha1
kind: OrasCache
metadata: {name: shared, namespace: steps}
spec:
  replicas: 3
  storage: {size: 10Gi, accessMode: ReadWriteMany}
";

/// The registry container `render` prints for [`CACHE`].
fn rendered_container() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.yaml");
    std::fs::write(&file, CACHE).unwrap();
    let (objects, _) = support::render(&file);
    let statefulset = objects.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
    assert_eq!(statefulset["spec"]["replicas"], 3);
    statefulset["spec"]["template"]["spec"]["containers"][0].clone()
}

/// The container's environment, each `secretKeyRef` read from `secrets` (name → key → value).
fn environment(
    container: &Value,
    secrets: &BTreeMap<&str, BTreeMap<&str, &str>>,
) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            let name = var["name"].as_str().unwrap().to_string();
            let value = match var["value"].as_str() {
                Some(value) => value.to_string(),
                None => {
                    let key_ref = &var["valueFrom"]["secretKeyRef"];
                    secrets[key_ref["name"].as_str().unwrap()][key_ref["key"].as_str().unwrap()]
                        .to_string()
                }
            };
            (name, value)
        })
        .collect()
}

fn start(
    distribution: Distribution,
    storage: &std::path::Path,
    env: &[(String, String)],
) -> Registry {
    let mut options = Registry::builder()
        .distribution(distribution)
        .storage(storage);
    for (name, value) in env {
        options = options.env(name, value);
    }
    options.start().expect("start a replica")
}

/// A chunked upload started on `first` and finished on `second`: the `PUT`'s status.
fn upload_across(first: &Registry, second: &Registry, data: &[u8]) -> (u16, String) {
    oras_test_support::http::upload_across(first.addr(), second.addr(), REPOSITORY, data).unwrap()
}

#[test]
fn replicas_with_the_rendered_environment_share_upload_sessions() {
    let container = rendered_container();
    let kept = BTreeMap::from([(
        "shared-http-secret",
        BTreeMap::from([("REGISTRY_HTTP_SECRET", "one value the controller made")]),
    )]);
    let env = environment(&container, &kept);
    assert!(
        env.iter().any(|(name, _)| name == "REGISTRY_HTTP_SECRET"),
        "{env:?}"
    );
    for distribution in Distribution::ALL {
        let storage = tempfile::tempdir().unwrap();
        let (one, two) = (
            start(distribution, storage.path(), &env),
            start(distribution, storage.path(), &env),
        );
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let (status, body) = upload_across(&one, &two, &data);
        assert_eq!(status, 201, "{distribution:?}: {body}");
        for replica in [&one, &two] {
            let blob = Client::new(replica.addr())
                .get_blob(REPOSITORY, &sha256_digest(&data))
                .unwrap();
            assert_eq!(blob.status, 200, "{distribution:?}");
            assert!(
                blob.body == data,
                "{distribution:?}: {} serves the blob",
                replica.host()
            );
        }
    }
}

#[test]
fn replicas_with_different_secrets_cannot_share_an_upload() {
    let container = rendered_container();
    let secret = |value| {
        BTreeMap::from([(
            "shared-http-secret",
            BTreeMap::from([("REGISTRY_HTTP_SECRET", value)]),
        )])
    };
    for distribution in Distribution::ALL {
        let storage = tempfile::tempdir().unwrap();
        let one = start(
            distribution,
            storage.path(),
            &environment(&container, &secret("one")),
        );
        let two = start(
            distribution,
            storage.path(),
            &environment(&container, &secret("two")),
        );
        let (status, body) = upload_across(&one, &two, b"half and half");
        assert!(
            !(200..300).contains(&status),
            "{distribution:?}: a session signed with another secret is refused: {status} {body}"
        );
    }
}
