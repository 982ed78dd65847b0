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

/// An `OrasCache` as the policy sees it: its name and what the controller reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrasCacheView {
    /// Object metadata; only `name` and `namespace` are read.
    #[serde(default)]
    pub metadata: ObjectMetaView,
    /// What the controller wrote, if it has reconciled the object yet.
    #[serde(default)]
    pub status: Option<OrasCacheStatusView>,
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
    fn a_cache_without_status_reads_as_none() {
        let cache: OrasCacheView =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c"}})).unwrap();
        assert!(cache.status.is_none());
    }
}
