//! Artifacts as volumes: every inline CSI volume of a driver in the `volumeDrivers` setting becomes
//! an `emptyDir` of the same name, and one init container, `oras-volumes`, fills each with its
//! artifact before any other container starts. The application containers, their commands and
//! their `volumeMounts` stay exactly as written.

use std::collections::BTreeMap;

use oras_cache_api::agent::{
    AGENT_IMAGE_PATH, SHARE_VOLUME, UnpackLimits, VOLUMES_CONTAINER, VolumePull, VolumesArgs,
    volume_mount_path,
};
use oras_cache_api::settings::Settings;
use oras_cache_api::volumes::{
    ATTR_REFERENCE, ArtifactVolume, VolumeArtifact, VolumeError, read_volume,
};
use serde_json::{Map, Value, json};

use crate::containers::{resources, security_context};
use crate::error::PolicyError;
use crate::mirror::{self, MirrorLookup};
use crate::registry::ResolvedRegistry;

/// An artifact volume of the pod spec, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundVolume {
    /// Its index in `volumes`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `csi.volumeAttributes`.
    pub attributes: BTreeMap<String, String>,
    /// `csi.nodePublishSecretRef.name`.
    pub secret: Option<String>,
}

/// The artifact volumes of the pod spec at `spec_pointer`: those whose `csi.driver` is one of
/// `drivers`. A field of the wrong shape in such a volume is an error naming its path.
pub fn find(
    object: &Value,
    spec_pointer: &str,
    drivers: &[String],
) -> Result<Vec<FoundVolume>, PolicyError> {
    if drivers.is_empty() {
        return Ok(Vec::new());
    }
    let Some(volumes) = object
        .pointer(spec_pointer)
        .and_then(|spec| spec.get("volumes"))
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for (index, volume) in volumes.iter().enumerate() {
        let Some(csi) = volume.get("csi") else {
            continue;
        };
        let driver = csi.get("driver").and_then(Value::as_str).unwrap_or("");
        if !drivers.iter().any(|d| d == driver) {
            continue;
        }
        let path = format!("{spec_pointer}/volumes/{index}");
        let malformed = |field: &str, reason: &str| PolicyError::Malformed {
            path: format!("{path}{field}"),
            reason: reason.into(),
        };
        let name = volume
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("/name", "a volume needs a name"))?
            .to_string();
        let attributes = match csi.get("volumeAttributes") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(malformed(
                        &format!("/csi/volumeAttributes/{k}"),
                        "attribute values are strings",
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(malformed("/csi/volumeAttributes", "not an object")),
        };
        let secret = match csi.get("nodePublishSecretRef") {
            None | Some(Value::Null) => None,
            Some(reference) => match reference.get("name") {
                Some(Value::String(name)) => Some(name.clone()),
                None | Some(Value::Null) => None,
                Some(_) => {
                    return Err(malformed("/csi/nodePublishSecretRef/name", "not a string"));
                }
            },
        };
        found.push(FoundVolume {
            index,
            name,
            attributes,
            secret,
        });
    }
    Ok(found)
}

/// What the injection of the artifact volumes needs to know about the pod.
pub struct VolumeContext<'a> {
    /// The registry of the pod's `oras-cache` (or `registry`) annotation, for relative references.
    pub pod_registry: Option<&'a ResolvedRegistry>,
    /// Whether that registry is a remote one (the `registry` annotation), which a mirror may
    /// serve; an `OrasCache` is pulled from directly.
    pub pod_registry_is_remote: bool,
    /// The pod's credentials Secret for that registry (`oras-env`, or its remote cache's).
    pub pod_credentials: Option<&'a str>,
    /// The agent image.
    pub image: &'a str,
    /// Verbose agent logs.
    pub debug: bool,
    /// Limits of unpacking directory layers (the `max-unpacked-size` annotation).
    pub limits: UnpackLimits,
}

/// The volumes read and checked, with where each pulls from.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumePlan {
    /// `(index in volumes, the emptyDir volume that replaces it)`.
    pub replacements: Vec<(usize, Value)>,
    /// The `oras-volumes` init container.
    pub init_container: Value,
}

