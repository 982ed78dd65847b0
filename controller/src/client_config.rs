//! Client configurations of a cache, as the OCI connector provides them: a
//! `kubernetes.io/dockerconfigjson` Secret `<cache>-docker-config` and a ConfigMap
//! `<cache>-client-config` with `daemon.json`, `buildkitd.toml` and `registries.conf`. A builder
//! pod (docker, BuildKit, buildah/podman/skopeo) that mounts them reaches the cache with no
//! other set-up. For a mirror cache, `registries.conf` also declares the cache a mirror of its
//! upstream, so that pods keep naming images and artifacts by their upstream names. Pure
//! builders; the reconciler applies them, `render` prints them.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use oras_cache_api::credentials::UserPassword;

use crate::crd::OrasCache;
use crate::resources::{BuildError, child_meta_named};

/// Key of a `kubernetes.io/dockerconfigjson` Secret (Kubernetes' "Secrets" concept page).
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";
/// Type of the docker-config Secret.
pub const DOCKER_CONFIG_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Docker daemon configuration key of the ConfigMap.
pub const DAEMON_JSON: &str = "daemon.json";
/// BuildKit daemon configuration key of the ConfigMap.
pub const BUILDKITD_TOML: &str = "buildkitd.toml";
/// containers/image (podman, buildah, skopeo) configuration key of the ConfigMap.
pub const REGISTRIES_CONF: &str = "registries.conf";

/// What the client configurations describe: where the cache is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTarget {
    /// `host[:port]` clients use (`status.address`).
    pub address: String,
    /// The cache speaks plain HTTP.
    pub plain_http: bool,
    /// Credentials clients need (a remote registry's); `None` for the deployed cache, which
    /// has no authentication of its own.
    pub login: Option<UserPassword>,
}

/// Name of the docker-config Secret of `cache`.
pub fn docker_config_name(cache: &str) -> String {
    format!("{cache}-docker-config")
}

/// Name of the client-config ConfigMap of `cache`.
pub fn client_config_name(cache: &str) -> String {
    format!("{cache}-client-config")
}

/// `config.json`: `{"auths": {"<host[:port]>": {"auth": "<base64 of user:password>"}}}` (the
/// docker CLI's configuration file, as the connector's `docker-config` holds it); an entry with
/// no `auth` when the cache needs none, so that tools still find the host.
pub fn docker_config_json(target: &ClientTarget) -> String {
    let entry = match &target.login {
        Some(login) => serde_json::json!({
            "auth": base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", login.user, login.password)),
        }),
        None => serde_json::json!({}),
    };
    let config = serde_json::json!({"auths": {target.address.clone(): entry}});
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

/// `daemon.json` of dockerd: a plain-HTTP cache is an `insecure-registries` entry (dockerd's
/// "daemon configuration file" reference).
pub fn daemon_json(target: &ClientTarget) -> String {
    let config = if target.plain_http {
        serde_json::json!({"insecure-registries": [target.address]})
    } else {
        serde_json::json!({})
    };
    serde_json::to_string_pretty(&config).expect("JSON serializes")
}

/// `buildkitd.toml`: a `[registry."<host[:port]>"]` table with `http = true` for a plain-HTTP
/// cache (moby/buildkit's docs/buildkitd.toml.md and its resolver's `RegistryConfig`: `http`
/// is plain HTTP; `insecure` is TLS without verification, not wanted here).
pub fn buildkitd_toml(target: &ClientTarget) -> String {
    let mut text = format!("[registry.{}]\n", toml_string(&target.address));
    if target.plain_http {
        text.push_str("  http = true\n");
    }
    text
}

/// The upstream registry a mirror cache serves (`spec.mirror`), as clients that know mirrors
/// declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorOf {
    /// `host[:port]` of the upstream.
    pub upstream: String,
    /// The upstream speaks plain HTTP.
    pub plain_http: bool,
}

impl MirrorOf {
    /// The upstream `cache` mirrors, if it is a mirror.
    pub fn of(cache: &OrasCache) -> Option<MirrorOf> {
        cache.spec.mirror.as_ref().map(|mirror| MirrorOf {
            upstream: mirror.address.clone(),
            plain_http: mirror.plain_http,
        })
    }
}

/// `registries.conf` (version 2) of containers/image: a `[[registry]]` table whose `location`
/// is the cache, `insecure = true` for plain HTTP (containers-registries.conf(5)). For a mirror,
/// a second table for the upstream whose `[[registry.mirror]]` is the cache: a pull of
/// `<upstream>/<repository>` tries the cache first and the upstream last, by tag and by digest
/// (containers-registries.conf(5), "Remapping and mirroring registries": mirrors are attempted
/// in order, the primary location last; `pull-from-mirror` defaults to `all`).
pub fn registries_conf(target: &ClientTarget, mirror_of: Option<&MirrorOf>) -> String {
    let cache = toml_string(&target.address);
    let mut text = format!(
        "[[registry]]\nlocation = {cache}\ninsecure = {}\n",
        target.plain_http
    );
    if let Some(mirror) = mirror_of {
        text.push_str(&format!(
            "\n[[registry]]\nlocation = {}\ninsecure = {}\n\n[[registry.mirror]]\nlocation = {cache}\ninsecure = {}\n",
            toml_string(&mirror.upstream),
            mirror.plain_http,
            target.plain_http
        ));
    }
    text
}

