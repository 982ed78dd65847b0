//! Checks Kubernetes manifests (the examples and the install YAML) against their schema without
//! an API server: each document is deserialized into its k8s-openapi 0.29 type (or the OrasCache
//! type), serialized again, and every field of the input must come back unchanged. A field the
//! type does not know is dropped on the way, so misspelt and misplaced fields are reported.
//! Kubewarden kinds get a check of their required fields.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use oras_cache_controller::crd::OrasCache;

/// A document that does not fit its schema.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchemaError {
    /// `apiVersion`/`kind` missing.
    #[error("the document has no apiVersion and kind")]
    NoKind,
    /// No schema is known for this kind.
    #[error("no schema known for {api_version} {kind}")]
    UnknownKind {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// The document does not deserialize into its type.
    #[error("{kind} {name}: {message}")]
    Invalid {
        /// kind.
        kind: String,
        /// metadata.name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Fields the type does not know, or values it changes.
    #[error("{kind} {name}: {}", problems.join("; "))]
    Mismatch {
        /// kind.
        kind: String,
        /// metadata.name.
        name: String,
        /// One entry per field.
        problems: Vec<String>,
    },
}

/// Checks one document; returns `kind/name` on success.
pub fn check_document(doc: &Value) -> Result<String, SchemaError> {
    let api_version = doc["apiVersion"].as_str().ok_or(SchemaError::NoKind)?;
    let kind = doc["kind"].as_str().ok_or(SchemaError::NoKind)?;
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or("<unnamed>")
        .to_string();
    let result = match (api_version, kind) {
        ("v1", "Namespace") => roundtrip::<Namespace>(doc),
        ("v1", "ServiceAccount") => roundtrip::<ServiceAccount>(doc),
        ("v1", "Secret") => roundtrip::<Secret>(doc),
        ("v1", "ConfigMap") => roundtrip::<ConfigMap>(doc),
        ("v1", "Service") => roundtrip::<Service>(doc),
        ("v1", "Pod") => roundtrip::<Pod>(doc),
        ("v1", "PersistentVolumeClaim") => roundtrip::<PersistentVolumeClaim>(doc),
        ("apps/v1", "Deployment") => roundtrip::<Deployment>(doc),
        ("apps/v1", "StatefulSet") => roundtrip::<StatefulSet>(doc),
        ("apps/v1", "DaemonSet") => roundtrip::<DaemonSet>(doc),
        ("batch/v1", "Job") => roundtrip::<Job>(doc),
        ("batch/v1", "CronJob") => roundtrip::<CronJob>(doc),
        ("policy/v1", "PodDisruptionBudget") => roundtrip::<PodDisruptionBudget>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => roundtrip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            roundtrip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => roundtrip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => roundtrip::<RoleBinding>(doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            roundtrip::<CustomResourceDefinition>(doc)
        }
        (oras_cache_api::cache::API_VERSION, oras_cache_api::cache::KIND) => {
            roundtrip::<OrasCache>(doc)
        }
        ("policies.kubewarden.io/v1", "ClusterAdmissionPolicy" | "AdmissionPolicy") => {
            kubewarden_policy(doc, kind == "ClusterAdmissionPolicy")
        }
        _ => {
            return Err(SchemaError::UnknownKind {
                api_version: api_version.into(),
                kind: kind.into(),
            });
        }
    };
    result.map_err(|problems| match problems {
        Problems::Invalid(message) => SchemaError::Invalid {
            kind: kind.into(),
            name: name.clone(),
            message,
        },
        Problems::Fields(problems) => SchemaError::Mismatch {
            kind: kind.into(),
            name: name.clone(),
            problems,
        },
    })?;
    Ok(format!("{kind}/{name}"))
}

enum Problems {
    Invalid(String),
    Fields(Vec<String>),
}

fn roundtrip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), Problems> {
    let typed: T =
        serde_json::from_value(doc.clone()).map_err(|e| Problems::Invalid(e.to_string()))?;
    let back = serde_json::to_value(typed).map_err(|e| Problems::Invalid(e.to_string()))?;
    let mut problems = Vec::new();
    compare(doc, &back, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems::Fields(problems))
    }
}

/// Every field of `input` must be in `output` with the same value. Numbers written where the
/// type keeps strings (quantities, int-or-string) compare by their text.
fn compare(input: &Value, output: &Value, path: &str, problems: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => compare(value, other, &child, problems),
                    None if value.is_null() => {}
                    None => problems.push(format!("unknown field {child}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(x, y, &format!("{path}[{i}]"), problems);
            }
        }
        (Value::Number(n), Value::String(s)) if n.to_string() == *s => {}
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => problems.push(format!("{path}: {a} reads back as {b}")),
    }
}

