//! Policies as OCI artifacts, with Kubewarden's media types, through the agent's registry client.
//!
//! `kwctl push` writes an OCI image manifest with one layer (the raw module,
//! `application/vnd.wasm.content.layer.v1+wasm`), the config `{}` as
//! `application/vnd.wasm.config.v1+json`, and the metadata's single-line annotations on the
//! manifest. Pull picks the layer by its media type and verifies its digest.

use std::path::PathBuf;

use oras_agent::manifest::{Descriptor, ImageManifest};
use oras_agent::{ClientOptions, Reference, RegistryClient, RegistryError};
use oras_cache_api::media_types::OCI_MANIFEST;

use crate::metadata::{Metadata, MetadataError};

/// Media type of the policy layer.
pub const WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Media type of the policy config blob.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v1+json";
/// The config blob kwctl writes.
pub const WASM_CONFIG_BLOB: &[u8] = b"{}";
/// Largest module pulled (policies built with Go reach ~20 MB).
pub const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// Where a module comes from: a path, `file://` or `registry://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyUri {
    /// A local file.
    File(PathBuf),
    /// An OCI artifact.
    Registry(Reference),
}

/// Errors of module sources and OCI transfers.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The URI scheme is not one kwrun reads.
    #[error(
        "unsupported policy URI {0:?}: use a path, file:///path.wasm or registry://host/repository:tag"
    )]
    Scheme(String),
    /// `registry://` with a bad reference.
    #[error("{0}")]
    Reference(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The module is not annotated and `--force` was not given.
    #[error(
        "the module has no {section} section: annotate it first (kwrun annotate -m metadata.yml ...) or push with --force",
        section = crate::metadata::METADATA_SECTION
    )]
    NotAnnotated,
    /// Its metadata cannot be read.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The artifact is not a Kubewarden policy.
    #[error("{reference} is not a Kubewarden policy: {why}")]
    NotAPolicy {
        /// The artifact.
        reference: String,
        /// What is missing.
        why: String,
    },
    /// A local file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl PolicyUri {
    /// Parses a module argument as kwctl takes it.
    pub fn parse(uri: &str) -> Result<Self, OciError> {
        if let Some(rest) = uri.strip_prefix("registry://") {
            return Reference::parse(rest)
                .map(PolicyUri::Registry)
                .map_err(|e| OciError::Reference(e.to_string()));
        }
        if let Some(path) = uri.strip_prefix("file://") {
            return Ok(PolicyUri::File(PathBuf::from(path)));
        }
        if uri.contains("://") {
            return Err(OciError::Scheme(uri.to_owned()));
        }
        Ok(PolicyUri::File(PathBuf::from(uri)))
    }

    /// The module's bytes. Registries on loopback are spoken to in plain HTTP, others only with
    /// `plain_http`.
    pub fn fetch(&self, plain_http: bool) -> Result<Vec<u8>, OciError> {
        match self {
            PolicyUri::File(path) => std::fs::read(path).map_err(|source| OciError::Io {
                path: path.display().to_string(),
                source,
            }),
            PolicyUri::Registry(reference) => pull(&client_for(reference, plain_http)?, reference),
        }
    }
}

/// Whether a registry host is on this machine (where plain HTTP is the norm for test registries).
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| registry.rsplit_once(':').map_or(registry, |(h, _)| h));
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A client for `reference`'s registry.
pub fn client_for(reference: &Reference, plain_http: bool) -> Result<RegistryClient, OciError> {
    let options = ClientOptions::new(plain_http || is_loopback(&reference.registry));
    Ok(RegistryClient::new(options)?)
}

/// What a push wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `host/repository@sha256:...`, the reference that cannot move.
    pub immutable_ref: String,
    /// The manifest digest.
    pub digest: String,
}

/// Pushes a module as a Kubewarden policy artifact.
pub fn push(
    client: &RegistryClient,
    reference: &Reference,
    module: &[u8],
    force: bool,
) -> Result<Pushed, OciError> {
    let metadata = Metadata::from_module(module)?;
    if metadata.is_none() && !force {
        return Err(OciError::NotAnnotated);
    }
    let config = client.push_blob_bytes(reference, WASM_CONFIG_BLOB)?;
    let layer = client.push_blob_bytes(reference, module)?;
    let descriptor = |media_type: &str, digest, size| Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        annotations: Default::default(),
        artifact_type: None,
    };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: descriptor(WASM_CONFIG, config.digest, config.size),
        layers: vec![descriptor(WASM_LAYER, layer.digest, layer.size)],
        annotations: metadata
            .map(|m| m.manifest_annotations())
            .unwrap_or_default(),
    };
    let digest = client.push_manifest(reference, &manifest.to_bytes(), OCI_MANIFEST)?;
    Ok(Pushed {
        immutable_ref: format!(
            "registry://{}/{}@{digest}",
            reference.registry, reference.repository
        ),
        digest: digest.to_string(),
    })
}

/// Pulls the module of a policy artifact.
pub fn pull(client: &RegistryClient, reference: &Reference) -> Result<Vec<u8>, OciError> {
    let pulled = client.pull_manifest(reference)?;
    let not_a_policy = |why: String| OciError::NotAPolicy {
        reference: reference.to_string(),
        why,
    };
    let manifest = ImageManifest::parse(&pulled.bytes, &pulled.media_type)
        .map_err(|e| not_a_policy(e.to_string()))?;
    let layer = manifest
        .layers
        .iter()
        .find(|layer| layer.media_type == WASM_LAYER)
        .ok_or_else(|| not_a_policy(format!("no layer of media type {WASM_LAYER}")))?;
    Ok(client.pull_blob_bytes(reference, &layer.digest, MAX_MODULE_BYTES)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_arguments_are_paths_file_or_registry_uris() {
        assert_eq!(
            PolicyUri::parse("policy.wasm").unwrap(),
            PolicyUri::File("policy.wasm".into())
        );
        assert_eq!(
            PolicyUri::parse("file:///tmp/p.wasm").unwrap(),
            PolicyUri::File("/tmp/p.wasm".into())
        );
        let PolicyUri::Registry(reference) =
            PolicyUri::parse("registry://127.0.0.1:5000/policies/oras:v1").unwrap()
        else {
            panic!("registry URI not recognised");
        };
        assert_eq!(reference.registry, "127.0.0.1:5000");
        assert_eq!(reference.repository, "policies/oras");
        assert_eq!(reference.tag.as_deref(), Some("v1"));
        assert!(matches!(
            PolicyUri::parse("https://x/p.wasm"),
            Err(OciError::Scheme(_))
        ));
        assert!(matches!(
            PolicyUri::parse("registry://nohost"),
            Err(OciError::Reference(_))
        ));
    }

    #[test]
    fn loopback_registries_are_recognised() {
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.0.0.2",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["ghcr.io", "10.0.0.1:5000", "registry.local:443"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
