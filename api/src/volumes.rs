//! Artifacts as volumes: the ORAS CSI driver's inline volumes, as users write them, read into what
//! the policy injects instead of a node plugin.
//!
//! A pod names an artifact with an inline CSI volume: `csi.driver: csi.oras.land` and
//! `volumeAttributes["oras.artifact.reference"]` (the ORAS CSI driver's attributes; see
//! `../shared/reference/volumes-mirrors-connectors.md`). The policy turns the volume into an
//! `emptyDir` and adds the `oras-volumes` init container, which fills it. This module reads the
//! attributes, with errors that name the volume, the attribute and the fix; it is pure (no host
//! calls), so the policy's wasm build links it.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::annotations::parse_bool;
use crate::reference::{ArtifactReference, validate_reference};
use crate::settings::is_quantity;

/// The ORAS CSI driver's name, the default of the `volumeDrivers` setting.
pub const DEFAULT_DRIVER: &str = "csi.oras.land";
/// The artifact to mount (required).
pub const ATTR_REFERENCE: &str = "oras.artifact.reference";
/// Only layers of these media types (comma separated).
pub const ATTR_LAYER_MEDIA_TYPE: &str = "oras.artifact.layers.mediatype";
/// `"true"`: speak plain HTTP to the registry.
pub const ATTR_PLAIN_HTTP: &str = "oras.options.plainhttp";
/// Parallel layer downloads.
pub const ATTR_CONCURRENCY: &str = "oras.options.concurrency";
/// `sizeLimit` of the emptyDir (new; a Kubernetes quantity).
pub const ATTR_SIZE_LIMIT: &str = "oras.options.sizelimit";
/// The driver's node-cache bypass: accepted, with a warning.
pub const ATTR_PULL_ALWAYS: &str = "oras.options.pullalways";
/// The driver's skip-TLS-verification: accepted, with a warning.
pub const ATTR_INSECURE: &str = "oras.options.insecure";
/// Largest `oras.options.concurrency` the agent is asked for.
pub const MAX_CONCURRENCY: u32 = 16;

/// Whether `name` can name a CSI driver: 63 characters or less, letters, digits, `-` and `.`,
/// beginning and ending with a letter or digit (CSI spec, `GetPluginInfoResponse.name`).
pub fn is_csi_driver_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// Where a volume's artifact lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeArtifact {
    /// A full reference: its registry is the part before the first `/` (lower-cased).
    Full(ArtifactReference),
    /// A reference relative to the pod's `oras-cache`.
    Relative(String),
}

/// One artifact volume, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactVolume {
    /// The volume's name.
    pub name: String,
    /// The artifact.
    pub artifact: VolumeArtifact,
    /// Only layers of these media types; empty: every layer.
    pub media_types: Vec<String>,
    /// `oras.options.plainhttp`, when set.
    pub plain_http: Option<bool>,
    /// `oras.options.concurrency`, when set.
    pub concurrency: Option<u32>,
    /// `oras.options.sizelimit`, when set.
    pub size_limit: Option<String>,
    /// `csi.nodePublishSecretRef.name`: the Secret with the pull credentials.
    pub credentials_secret: Option<String>,
}

