//! The client configurations `render` prints, used by real clients:
//! - skopeo (containers/image, as buildah and podman) copies an artifact into a plain-HTTP
//!   registry with htpasswd auth using only the rendered `registries.conf` (its insecure entry
//!   lets it speak HTTP) and the rendered `config.json` (its credentials); without the rendered
//!   `registries.conf` the same copy fails;
//! - the oras CLI pulls from that registry with the rendered `config.json` as its
//!   `--registry-config`, and is refused without it;
//! - for a mirror cache, skopeo reads an artifact by its upstream name through the mirror the
//!   rendered `registries.conf` declares (`[[registry.mirror]]`), with no credentials of its own;
//!   without the declaration the upstream refuses it. The oras CLI, which has no notion of
//!   mirrors, pulls through the cache's address with the rendered `config.json`.
//!
//! A rendered address is the cache's Service name (`<cache>.<namespace>.svc.<domain>:5000`),
//! which resolves to the registry in a cluster; here it is replaced by the loopback address of
//! the registry playing the cache, and nothing else in the files is touched.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use oras_agent::auth::{BasicCredentials, Credentials};
use oras_agent::transfer::{pack_into_layout, pull_to_dir};
use oras_agent::{ClientOptions, Reference, RegistryClient};
use oras_test_support::oras_cli;
use oras_test_support::{Distribution, Registry, Upstream};

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

/// Writes the rendered `config.json` and `registries.conf` of the cache `builds` into `dir`.
fn rendered_configs(file: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    rendered_configs_of(file, "builds", dir, None)
}

/// Writes the rendered `config.json` and `registries.conf` of cache `name` into `dir`, with the
/// cache's rendered address replaced by `(rendered, loopback)` when given.
fn rendered_configs_of(
    file: &Path,
    name: &str,
    dir: &Path,
    address: Option<(&str, &str)>,
) -> (PathBuf, PathBuf) {
    let (objects, _) = support::render(file);
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {objects:?}"))
    };
    let secret = find("Secret", &format!("{name}-docker-config"));
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let map = find("ConfigMap", &format!("{name}-client-config"));
    let resolve = |text: &str| match address {
        Some((rendered, loopback)) => {
            assert!(text.contains(rendered), "{rendered} is not in {text}");
            text.replace(rendered, loopback)
        }
        None => text.to_string(),
    };
    let config_json = dir.join("config.json");
    let registries_conf = dir.join("registries.conf");
    std::fs::write(&config_json, resolve(&String::from_utf8(config).unwrap())).unwrap();
    std::fs::write(
        &registries_conf,
        resolve(map["data"]["registries.conf"].as_str().unwrap()),
    )
    .unwrap();
    (config_json, registries_conf)
}

/// `skopeo inspect --raw docker://<reference>` (the manifest) with this registries.conf and
/// no credentials at all; HOME points at an empty directory.
fn skopeo_inspect_raw(work: &Path, reference: &str, registries_conf: &Path) -> Output {
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new("skopeo")
        .env("HOME", &home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .arg("--registries-conf")
        .arg(registries_conf)
        .args(["inspect", "--raw", "--no-creds"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo (scripts/bootstrap.sh installs it)")
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

#[test]
fn the_oras_cli_pulls_with_the_rendered_docker_config_and_is_refused_without_it() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_basic_auth(USER, PASSWORD);
    let file = work.path().join("cache.yaml");
    std::fs::write(&file, cache_file(&registry.host())).unwrap();
    let (config_json, _) = rendered_configs(&file, work.path());
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("report.txt"), CONTENT).unwrap();
    let reference = format!("{}/ci/report:v1", registry.host());
    oras_cli::run_ok(
        oras_cli::command(["push", "--plain-http", "--registry-config"])
            .arg(&config_json)
            .arg(&reference)
            .arg("report.txt")
            .current_dir(&src),
    );

    // `--registry-config` names the docker config.json oras reads credentials from (oras
    // v1.3.6 cmd/oras/internal/option/remote.go, "path of the authentication file").
    let out = work.path().join("pulled");
    oras_cli::run_ok(
        oras_cli::command(["pull", "--plain-http", "--registry-config"])
            .arg(&config_json)
            .arg(&reference)
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), CONTENT);

    let empty = work.path().join("empty.json");
    std::fs::write(&empty, "{}").unwrap();
    let refused = oras_cli::command(["pull", "--plain-http", "--registry-config"])
        .arg(&empty)
        .arg(&reference)
        .arg("-o")
        .arg(work.path().join("refused"))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    // oras-go v2.7.0 registry/remote/auth/client.go `ErrBasicCredentialNotFound`: the registry
    // asked for Basic credentials and the file had none for it.
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("basic credential not found"),
        "refused for credentials: {stderr}"
    );
}

