//! Media types and annotation keys of the artifacts the agent pushes and pulls.
//!
//! They follow what the `oras` CLI (oras-go v2) writes, so artifacts move both ways between this
//! project, `oras` and oras-py.

/// OCI image manifest, the only manifest type the agent writes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index; accepted on pull (the agent picks no platform: artifacts are not images).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest, accepted on pull for old registries and clients.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The `artifactType` of what the agent pushes, as `oras push` writes when none is given.
pub const DEFAULT_ARTIFACT_TYPE: &str = "application/vnd.unknown.artifact.v1";
/// The empty JSON config descriptor of image-spec 1.1 (`{}`).
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// Digest of the two-byte blob `{}`.
pub const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The config media type of image-spec 1.0 style artifacts (older `oras` and oras-py).
pub const UNKNOWN_CONFIG: &str = "application/vnd.unknown.config.v1+json";
/// A file layer, as `oras push` writes it for a file with no explicit type.
pub const DEFAULT_FILE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A directory layer: a gzip-compressed tar stream.
pub const TAR_GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Layer annotation holding the file or directory name the layer unpacks to.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// Layer annotation: `"true"` when the layer is a directory to unpack.
pub const ANNOTATION_UNPACK: &str = "io.deis.oras.content.unpack";
/// Layer annotation: digest of the uncompressed tar stream of a directory layer.
pub const ANNOTATION_CONTENT_DIGEST: &str = "io.deis.oras.content.digest";
/// Manifest annotation: creation time, as `oras push` writes it.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
