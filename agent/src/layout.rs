//! OCI image layouts on disk: how inputs and outputs wait on the shared volume.
//!
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`, as image-spec describes them. Blobs are
//! added by rename (or copied to a temporary file first) so a blob file exists only once its
//! content is complete and verified, and `index.json` is written last: a layout without it is
//! incomplete and is never read.

use crate::digest::{Digest, HashingWriter};
use crate::manifest::{Descriptor, ImageManifest, ManifestError};
use oras_cache_api::media_types as mt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `oci-layout` file content.
const OCI_LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Annotation of `index.json` entries naming the reference the manifest came from or goes to.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Errors reading or writing a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the layout could not be read or written.
    #[error("OCI layout {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The layout is missing `index.json` or has no manifest in it.
    #[error(
        "{0} is not a complete OCI layout (no index.json with a manifest); was the init step successful?"
    )]
    Incomplete(PathBuf),
    /// `index.json` is not valid.
    #[error("OCI layout {path}: index.json is invalid: {reason}")]
    InvalidIndex {
        /// The layout.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A blob's content does not match its digest.
    #[error("OCI layout {path}: blob {expected} has digest {actual}")]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// The manifest is not usable.
    #[error("OCI layout {path}: {source}")]
    Manifest {
        /// The layout.
        path: PathBuf,
        /// What is wrong with the manifest.
        source: ManifestError,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Creates (or reuses) the layout skeleton at `root`.
    pub fn create(root: &Path) -> Result<Layout, LayoutError> {
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let marker = root.join("oci-layout");
        std::fs::write(&marker, OCI_LAYOUT_FILE).map_err(io_err(&marker))?;
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing, complete layout.
    pub fn open(root: &Path) -> Result<Layout, LayoutError> {
        if !root.join("index.json").is_file() {
            return Err(LayoutError::Incomplete(root.to_path_buf()));
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob of `digest` lives (whether or not it is there yet).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Whether the blob file exists.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Writes a small blob held in memory.
    pub fn write_blob_bytes(&self, data: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of_bytes(data);
        let path = self.blob_path(&digest);
        let mut temp = self.temp_file()?;
        temp.write_all(data).map_err(io_err(&path))?;
        temp.persist(&path).map_err(|e| LayoutError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(digest)
    }

    /// Moves a file whose digest is known into the blobs (same filesystem).
    pub fn adopt_blob_file(&self, source: &Path, digest: &Digest) -> Result<PathBuf, LayoutError> {
        let path = self.blob_path(digest);
        std::fs::rename(source, &path).map_err(io_err(&path))?;
        Ok(path)
    }

    /// Copies `source` into the blobs, hashing it on the way; returns its digest and size.
    pub fn copy_blob_file(&self, source: &Path) -> Result<(Digest, u64), LayoutError> {
        let mut input = std::fs::File::open(source).map_err(io_err(source))?;
        let temp = self.temp_file()?;
        let mut writer = HashingWriter::new(io::BufWriter::new(temp));
        io::copy(&mut input, &mut writer).map_err(io_err(source))?;
        let (buffered, hasher) = writer.into_parts();
        let temp = buffered.into_inner().map_err(|e| LayoutError::Io {
            path: source.to_path_buf(),
            source: e.into_error(),
        })?;
        let size = hasher.len();
        let digest = hasher.finish();
        let path = self.blob_path(&digest);
        temp.persist(&path).map_err(|e| LayoutError::Io {
            path,
            source: e.error,
        })?;
        Ok((digest, size))
    }

    /// A temporary file inside the layout (same filesystem as the blobs, so renames are cheap).
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, LayoutError> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(crate::digest::readable())
            .tempfile_in(&self.root)
            .map_err(io_err(&self.root))
    }

    /// Writes the manifest blob, then `index.json` pointing at it (atomically, last).
    pub fn set_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        ref_name: Option<&str>,
    ) -> Result<Descriptor, LayoutError> {
        let digest = self.write_blob_bytes(bytes)?;
        let mut annotations = BTreeMap::new();
        if let Some(name) = ref_name {
            annotations.insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
        }
        let descriptor = Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            annotations,
            artifact_type: None,
        };
        let index = Index {
            schema_version: 2,
            media_type: Some(mt::OCI_INDEX.into()),
            manifests: vec![descriptor.clone()],
        };
        let json = serde_json::to_vec_pretty(&index).expect("an index always serialises");
        let path = self.root.join("index.json");
        let mut temp = self.temp_file()?;
        temp.write_all(&json).map_err(io_err(&path))?;
        temp.persist(&path).map_err(|e| LayoutError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(descriptor)
    }

    /// The manifest `index.json` points at, its descriptor and its bytes (digest checked).
    pub fn manifest(&self) -> Result<(ImageManifest, Descriptor, Vec<u8>), LayoutError> {
        let index_path = self.root.join("index.json");
        let text = std::fs::read(&index_path).map_err(io_err(&index_path))?;
        let index: Index =
            serde_json::from_slice(&text).map_err(|e| LayoutError::InvalidIndex {
                path: self.root.clone(),
                reason: e.to_string(),
            })?;
        let descriptor = index
            .manifests
            .into_iter()
            .next()
            .ok_or_else(|| LayoutError::Incomplete(self.root.clone()))?;
        let path = self.blob_path(&descriptor.digest);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let actual = Digest::of_bytes(&bytes);
        if actual != descriptor.digest {
            return Err(LayoutError::Corrupt {
                path,
                expected: descriptor.digest,
                actual,
            });
        }
        let manifest = ImageManifest::parse(&bytes, &descriptor.media_type).map_err(|source| {
            LayoutError::Manifest {
                path: self.root.clone(),
                source,
            }
        })?;
        Ok((manifest, descriptor, bytes))
    }
}