/// A TOML basic string. Addresses are `host[:port]` by the contract's grammar, so only the
/// quotes are needed; backslashes and quotes are escaped all the same.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The client configurations of the cache, both owned by it: the
/// `kubernetes.io/dockerconfigjson` Secret `<cache>-docker-config` and the ConfigMap
/// `<cache>-client-config` with the daemons' configurations.
pub fn build_client_configs(
    cache: &OrasCache,
    target: &ClientTarget,
) -> Result<(Secret, ConfigMap), BuildError> {
    let name = cache.name_any();
    let secret = Secret {
        metadata: child_meta_named(cache, docker_config_name(&name))?,
        type_: Some(DOCKER_CONFIG_TYPE.into()),
        data: Some(BTreeMap::from([(
            DOCKER_CONFIG_KEY.to_string(),
            ByteString(docker_config_json(target).into_bytes()),
        )])),
        ..Secret::default()
    };
    let map = ConfigMap {
        metadata: child_meta_named(cache, client_config_name(&name))?,
        data: Some(BTreeMap::from([
            (DAEMON_JSON.to_string(), daemon_json(target)),
            (BUILDKITD_TOML.to_string(), buildkitd_toml(target)),
            (
                REGISTRIES_CONF.to_string(),
                registries_conf(target, MirrorOf::of(cache).as_ref()),
            ),
        ])),
        ..ConfigMap::default()
    };
    Ok((secret, map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::cache;

    fn deployed() -> ClientTarget {
        ClientTarget {
            address: "cache.ns.svc.cluster.local:5000".into(),
            plain_http: true,
            login: None,
        }
    }

    #[test]
    fn a_plain_http_cache_is_insecure_for_every_client() {
        let target = deployed();
        let daemon: serde_json::Value = serde_json::from_str(&daemon_json(&target)).unwrap();
        assert_eq!(
            daemon,
            serde_json::json!({"insecure-registries": ["cache.ns.svc.cluster.local:5000"]})
        );
        assert_eq!(
            buildkitd_toml(&target),
            "[registry.\"cache.ns.svc.cluster.local:5000\"]\n  http = true\n"
        );
        assert_eq!(
            registries_conf(&target, None),
            "[[registry]]\nlocation = \"cache.ns.svc.cluster.local:5000\"\ninsecure = true\n"
        );
        let config: serde_json::Value = serde_json::from_str(&docker_config_json(&target)).unwrap();
        assert_eq!(
            config,
            serde_json::json!({"auths": {"cache.ns.svc.cluster.local:5000": {}}})
        );
    }

    #[test]
    fn a_tls_registry_with_credentials_gets_an_auth_entry_and_no_insecure_flags() {
        let target = ClientTarget {
            address: "ghcr.io".into(),
            plain_http: false,
            login: Some(UserPassword {
                user: "me".into(),
                password: "tok".into(),
            }),
        };
        let config: serde_json::Value = serde_json::from_str(&docker_config_json(&target)).unwrap();
        // base64 of "me:tok".
        assert_eq!(config["auths"]["ghcr.io"]["auth"], "bWU6dG9r");
        assert_eq!(daemon_json(&target), "{}");
        assert!(!buildkitd_toml(&target).contains("http"));
        assert!(registries_conf(&target, None).contains("insecure = false"));
    }

    #[test]
    fn both_objects_are_named_after_the_cache_and_owned_by_it() {
        let c = cache("{}");
        let (secret, map) = build_client_configs(&c, &deployed()).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("cache-docker-config"));
        assert_eq!(secret.type_.as_deref(), Some(DOCKER_CONFIG_TYPE));
        assert!(secret.data.unwrap().contains_key(DOCKER_CONFIG_KEY));
        assert_eq!(map.metadata.name.as_deref(), Some("cache-client-config"));
        let owner = &map.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("OrasCache", "uid-1")
        );
        let keys: Vec<_> = map.data.unwrap().into_keys().collect();
        assert_eq!(keys, [BUILDKITD_TOML, DAEMON_JSON, REGISTRIES_CONF]);
    }

    #[test]
    fn a_mirror_cache_is_declared_a_mirror_of_its_upstream_in_registries_conf() {
        let c = cache("{mirror: {address: ghcr.io}}");
        assert_eq!(
            MirrorOf::of(&c),
            Some(MirrorOf {
                upstream: "ghcr.io".into(),
                plain_http: false
            })
        );
        let (_, map) = build_client_configs(&c, &deployed()).unwrap();
        assert_eq!(
            map.data.unwrap()[REGISTRIES_CONF],
            "[[registry]]\nlocation = \"cache.ns.svc.cluster.local:5000\"\ninsecure = true\n\n\
             [[registry]]\nlocation = \"ghcr.io\"\ninsecure = false\n\n\
             [[registry.mirror]]\nlocation = \"cache.ns.svc.cluster.local:5000\"\ninsecure = true\n"
        );
        assert_eq!(MirrorOf::of(&cache("{}")), None);
    }
}
