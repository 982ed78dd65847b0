//! Applies the injection to the raw JSON object. Only the fields the injection owns are touched,
//! so fields unknown to k8s-openapi, `status` and `managedFields` reach the response unchanged and
//! the JSON patch Kubewarden computes holds only the injection.

use oras_cache_api::annotations::{INJECTED, INJECTED_VALUE};
use serde_json::{Map, Value};

use crate::containers::{share_mount, share_volume};
use crate::error::PolicyError;
use crate::workload::Workload;

/// Everything the injection writes into one pod spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPatch {
    /// Index of the wrapped container in `containers`.
    pub target: usize,
    /// Its new `command`.
    pub command: Vec<String>,
    /// Its new `args`.
    pub args: Vec<String>,
    /// The `oras-init` container.
    pub init_container: Value,
    /// The `oras` sidecar, when there is an output to push.
    pub sidecar: Option<Value>,
}

/// Writes `patch` into the pod spec of `object`; [`mark_injected`] marks it.
pub fn apply(object: &mut Value, workload: Workload, patch: PodPatch) -> Result<(), PolicyError> {
    let spec_pointer = workload.pod_spec_pointer();
    let spec = object_at(object, spec_pointer)?;

    array_in(spec, "volumes", spec_pointer)?.push(share_volume());
    array_in(spec, "initContainers", spec_pointer)?.push(patch.init_container);

    let containers = array_in(spec, "containers", spec_pointer)?;
    let target_path = format!("{spec_pointer}/containers/{}", patch.target);
    let target = containers
        .get_mut(patch.target)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| PolicyError::Malformed {
            path: target_path.clone(),
            reason: "no such container".into(),
        })?;
    target.insert("command".into(), strings(patch.command));
    target.insert("args".into(), strings(patch.args));
    array_in(target, "volumeMounts", &target_path)?.push(share_mount());
    if let Some(sidecar) = patch.sidecar {
        containers.push(sidecar);
    }
    Ok(())
}

/// Marks the object (and a Job's pod template) as injected, so that it is never injected twice.
pub fn mark_injected(object: &mut Value, workload: Workload) -> Result<(), PolicyError> {
    for metadata in workload.marked_metadata_pointers() {
        let metadata_map = object_at(object, metadata)?;
        object_in(metadata_map, "annotations", metadata)?
            .insert(INJECTED.into(), Value::String(INJECTED_VALUE.into()));
    }
    Ok(())
}

fn strings(items: Vec<String>) -> Value {
    Value::Array(items.into_iter().map(Value::String).collect())
}

/// The object at `pointer`, creating missing (or null) objects on the way.
pub fn object_at<'a>(
    root: &'a mut Value,
    pointer: &str,
) -> Result<&'a mut Map<String, Value>, PolicyError> {
    let mut current = root.as_object_mut().ok_or_else(|| PolicyError::Malformed {
        path: "/".into(),
        reason: "not an object".into(),
    })?;
    let mut parent_path = String::new();
    for segment in pointer.split('/').filter(|s| !s.is_empty()) {
        current = object_in(current, segment, &parent_path)?;
        parent_path.push('/');
        parent_path.push_str(segment);
    }
    Ok(current)
}

/// The object under `key` of `parent` (at `parent_path`), created if missing or null.
fn object_in<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    parent_path: &str,
) -> Result<&'a mut Map<String, Value>, PolicyError> {
    let slot = parent.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().ok_or_else(|| PolicyError::Malformed {
        path: format!("{parent_path}/{key}"),
        reason: "not an object".into(),
    })
}

/// The list under `key` of `parent` (at `parent_path`), created if missing or null.
fn array_in<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    parent_path: &str,
) -> Result<&'a mut Vec<Value>, PolicyError> {
    let slot = parent.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| PolicyError::Malformed {
        path: format!("{parent_path}/{key}"),
        reason: "not a list".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch() -> PodPatch {
        PodPatch {
            target: 0,
            command: vec!["/run".into()],
            args: vec!["x".into()],
            init_container: json!({"name": "oras-init"}),
            sidecar: None,
        }
    }

    #[test]
    fn missing_and_null_parents_are_created() {
        let mut job = json!({"spec": {"template": {"metadata": null,
            "spec": {"containers": [{"name": "c"}], "volumes": null}}}});
        apply(&mut job, Workload::Job, patch()).unwrap();
        mark_injected(&mut job, Workload::Job).unwrap();
        assert_eq!(job["metadata"]["annotations"][INJECTED], "true");
        assert_eq!(
            job["spec"]["template"]["metadata"]["annotations"][INJECTED],
            "true"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["volumes"][0]["name"],
            "oras-share"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["command"],
            json!(["/run"])
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_reported_by_path() {
        let mut pod =
            json!({"metadata": {"annotations": []}, "spec": {"containers": [{"name": "c"}]}});
        let err = mark_injected(&mut pod, Workload::Pod).unwrap_err();
        assert_eq!(
            err,
            PolicyError::Malformed {
                path: "/metadata/annotations".into(),
                reason: "not an object".into()
            }
        );
        let mut pod = json!({"spec": {"containers": [{"name": "c", "volumeMounts": {}}]}});
        let err = apply(&mut pod, Workload::Pod, patch()).unwrap_err();
        assert!(
            matches!(err, PolicyError::Malformed { ref path, .. } if path == "/spec/containers/0/volumeMounts")
        );
        let mut not_an_object = json!(["spec"]);
        assert!(apply(&mut not_an_object, Workload::Pod, patch()).is_err());
    }

    #[test]
    fn a_target_out_of_range_is_an_error_not_a_panic() {
        let mut pod = json!({"spec": {"containers": []}});
        assert!(apply(&mut pod, Workload::Pod, patch()).is_err());
    }
}
