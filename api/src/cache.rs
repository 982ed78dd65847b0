//! The part of an `OrasCache` the policy reads through Kubewarden's `get_resource` host capability.
//!
//! The controller owns the full CRD (with k8s-openapi types); this view only names the fields the
//! policy needs, so that the policy does not depend on the controller's Kubernetes stack.

use serde::{Deserialize, Serialize};

/// API group of the `OrasCache` kind.
pub const GROUP: &str = "cache.converged-computing.github.io";
/// API version of the `OrasCache` kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the `OrasCache` kind, as it is written in manifests.
pub const API_VERSION: &str = "cache.converged-computing.github.io/v1alpha1";
/// Kind name.
pub const KIND: &str = "OrasCache";
/// Port the registry listens on when the controller deploys it and no port is set.
pub const DEFAULT_PORT: u16 = 5000;

/// The `host:port` of a deployed cache: its Service's DNS name under the cluster domain. The
/// controller writes it in `status.address`; the policy falls back to it when it cannot read the
/// status.
pub fn service_address(
    name: &str,
    namespace: &str,
    cluster_domain: &str,
    port: impl std::fmt::Display,
) -> String {
    format!("{name}.{namespace}.svc.{cluster_domain}:{port}")
}

/// An `OrasCache` as the policy sees it: its name, the part of its spec that says where a remote
/// registry is and which Secret holds its credentials, and what the controller reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheView {
    /// Object metadata; only `name` and `namespace` are read.
    #[serde(default)]
    pub metadata: ObjectMetaView,
    /// What the user asked for; the fields the policy reads.
    #[serde(default)]
    pub spec: OrasCacheSpecView,
    /// What the controller wrote, if it has reconciled the object yet.
    #[serde(default)]
    pub status: Option<OrasCacheStatusView>,
}

/// The fields of `OrasCache.spec` the policy reads. Unknown fields are ignored: the controller's
/// CRD owns the full spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheSpecView {
    /// `false` when the controller deploys nothing (a remote registry, or none); `true` (the
    /// CRD's default) when unset.
    #[serde(default)]
    pub deploy: Option<bool>,
    /// The remote registry of a cache with `deploy: false`.
    #[serde(default)]
    pub registry: Option<RemoteRegistryView>,
    /// Secret references.
    #[serde(default)]
    pub secrets: Option<CacheSecretsView>,
}

/// `OrasCache.spec.registry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRegistryView {
    /// `host[:port]`.
    #[serde(default)]
    pub address: String,
    /// Plain HTTP instead of HTTPS.
    #[serde(default)]
    pub plain_http: bool,
    /// Secret with the registry's credentials.
    #[serde(default)]
    pub credentials_secret: Option<String>,
}

/// `OrasCache.spec.secrets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheSecretsView {
    /// For a remote registry, the Secret with its credentials when `registry.credentialsSecret`
    /// is unset (as the controller's own check reads it).
    #[serde(default)]
    pub oras_env: Option<String>,
}

impl OrasCacheSpecView {
    /// Whether the controller deploys a registry for this cache (the CRD defaults `deploy` to true).
    pub fn deploys(&self) -> bool {
        self.deploy != Some(false)
    }

    /// The remote registry of a cache that deploys none, if it names one.
    pub fn remote_registry(&self) -> Option<&RemoteRegistryView> {
        if self.deploys() {
            return None;
        }
        self.registry
            .as_ref()
            .filter(|r| !r.address.trim().is_empty())
    }

    /// The Secret whose credentials the agent containers need for a remote registry:
    /// `registry.credentialsSecret`, else `secrets.orasEnv`, as the controller's AuthReady check
    /// reads them. `None` for a deployed cache, whose `secrets.orasEnv` configures the registry
    /// process, not its clients.
    pub fn remote_credentials_secret(&self) -> Option<&str> {
        let registry = self.remote_registry()?;
        non_empty(&registry.credentials_secret)
            .or_else(|| self.secrets.as_ref().and_then(|s| non_empty(&s.oras_env)))
    }
}

/// The value of an optional name, unless it is blank (the original operator's "unset").
/// A name the user may leave blank: `None`, empty or only spaces all mean "not set", in the spec
/// the controller reads and in the view the policy reads alike.
pub fn non_empty(name: &Option<String>) -> Option<&str> {
    name.as_deref().filter(|s| !s.trim().is_empty())
}

/// The metadata fields of an `OrasCache` the policy reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetaView {
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Object namespace.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `OrasCache.status` as written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheStatusView {
    /// The `host:port` pods use to reach the registry.
    #[serde(default)]
    pub address: Option<String>,
    /// Whether the registry at `address` speaks plain HTTP (an in-cluster cache) rather than TLS.
    #[serde(default)]
    pub plain_http: Option<bool>,
    /// For a mirror (distribution's pull-through cache), the upstream registry's `host[:port]`
    /// whose pulls it serves.
    #[serde(default)]
    pub mirror_of: Option<String>,
    /// Conditions, merged by `type`; only `type`, `status`, `reason` and `message` are read.
    #[serde(default)]
    pub conditions: Vec<ConditionView>,
    /// The generation the status describes.
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

/// One status condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    /// Condition type, such as `Ready` or `AuthReady`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
}

