//! The committed YAML against the code: the CRD and the install manifests are regenerated and
//! compared (drift), and every Kubernetes object in `examples/` and `deploy/` is checked against
//! its schema.

use std::path::{Path, PathBuf};

use oras_cache_controller::crd::crd_yaml;
use oras_cache_controller::manifests::{InstallOptions, render};
mod support;

use support::schema_check::{check_document, parse_documents};

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
    assert_checked(
        &files,
        &[
            "OrasCache/orascache-sample",
            "OrasCache/remote-cache",
            "OrasCache/persistent-cache",
            "OrasCache/original-fields",
            "OrasCache/ghcr-mirror",
            "OrasCache/build-cache",
            "Pod/image-builder",
            "OrasCache/shared-cache",
        ],
    );
}

#[test]
fn every_install_object_fits_its_schema() {
    let files = [
        workspace().join("deploy/oras-cache.yaml"),
        workspace().join("deploy/crd.yaml"),
    ];
    assert_checked(
        &files,
        &[
            "CustomResourceDefinition/orascaches.cache.converged-computing.github.io",
            "Deployment/oras-cache-controller",
            "ClusterAdmissionPolicy/oras-cache",
            "ClusterRoleBinding/oras-cache-policy-server-reader",
        ],
    );
}

/// Checks every object of `files` against its schema, and that `expected` (`Kind/name`) are
/// among them.
fn assert_checked(files: &[PathBuf], expected: &[&str]) {
    let checked = check_files(files);
    for expected in expected {
        assert!(
            checked.iter().any(|c| c.ends_with(expected)),
            "{expected} not among {checked:#?}"
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

fn install_object(kind: &str) -> serde_json::Value {
    parse_documents(&read("deploy/oras-cache.yaml"))
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("the install has no {kind}"))
}

/// Kubewarden's default PolicyServer runs as the ServiceAccount `policy-server` in the namespace of
/// the `kubewarden-defaults` release (`kubewarden`); `policy-server-default` is only its Deployment
/// and Service. Source: kubewarden/helm-charts, `charts/kubewarden-defaults/values.yaml`
/// (`policyServer.serviceAccountName: policy-server`) and `templates/policyserver-default.yaml`.
/// Binding any other name leaves every context-aware lookup of the policy refused.
#[test]
fn the_read_grant_goes_to_the_service_account_kubewarden_runs_its_policy_server_as() {
    let binding = parse_documents(&read("deploy/oras-cache.yaml"))
        .unwrap()
        .into_iter()
        .find(|d| {
            d["kind"] == "ClusterRoleBinding"
                && d["metadata"]["name"] == "oras-cache-policy-server-reader"
        })
        .expect("the install grants the policy server its reads");
    let subject = &binding["subjects"][0];
    assert_eq!(subject["kind"], "ServiceAccount");
    assert_eq!(subject["name"], "policy-server");
    assert_eq!(subject["namespace"], "kubewarden");
    // The chart installs the same default.
    let values: serde_json::Value =
        serde_yaml::from_str(&read("charts/oras-cache/values.yaml")).unwrap();
    assert_eq!(values["policyServer"]["serviceAccount"], "policy-server");
    assert_eq!(values["policyServer"]["namespace"], "kubewarden");
    assert_eq!(values["policy"]["policyServer"], "default");
}

/// Host calls count against the policy's evaluation timeout, 2 s by default in policy-server; the
/// image-config lookup is a registry round trip. Kubewarden accepts `timeoutEvalSeconds` from 2 to
/// 30 (the ClusterAdmissionPolicy CRD's `minimum`/`maximum`) and refuses one greater than
/// `timeoutSeconds` (kubewarden-controller `api/policies/v1/policy_validation.go`,
/// `validateTimeoutSeconds`).
#[test]
fn the_policy_has_an_evaluation_budget_kubewarden_accepts() {
    let policy = install_object("ClusterAdmissionPolicy");
    let eval = policy["spec"]["timeoutEvalSeconds"]
        .as_i64()
        .expect("spec.timeoutEvalSeconds is set");
    let webhook = policy["spec"]["timeoutSeconds"].as_i64().unwrap();
    assert!((2..=30).contains(&eval), "timeoutEvalSeconds {eval}");
    assert!(eval > 2, "more than policy-server's 2 s default");
    assert!(eval <= webhook, "{eval} > timeoutSeconds {webhook}");
}

/// `kwctl scaffold manifest` copies `io.kubewarden.policy.severity` and `.category` from the
/// policy's metadata into the policy's annotations (kwctl `src/scaffold/manifest.rs`,
/// `build_objmetadata`); the shipped policy carries the same values as `metadata.yml`.
#[test]
fn the_policy_carries_the_severity_and_category_of_its_metadata() {
    let metadata: serde_json::Value = serde_yaml::from_str(&read("metadata.yml")).unwrap();
    let policy = install_object("ClusterAdmissionPolicy");
    for key in [
        "io.kubewarden.policy.severity",
        "io.kubewarden.policy.category",
    ] {
        let expected = metadata["annotations"][key]
            .as_str()
            .unwrap_or_else(|| panic!("metadata.yml has no {key}"));
        assert_eq!(policy["metadata"]["annotations"][key], expected, "{key}");
    }
}

/// The Kubewarden webhook refuses changing `spec.policyServer` of an existing policy and moving
/// `spec.mode` from `protect` to `monitor` (kubewarden-controller
/// `api/policies/v1/policy_validation.go`, `validatePolicyServerField` and
/// `validatePolicyModeField`): values.yaml must say so where it offers them.
#[test]
fn values_warn_about_the_policy_fields_kubewarden_will_not_change_in_place() {
    let values = read("charts/oras-cache/values.yaml");
    let lines: Vec<&str> = values.lines().collect();
    // The comment lines right above `  <key>:` (a key of the `policy` block).
    let comment_before = |key: &str| {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("  {key}:")))
            .unwrap_or_else(|| panic!("values.yaml has no policy.{key}"));
        lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        comment_before("policyServer").contains("immutable"),
        "{}",
        comment_before("policyServer")
    );
    assert!(
        comment_before("mode").contains("protect to monitor"),
        "{}",
        comment_before("mode")
    );
}
