//! The client configurations `render` prints, used by a real builder: skopeo (containers/image,
//! as buildah and podman) copies an artifact into a plain-HTTP registry with htpasswd auth
//! using only the rendered `registries.conf` (its insecure entry lets it speak HTTP) and the
//! rendered `config.json` (its credentials). Without the rendered `registries.conf` the same
//! copy fails, so the test can fail.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use oras_agent::auth::{BasicCredentials, Credentials};
use oras_agent::transfer::{pack_into_layout, pull_to_dir};
use oras_agent::{ClientOptions, Reference, RegistryClient};
use oras_test_support::Registry;

const USER: &str = "builder";
const PASSWORD: &str = "b-s3cret";
const CONTENT: &[u8] = b"built by a pod that mounts the cache's client configs\n";

/// A remote plain-HTTP cache at `address` with its credentials Secret.
fn cache_file(address: &str) -> String {
    format!(
        "\
apiVersion: cache.converged-computing.github.io/v1alpha1
kind: OrasCache
metadata: {{name: builds, namespace: ci}}
spec:
  deploy: false
  registry: {{address: '{address}', plainHttp: true, credentialsSecret: builds-creds}}
---
apiVersion: v1
kind: Secret
metadata: {{name: builds-creds, namespace: ci}}
stringData: {{ORAS_USER: {USER}, ORAS_PASS: {PASSWORD}}}
"
    )
}

/// Writes the rendered `config.json` and `registries.conf` of the cache into `dir`.
fn rendered_configs(file: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (objects, _) = support::render(file);
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {objects:?}"))
    };
    let secret = find("Secret", "builds-docker-config");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let map = find("ConfigMap", "builds-client-config");
    let config_json = dir.join("config.json");
    let registries_conf = dir.join("registries.conf");
    std::fs::write(&config_json, config).unwrap();
    std::fs::write(
        &registries_conf,
        map["data"]["registries.conf"].as_str().unwrap(),
    )
    .unwrap();
    (config_json, registries_conf)
}

/// `skopeo copy` of the layout to `destination` with this registries.conf and auth file; HOME
/// points at an empty directory so that no user configuration takes part.
fn skopeo_copy(
    work: &Path,
    layout: &Path,
    destination: &str,
    registries_conf: &Path,
    auth_file: &Path,
) -> Output {
    // Signature policy only (containers-policy.json(5)): accept unsigned content.
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default": [{"type": "insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new("skopeo")
        .env("HOME", &home)
        .env("CONTAINERS_REGISTRIES_CONF", registries_conf)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        // skopeo 1.9 (Debian's) reads this file from its --registries-conf flag; newer
        // containers/image also from CONTAINERS_REGISTRIES_CONF. In a pod the ConfigMap's key is
        // mounted at /etc/containers/registries.conf (or in registries.conf.d/).
        .arg("--registries-conf")
        .arg(registries_conf)
        .arg("--policy")
        .arg(&policy)
        .arg("copy")
        .arg("--dest-authfile")
        .arg(auth_file)
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("docker://{destination}"))
        .output()
        .expect("skopeo (scripts/bootstrap.sh installs it)")
}

#[test]
fn skopeo_pushes_to_a_plain_http_cache_with_only_the_rendered_configs() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_basic_auth(USER, PASSWORD);
    let file = work.path().join("cache.yaml");
    std::fs::write(&file, cache_file(&registry.host())).unwrap();
    let (config_json, registries_conf) = rendered_configs(&file, work.path());

    let input = work.path().join("report.txt");
    std::fs::write(&input, CONTENT).unwrap();
    let layout = work.path().join("layout");
    pack_into_layout(std::slice::from_ref(&input), &layout).unwrap();
    let destination = format!("{}/ci/report:v1", registry.host());

    // Without the rendered registries.conf, skopeo speaks HTTPS to the plain-HTTP cache.
    let empty = work.path().join("empty.conf");
    std::fs::write(&empty, "").unwrap();
    let refused = skopeo_copy(work.path(), &layout, &destination, &empty, &config_json);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HTTP response to HTTPS client"),
        "it fails for speaking HTTPS: {stderr}"
    );

    let copied = skopeo_copy(
        work.path(),
        &layout,
        &destination,
        &registries_conf,
        &config_json,
    );
    assert!(
        copied.status.success(),
        "skopeo copy: {}\n{}",
        String::from_utf8_lossy(&copied.stderr),
        registry.log()
    );

    // The artifact is there, as the agent pulls it.
    let mut options = ClientOptions::new(true);
    options.credentials = Credentials::Basic(BasicCredentials {
        user: USER.into(),
        password: PASSWORD.into(),
    });
    let client = RegistryClient::new(options).unwrap();
    let out = work.path().join("pulled");
    pull_to_dir(
        &client,
        &Reference::parse(&destination).unwrap(),
        &out,
        false,
    )
    .unwrap();
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), CONTENT);
}
