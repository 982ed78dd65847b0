//! The `OrasCache` custom resource: its spec (every field of the original operator plus what a
//! real cache needs), its status, and the CRD YAML generated from them.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Registry image used when `spec.image` is not set (the original operator's default), except
/// for a mirror ([`MIRROR_IMAGE`]).
pub const DEFAULT_IMAGE: &str = "ghcr.io/oras-project/registry:latest";

/// Registry image of a mirror (`spec.mirror`) when `spec.image` is not set: CNCF distribution v3,
/// whose pull-through cache reads a blob it lacks from the upstream once and writes that one read
/// to the client and to its storage together (`io.MultiWriter` in registry/proxy/proxyblobstore.go
/// `ServeBlob`, commit 17952924f "avoid redundant blob fetching", in every release since
/// v3.0.0-alpha.1). Distribution 2.x (and the default image, built on it) reads such a blob twice:
/// once for its storage in a goroutine, once for the client. distribution publishes each release
/// as `ghcr.io/distribution/distribution:<version>` and `distribution/distribution:<version>` on
/// Docker Hub (.github/workflows/build.yml: `GHCR_SLUG`, `DOCKERHUB_SLUG`, tags
/// `type=semver,pattern={{version}}`); its docs run the same release as Docker's `registry:3`
/// (docs/content/about/deploying.md). The image runs `registry serve /etc/distribution/config.yml`
/// (its Dockerfile: `ENTRYPOINT`, `CMD`), storage in `/var/lib/registry` and `:5000`, as the
/// StatefulSet expects; the `REGISTRY_*` variables the controller sets override that file
/// (docs/content/about/configuration.md, "Override specific configuration options").
pub const MIRROR_IMAGE: &str = "ghcr.io/distribution/distribution:3.1.1";
/// Secret key that holds `REGISTRY_HTTP_SECRET` when `spec.secrets.registryHttpKey` is not set.
pub const DEFAULT_REGISTRY_HTTP_KEY: &str = "REGISTRY_HTTP_SECRET";
/// Name of the CRD object.
pub const CRD_NAME: &str = "orascaches.cache.converged-computing.github.io";

/// Asks for an OCI registry cache in a namespace: either a registry the controller deploys
/// (`deploy: true`, the default) or a remote registry it checks and reports (`deploy: false`).
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "cache.converged-computing.github.io",
    version = "v1alpha1",
    kind = "OrasCache",
    namespaced,
    status = "OrasCacheStatus",
    derive = "PartialEq",
    shortname = "oc",
    doc = "An OCI registry cache (ORAS) for the workflow steps of a namespace",
    printcolumn = r#"{"name": "Ready", "type": "string", "description": "Whether the registry is ready", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Address", "type": "string", "description": "host:port pods use to reach the registry", "jsonPath": ".status.address"}"#,
    printcolumn = r#"{"name": "Mirror-Of", "type": "string", "description": "Upstream host a mirror caches", "jsonPath": ".status.mirrorOf", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheSpec {
    /// Registry image of the deployed cache. Unset: `ghcr.io/oras-project/registry:latest`, or for
    /// a mirror `ghcr.io/distribution/distribution:3.1.1` (distribution v3, which fetches each
    /// blob from the upstream once), also when a mirror names
    /// `ghcr.io/oras-project/registry:latest`, which older versions of this CRD wrote as the
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[!-~]+$"), length(max = 512))]
    pub image: Option<String>,

    /// Deploy a registry StatefulSet. `false` means a remote registry (`registry`) or, without it,
    /// that every pod names its registry with the `registry` annotation.
    #[serde(default = "default_deploy")]
    pub deploy: bool,

    /// Older name of `secrets.registryHttp`: a Secret holding `REGISTRY_HTTP_SECRET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,

    /// Secrets the cache uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<CacheSecrets>,

    /// Registry pods of the deployed cache; 1 when unset. Above 1 the replicas need shared
    /// storage (`storage.accessMode: ReadWriteMany`, or object storage set with `REGISTRY_STORAGE_*`
    /// in the `secrets.orasEnv` Secret) and share one `REGISTRY_HTTP_SECRET` (the controller
    /// creates `<cache>-http-secret` when none is named). At most 32.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: Option<i32>,

    /// Persistent storage for the deployed registry; an emptyDir when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Compute resources of the registry container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The Service in front of the deployed registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,

    /// A remote registry used instead of a deployed one (only with `deploy: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RemoteRegistry>,

    /// Run the deployed registry as a pull-through cache (mirror) of this upstream registry
    /// (only with `deploy: true` and without `registry`). Pods pull through the cache with no
    /// credentials; the upstream's credentials stay in the registry container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorSpec>,
}

fn default_deploy() -> bool {
    true
}

/// Secret references of an `OrasCache`. Every value is the name of a Secret in the cache's
/// namespace; an empty string means unset, as in the original operator.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSecrets {
    /// Secret added with `envFrom` to the deployed registry container (registry settings such
    /// as `REGISTRY_*`), and the credentials (`ORAS_USER`/`ORAS_PASS` or `username`/`password`)
    /// of a remote registry that has no `registry.credentialsSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oras_env: Option<String>,

    /// Secret whose key `registryHttpKey` becomes the registry's `REGISTRY_HTTP_SECRET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_http: Option<String>,

    /// Key in the `registryHttp` Secret; `REGISTRY_HTTP_SECRET` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_http_key: Option<String>,
}

