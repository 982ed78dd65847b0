//! Reading the pod spec of the object: its containers, and the names the injection must not clash
//! with. The object is read as raw JSON, and every field is checked for the shape Kubernetes gives
//! it, so a strange object gets a rejection, never a panic.

use oras_cache_api::agent::SHARE_VOLUME;
use serde_json::Value;

use crate::command::ContainerCommand;
use crate::containers::{INIT_CONTAINER, SIDECAR_CONTAINER};
use crate::error::PolicyError;

/// What the policy needs to know about a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSpecView {
    /// `containers`, in order.
    pub containers: Vec<ContainerCommand>,
    /// Names of `initContainers`.
    pub init_containers: Vec<String>,
    /// Names of `volumes`.
    pub volumes: Vec<String>,
}

impl PodSpecView {
    /// Reads the pod spec at `pointer` of `object`.
    pub fn read(object: &Value, pointer: &str) -> Result<Self, PolicyError> {
        let Some(spec) = object.pointer(pointer).filter(|v| !v.is_null()) else {
            return Err(PolicyError::NoContainers);
        };
        let spec = spec
            .as_object()
            .ok_or_else(|| malformed(pointer, "not an object"))?;
        let containers = match spec.get("containers") {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => {
                let path = format!("{pointer}/containers");
                let list = list
                    .as_array()
                    .ok_or_else(|| malformed(&path, "not a list"))?;
                list.iter()
                    .enumerate()
                    .map(|(i, c)| read_container(c, &format!("{path}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(Self {
            containers,
            init_containers: names(
                spec.get("initContainers"),
                &format!("{pointer}/initContainers"),
            )?,
            volumes: names(spec.get("volumes"), &format!("{pointer}/volumes"))?,
        })
    }

    /// The index of the container to wrap: the one named by the `container` annotation, else the
    /// first (the original user guide's default; the caller warns when there are several).
    pub fn target(&self, wanted: Option<&str>) -> Result<usize, PolicyError> {
        let names = || {
            self.containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match wanted {
            Some(name) => self
                .containers
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| PolicyError::UnknownContainer {
                    name: name.to_string(),
                    names: names(),
                }),
            None if self.containers.is_empty() => Err(PolicyError::NoContainers),
            None => Ok(0),
        }
    }

    /// Refuses a pod that already uses a name the injection adds.
    pub fn check_free_names(&self, with_sidecar: bool) -> Result<(), PolicyError> {
        if self.volumes.iter().any(|v| v == SHARE_VOLUME) {
            return Err(PolicyError::NameTaken {
                what: "volume",
                name: SHARE_VOLUME,
            });
        }
        let all_containers = || {
            self.containers
                .iter()
                .map(|c| c.name.as_str())
                .chain(self.init_containers.iter().map(String::as_str))
        };
        if all_containers().any(|n| n == INIT_CONTAINER) {
            return Err(PolicyError::NameTaken {
                what: "container",
                name: INIT_CONTAINER,
            });
        }
        if with_sidecar && all_containers().any(|n| n == SIDECAR_CONTAINER) {
            return Err(PolicyError::NameTaken {
                what: "container",
                name: SIDECAR_CONTAINER,
            });
        }
        Ok(())
    }
}

fn malformed(path: &str, reason: &str) -> PolicyError {
    PolicyError::Malformed {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn read_container(value: &Value, path: &str) -> Result<ContainerCommand, PolicyError> {
    let container = value
        .as_object()
        .ok_or_else(|| malformed(path, "not an object"))?;
    let name = match container.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(malformed(
                &format!("{path}/name"),
                "a container needs a name",
            ));
        }
    };
    let image = match container.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(image)) => Some(image.clone()),
        Some(_) => return Err(malformed(&format!("{path}/image"), "not a string")),
    };
    Ok(ContainerCommand {
        name,
        image,
        command: strings(container.get("command"), &format!("{path}/command"))?,
        args: strings(container.get("args"), &format!("{path}/args"))?,
    })
}

fn strings(value: Option<&Value>, path: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| malformed(path, "not a list of strings"))
            })
            .collect(),
        Some(_) => Err(malformed(path, "not a list of strings")),
    }
}

fn names(value: Option<&Value>, path: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .filter_map(|item| item.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()),
        Some(_) => Err(malformed(path, "not a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_containers_and_names() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "image": "i", "command": ["x"], "args": null}, {"name": "b"}],
            "initContainers": [{"name": "init"}],
            "volumes": [{"name": "v"}, {"noname": true}]
        }});
        let view = PodSpecView::read(&pod, "/spec").unwrap();
        assert_eq!(view.containers[0].command, ["x"]);
        assert_eq!(view.containers[1].image, None);
        assert_eq!(view.init_containers, ["init"]);
        assert_eq!(view.volumes, ["v"]);
        assert_eq!(view.target(Some("b")), Ok(1));
        // The original user guide: `container` defaults to the first container.
        assert_eq!(view.target(None), Ok(0));
    }

    #[test]
    fn a_missing_spec_means_no_containers() {
        assert_eq!(
            PodSpecView::read(&json!({}), "/spec"),
            Err(PolicyError::NoContainers)
        );
        let view = PodSpecView::read(&json!({"spec": {}}), "/spec").unwrap();
        assert_eq!(view.target(None), Err(PolicyError::NoContainers));
    }

    #[test]
    fn the_sidecar_name_only_matters_with_a_sidecar() {
        let pod = json!({"spec": {"containers": [{"name": "oras"}]}});
        let view = PodSpecView::read(&pod, "/spec").unwrap();
        assert_eq!(view.check_free_names(false), Ok(()));
        assert!(view.check_free_names(true).is_err());
        let pod = json!({"spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "oras-init"}]}});
        let view = PodSpecView::read(&pod, "/spec").unwrap();
        assert!(view.check_free_names(false).is_err());
    }
}