/// A volume the policy cannot serve; the message names the volume, the attribute and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("volume {volume:?}: {attribute} {problem}")]
pub struct VolumeError {
    /// The volume's name.
    pub volume: String,
    /// The attribute (or field) at fault.
    pub attribute: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

/// Whether the first part of `value` is a registry host by the docker convention (a `.` or a `:`,
/// or `localhost`). Used only to tell a full reference from one relative to the pod's cache.
fn names_a_registry(value: &str) -> bool {
    match value.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

/// Reads one volume's attributes. `pod_has_cache`: the pod names an `oras-cache`, so a reference
/// whose first part is not a registry host (`workflow/summary:step2`) is relative to it.
/// The warnings are for attributes accepted without effect and unknown ones.
pub fn read_volume(
    name: &str,
    attributes: &BTreeMap<String, String>,
    credentials_secret: Option<&str>,
    pod_has_cache: bool,
) -> Result<(ArtifactVolume, Vec<String>), VolumeError> {
    let error = |attribute: &str, problem: String| VolumeError {
        volume: name.to_string(),
        attribute: attribute.to_string(),
        problem,
    };
    let mut warnings = Vec::new();
    let reference = attributes
        .get(ATTR_REFERENCE)
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            error(
                ATTR_REFERENCE,
                "is missing: set volumeAttributes[\"oras.artifact.reference\"] to the artifact, e.g. ghcr.io/org/data:v1".into(),
            )
        })?;
    let artifact = if pod_has_cache && !names_a_registry(reference) {
        validate_reference(reference).map_err(|reason| {
            error(
                ATTR_REFERENCE,
                format!("{reference:?} is not a reference relative to the pod's oras-cache ({reason}): write <repository>[:<tag>][@<digest>], or a full host/repository:tag"),
            )
        })?;
        VolumeArtifact::Relative(reference.to_string())
    } else {
        let mut parsed = ArtifactReference::parse(reference).map_err(|e| {
            error(
                ATTR_REFERENCE,
                format!(
                    "is not a full reference ({e}); write host[:port]/repository[:tag|@digest]{}",
                    if pod_has_cache {
                        ""
                    } else {
                        ", or name an oras-cache on the pod for references relative to it"
                    }
                ),
            )
        })?;
        parsed.registry = parsed.registry.to_ascii_lowercase();
        VolumeArtifact::Full(parsed)
    };
    let media_types: Vec<String> = match attributes.get(ATTR_LAYER_MEDIA_TYPE) {
        None => Vec::new(),
        Some(value) => {
            let types: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            if types.is_empty()
                || types.iter().any(|t| {
                    !t.contains('/') || t.chars().any(|c| c.is_whitespace() || c.is_control())
                })
            {
                return Err(error(
                    ATTR_LAYER_MEDIA_TYPE,
                    format!(
                        "{value:?} is not a media type list: write e.g. application/vnd.oci.image.layer.v1.tar, several separated by commas"
                    ),
                ));
            }
            types
        }
    };
    let plain_http = match attributes.get(ATTR_PLAIN_HTTP) {
        None => None,
        Some(value) => Some(parse_bool(value).ok_or_else(|| {
            error(
                ATTR_PLAIN_HTTP,
                format!("must be \"true\" or \"false\", not {value:?}"),
            )
        })?),
    };
    let concurrency = match attributes.get(ATTR_CONCURRENCY) {
        None => None,
        Some(value) => match value.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n),
            _ => {
                return Err(error(
                    ATTR_CONCURRENCY,
                    format!("{value:?} must be a whole number from 1 to {MAX_CONCURRENCY}"),
                ));
            }
        },
    };
    let size_limit = match attributes.get(ATTR_SIZE_LIMIT) {
        None => None,
        Some(value) if is_quantity(value.trim()) && !value.trim().starts_with('-') => {
            Some(value.trim().to_string())
        }
        Some(value) => {
            return Err(error(
                ATTR_SIZE_LIMIT,
                format!("{value:?} is not a Kubernetes quantity: write e.g. 1Gi"),
            ));
        }
    };
    if let Some(value) = attributes.get(ATTR_PULL_ALWAYS) {
        warnings.push(format!(
            "volume {name:?}: {ATTR_PULL_ALWAYS}={value:?} has no effect: every pod pulls its own copy into an emptyDir (there is no node cache to bypass)"
        ));
    }
    if let Some(value) = attributes.get(ATTR_INSECURE) {
        warnings.push(format!(
            "volume {name:?}: {ATTR_INSECURE}={value:?} is ignored: TLS is always verified; use {ATTR_PLAIN_HTTP} for a plain-HTTP registry"
        ));
    }
    let known = [
        ATTR_REFERENCE,
        ATTR_LAYER_MEDIA_TYPE,
        ATTR_PLAIN_HTTP,
        ATTR_CONCURRENCY,
        ATTR_SIZE_LIMIT,
        ATTR_PULL_ALWAYS,
        ATTR_INSECURE,
    ];
    for key in attributes.keys().filter(|k| !known.contains(&k.as_str())) {
        warnings.push(format!(
            "volume {name:?}: attribute {key:?} is not known to oras-cache and is ignored"
        ));
    }
    Ok((
        ArtifactVolume {
            name: name.to_string(),
            artifact,
            media_types,
            plain_http,
            concurrency,
            size_limit,
            credentials_secret: credentials_secret
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        },
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The seed's `my-singularity-app` volume, as written there.
    #[test]
    fn the_seed_volume_reads_as_a_full_reference() {
        let (volume, warnings) = read_volume(
            "oras-inline",
            &attrs(&[(ATTR_REFERENCE, "ghcr.io/singularityhub/github-ci:latest")]),
            None,
            false,
        )
        .unwrap();
        assert!(warnings.is_empty());
        match volume.artifact {
            VolumeArtifact::Full(r) => {
                assert_eq!(r.registry, "ghcr.io");
                assert_eq!(r.path.repository, "singularityhub/github-ci");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_pod_with_a_cache_may_name_artifacts_relative_to_it() {
        let (volume, _) = read_volume(
            "v",
            &attrs(&[(ATTR_REFERENCE, "workflow/summary:step2")]),
            None,
            true,
        )
        .unwrap();
        assert_eq!(
            volume.artifact,
            VolumeArtifact::Relative("workflow/summary:step2".into())
        );
        // A host with a dot or a port stays a full reference.
        let (volume, _) = read_volume(
            "v",
            &attrs(&[(ATTR_REFERENCE, "Registry.Local:5000/a:1")]),
            None,
            true,
        )
        .unwrap();
        assert!(
            matches!(volume.artifact, VolumeArtifact::Full(ref r) if r.registry == "registry.local:5000")
        );
    }

    #[test]
    fn options_are_read_and_checked() {
        let (volume, warnings) = read_volume(
            "v",
            &attrs(&[
                (ATTR_REFERENCE, "r.io/a:1"),
                (ATTR_LAYER_MEDIA_TYPE, "application/x-sif, text/plain"),
                (ATTR_PLAIN_HTTP, "true"),
                (ATTR_CONCURRENCY, "4"),
                (ATTR_SIZE_LIMIT, "2Gi"),
                (ATTR_PULL_ALWAYS, "true"),
                (ATTR_INSECURE, "true"),
                ("oras.options.surprise", "x"),
            ]),
            Some("creds"),
            false,
        )
        .unwrap();
        assert_eq!(volume.media_types, ["application/x-sif", "text/plain"]);
        assert_eq!(volume.plain_http, Some(true));
        assert_eq!(volume.concurrency, Some(4));
        assert_eq!(volume.size_limit.as_deref(), Some("2Gi"));
        assert_eq!(volume.credentials_secret.as_deref(), Some("creds"));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("no node cache"));
        assert!(warnings[1].contains("TLS is always verified"));
        assert!(warnings[2].contains("oras.options.surprise"));
    }

    #[test]
    fn every_rejection_names_the_volume_and_the_attribute() {
        for (pairs, attribute, has_cache) in [
            (vec![], ATTR_REFERENCE, false),
            (vec![(ATTR_REFERENCE, "  ")], ATTR_REFERENCE, false),
            (vec![(ATTR_REFERENCE, "ubuntu")], ATTR_REFERENCE, false),
            (
                vec![(ATTR_REFERENCE, "r.io/Upper:1")],
                ATTR_REFERENCE,
                false,
            ),
            (vec![(ATTR_REFERENCE, "a/B:1")], ATTR_REFERENCE, true),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_PLAIN_HTTP, "yes")],
                ATTR_PLAIN_HTTP,
                false,
            ),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_CONCURRENCY, "0")],
                ATTR_CONCURRENCY,
                false,
            ),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_CONCURRENCY, "99")],
                ATTR_CONCURRENCY,
                false,
            ),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_SIZE_LIMIT, "big")],
                ATTR_SIZE_LIMIT,
                false,
            ),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_SIZE_LIMIT, "-1Gi")],
                ATTR_SIZE_LIMIT,
                false,
            ),
            (
                vec![(ATTR_REFERENCE, "r.io/a"), (ATTR_LAYER_MEDIA_TYPE, "sif")],
                ATTR_LAYER_MEDIA_TYPE,
                false,
            ),
        ] {
            let error = read_volume("data", &attrs(&pairs), None, has_cache).unwrap_err();
            assert_eq!(error.attribute, attribute, "{pairs:?}");
            let message = error.to_string();
            assert!(message.starts_with("volume \"data\": "), "{message}");
            assert!(message.contains(attribute), "{message}");
        }
    }

    #[test]
    fn csi_driver_names_follow_the_csi_spec() {
        for ok in ["csi.oras.land", "Example.com-driver", "a"] {
            assert!(is_csi_driver_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a.", "a b", "a/b", &"x".repeat(64)] {
            assert!(!is_csi_driver_name(bad), "{bad}");
        }
    }
}