impl OrasCacheStatusView {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&ConditionView> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the controller reports the cache `Ready`.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }
}

/// A Ready mirror cache: pulls from `upstream` may go to `address` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorView {
    /// The cache's name.
    pub cache: String,
    /// The upstream registry, lower case.
    pub upstream: String,
    /// Where the mirror is reached.
    pub address: String,
    /// Whether the mirror speaks plain HTTP.
    pub plain_http: bool,
}

impl OrasCacheView {
    /// The mirror this cache is, when it is one, Ready, and has an address.
    pub fn mirror(&self) -> Option<MirrorView> {
        let status = self.status.as_ref()?;
        let upstream = status.mirror_of.as_deref()?.trim();
        let address = status.address.as_deref()?.trim();
        if upstream.is_empty() || address.is_empty() || !status.is_ready() {
            return None;
        }
        Some(MirrorView {
            cache: self.metadata.name.clone().unwrap_or_default(),
            upstream: upstream.to_ascii_lowercase(),
            address: address.to_string(),
            plain_http: status.plain_http != Some(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_written_by_the_controller() {
        let cache: OrasCacheView = serde_json::from_value(serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": "orascache-sample", "namespace": "default", "uid": "x"},
            "spec": {"image": "ghcr.io/oras-project/registry:latest"},
            "status": {
                "address": "orascache-sample.default.svc.cluster.local:5000",
                "plainHttp": true,
                "observedGeneration": 2,
                "conditions": [{"type": "Ready", "status": "True", "reason": "RegistryReady",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        }))
        .unwrap();
        let status = cache.status.unwrap();
        assert_eq!(
            status.address.as_deref(),
            Some("orascache-sample.default.svc.cluster.local:5000")
        );
        assert_eq!(status.condition("Ready").unwrap().status, "True");
        assert!(status.condition("AuthReady").is_none());
    }

    #[test]
    fn a_remote_cache_names_its_registry_and_credentials() {
        let cache: OrasCacheView = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "remote"},
            "spec": {"deploy": false, "registry": {"address": "ghcr.io", "credentialsSecret": "ghcr"},
                     "secrets": {"orasEnv": "other"}, "image": "ignored"}
        }))
        .unwrap();
        assert!(!cache.spec.deploys());
        assert_eq!(cache.spec.remote_registry().unwrap().address, "ghcr.io");
        assert_eq!(cache.spec.remote_credentials_secret(), Some("ghcr"));

        let fallback: OrasCacheSpecView = serde_json::from_value(serde_json::json!({
            "deploy": false, "registry": {"address": "ghcr.io", "credentialsSecret": ""},
            "secrets": {"orasEnv": "oras-env"}
        }))
        .unwrap();
        assert_eq!(fallback.remote_credentials_secret(), Some("oras-env"));

        // A deployed cache's orasEnv configures the registry process, not its clients.
        let deployed: OrasCacheSpecView = serde_json::from_value(
            serde_json::json!({"secrets": {"orasEnv": "registry-settings"}}),
        )
        .unwrap();
        assert!(deployed.deploys());
        assert_eq!(deployed.remote_credentials_secret(), None);

        let nothing: OrasCacheSpecView =
            serde_json::from_value(serde_json::json!({"deploy": false})).unwrap();
        assert!(nothing.remote_registry().is_none());
    }

    #[test]
    fn only_a_ready_mirror_with_an_address_serves_pulls() {
        let cache = |status: serde_json::Value| -> OrasCacheView {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "hub"}, "status": status}),
            )
            .unwrap()
        };
        let ready = serde_json::json!([{"type": "Ready", "status": "True"}]);
        let mirror = cache(
            serde_json::json!({"address": "hub.ns.svc:5000", "mirrorOf": "GHCR.io",
                                               "conditions": ready}),
        )
        .mirror()
        .unwrap();
        assert_eq!(mirror.upstream, "ghcr.io");
        assert_eq!(mirror.address, "hub.ns.svc:5000");
        assert!(mirror.plain_http);
        assert_eq!(mirror.cache, "hub");
        assert!(
            cache(serde_json::json!({"address": "a:1", "mirrorOf": "ghcr.io"}))
                .mirror()
                .is_none()
        );
        assert!(
            cache(serde_json::json!({"address": "a:1", "conditions": ready}))
                .mirror()
                .is_none()
        );
    }

    #[test]
    fn a_cache_without_status_reads_as_none() {
        let cache: OrasCacheView =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).unwrap();
        assert!(cache.status.is_none());
    }
}
