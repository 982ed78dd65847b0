//! OCI image manifests and descriptors, as far as artifacts need them.
//!
//! Unknown fields are kept out of the types on purpose: manifests are pushed and stored as the
//! exact bytes that were serialised, and a pulled manifest is parsed only to find its layers.

use crate::digest::Digest;
use oras_cache_api::media_types as mt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Annotations (title, unpack, content digest, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type, on descriptors of artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The `org.opencontainers.image.title` annotation.
    pub fn title(&self) -> Option<&str> {
        self.annotations
            .get(mt::ANNOTATION_TITLE)
            .map(String::as_str)
    }

    /// Whether the layer is a directory to unpack (`io.deis.oras.content.unpack: "true"`).
    pub fn is_unpack_directory(&self) -> bool {
        self.annotations
            .get(mt::ANNOTATION_UNPACK)
            .is_some_and(|v| v == "true")
    }

    /// The descriptor of the empty config `{}`.
    pub fn empty_config() -> Descriptor {
        Descriptor {
            media_type: mt::EMPTY_CONFIG.into(),
            digest: Digest::parse(mt::EMPTY_CONFIG_DIGEST).expect("the spec constant is valid"),
            size: 2,
            annotations: BTreeMap::new(),
            artifact_type: None,
        }
    }
}

/// An OCI image manifest (also the shape of Docker schema 2 manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` (optional in the spec, always written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type (image-spec 1.1); absent in 1.0-style manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob (the empty `{}` for artifacts).
    pub config: Descriptor,
    /// The layers: one per file or directory.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest the agent cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the manifest shape.
    #[error("manifest is not a valid image manifest: {0}")]
    Invalid(#[from] serde_json::Error),
    /// An index or another unsupported media type.
    #[error(
        "manifest media type {0:?} is not supported: the agent reads OCI image manifests and Docker schema 2 manifests (push the artifact with oras or oras-agent)"
    )]
    UnsupportedMediaType(String),
}

impl ImageManifest {
    /// An image-spec 1.1 artifact manifest with the empty config, as `oras push` writes it.
    pub fn artifact(
        artifact_type: &str,
        layers: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
    ) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: Some(artifact_type.into()),
            config: Descriptor::empty_config(),
            layers,
            annotations,
        }
    }

    /// Parses manifest bytes, given the media type the registry reported (may be empty).
    pub fn parse(bytes: &[u8], media_type: &str) -> Result<ImageManifest, ManifestError> {
        let accepted = [mt::OCI_MANIFEST, mt::DOCKER_MANIFEST, ""];
        let declared = media_type.split(';').next().unwrap_or_default().trim();
        if !accepted.contains(&declared) {
            return Err(ManifestError::UnsupportedMediaType(declared.into()));
        }
        let manifest: ImageManifest = serde_json::from_slice(bytes)?;
        if let Some(inner) = &manifest.media_type
            && !accepted.contains(&inner.as_str())
        {
            return Err(ManifestError::UnsupportedMediaType(inner.clone()));
        }
        Ok(manifest)
    }

    /// The canonical bytes pushed for this manifest.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_oras_py_style_1_0_manifest() {
        let json = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.unknown.config.v1+json","size":2,
              "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","size":3,
              "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
              "annotations":{"org.opencontainers.image.title":"a.txt"}}],
            "annotations":{}}"#;
        let m = ImageManifest::parse(json, mt::OCI_MANIFEST).unwrap();
        assert_eq!(m.artifact_type, None);
        assert_eq!(m.config.media_type, mt::UNKNOWN_CONFIG);
        assert_eq!(m.layers[0].title(), Some("a.txt"));
    }

    #[test]
    fn an_index_is_refused_with_its_media_type() {
        let err = ImageManifest::parse(b"{}", mt::OCI_INDEX).unwrap_err();
        assert!(err.to_string().contains("image.index"), "{err}");
    }

    #[test]
    fn artifact_manifests_carry_type_and_empty_config() {
        let m = ImageManifest::artifact(mt::DEFAULT_ARTIFACT_TYPE, vec![], BTreeMap::new());
        let json: serde_json::Value = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(json["artifactType"], mt::DEFAULT_ARTIFACT_TYPE);
        assert_eq!(json["config"]["mediaType"], mt::EMPTY_CONFIG);
        assert_eq!(json["config"]["size"], 2);
    }
}
