//! The JSON of what the policy adds to a pod: the shared volume, the agent containers, and their
//! security context and resources.

use oras_cache_api::agent::{AGENT_IMAGE_PATH, SHARE_MOUNT, SHARE_VOLUME};
use oras_cache_api::settings::Settings;
use serde_json::{Map, Value};

/// Name of the injected init container that installs the agent and pulls the inputs.
pub const INIT_CONTAINER: &str = "oras-init";
/// Name of the injected sidecar that pushes the outputs.
pub const SIDECAR_CONTAINER: &str = "oras";

/// The shared `emptyDir` volume.
pub fn share_volume() -> Value {
    object([
        ("name", SHARE_VOLUME.into()),
        ("emptyDir", Value::Object(Map::new())),
    ])
}

/// The mount of the shared volume, the same in every container that uses it.
pub fn share_mount() -> Value {
    object([
        ("name", SHARE_VOLUME.into()),
        ("mountPath", SHARE_MOUNT.into()),
    ])
}

/// What the agent containers run as: within the "restricted" Pod Security Standard whatever the
/// pod says.
pub fn security_context(settings: &Settings) -> Value {
    object([
        ("runAsNonRoot", true.into()),
        ("runAsUser", settings.security_context.run_as_user.into()),
        ("runAsGroup", settings.security_context.run_as_group.into()),
        ("allowPrivilegeEscalation", false.into()),
        ("readOnlyRootFilesystem", true.into()),
        ("capabilities", object([("drop", strings(["ALL"]))])),
        (
            "seccompProfile",
            object([("type", "RuntimeDefault".into())]),
        ),
    ])
}

/// The resources of the agent containers; empty maps are left out, and with neither requests nor
/// limits the whole field is (`None`): the API server reads a missing `resources` as an empty
/// one, and the patch stays smaller.
pub fn resources(settings: &Settings) -> Option<Value> {
    let mut resources = Map::new();
    for (kind, map) in [
        ("requests", &settings.resources.requests),
        ("limits", &settings.resources.limits),
    ] {
        if !map.is_empty() {
            let quantities = map
                .iter()
                .map(|(name, quantity)| (name.clone(), Value::from(quantity.as_str())))
                .collect();
            resources.insert(kind.into(), Value::Object(quantities));
        }
    }
    (!resources.is_empty()).then_some(Value::Object(resources))
}

/// An agent container (`oras-init` or `oras`). Credentials from `oras_env` reach these containers
/// only, never the application container.
///
/// Built as maps directly rather than with `json!`, which serialises every interpolated value
/// into a `Value` first: this runs twice on every injected request (BENCHMARKS.md, the policy's
/// instruction profile).
pub fn agent_container(
    name: &str,
    image: &str,
    settings: &Settings,
    args: Vec<String>,
    oras_env: Option<&str>,
) -> Value {
    let mut container = Map::new();
    container.insert("name".into(), name.into());
    container.insert("image".into(), image.into());
    container.insert(
        "imagePullPolicy".into(),
        settings.agent_image_pull_policy.as_str().into(),
    );
    container.insert("command".into(), strings([AGENT_IMAGE_PATH]));
    container.insert(
        "args".into(),
        Value::Array(args.into_iter().map(Value::String).collect()),
    );
    // The agent image is FROM scratch and its root filesystem read-only: temporary files go
    // to the share, the one writable place every agent container has.
    container.insert(
        "env".into(),
        Value::Array(vec![object([
            ("name", "TMPDIR".into()),
            ("value", SHARE_MOUNT.into()),
        ])]),
    );
    container.insert("volumeMounts".into(), Value::Array(vec![share_mount()]));
    container.insert("securityContext".into(), security_context(settings));
    if let Some(resources) = resources(settings) {
        container.insert("resources".into(), resources);
    }
    if let Some(secret) = oras_env {
        container.insert(
            "envFrom".into(),
            Value::Array(vec![object([(
                "secretRef",
                object([("name", secret.into())]),
            )])]),
        );
    }
    Value::Object(container)
}

/// A JSON object of these fields.
fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// A JSON list of these strings.
fn strings<const N: usize>(items: [&str; N]) -> Value {
    Value::Array(items.into_iter().map(Value::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_agent_container_is_exactly_the_documented_shape() {
        let settings: Settings = serde_json::from_value(json!({
            "agentImage": "ghcr.io/oras-cache/oras-agent:v0.1.0",
            "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "64Mi"}},
        }))
        .unwrap();
        let container = agent_container(
            "oras-init",
            "ghcr.io/oras-cache/oras-agent:v0.1.0",
            &settings,
            vec!["init".into(), "--share=/mnt/oras".into()],
            Some("oras-env"),
        );
        assert_eq!(
            container,
            json!({
                "name": "oras-init",
                "image": "ghcr.io/oras-cache/oras-agent:v0.1.0",
                "imagePullPolicy": settings.agent_image_pull_policy,
                "command": [AGENT_IMAGE_PATH],
                "args": ["init", "--share=/mnt/oras"],
                "env": [{"name": "TMPDIR", "value": SHARE_MOUNT}],
                "volumeMounts": [{"name": SHARE_VOLUME, "mountPath": SHARE_MOUNT}],
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": settings.security_context.run_as_user,
                    "runAsGroup": settings.security_context.run_as_group,
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "64Mi"}},
                "envFrom": [{"secretRef": {"name": "oras-env"}}],
            })
        );
        let no_resources: Settings = serde_json::from_value(json!({
            "agentImage": "a", "resources": {"requests": {}, "limits": {}}
        }))
        .unwrap();
        assert_eq!(resources(&no_resources), None);
        let bare = agent_container("oras", "a", &no_resources, Vec::new(), None);
        assert_eq!(bare.get("resources"), None);
        assert_eq!(bare.get("envFrom"), None);
        assert_eq!(
            share_volume(),
            json!({"name": SHARE_VOLUME, "emptyDir": {}})
        );
    }
}
