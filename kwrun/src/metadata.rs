//! Kubewarden policy metadata (`metadata.yml`) and the `io.kubewarden.metadata` custom section.
//!
//! `annotate` writes the metadata as camelCase JSON into that section, with `protocolVersion`
//! read from the module itself, `io.kubewarden.policy.usage` from the README and
//! `io.kubewarden.kwctl` naming the tool, as `kwctl annotate` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wasm_sections::{SectionError, read_custom_section, replace_custom_section};

/// Name of the custom section that holds the metadata.
pub const METADATA_SECTION: &str = "io.kubewarden.metadata";
/// Annotation set from the README by `annotate -u`.
pub const USAGE_ANNOTATION: &str = "io.kubewarden.policy.usage";
/// Annotation naming the annotating tool and its version.
pub const TOOL_ANNOTATION: &str = "io.kubewarden.kwctl";
/// Annotation copied to the manifest's `org.opencontainers.image.source` on push.
pub const SOURCE_ANNOTATION: &str = "io.kubewarden.policy.source";

const OPERATIONS: [&str; 5] = ["CREATE", "UPDATE", "DELETE", "CONNECT", "*"];

/// One admission rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups (`""` is core).
    pub api_groups: Vec<String>,
    /// API versions.
    pub api_versions: Vec<String>,
    /// Resources (`pods`, `jobs`).
    pub resources: Vec<String>,
    /// Operations.
    pub operations: Vec<String>,
}

/// A Kubernetes resource a context-aware policy reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextAwareResource {
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    /// Singular PascalCase kind.
    pub kind: String,
}

fn default_true() -> bool {
    true
}
fn default_execution_mode() -> String {
    "kubewarden-wapc".to_owned()
}
fn default_policy_type() -> String {
    "kubernetes".to_owned()
}

/// The policy metadata, as `metadata.yml` holds it and the custom section stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `v1`, filled in by annotate.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// What the webhook matches.
    pub rules: Vec<Rule>,
    /// Free labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `io.kubewarden.*` and `io.artifacthub.*` annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Whether the policy may mutate.
    pub mutating: bool,
    /// Whether the audit scanner evaluates it.
    #[serde(default = "default_true")]
    pub background_audit: bool,
    /// Kubernetes resources the policy reads.
    #[serde(default)]
    pub context_aware_resources: Vec<ContextAwareResource>,
    /// `kubewarden-wapc` (default), `opa`, `gatekeeper`, `wasi`.
    #[serde(default = "default_execution_mode")]
    pub execution_mode: String,
    /// `kubernetes` (default) or `raw`.
    #[serde(default = "default_policy_type")]
    pub policy_type: String,
    /// Oldest Kubewarden able to run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_kubewarden_version: Option<String>,
    /// Host capability paths the policy uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_capabilities: Option<Vec<String>>,
}

