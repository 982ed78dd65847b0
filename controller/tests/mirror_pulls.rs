//! The mirror end to end on loopback, with real processes: an upstream registry with htpasswd
//! auth holds an artifact; a second registry runs with exactly the registry container's
//! environment that `oras-cache-controller render` prints for a mirror cache (its `secretKeyRef`s
//! resolved from the Secret in the same file, its `$(VAR)` references expanded as the kubelet
//! does). Twenty pulls through it by the agent's client, with no credentials, all succeed and
//! verify; the upstream serves each blob during the first pull only; a push to the mirror fails.
//! Both run distribution v3 (what the controller deploys for a mirror), and again Debian's 2.8.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oras_agent::auth::{BasicCredentials, Credentials};
use oras_agent::transfer::{pull_to_dir, push_paths};
use oras_agent::{ClientOptions, Reference, RegistryClient};
use oras_test_support::{Distribution, Registry};
use serde_json::Value;

const USER: &str = "mirror-bot";
const PULL_PASSWORD: &str = "pull-s3cret";
const REPOSITORY: &str = "workflow/inputs";
const PULLS: usize = 20;

/// The agent's registry client: plain HTTP, with these credentials.
fn client(credentials: Credentials) -> RegistryClient {
    let mut options = ClientOptions::new(true);
    options.credentials = credentials;
    RegistryClient::new(options).unwrap()
}

/// The cache file a user would write: a mirror of `upstream` and its credentials Secret in the
/// user guide's shape (separate push and pull passwords; the mirror must read the pull one).
fn cache_file(upstream: &str) -> String {
    format!(
        "\
apiVersion: cache.converged-computing.github.io/v1alpha1
kind: OrasCache
metadata: {{name: upstream-mirror, namespace: steps}}
spec:
  mirror:
    address: '{upstream}'
    plainHttp: true
    credentialsSecret: upstream-creds
    repository: {REPOSITORY}
---
apiVersion: v1
kind: Secret
metadata: {{name: upstream-creds, namespace: steps}}
stringData:
  ORAS_USER: {USER}
  ORAS_PUSH_PASS: not-the-pull-password
  ORAS_PULL_PASS: {PULL_PASSWORD}
"
    )
}

/// Expands `$(NAME)` from `defined`, as the kubelet expands a container's environment (a
/// reference to an undefined variable stays as written; `$$` is a literal `$`).
fn expand(value: &str, defined: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .filter(|(name, _)| defined.contains_key(*name))
        {
            out.push_str(&defined[name]);
            rest = after;
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The registry container's environment with Secret references resolved from `secret`.
fn container_environment(
    container: &Value,
    secret: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut defined = BTreeMap::new();
    let mut env = Vec::new();
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = if let Some(literal) = var["value"].as_str() {
            expand(literal, &defined)
        } else {
            let key_ref = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(key_ref["name"], "upstream-creds", "{var}");
            secret[key_ref["key"].as_str().unwrap()].clone()
        };
        defined.insert(name.clone(), value.clone());
        env.push((name, value));
    }
    env
}

/// The upstream's `GET`s of each blob so far, every request logged.
fn blob_fetches(upstream: &mut Registry, digests: &[String]) -> Vec<usize> {
    digests
        .iter()
        .map(|digest| upstream.blob_fetches(digest).unwrap())
        .collect()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let one = dir.join("model.bin");
    let two = dir.join("notes.txt");
    let model: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&one, &model).unwrap();
    std::fs::write(&two, b"pulled through the mirror\n").unwrap();
    vec![(one, model), (two, b"pulled through the mirror\n".to_vec())]
}

#[test]
fn twenty_pulls_through_the_rendered_mirror_fetch_each_blob_from_the_upstream_once() {
    twenty_pulls_through_the_rendered_mirror(Distribution::V3);
}

#[test]
fn twenty_pulls_through_a_distribution_2_8_mirror_read_the_upstream_during_the_first_only() {
    twenty_pulls_through_the_rendered_mirror(Distribution::Debian);
}

