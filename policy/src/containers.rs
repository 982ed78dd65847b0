//! The JSON of what the policy adds to a pod: the shared volume, the agent containers, and their
//! security context and resources.

use oras_cache_api::agent::{AGENT_IMAGE_PATH, SHARE_MOUNT, SHARE_VOLUME};
use oras_cache_api::settings::Settings;
use serde_json::{Map, Value, json};

/// Name of the injected init container that installs the agent and pulls the inputs.
pub const INIT_CONTAINER: &str = "oras-init";
/// Name of the injected sidecar that pushes the outputs.
pub const SIDECAR_CONTAINER: &str = "oras";

/// The shared `emptyDir` volume.
pub fn share_volume() -> Value {
    json!({"name": SHARE_VOLUME, "emptyDir": {}})
}

/// The mount of the shared volume, the same in every container that uses it.
pub fn share_mount() -> Value {
    json!({"name": SHARE_VOLUME, "mountPath": SHARE_MOUNT})
}

/// What the agent containers run as: within the "restricted" Pod Security Standard whatever the
/// pod says.
pub fn security_context(settings: &Settings) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": settings.security_context.run_as_user,
        "runAsGroup": settings.security_context.run_as_group,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The resources of the agent containers; empty maps are left out.
pub fn resources(settings: &Settings) -> Value {
    let mut resources = Map::new();
    for (kind, map) in [
        ("requests", &settings.resources.requests),
        ("limits", &settings.resources.limits),
    ] {
        if !map.is_empty() {
            resources.insert(kind.into(), json!(map));
        }
    }
    Value::Object(resources)
}

/// An agent container (`oras-init` or `oras`). Credentials from `oras_env` reach these containers
/// only, never the application container.
pub fn agent_container(
    name: &str,
    image: &str,
    settings: &Settings,
    args: Vec<String>,
    oras_env: Option<&str>,
) -> Value {
    let mut container = json!({
        "name": name,
        "image": image,
        "imagePullPolicy": settings.agent_image_pull_policy,
        "command": [AGENT_IMAGE_PATH],
        "args": args,
        // The agent image is FROM scratch and its root filesystem read-only: temporary files go
        // to the share, the one writable place every agent container has.
        "env": [{"name": "TMPDIR", "value": SHARE_MOUNT}],
        "volumeMounts": [share_mount()],
        "securityContext": security_context(settings),
        "resources": resources(settings),
    });
    if let (Some(secret), Some(map)) = (oras_env, container.as_object_mut()) {
        map.insert("envFrom".into(), json!([{"secretRef": {"name": secret}}]));
    }
    container
}
