//! The kinds the policy mutates and where their annotations and pod spec live in the JSON object.

use serde_json::Value;

/// A kind whose pod spec the policy injects into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A core/v1 Pod: annotations and spec are its own.
    Pod,
    /// A batch/v1 Job: its own annotations drive the injection of its pod template.
    Job,
}

impl Workload {
    /// The workload of an admission request's `kind`, if the policy handles it.
    pub fn from_kind(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("", "Pod") => Some(Self::Pod),
            ("batch", "Job") => Some(Self::Job),
            _ => None,
        }
    }

    /// JSON pointer of the pod spec.
    pub fn pod_spec_pointer(self) -> &'static str {
        match self {
            Self::Pod => "/spec",
            Self::Job => "/spec/template/spec",
        }
    }

    /// JSON pointers of the metadata that carry the injection marker: the object's, and for a Job
    /// also its pod template's, so the Pods the Job controller creates are left alone.
    pub fn marked_metadata_pointers(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["/metadata"],
            Self::Job => &["/metadata", "/spec/template/metadata"],
        }
    }
}

/// The string-valued annotations of the metadata at `metadata_pointer`; anything else is skipped
/// (Kubernetes only stores strings there).
pub fn annotations(object: &Value, metadata_pointer: &str) -> Vec<(String, String)> {
    object
        .pointer(metadata_pointer)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_core_pods_and_batch_jobs_are_handled() {
        assert_eq!(Workload::from_kind("", "Pod"), Some(Workload::Pod));
        assert_eq!(Workload::from_kind("batch", "Job"), Some(Workload::Job));
        assert_eq!(Workload::from_kind("batch", "CronJob"), None);
        assert_eq!(Workload::from_kind("example.com", "Pod"), None);
    }

    #[test]
    fn non_string_annotation_values_are_skipped() {
        let object = json!({"metadata": {"annotations": {"a": "1", "b": 2, "c": null}}});
        assert_eq!(
            annotations(&object, "/metadata"),
            [("a".to_string(), "1".to_string())]
        );
        assert!(annotations(&json!({"metadata": "x"}), "/metadata").is_empty());
        assert!(annotations(&json!(null), "/spec/template/metadata").is_empty());
    }
}