/// Reads every found volume and builds what replaces it. Warnings go to `warnings`.
pub fn plan(
    found: &[FoundVolume],
    context: &VolumeContext<'_>,
    mirrors: &mut MirrorLookup<'_>,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Result<VolumePlan, PolicyError> {
    let mut pulls = Vec::with_capacity(found.len());
    let mut replacements = Vec::with_capacity(found.len());
    let mut mounts = Vec::with_capacity(found.len());
    let mut env_from = Vec::new();
    for (n, volume) in found.iter().enumerate() {
        if volume.name == SHARE_VOLUME {
            return Err(VolumeError {
                volume: volume.name.clone(),
                attribute: "name".into(),
                problem: format!(
                    "is the name of oras-cache's own volume ({SHARE_VOLUME}): rename the volume"
                ),
            }
            .into());
        }
        let (artifact, volume_warnings) = read_volume(
            &volume.name,
            &volume.attributes,
            volume.secret.as_deref(),
            context.pod_registry.is_some(),
        )?;
        warnings.extend(volume_warnings);
        let (mut reference, mut plain_http, mut secret) = locate(&artifact, context, settings)?;
        let mirrorable = match artifact.artifact {
            VolumeArtifact::Full(_) => true,
            VolumeArtifact::Relative(_) => context.pod_registry_is_remote,
        };
        let upstream = reference
            .split_once('/')
            .map(|(registry, _)| registry.to_string());
        if let (true, Some(upstream)) = (mirrorable, upstream)
            && let Some(mirror) = mirrors.of(&upstream, warnings)
        {
            warnings.push(mirror::redirected(
                &format!("volume {:?}", volume.name),
                &mirror,
            ));
            reference = format!("{}{}", mirror.address, &reference[upstream.len()..]);
            plain_http = mirror.plain_http;
            // The mirror holds the upstream credentials; the pod needs none.
            secret = None;
        }
        let path = volume_mount_path(&volume.name);
        let credentials_env_prefix = secret.map(|secret| {
            let prefix = format!("ORAS_VOLUME_{n}_");
            env_from.push(json!({"prefix": prefix, "secretRef": {"name": secret}}));
            prefix
        });
        pulls.push(VolumePull {
            volume: volume.name.clone(),
            path: path.clone(),
            reference,
            plain_http,
            media_types: artifact.media_types.clone(),
            concurrency: artifact.concurrency,
            credentials_env_prefix,
        });
        mounts.push(json!({"name": volume.name, "mountPath": path}));
        let empty_dir = match &artifact.size_limit {
            Some(limit) => json!({"sizeLimit": limit}),
            None => json!({}),
        };
        replacements.push((
            volume.index,
            json!({"name": volume.name, "emptyDir": empty_dir}),
        ));
    }
    let args = VolumesArgs {
        pulls,
        debug: context.debug,
    };
    let mut container = json!({
        "name": VOLUMES_CONTAINER,
        "image": context.image,
        "imagePullPolicy": settings.agent_image_pull_policy,
        "command": [AGENT_IMAGE_PATH],
        "args": args.to_args_with_limits(&context.limits),
        "volumeMounts": mounts,
        "securityContext": security_context(settings),
    });
    if let (Some(resources), Some(map)) = (resources(settings), container.as_object_mut()) {
        map.insert("resources".into(), resources);
    }
    if !env_from.is_empty()
        && let Some(map) = container.as_object_mut()
    {
        map.insert("envFrom".into(), Value::Array(env_from));
    }
    Ok(VolumePlan {
        replacements,
        init_container: container,
    })
}

/// The full reference, the transport and the credentials Secret of one volume's artifact.
fn locate<'a>(
    artifact: &'a ArtifactVolume,
    context: &VolumeContext<'a>,
    settings: &Settings,
) -> Result<(String, bool, Option<&'a str>), PolicyError> {
    match &artifact.artifact {
        VolumeArtifact::Relative(relative) => {
            let registry = context
                .pod_registry
                .expect("relative references are read only when the pod names a registry");
            let secret = artifact
                .credentials_secret
                .as_deref()
                .or(context.pod_credentials);
            Ok((
                registry.reference(relative),
                artifact.plain_http.unwrap_or(registry.plain_http),
                secret,
            ))
        }
        VolumeArtifact::Full(reference) => {
            if !settings.registry_allowed(&reference.registry) {
                return Err(VolumeError {
                    volume: artifact.name.clone(),
                    attribute: ATTR_REFERENCE.into(),
                    problem: format!(
                        "names registry {:?}, which the policy does not allow (allowedRegistries: {}): use one of those, or ask the cluster operator to allow it",
                        reference.registry,
                        settings.allowed_registries.join(", ")
                    ),
                }
                .into());
            }
            Ok((
                reference.to_string(),
                artifact.plain_http.unwrap_or(false),
                artifact.credentials_secret.as_deref(),
            ))
        }
    }
}

/// Writes the plan into the pod spec: each volume replaced in place, `oras-volumes` first among
/// the init containers (the user's own init containers may read the volumes too).
pub fn apply(spec: &mut Map<String, Value>, plan: VolumePlan) -> Result<(), PolicyError> {
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for (index, replacement) in plan.replacements {
            if let Some(slot) = volumes.get_mut(index) {
                *slot = replacement;
            }
        }
    }
    let slot = spec
        .entry("initContainers".to_string())
        .or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    let init = slot.as_array_mut().ok_or_else(|| PolicyError::Malformed {
        path: "initContainers".into(),
        reason: "not a list".into(),
    })?;
    if init
        .iter()
        .any(|c| c.get("name").and_then(Value::as_str) == Some(VOLUMES_CONTAINER))
    {
        return Err(PolicyError::NameTaken {
            what: "init container",
            name: VOLUMES_CONTAINER,
        });
    }
    init.insert(0, plan.init_container);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(volumes: Value) -> Value {
        json!({"spec": {"containers": [{"name": "app"}], "volumes": volumes}})
    }

    #[test]
    fn only_volumes_of_the_configured_drivers_are_found() {
        let object = pod(json!([
            {"name": "a", "csi": {"driver": "csi.oras.land", "volumeAttributes": {"oras.artifact.reference": "r.io/a:1"},
                                   "nodePublishSecretRef": {"name": "creds"}}},
            {"name": "b", "csi": {"driver": "other.csi"}},
            {"name": "c", "emptyDir": {}},
        ]));
        let drivers = vec!["csi.oras.land".to_string()];
        let found = find(&object, "/spec", &drivers).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index, 0);
        assert_eq!(found[0].secret.as_deref(), Some("creds"));
        assert!(find(&object, "/spec", &[]).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_artifact_volume_is_named_by_path() {
        let object = pod(
            json!([{"name": "a", "csi": {"driver": "csi.oras.land", "volumeAttributes": {"x": 1}}}]),
        );
        let error = find(&object, "/spec", &["csi.oras.land".to_string()]).unwrap_err();
        assert!(
            matches!(error, PolicyError::Malformed { ref path, .. } if path == "/spec/volumes/0/csi/volumeAttributes/x")
        );
    }
}