/// Errors of metadata files and sections.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `metadata.yml` does not parse.
    #[error("metadata is not valid: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// A field has a value Kubewarden refuses.
    #[error("metadata is not valid: {0}")]
    Invalid(String),
    /// The section holds something that is not metadata JSON.
    #[error("the {METADATA_SECTION} section is not metadata JSON: {0}")]
    SectionJson(#[source] serde_json::Error),
    /// The module is malformed.
    #[error(transparent)]
    Wasm(#[from] SectionError),
}

impl Metadata {
    /// Parses `metadata.yml`, checking the rules as kwctl does.
    pub fn from_yaml(text: &str) -> Result<Self, MetadataError> {
        let metadata: Metadata = serde_yaml::from_str(text).map_err(MetadataError::Yaml)?;
        metadata.validate()?;
        Ok(metadata)
    }

    /// Checks what Kubernetes and kwctl refuse: empty lists, `*` mixed with other values,
    /// unknown operations.
    pub fn validate(&self) -> Result<(), MetadataError> {
        if self.rules.is_empty() && self.policy_type != "raw" {
            return Err(MetadataError::Invalid(
                "`rules` must list at least one rule".into(),
            ));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let n = index + 1;
            for (field, values) in [
                ("apiGroups", &rule.api_groups),
                ("apiVersions", &rule.api_versions),
                ("resources", &rule.resources),
                ("operations", &rule.operations),
            ] {
                if values.is_empty() {
                    return Err(MetadataError::Invalid(format!(
                        "rule #{n}: `{field}` must not be empty"
                    )));
                }
                if values.len() > 1 && values.iter().any(|v| v == "*") {
                    return Err(MetadataError::Invalid(format!(
                        "rule #{n}: `{field}` lists `*` with other values; use `*` alone"
                    )));
                }
            }
            if let Some(bad) = rule
                .operations
                .iter()
                .find(|op| !OPERATIONS.contains(&op.as_str()))
            {
                return Err(MetadataError::Invalid(format!(
                    "rule #{n}: unknown operation `{bad}`; use CREATE, UPDATE, DELETE, CONNECT or *"
                )));
            }
        }
        if let Some(version) = &self.protocol_version
            && version != "v1"
        {
            return Err(MetadataError::Invalid(format!(
                "unknown protocolVersion `{version}`; only v1 exists"
            )));
        }
        Ok(())
    }

    /// The metadata of an annotated module, `None` for a plain one.
    pub fn from_module(module: &[u8]) -> Result<Option<Self>, MetadataError> {
        match read_custom_section(module, METADATA_SECTION)? {
            Some(json) => serde_json::from_slice(json)
                .map(Some)
                .map_err(MetadataError::SectionJson),
            None => Ok(None),
        }
    }

    /// Sets an annotation.
    pub fn set_annotation(&mut self, key: &str, value: String) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value);
    }

    /// The annotations an OCI manifest carries: single-line values only (so the README is left
    /// out), plus `org.opencontainers.image.source` from the policy source.
    pub fn manifest_annotations(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .annotations
            .iter()
            .flatten()
            .filter(|(_, value)| !value.contains('\n'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(source) = out.get(SOURCE_ANNOTATION).cloned() {
            out.insert("org.opencontainers.image.source".to_owned(), source);
        }
        out
    }

    /// The module with this metadata in its `io.kubewarden.metadata` section.
    pub fn embed(&self, module: &[u8]) -> Result<Vec<u8>, MetadataError> {
        let json = serde_json::to_vec(self).map_err(MetadataError::SectionJson)?;
        Ok(replace_custom_section(module, METADATA_SECTION, &json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm_sections::PREAMBLE;

    const METADATA_YML: &str = r#"
rules:
  - apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
    operations: ["CREATE"]
mutating: true
contextAwareResources:
  - apiVersion: cache.converged-computing.github.io/v1alpha1
    kind: OrasCache
annotations:
  io.kubewarden.policy.title: oras-cache
  io.kubewarden.policy.source: https://example.org/src
"#;

    #[test]
    fn metadata_yml_parses_with_kubewarden_defaults() {
        let metadata = Metadata::from_yaml(METADATA_YML).unwrap();
        assert!(metadata.mutating);
        assert!(metadata.background_audit);
        assert_eq!(metadata.execution_mode, "kubewarden-wapc");
        assert_eq!(metadata.context_aware_resources[0].kind, "OrasCache");
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            json["contextAwareResources"][0]["apiVersion"],
            "cache.converged-computing.github.io/v1alpha1"
        );
        assert_eq!(json["rules"][0]["apiGroups"][0], "");
        assert_eq!(json["policyType"], "kubernetes");
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_and_field() {
        let star = METADATA_YML.replace(
            r#"operations: ["CREATE"]"#,
            r#"operations: ["CREATE", "*"]"#,
        );
        let err = Metadata::from_yaml(&star).unwrap_err().to_string();
        assert!(err.contains("rule #1: `operations` lists `*`"), "{err}");
        let unknown = METADATA_YML.replace(r#"operations: ["CREATE"]"#, r#"operations: ["PATCH"]"#);
        assert!(
            Metadata::from_yaml(&unknown)
                .unwrap_err()
                .to_string()
                .contains("unknown operation `PATCH`")
        );
        assert!(
            Metadata::from_yaml("mutating: true")
                .unwrap_err()
                .to_string()
                .contains("rules")
        );
    }

    #[test]
    fn embedded_metadata_reads_back() {
        let mut metadata = Metadata::from_yaml(METADATA_YML).unwrap();
        metadata.protocol_version = Some("v1".into());
        let module = metadata.embed(&PREAMBLE).unwrap();
        assert_eq!(Metadata::from_module(&module).unwrap(), Some(metadata));
        assert_eq!(Metadata::from_module(&PREAMBLE).unwrap(), None);
    }

    #[test]
    fn manifest_annotations_drop_multi_line_values_and_add_the_source() {
        let mut metadata = Metadata::from_yaml(METADATA_YML).unwrap();
        metadata.set_annotation(USAGE_ANNOTATION, "# README\n\ntext".into());
        let annotations = metadata.manifest_annotations();
        assert!(!annotations.contains_key(USAGE_ANNOTATION));
        assert_eq!(
            annotations["org.opencontainers.image.source"],
            "https://example.org/src"
        );
        assert_eq!(annotations["io.kubewarden.policy.title"], "oras-cache");
    }
}
