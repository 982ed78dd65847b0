//! The README's install commands, as written, against a real API server (kubectl and helm v4
//! from scripts/peers.sh, with Kubewarden's ClusterAdmissionPolicy CRD from its controller's Go
//! module installed first, as the README asks): each ```sh line of the install section that
//! installs is run, and the objects the README's table lists are there afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use oras_test_support::cluster::ControlPlane;
use oras_test_support::peers;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The install commands of the README's install section: the lines of its first two ```sh
/// blocks (the kubectl file, then Helm).
fn readme_install_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("<!-- section: install -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /section: install -->").next())
        .expect("README.md has an install section");
    section
        .split("```sh")
        .skip(1)
        .take(2)
        .map(|block| block.split("```").next().unwrap().trim().to_string())
        .collect()
}

/// A control plane with Kubewarden's CRD, as a cluster with Kubewarden has it.
fn plane_with_kubewarden() -> ControlPlane {
    let plane = ControlPlane::start().expect("a control plane (make peers builds its parts)");
    plane.install_kubewarden_crd().unwrap();
    plane
}

/// Runs one README command line with the plane's kubectl and helm, in the repository root.
fn run_readme_line(plane: &ControlPlane, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (program, args) = words.split_first().unwrap();
    let binary = match *program {
        "kubectl" | "helm" => peers::binary(program),
        other => panic!("the install section runs {other}, which the test does not know"),
    };
    let output = Command::new(binary)
        .args(args)
        .arg("--kubeconfig")
        .arg(plane.admin_kubeconfig())
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the README's table says is installed, in `namespace`.
fn assert_installed(plane: &ControlPlane, namespace: &str) {
    for object in [
        "crd/orascaches.cache.converged-computing.github.io",
        "clusterrole/oras-cache-controller",
        "clusterrolebinding/oras-cache-controller",
        "clusterrole/oras-cache-policy-server-reader",
        "clusterrolebinding/oras-cache-policy-server-reader",
        "clusteradmissionpolicies.policies.kubewarden.io/oras-cache",
    ] {
        plane
            .kubectl_ok(&["get", object])
            .unwrap_or_else(|e| panic!("{object} is not installed: {e}"));
    }
    for object in [
        "serviceaccount/oras-cache-controller",
        "deployment/oras-cache-controller",
    ] {
        plane
            .kubectl_ok(&["get", object, "-n", namespace])
            .unwrap_or_else(|e| panic!("{object} is not in {namespace}: {e}"));
    }
    let allowed = plane
        .kubectl()
        .args([
            "auth",
            "can-i",
            "list",
            "orascaches.cache.converged-computing.github.io",
            "--all-namespaces",
            "--as",
            "system:serviceaccount:kubewarden:policy-server",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&allowed.stdout).trim(), "yes");
}

#[test]
fn the_readme_kubectl_install_is_accepted_as_written() {
    let commands = readme_install_commands();
    let plane = plane_with_kubewarden();
    let lines: Vec<&str> = commands[0].lines().collect();
    assert_eq!(lines, ["kubectl apply -f deploy/oras-cache.yaml"]);
    run_readme_line(&plane, lines[0]);
    assert_installed(&plane, "oras-cache-system");
    // The namespace the file makes enforces the restricted Pod Security Standard.
    let labels = plane
        .kubectl_ok(&[
            "get",
            "namespace",
            "oras-cache-system",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .unwrap();
    assert!(
        labels.contains("\"pod-security.kubernetes.io/enforce\":\"restricted\""),
        "{labels}"
    );
}

#[test]
fn the_chart_lints_and_the_readme_helm_install_is_accepted_as_written() {
    let lint = Command::new(peers::binary("helm"))
        .args(["lint", "charts/oras-cache"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    let commands = readme_install_commands();
    let plane = plane_with_kubewarden();
    let lines: Vec<&str> = commands[1].lines().collect();
    assert_eq!(
        lines,
        ["helm install oras-cache charts/oras-cache -n oras-cache-system --create-namespace"]
    );
    let installed = run_readme_line(&plane, lines[0]);
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert_installed(&plane, "oras-cache-system");
    // The release's chart values reach the objects: the policy's module and settings.
    let module = plane
        .kubectl_ok(&[
            "get",
            "clusteradmissionpolicies.policies.kubewarden.io",
            "oras-cache",
            "-o",
            "jsonpath={.spec.module}",
        ])
        .unwrap();
    assert_eq!(
        module,
        "registry://ghcr.io/oras-cache/policies/oras-cache:v0.1.0"
    );
    run_readme_line(&plane, "helm uninstall oras-cache -n oras-cache-system");
}