/// The mirror case with both registries running `distribution`.
fn twenty_pulls_through_the_rendered_mirror(distribution: Distribution) {
    let work = tempfile::tempdir().unwrap();
    let mut upstream = Registry::builder()
        .distribution(distribution)
        .basic_auth(USER, PULL_PASSWORD)
        .access_log()
        .start()
        .expect("start the upstream (scripts/bootstrap.sh installs docker-registry, scripts/peers.sh builds v3)");
    let inputs = files(work.path());
    let upstream_ref = Reference::parse(&format!("{}/{REPOSITORY}:v1", upstream.host())).unwrap();
    let owner = client(Credentials::Basic(BasicCredentials {
        user: USER.into(),
        password: PULL_PASSWORD.into(),
    }));
    let paths: Vec<PathBuf> = inputs.iter().map(|(p, _)| p.clone()).collect();
    push_paths(&owner, &upstream_ref, &paths).unwrap();
    let manifest: Value =
        serde_json::from_slice(&owner.pull_manifest(&upstream_ref).unwrap().bytes).unwrap();
    let mut digests: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    digests.push(manifest["config"]["digest"].as_str().unwrap().to_string());

    // What the controller would apply, and the registry container in it.
    let file = work.path().join("mirror.yaml");
    std::fs::write(&file, cache_file(&upstream.host())).unwrap();
    let (objects, _) = support::render(&file);
    let statefulset = objects.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
    let status = &objects.iter().find(|o| o["kind"] == "OrasCache").unwrap()["status"];
    assert_eq!(status["mirrorOf"], upstream.host().as_str());
    assert_eq!(
        status["address"],
        "upstream-mirror.steps.svc.cluster.local:5000"
    );
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container.get("command").is_none() && container.get("args").is_none(),
        "the image's own command (serve its configuration) runs: {container}"
    );
    assert!(
        !statefulset.to_string().contains(PULL_PASSWORD),
        "no credential in the StatefulSet"
    );
    let secret: BTreeMap<String, String> = [
        ("ORAS_USER", USER),
        ("ORAS_PUSH_PASS", "not-the-pull-password"),
        ("ORAS_PULL_PASS", PULL_PASSWORD),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let environment = container_environment(container, &secret);
    // The harness keeps the address and storage its own (the container's `:5000` and volume
    // would collide on a shared machine); every other variable is the container's.
    let mut options = Registry::builder().distribution(distribution).access_log();
    for (name, value) in &environment {
        options = options.env(name, value);
    }
    let mirror = options.start().expect("start the mirror");

    let anonymous = client(Credentials::Anonymous);
    let through_mirror = Reference::parse(&format!("{}/{REPOSITORY}:v1", mirror.host())).unwrap();
    let mut first_pull_fetches = None;
    for pull in 1..=PULLS {
        let out = work.path().join(format!("pull-{pull}"));
        pull_to_dir(&anonymous, &through_mirror, &out, false)
            .unwrap_or_else(|e| panic!("pull {pull} through the mirror: {e}\n{}", mirror.log()));
        for (path, content) in &inputs {
            let name = path.file_name().unwrap();
            assert_eq!(
                &std::fs::read(out.join(name)).unwrap(),
                content,
                "pull {pull}: {name:?}"
            );
        }
        if pull == 1 {
            for digest in &digests {
                mirror.wait_for_blob(REPOSITORY, digest).unwrap();
            }
            first_pull_fetches = Some(blob_fetches(&mut upstream, &digests));
        }
    }
    let first = first_pull_fetches.unwrap();
    let all = blob_fetches(&mut upstream, &digests);
    eprintln!("upstream GETs per blob after pull 1: {first:?}, after pull {PULLS}: {all:?}");
    // distribution 2.8 reads a blob it lacks from the upstream while serving the first pull:
    // once streamed to the client and once stored (registry/proxy/proxyblobstore.go,
    // `ServeBlob` and `storeLocal`), so one fetch is one or two GETs; none after it.
    // distribution v3 (the mirror's image in a cluster) reads it once.
    let most = if distribution.proxy_fetches_blobs_once() {
        1
    } else {
        2
    };
    for (digest, count) in digests.iter().zip(&first) {
        assert!(
            (1..=most).contains(count),
            "{digest} fetched {count} times by the first pull: {:?}",
            upstream.requests()
        );
    }
    assert_eq!(
        all, first,
        "pulls 2..{PULLS} fetched nothing from the upstream"
    );

    // Pull only: distribution refuses pushes to a pull-through cache.
    let push_ref = Reference::parse(&format!("{}/{REPOSITORY}:pushed", mirror.host())).unwrap();
    let refused = push_paths(&anonymous, &push_ref, &paths).unwrap_err();
    let message = refused.to_string();
    eprintln!("push to the mirror: {message}");
    // The agent names the refusal for what it is.
    assert!(
        message.contains("HTTP 405 UNSUPPORTED: it is a pull-only mirror"),
        "{message}"
    );
}

#[test]
fn environment_references_expand_as_the_kubelet_does() {
    let defined: BTreeMap<String, String> = [("A", "x"), ("B", "y")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(expand("http://$(A):$(B)@h", &defined), "http://x:y@h");
    assert_eq!(expand("$(C)-$$(A)-$", &defined), "$(C)-$(A)-$");
}