const POLICY_SPEC_FIELDS: [&str; 17] = [
    "policyServer",
    "mode",
    "module",
    "settings",
    "rules",
    "failurePolicy",
    "mutating",
    "backgroundAudit",
    "matchPolicy",
    "matchConditions",
    "objectSelector",
    "sideEffects",
    "timeoutSeconds",
    "timeoutEvalSeconds",
    "message",
    "namespaceSelector",
    "contextAwareResources",
];

/// The required fields of a Kubewarden policy and the shape of its rules.
fn kubewarden_policy(doc: &Value, cluster_wide: bool) -> Result<(), Problems> {
    let mut problems = Vec::new();
    let spec = &doc["spec"];
    let Some(spec_map) = spec.as_object() else {
        return Err(Problems::Invalid("spec is missing".into()));
    };
    for key in spec_map.keys() {
        let cluster_only = matches!(
            key.as_str(),
            "namespaceSelector"
                | "contextAwareResources"
                | "allowInsideAdmissionControllerNamespace"
        );
        if !(POLICY_SPEC_FIELDS.contains(&key.as_str())
            || key == "allowInsideAdmissionControllerNamespace")
            || (cluster_only && !cluster_wide)
        {
            problems.push(format!("unknown field .spec.{key}"));
        }
    }
    match spec["module"].as_str() {
        Some(m)
            if ["registry://", "https://", "http://", "file://"]
                .iter()
                .any(|p| m.starts_with(p)) => {}
        _ => problems.push(".spec.module must be a registry://, https:// or file:// URL".into()),
    }
    if !spec["mutating"].is_boolean() {
        problems.push(".spec.mutating is required and must be a boolean".into());
    }
    match spec["rules"].as_array() {
        Some(rules) if !rules.is_empty() => {
            for (i, rule) in rules.iter().enumerate() {
                for key in ["apiGroups", "apiVersions", "resources", "operations"] {
                    if !rule[key].is_array() {
                        problems.push(format!(".spec.rules[{i}].{key} must be a list"));
                    }
                }
                for op in rule["operations"].as_array().into_iter().flatten() {
                    if !matches!(
                        op.as_str(),
                        Some("CREATE" | "UPDATE" | "DELETE" | "CONNECT" | "*")
                    ) {
                        problems.push(format!(".spec.rules[{i}].operations: unknown {op}"));
                    }
                }
            }
        }
        _ => problems.push(".spec.rules must be a non-empty list".into()),
    }
    for (i, resource) in spec["contextAwareResources"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !resource["apiVersion"].is_string() || !resource["kind"].is_string() {
            problems.push(format!(
                ".spec.contextAwareResources[{i}] needs apiVersion and kind"
            ));
        }
    }
    if !spec["settings"].is_null() && !spec["settings"].is_object() {
        problems.push(".spec.settings must be an object".into());
    }
    if doc["metadata"]["name"].as_str().is_none() {
        problems.push(".metadata.name is required".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Problems::Fields(problems))
    }
}

/// Parses a multi-document YAML file into JSON values, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelt_field_is_reported_with_its_path() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "comand": ["x"]}]}
        });
        let err = check_document(&pod).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown field .spec.containers[0].comand"),
            "{err}"
        );
    }

    #[test]
    fn quantities_written_as_numbers_are_accepted() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1}}}]}
        });
        assert_eq!(check_document(&pod).unwrap(), "Pod/p");
    }

    #[test]
    fn wrong_types_and_unknown_kinds_are_errors() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "x"}});
        assert!(matches!(
            check_document(&pod),
            Err(SchemaError::Invalid { .. })
        ));
        let other = json!({"apiVersion": "x/v1", "kind": "Thing"});
        assert!(matches!(
            check_document(&other),
            Err(SchemaError::UnknownKind { .. })
        ));
    }

    #[test]
    fn orascache_fields_are_checked_against_the_crd_types() {
        let ok = json!({"apiVersion": oras_cache_api::cache::API_VERSION, "kind": "OrasCache",
            "metadata": {"name": "c"}, "spec": {"storage": {"size": "1Gi"}}});
        assert!(check_document(&ok).is_ok());
        let bad = json!({"apiVersion": oras_cache_api::cache::API_VERSION, "kind": "OrasCache",
            "metadata": {"name": "c"}, "spec": {"storage": {"sise": "1Gi"}}});
        assert!(
            check_document(&bad)
                .unwrap_err()
                .to_string()
                .contains(".spec.storage.sise")
        );
    }

    #[test]
    fn kubewarden_policies_need_module_rules_and_mutating() {
        let bad = json!({"apiVersion": "policies.kubewarden.io/v1", "kind": "ClusterAdmissionPolicy",
            "metadata": {"name": "p"}, "spec": {"module": "ghcr.io/x", "rules": [], "mutatin": true}});
        let err = check_document(&bad).unwrap_err().to_string();
        for expected in [
            ".spec.module",
            ".spec.rules",
            ".spec.mutating",
            "unknown field .spec.mutatin",
        ] {
            assert!(err.contains(expected), "{expected} in {err}");
        }
    }
}
