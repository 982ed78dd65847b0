//! The committed YAML against the code: the CRD and the install manifests are regenerated and
//! compared (drift), and every Kubernetes object in `examples/` and `deploy/` is checked against
//! its schema.

use std::path::{Path, PathBuf};

use oras_cache_controller::crd::crd_yaml;
use oras_cache_controller::manifests::{InstallOptions, render};
use oras_cache_controller::schema_check::{check_document, parse_documents};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

const REGENERATE: &str = "run `make controller-manifests` and commit the result";

#[test]
fn committed_crd_matches_the_generated_one() {
    assert!(
        read("deploy/crd.yaml") == crd_yaml(),
        "deploy/crd.yaml is stale: {REGENERATE}"
    );
    assert!(
        read("charts/oras-cache/crds/orascaches.yaml") == crd_yaml(),
        "the chart's CRD is stale: {REGENERATE}"
    );
}

#[test]
fn committed_install_yaml_matches_the_rendered_one() {
    assert!(
        read("deploy/oras-cache.yaml") == render(&InstallOptions::default()),
        "deploy/oras-cache.yaml is stale: {REGENERATE}"
    );
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

fn check_files(files: &[PathBuf]) -> Vec<String> {
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs = match parse_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                failures.push(format!("{}: not YAML: {e}", file.display()));
                continue;
            }
        };
        for doc in docs {
            // YAML that is not a Kubernetes object (settings, configs) has neither field.
            if doc.get("apiVersion").is_none() && doc.get("kind").is_none() {
                continue;
            }
            match check_document(&doc) {
                Ok(name) => checked.push(format!("{}: {name}", file.display())),
                Err(e) => failures.push(format!("{}: {e}", file.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "schema check failed:\n{}",
        failures.join("\n")
    );
    checked
}

#[test]
fn every_example_object_fits_its_schema() {
    let mut files = Vec::new();
    yaml_files(&workspace().join("examples"), &mut files);
    let checked = check_files(&files);
    for expected in [
        "OrasCache/orascache-sample",
        "OrasCache/remote-cache",
        "OrasCache/persistent-cache",
        "OrasCache/original-fields",
    ] {
        assert!(
            checked.iter().any(|c| c.ends_with(expected)),
            "{expected} not among {checked:#?}"
        );
    }
}

#[test]
fn every_install_object_fits_its_schema() {
    let files = [
        workspace().join("deploy/oras-cache.yaml"),
        workspace().join("deploy/crd.yaml"),
    ];
    let checked = check_files(&files);
    for expected in [
        "CustomResourceDefinition/orascaches.cache.converged-computing.github.io",
        "Deployment/oras-cache-controller",
        "ClusterAdmissionPolicy/oras-cache",
        "ClusterRoleBinding/oras-cache-policy-server-reader",
    ] {
        assert!(
            checked.iter().any(|c| c.ends_with(expected)),
            "{expected} missing"
        );
    }
}

#[test]
fn the_policy_settings_are_valid_policy_settings() {
    let docs = parse_documents(&read("deploy/oras-cache.yaml")).unwrap();
    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ClusterAdmissionPolicy")
        .expect("the install has a ClusterAdmissionPolicy");
    let settings: oras_cache_api::settings::Settings =
        serde_json::from_value(policy["spec"]["settings"].clone())
            .expect("settings deserialize with the policy's own type (unknown fields refused)");
    settings
        .validate()
        .expect("the policy accepts the settings");
    assert_eq!(
        settings.agent_image,
        oras_cache_controller::manifests::DEFAULT_AGENT_IMAGE
    );
    assert!(
        settings.context_aware,
        "the install grants context-aware reads"
    );
}