/// Storage of the deployed registry.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of the PersistentVolumeClaim (for example `10Gi`). Unset: an emptyDir, lost when
    /// the registry pod is rescheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the claim; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Access mode of the claim: `ReadWriteOnce` (the default, a claim per replica) or
    /// `ReadWriteMany` (one claim shared by every replica, which `replicas` above 1 needs unless
    /// the registry uses object storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<AccessMode>,
}

/// Access mode of the registry's claim.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum AccessMode {
    /// One node mounts the claim: a claim per replica.
    ReadWriteOnce,
    /// Many nodes mount the claim: one claim shared by the replicas.
    ReadWriteMany,
}

/// The Service of the deployed registry.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Port the registry listens on and the Service exposes; 5000 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// A registry outside the cluster (or not managed by this controller).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRegistry {
    /// `host[:port]` of the registry, without scheme or path (for example `ghcr.io`).
    pub address: String,

    /// Speak plain HTTP instead of HTTPS.
    #[serde(default)]
    pub plain_http: bool,

    /// Secret with the credentials (`ORAS_USER`/`ORAS_PASS` or `username`/`password`); falls
    /// back to `secrets.orasEnv`. Without credentials the registry is checked anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// Repository used for the token scope of the health check (`repository:<this>:pull`) when
    /// the registry's challenge names no scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// The upstream registry a deployed cache mirrors (distribution's pull-through cache).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorSpec {
    /// `host[:port]` of the upstream, without scheme or path (for example `ghcr.io`).
    pub address: String,

    /// The upstream speaks plain HTTP instead of HTTPS.
    #[serde(default)]
    pub plain_http: bool,

    /// Secret with the upstream's credentials for a pull (`ORAS_USER` with `ORAS_PULL_PASS` or
    /// `ORAS_PASS`, or `username`/`password`). They reach the registry container by
    /// `secretKeyRef` only. Without it the upstream is read anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// A repository of the upstream (such as `org/app`) the controller reads
    /// (`GET /v2/<repository>/tags/list`, token scope `repository:<repository>:pull`) for
    /// `AuthReady`; without it only `/v2/` is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// What the controller observed; the policy reads `address`, `plainHttp` and the conditions.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheStatus {
    /// `host:port` pods use to reach the registry; unset when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// Whether `address` speaks plain HTTP (true for the deployed cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_http: Option<bool>,

    /// For a mirror, the `host[:port]` of the upstream it caches: pulls from that host can go
    /// to `address` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_of: Option<String>,

    /// The `kubernetes.io/dockerconfigjson` Secret with the cache's `config.json` (key
    /// `.dockerconfigjson`), for builder pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config_secret: Option<String>,

    /// The ConfigMap with `daemon.json`, `buildkitd.toml` and `registries.conf` for the cache,
    /// for builder pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_config_map: Option<String>,

    /// `Ready`, and `AuthReady` for remote registries and mirrors; merged by `type` under server-side apply.
    #[serde(default)]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The schema of `Vec<Condition>` marked as a map keyed by `type`, so that server-side apply
/// merges conditions per type instead of replacing the whole list.
fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
    schema
}

/// The rule on `metadata.name` the API server checks when an OrasCache is created: the name
/// names the registry's Service and StatefulSet ([`crate::plan::check_cache_name`] says the same
/// for caches made before the rule). CEL rules of a CRD may read `metadata.name`
/// (kubernetes.io, "Validation rules": "only metadata.name and metadata.generateName are
/// accessible"), and the API server evaluates them, so a bad name is refused at `kubectl apply`.
pub const NAME_RULE: &str =
    "self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";

/// The CRD object: the schema kube-derive generates from [`OrasCacheSpec`] and
/// [`OrasCacheStatus`], with [`NAME_RULE`] on the root.
pub fn crd()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    let mut crd = OrasCache::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.x_kubernetes_validations = Some(vec![
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::ValidationRule {
                    rule: NAME_RULE.to_string(),
                    message: Some(
                        "metadata.name must be at most 52 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit: it names the cache's Service and StatefulSet".to_string(),
                    ),
                    ..Default::default()
                },
            ]);
        }
    }
    crd
}

/// The CRD as YAML, as `oras-cache-controller crd` prints it and `deploy/crd.yaml` holds it.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&crd()).expect("the CRD serializes to YAML")
}

impl OrasCacheSpec {
    /// The registry port: `service.port`, or 5000.
    pub fn port(&self) -> i32 {
        self.service
            .as_ref()
            .and_then(|s| s.port)
            .unwrap_or(i32::from(oras_cache_api::cache::DEFAULT_PORT))
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn the_schema_bounds_what_the_plan_refuses() {
        let crd = serde_json::to_value(crd()).unwrap();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let spec = &schema["properties"]["spec"]["properties"];
        assert_eq!(
            spec["replicas"]["maximum"],
            f64::from(crate::plan::MAX_REPLICAS)
        );
        assert_eq!(spec["image"]["maxLength"], crate::plan::MAX_IMAGE as u64);
        assert_eq!(schema["x-kubernetes-validations"][0]["rule"], NAME_RULE);
        assert!(NAME_RULE.contains(&format!("<= {}", crate::plan::MAX_CACHE_NAME)));
    }
}
