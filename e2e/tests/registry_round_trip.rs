//! The policy as an OCI artifact on the real local registry: `kwrun push`, `kwrun pull` gives the
//! same bytes, and `kwrun run registry://...` evaluates what was pushed.

use std::process::Command;

use kwrun::cli::{Cli, CliError, execute};
use kwrun::oci::{WASM_CONFIG, WASM_LAYER};
use oras_agent::{ClientOptions, Reference, RegistryClient};
use oras_cache_e2e::{annotated_policy, annotated_policy_path, fixtures};
use oras_test_support::Registry;
use serde_json::Value;

/// `kwrun ARGS` through the runner's library, as its `main` does: what it prints, or its error.
fn kwrun(args: &[&str]) -> Result<String, CliError> {
    let cli =
        <Cli as clap::Parser>::try_parse_from(std::iter::once("kwrun").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("kwrun {args:?}: {e}"));
    execute(&cli).map(|printed| printed.map(|line| line + "\n").unwrap_or_default())
}

fn kwrun_ok(args: &[&str]) -> String {
    kwrun(args).unwrap_or_else(|e| panic!("kwrun {args:?}: {e}"))
}

#[test]
fn push_pull_and_run_from_the_registry() {
    let registry = Registry::start();
    let uri = format!("registry://{}/policies/oras-cache:v0.1.0", registry.host());
    let policy = annotated_policy_path().display().to_string();

    let pushed: Value =
        serde_json::from_str(&kwrun_ok(&["push", "-o", "json", &policy, &uri])).unwrap();
    let immutable = pushed["immutable_ref"].as_str().unwrap();
    assert!(
        immutable.starts_with(&format!(
            "registry://{}/policies/oras-cache@sha256:",
            registry.host()
        )),
        "{immutable}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pulled = dir.path().join("pulled.wasm");
    kwrun_ok(&["pull", "-o", pulled.to_str().unwrap(), &uri]);
    assert_eq!(std::fs::read(&pulled).unwrap(), annotated_policy());
    let by_digest = dir.path().join("by-digest.wasm");
    kwrun_ok(&["pull", "-o", by_digest.to_str().unwrap(), immutable]);
    assert_eq!(std::fs::read(&by_digest).unwrap(), annotated_policy());

    let request = fixtures()
        .join("requests/hello-world-pod.json")
        .display()
        .to_string();
    let session = fixtures()
        .join("sessions/cache-ready.yml")
        .display()
        .to_string();
    let run = |module: &str| {
        kwrun_ok(&[
            "run",
            "--request-path",
            &request,
            "--allow-context-aware",
            "--replay-host-capabilities-interactions",
            &session,
            module,
        ])
    };
    let remote = run(&uri);
    assert!(remote.contains(r#""patchType":"JSONPatch""#), "{remote}");
    assert_eq!(remote, run(&policy));
}

#[test]
fn the_manifest_has_kubewarden_media_types_and_single_line_annotations() {
    let registry = Registry::start();
    let uri = format!("registry://{}/policies/oras-cache:v1", registry.host());
    kwrun_ok(&["push", annotated_policy_path().to_str().unwrap(), &uri]);

    let reference =
        Reference::parse(&format!("{}/policies/oras-cache:v1", registry.host())).unwrap();
    let client = RegistryClient::new(ClientOptions::new(true)).unwrap();
    let manifest: Value =
        serde_json::from_slice(&client.pull_manifest(&reference).unwrap().bytes).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG);
    assert_eq!(manifest["config"]["size"], 2);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER);
    assert_eq!(manifest["layers"][0]["size"], annotated_policy().len());
    let annotations = manifest["annotations"].as_object().unwrap();
    assert_eq!(annotations["io.kubewarden.policy.title"], "oras-cache");
    assert!(annotations.contains_key("org.opencontainers.image.source"));
    assert!(
        !annotations.contains_key("io.kubewarden.policy.usage"),
        "the multi-line README must not be on the manifest"
    );
}

#[test]
fn an_unannotated_module_is_refused_unless_forced() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.wasm");
    // A module with no metadata section: the preamble and an empty type section.
    std::fs::write(
        &plain,
        [
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
        ],
    )
    .unwrap();
    let uri = format!("registry://{}/policies/plain:v1", registry.host());
    let refused = kwrun(&["push", plain.to_str().unwrap(), &uri]).unwrap_err();
    assert!(refused.to_string().contains("--force"), "{refused}");
    kwrun_ok(&["push", "--force", plain.to_str().unwrap(), &uri]);
}

#[test]
fn oras_py_reads_the_pushed_policy_byte_for_byte() {
    let registry = Registry::start();
    let target = format!("{}/policies/oras-cache:v1", registry.host());
    kwrun_ok(&[
        "push",
        annotated_policy_path().to_str().unwrap(),
        &format!("registry://{target}"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("from-oras-py.wasm");
    // oras-py, an independent OCI client, fetches the manifest and the layer it names.
    let script = r#"
import sys, oras.provider
registry = oras.provider.Registry(insecure=True)
manifest = registry.get_manifest(sys.argv[1], allowed_media_type=["application/vnd.oci.image.manifest.v1+json"])
layer = [l for l in manifest["layers"] if l["mediaType"] == sys.argv[3]][0]
registry.download_blob(sys.argv[1], layer["digest"], sys.argv[2])
print(manifest["config"]["mediaType"])
"#;
    let output = Command::new("python3")
        .args(["-c", script, &target, out.to_str().unwrap(), WASM_LAYER])
        .output()
        .expect("run python3 (oras-py is installed by scripts/bootstrap.sh)");
    assert!(
        output.status.success(),
        "oras-py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), WASM_CONFIG);
    assert_eq!(std::fs::read(&out).unwrap(), annotated_policy());
}