#[test]
fn skopeo_reads_an_upstream_name_through_the_mirror_the_rendered_registries_conf_declares() {
    let work = tempfile::tempdir().unwrap();
    // distribution v3 on both sides, what a mirror cache deploys; the upstream needs credentials
    // that only the mirror holds.
    let upstream = Registry::builder()
        .distribution(Distribution::V3)
        .basic_auth(USER, PASSWORD)
        .start()
        .unwrap();
    let mut mirror = Registry::builder()
        .distribution(Distribution::V3)
        .mirror_of(Upstream::of(&upstream))
        .access_log()
        .start()
        .unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("report.txt"), CONTENT).unwrap();
    let upstream_config = work.path().join("upstream.json");
    std::fs::write(
        &upstream_config,
        serde_json::json!({"auths": {upstream.host(): {
            "auth": base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        }}})
        .to_string(),
    )
    .unwrap();
    let upstream_ref = format!("{}/workflow/report:v1", upstream.host());
    oras_cli::run_ok(
        oras_cli::command(["push", "--plain-http", "--registry-config"])
            .arg(&upstream_config)
            .arg(&upstream_ref)
            .arg("report.txt")
            .current_dir(&src),
    );
    let pushed = oras_cli::run_ok(
        oras_cli::command(["manifest", "fetch", "--plain-http", "--registry-config"])
            .arg(&upstream_config)
            .arg(&upstream_ref),
    )
    .stdout;

    let file = work.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "\
apiVersion: cache.converged-computing.github.io/v1alpha1
kind: OrasCache
metadata: {{name: upstream-mirror, namespace: steps}}
spec:
  mirror: {{address: '{}', plainHttp: true}}
",
            upstream.host()
        ),
    )
    .unwrap();
    let configs = work.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let (config_json, registries_conf) = rendered_configs_of(
        &file,
        "upstream-mirror",
        &configs,
        Some((
            "upstream-mirror.steps.svc.cluster.local:5000",
            &mirror.host(),
        )),
    );

    // By the upstream's name, with no credentials: the mirror answers.
    let through = skopeo_inspect_raw(work.path(), &upstream_ref, &registries_conf);
    assert!(
        through.status.success(),
        "skopeo through the declared mirror: {}\n{}",
        String::from_utf8_lossy(&through.stderr),
        mirror.log()
    );
    assert_eq!(through.stdout, pushed, "the manifest the upstream holds");
    let asked = mirror.settled_requests().unwrap();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("GET /v2/workflow/report/manifests/v1 ")),
        "the mirror served it: {asked:?}"
    );

    // Without the mirror declaration, the same read goes to the upstream, which refuses it.
    let upstream_only = work.path().join("upstream-only.conf");
    std::fs::write(
        &upstream_only,
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            upstream.host()
        ),
    )
    .unwrap();
    let direct = skopeo_inspect_raw(work.path(), &upstream_ref, &upstream_only);
    assert!(!direct.status.success(), "{direct:?}");
    let stderr = String::from_utf8_lossy(&direct.stderr);
    assert!(
        stderr.contains("unauthorized") || stderr.contains("401"),
        "the upstream refused an anonymous read: {stderr}"
    );

    // The oras CLI has no mirror setting: it pulls by the cache's address, with the rendered
    // config.json (an entry for the cache without credentials; the mirror holds them).
    let out = work.path().join("pulled");
    oras_cli::run_ok(
        oras_cli::command(["pull", "--plain-http", "--registry-config"])
            .arg(&config_json)
            .arg(format!("{}/workflow/report:v1", mirror.host()))
            .arg("-o")
            .arg(&out),
    );
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), CONTENT);
}
